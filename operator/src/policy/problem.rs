//! What is wrong with a policy: one [`Problem`] per field, each with its path and the
//! condition reason it maps to, and all of a policy's at once in [`Problems`].
//!
//! At the bottom of the engine: every part of `policy/` that compiles a field reports here,
//! and this file imports nothing from them.

use std::fmt;

use image_policy_crd::Reason;

/// One thing wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The condition reason it maps to.
    pub reason: Reason,
    /// The field path, such as `spec.verification.keys[0].publicKey`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(reason: Reason, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            reason,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a policy, in the order of its fields; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// The reason a `Ready=False` condition reports: the first problem's.
    pub fn reason(&self) -> Reason {
        self.0.first().map_or(Reason::InvalidKey, |p| p.reason)
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
