//! Keyless signers: the workload identity a Fulcio certificate names (its OIDC issuer and its
//! subject, the URI or email SAN), as a policy's `keys[].keyless` gives it.
//!
//! A value is matched exactly, or by a regular expression that must match all of it (as if
//! between `^` and `$`): `.*@example.com` must not admit `me@example.com.evil.org`, which an
//! unanchored match, cosign's, would. The `regex` crate matches in linear time, so no
//! expression in a policy can make admission slow, and each is bounded in size when compiled.

use std::fmt;
use std::sync::Arc;

use image_policy_crd::{Keyless, Reason};
use regex::{Regex, RegexBuilder};

use super::problem::Problem;
use super::trust::TrustRoot;

/// The longest regular expression accepted, in bytes.
const MAX_PATTERN_BYTES: usize = 1024;
/// The most memory one compiled expression may take.
const MAX_COMPILED_BYTES: usize = 1 << 20;

/// One value of an identity: exact, or a regular expression for all of it.
#[derive(Clone)]
pub enum Matcher {
    /// This value exactly.
    Exact(String),
    /// Any value the expression matches whole; the expression as written beside it.
    Pattern(Regex, String),
}

impl Matcher {
    /// An exact matcher.
    pub fn exact(value: impl Into<String>) -> Matcher {
        Matcher::Exact(value.into())
    }

    /// A matcher for the values `pattern` matches whole; why not when it does not compile.
    pub fn pattern(pattern: &str) -> Result<Matcher, String> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "the regular expression is longer than {MAX_PATTERN_BYTES} bytes"
            ));
        }
        RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(MAX_COMPILED_BYTES)
            .build()
            .map(|regex| Matcher::Pattern(regex, pattern.to_owned()))
            .map_err(|e| {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or_default().trim().to_owned();
                format!("not a regular expression ({last})")
            })
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(expected) => expected == value,
            Matcher::Pattern(regex, _) => regex.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(value) => f.write_str(value),
            Matcher::Pattern(_, pattern) => write!(f, "/{pattern}/"),
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A keyless signer: the certificate's issuer and subject, and the trusted root whose Fulcio
/// issued it.
#[derive(Debug, Clone)]
pub struct Identity {
    issuer: Matcher,
    subject: Matcher,
    root: Arc<TrustRoot>,
    /// What identifies it in cache keys, made once: it is part of every verdict's key.
    fingerprint: String,
}

impl Identity {
    /// The identity of the certificates for `subject` of `issuer` that `root`'s Fulcio issues.
    pub fn new(subject: Matcher, issuer: Matcher, root: Arc<TrustRoot>) -> Identity {
        let text = format!("{issuer:?}\n{subject:?}");
        let fingerprint = format!(
            "keyless:{}@{}",
            super::keys::sha256_hex(text.as_bytes()),
            root.identity()
        );
        Identity {
            issuer,
            subject,
            root,
            fingerprint,
        }
    }

    /// The trusted root of its certificates, logs and timestamps.
    pub fn root(&self) -> &Arc<TrustRoot> {
        &self.root
    }

    /// Compiles `keyless` (at field path `path`), adding every problem to `problems`.
    pub fn compile(
        keyless: &Keyless,
        root: Arc<TrustRoot>,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Identity> {
        let issuer = one_of(
            keyless.issuer.as_deref(),
            keyless.issuer_reg_exp.as_deref(),
            &format!("{path}.issuer"),
            &format!("{path}.issuerRegExp"),
            problems,
        );
        let subject = one_of(
            keyless.subject.as_deref(),
            keyless.subject_reg_exp.as_deref(),
            &format!("{path}.subject"),
            &format!("{path}.subjectRegExp"),
            problems,
        );
        Some(Identity::new(subject?, issuer?, root))
    }

    /// Whether a certificate of `subject`, issued for `issuer`, is this identity's.
    pub fn matches(&self, subject: &str, issuer: &str) -> bool {
        self.issuer.matches(issuer) && self.subject.matches(subject)
    }

    /// What identifies it in cache keys: both matchers and the root's content.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subject {} of issuer {}", self.subject, self.issuer)
    }
}

/// The matcher of an exact value or a regular expression, exactly one of which is given.
fn one_of(
    exact: Option<&str>,
    pattern: Option<&str>,
    exact_path: &str,
    pattern_path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Matcher> {
    let problem =
        |path: &str, message: String| Problem::new(Reason::InvalidIdentity, path, message);
    match (exact, pattern) {
        (Some(value), None) if !value.is_empty() => Some(Matcher::exact(value)),
        (None, Some(pattern)) if !pattern.is_empty() => match Matcher::pattern(pattern) {
            Ok(matcher) => Some(matcher),
            Err(why) => {
                problems.push(problem(pattern_path, format!("{pattern:?} is {why}")));
                None
            }
        },
        (Some(_), Some(_)) => {
            problems.push(problem(
                exact_path,
                format!(
                    "give {} or its regular expression, not both",
                    last(exact_path)
                ),
            ));
            None
        }
        _ => {
            problems.push(problem(
                exact_path,
                format!(
                    "a keyless identity needs its {} (or {})",
                    last(exact_path),
                    last(pattern_path)
                ),
            ));
            None
        }
    }
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_match_the_whole_value() {
        let m = Matcher::pattern(".*@example\\.com").expect("compiles");
        assert!(m.matches("me@example.com"));
        assert!(!m.matches("me@example.com.evil.org"));
        assert!(!m.matches("x\nme@example.com"));
        let alternatives = Matcher::pattern("a|b").expect("compiles");
        // The anchors bind the whole alternation, not its first and last branches.
        assert!(alternatives.matches("a") && alternatives.matches("b"));
        assert!(!alternatives.matches("ab") && !alternatives.matches("xa"));
        assert!(Matcher::exact("a").matches("a") && !Matcher::exact("a").matches("A"));
    }

    #[test]
    fn bad_expressions_are_refused_with_why() {
        let why = Matcher::pattern("(unclosed").expect_err("refused");
        assert!(why.starts_with("not a regular expression ("), "{why}");
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert!(Matcher::pattern(&long).is_err());
        // Compiles to far more than the bound allows.
        assert!(Matcher::pattern("(?:\\w{100}){100}").is_err());
    }

    #[test]
    fn an_identity_needs_exactly_one_form_of_each_value() {
        let root = TrustRoot::public_good();
        let compile = |k: Keyless| {
            let mut problems = Vec::new();
            let identity = Identity::compile(&k, root.clone(), "p", &mut problems);
            let paths: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
            (identity.is_some(), paths)
        };
        let good = Keyless {
            issuer: Some("https://issuer".into()),
            subject_reg_exp: Some("https://github.com/org/.*".into()),
            ..Keyless::default()
        };
        assert_eq!(compile(good), (true, vec![]));
        assert_eq!(
            compile(Keyless::default()),
            (false, vec!["p.issuer".into(), "p.subject".into()])
        );
        let both = Keyless {
            issuer: Some("a".into()),
            issuer_reg_exp: Some("a".into()),
            subject: Some("s".into()),
            ..Keyless::default()
        };
        assert_eq!(compile(both), (false, vec!["p.issuer".into()]));
        let bad = Keyless {
            issuer: Some("a".into()),
            subject_reg_exp: Some("(".into()),
            ..Keyless::default()
        };
        assert_eq!(compile(bad), (false, vec!["p.subjectRegExp".into()]));
    }
}
