//! What the signatures of one digest say, whatever layout they were found in: the value of
//! the verdict cache.

use std::sync::Arc;

/// What the signatures of one digest say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Findings {
    /// A signature over this digest verifies with the key of this fingerprint. The key's
    /// name is looked up when the verdict is read, so a key renamed in the policy is named
    /// as it is now, not as it was when the verdict was cached.
    Verified {
        /// [`crate::policy::PublicKey::fingerprint`] of the key.
        fingerprint: Arc<str>,
    },
    /// No signature at all.
    NotSigned,
    /// Signatures exist, but none over this digest verifies with the keys.
    NoneVerify {
        /// Signatures whose payload names another digest (copied from another image).
        other_digest: usize,
        /// Signatures for this digest that no key verifies, or that cannot be read.
        bad_signature: usize,
    },
}

impl Findings {
    /// The findings of two places looked in, for one digest: a verified signature wins, and
    /// signatures that do not verify are counted together.
    pub fn and(self, other: Findings) -> Findings {
        match (self, other) {
            (verified @ Findings::Verified { .. }, _)
            | (_, verified @ Findings::Verified { .. }) => verified,
            (Findings::NotSigned, other) | (other, Findings::NotSigned) => other,
            (
                Findings::NoneVerify {
                    other_digest: a,
                    bad_signature: b,
                },
                Findings::NoneVerify {
                    other_digest: c,
                    bad_signature: d,
                },
            ) => Findings::NoneVerify {
                other_digest: a + c,
                bad_signature: b + d,
            },
        }
    }

    /// Whether a signature verified: looking further cannot change the verdict.
    pub fn is_verified(&self) -> bool {
        matches!(self, Findings::Verified { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_signature_wins_and_failures_add_up() {
        let verified = || Findings::Verified {
            fingerprint: Arc::from("k"),
        };
        let none = |o, b| Findings::NoneVerify {
            other_digest: o,
            bad_signature: b,
        };
        assert_eq!(Findings::NotSigned.and(verified()), verified());
        assert_eq!(none(1, 0).and(verified()), verified());
        assert_eq!(verified().and(none(1, 0)), verified());
        assert_eq!(
            Findings::NotSigned.and(Findings::NotSigned),
            Findings::NotSigned
        );
        assert_eq!(Findings::NotSigned.and(none(0, 2)), none(0, 2));
        assert_eq!(none(1, 2).and(none(3, 4)), none(4, 6));
    }
}
