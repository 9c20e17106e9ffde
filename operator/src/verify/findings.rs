//! What the signatures of one digest say, whatever layout they were found in: the value of
//! the verdict cache.

use std::sync::Arc;

use super::verdict::Rejection;

/// What the signatures of one digest say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Findings {
    /// A signature over this digest verifies with the key of this identity
    /// ([`crate::policy::NamedKey::identity`]). The key's name is looked up when the verdict is
    /// read, so a key renamed in the policy is named as it is now.
    Verified {
        /// The key's identity.
        fingerprint: Arc<str>,
    },
    /// Nothing verifies: what was found.
    Unverified(Seen),
}

/// What was found of a digest's signatures when none counts: the first rejection of each
/// kind and how many of that kind, the one the denial names first
/// ([`Rejection::among_signatures`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// One entry per kind, in the denial's order.
    kinds: Vec<(Rejection, usize)>,
}

impl Seen {
    /// Counts one signature that does not count, kept when it is the first of its kind.
    pub fn add(&mut self, rejection: Rejection) {
        self.add_many(rejection, 1);
    }

    fn add_many(&mut self, rejection: Rejection, count: usize) {
        let rejection = rejection.counted();
        let place = rejection.among_signatures();
        match self
            .kinds
            .binary_search_by_key(&place, |(kept, _)| kept.among_signatures())
        {
            Ok(i) => {
                if let Some((_, kept)) = self.kinds.get_mut(i) {
                    *kept += count;
                }
            }
            Err(i) => self.kinds.insert(i, (rejection, count)),
        }
    }

    /// Whether anything was found.
    pub fn found_any(&self) -> bool {
        !self.kinds.is_empty()
    }

    /// How many signatures of the kind of `rejection` were seen.
    pub fn count(&self, rejection: &Rejection) -> usize {
        let place = rejection.among_signatures();
        self.kinds
            .iter()
            .find(|(kept, _)| kept.among_signatures() == place)
            .map_or(0, |(_, count)| *count)
    }

    /// The first rejection of each kind seen, with how many, the one the denial names first.
    pub fn kinds(&self) -> impl Iterator<Item = (&Rejection, usize)> {
        self.kinds
            .iter()
            .map(|(rejection, count)| (rejection, *count))
    }

    /// The rejection that says most of why nothing verified; `None` when nothing was found.
    pub fn most_telling(self) -> Option<Rejection> {
        self.kinds
            .into_iter()
            .next()
            .map(|(rejection, _)| rejection)
    }

    /// What two places looked in found together: the first of each kind stays first, the
    /// counts add up.
    pub fn and(mut self, other: Seen) -> Seen {
        for (rejection, count) in other.kinds {
            self.add_many(rejection, count);
        }
        self
    }
}

impl Findings {
    /// No signature at all.
    pub fn not_signed() -> Self {
        Findings::Unverified(Seen::default())
    }

    /// The findings of two places looked in, for one digest: a verified signature wins, and
    /// what did not verify is counted together.
    pub fn and(self, other: Findings) -> Findings {
        match (self, other) {
            (verified @ Findings::Verified { .. }, _)
            | (_, verified @ Findings::Verified { .. }) => verified,
            (Findings::Unverified(a), Findings::Unverified(b)) => Findings::Unverified(a.and(b)),
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
    use crate::verify::verdict::Format;

    #[test]
    fn a_verified_signature_wins_and_failures_add_up() {
        let verified = || Findings::Verified {
            fingerprint: Arc::from("k"),
        };
        let none = |other_digest, bad_signature| {
            let mut seen = Seen::default();
            for _ in 0..other_digest {
                seen.add(Rejection::OtherDigest);
            }
            for _ in 0..bad_signature {
                seen.add(Rejection::NoKeyVerifies(Format::Legacy));
            }
            Findings::Unverified(seen)
        };
        assert_eq!(Findings::not_signed().and(verified()), verified());
        assert_eq!(none(1, 0).and(verified()), verified());
        assert_eq!(verified().and(none(1, 0)), verified());
        let both = Findings::not_signed().and(Findings::not_signed());
        assert!(matches!(&both, Findings::Unverified(seen) if !seen.found_any()));
        let Findings::Unverified(sum) = none(1, 2).and(none(3, 4)) else {
            panic!("unverified")
        };
        assert_eq!(
            (
                sum.count(&Rejection::OtherDigest),
                sum.count(&Rejection::NoKeyVerifies(Format::Legacy))
            ),
            (4, 6)
        );
        let mut seen = Seen::default();
        seen.add(Rejection::Attestation {
            predicate_type: "https://slsa.dev/provenance/v1".into(),
        });
        seen.add(Rejection::NoKeyVerifies(Format::Bundle));
        assert!(seen.found_any() && seen.count(&Rejection::NoKeyVerifies(Format::Bundle)) == 1);
        let attestation = Rejection::Attestation {
            predicate_type: "https://slsa.dev/provenance/v1".into(),
        };
        assert_eq!(
            seen.kinds().collect::<Vec<_>>(),
            [
                (&Rejection::NoKeyVerifies(Format::Bundle), 1),
                (&attestation, 1)
            ]
        );
    }

    /// The first of each kind is kept, across the places looked in too; one that cannot be
    /// read is counted with those no signer verifies, in its format.
    #[test]
    fn the_first_of_each_kind_is_kept() {
        let mismatch = |subject: &str| Rejection::IdentityMismatch {
            subject: subject.into(),
            issuer: "i".into(),
        };
        let mut a = Seen::default();
        a.add(mismatch("first"));
        a.add(Rejection::Unreadable {
            format: Format::Bundle,
            why: "w".into(),
        });
        let mut b = Seen::default();
        b.add(mismatch("second"));
        b.add(Rejection::NoKeyVerifies(Format::Bundle));
        let both = a.and(b);
        assert_eq!(both.count(&mismatch("any")), 2);
        assert_eq!(both.count(&Rejection::NoKeyVerifies(Format::Bundle)), 2);
        assert_eq!(both.most_telling(), Some(mismatch("first")));
    }
}
