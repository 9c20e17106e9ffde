//! Keyless signers: the workload identity a Fulcio certificate names (its OIDC issuer and its
//! subject, the URI or email SAN), as a policy's `keys[].keyless` gives it.
//!
//! A value is matched exactly, or by a regular expression that must match all of it (as if
//! between `^` and `$`): `.*@example.com` must not admit `me@example.com.evil.org`, which an
//! unanchored match, cosign's, would. The expression is compiled as written first, and only
//! then between the anchors: wrapped unchecked, an unbalanced `)` would close the anchoring
//! group early (`x)|(.*` becomes `^(?:x)|(.*)$`, which matches every value). The `regex`
//! crate matches in linear time, so no expression in a policy can make admission slow, and
//! each is bounded in length, nesting and compiled size (docs/contract.md §8).

use std::fmt;
use std::sync::Arc;

use image_policy_crd::{Keyless, Reason};
use regex::{Regex, RegexBuilder};

use super::problem::Problem;
use super::trust::TrustRoot;

/// The longest regular expression accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// The most memory one compiled expression may take (`RegexBuilder::size_limit`); compiling
/// stops as soon as it is passed, which also bounds the time compiling takes.
pub const MAX_COMPILED_BYTES: usize = 1 << 20;
/// The most memory the lazy DFA of one expression may cache per thread
/// (`RegexBuilder::dfa_size_limit`); past it, matching falls back to slower linear engines.
pub const MAX_DFA_BYTES: usize = 1 << 20;
/// The deepest nesting of groups and repetitions (`RegexBuilder::nest_limit`), which bounds
/// the parser's recursion.
pub const MAX_NESTING: u32 = 64;

/// One value of an identity: exact, or a regular expression for all of it.
#[derive(Clone)]
pub enum Matcher {
    /// This value exactly.
    Exact(String),
    /// Any value the expression matches whole; the expression as written beside it.
    Pattern(Regex, String),
}

/// Why a regular expression of an identity is refused. Each message follows "`<expression>`
/// is".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// Longer than [`MAX_PATTERN_BYTES`].
    #[error(
        "{length} bytes long, over the limit of {MAX_PATTERN_BYTES} bytes for an identity's \
         regular expression"
    )]
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// Not a regular expression on its own: the parser's reason.
    #[error("not a regular expression ({0})")]
    Syntax(String),
    /// Its compiled form would pass [`MAX_COMPILED_BYTES`].
    #[error(
        "too large once compiled: over the limit of {MAX_COMPILED_BYTES} bytes for an \
         identity's regular expression (a bounded repetition such as {{1000}} multiplies \
         the size of what it repeats)"
    )]
    TooBig,
    /// Valid alone, but it ends inside a `#` comment of the `x` flag, which would swallow the
    /// closing anchor.
    #[error(
        "a regular expression that ends inside a '#' comment of the x flag; end the comment \
         with a newline"
    )]
    OpenComment,
}

impl ExpressionError {
    fn of(error: &regex::Error) -> Self {
        match error {
            regex::Error::CompiledTooBig(_) => ExpressionError::TooBig,
            // The last line of the parser's message says what is wrong; the lines before it
            // repeat the expression with a caret under the fault.
            other => {
                let detail = other.to_string();
                let last = detail.lines().last().unwrap_or_default().trim();
                let reason = last.strip_prefix("error: ").unwrap_or(last);
                ExpressionError::Syntax(reason.to_owned())
            }
        }
    }
}

impl Matcher {
    /// An exact matcher.
    pub fn exact(value: impl Into<String>) -> Matcher {
        Matcher::Exact(value.into())
    }

    /// A matcher for the values `pattern` matches whole; why not when `pattern` is not a
    /// regular expression on its own or passes a limit.
    pub fn pattern(pattern: &str) -> Result<Matcher, ExpressionError> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(ExpressionError::TooLong {
                length: pattern.len(),
            });
        }
        // As written first: only an expression whose groups all close within itself can be
        // put between the anchors without changing what they bind.
        compile(pattern, MAX_NESTING).map_err(|e| ExpressionError::of(&e))?;
        // The anchors and their group are two more levels of nesting (a concatenation and a
        // group), which the limit does not count against the expression.
        match compile(&format!("^(?:{pattern})$"), MAX_NESTING + 2) {
            Ok(regex) => Ok(Matcher::Pattern(regex, pattern.to_owned())),
            Err(regex::Error::CompiledTooBig(_)) => Err(ExpressionError::TooBig),
            // A `#` comment of the x flag runs to the end of the line, so the only complete
            // expression that stops compiling once `)$` follows it is one that ends in such
            // a comment: refused, never matched unanchored.
            Err(_) => Err(ExpressionError::OpenComment),
        }
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

/// An identity's regular expression compiled within its limits.
fn compile(expression: &str, nesting: u32) -> Result<Regex, regex::Error> {
    RegexBuilder::new(expression)
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(MAX_DFA_BYTES)
        .nest_limit(nesting)
        .build()
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
                let quoted = excerpt(pattern);
                problems.push(problem(pattern_path, format!("{quoted:?} is {why}")));
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

/// How many characters of a refused expression a message quotes.
const QUOTE_LIMIT: usize = 128;

/// At most [`QUOTE_LIMIT`] characters of `s`, with `…` when cut: a status condition quotes
/// the expression, not a megabyte of it.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
        None => s.to_owned(),
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
        assert_eq!(why, ExpressionError::Syntax("unclosed group".into()));
        assert_eq!(why.to_string(), "not a regular expression (unclosed group)");
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert_eq!(
            Matcher::pattern(&long).expect_err("refused"),
            ExpressionError::TooLong {
                length: MAX_PATTERN_BYTES + 1
            }
        );
        // At the limit, it compiles.
        assert!(Matcher::pattern(&"a".repeat(MAX_PATTERN_BYTES)).is_ok());
        // Compiles to far more than the bound allows.
        let big = Matcher::pattern("(?:\\w{100}){100}").expect_err("refused");
        assert_eq!(big, ExpressionError::TooBig);
        assert!(big.to_string().contains("1048576 bytes"), "{big}");
    }

    /// Expressions that are not expressions on their own, each of which, put between the
    /// anchors unchecked, either compiled to something else or failed with a misleading reason.
    #[test]
    fn an_expression_is_compiled_as_written_before_it_is_anchored() {
        for (expression, reason) in [
            // The escape: `^(?:x)|(.*)$` matches every value.
            ("https://github.com/other/x)|(.*", "unopened group"),
            (").*(", "unopened group"),
            ("a)|(?:b", "unopened group"),
            ("x)|.*|(y", "unopened group"),
            ("https://github.com/org/(.*", "unclosed group"),
            ("((a)", "unclosed group"),
            ("a))((", "unopened group"),
            // A trailing backslash escapes the `)` of the anchoring group.
            (
                "https://github.com/org/\\",
                "incomplete escape sequence, reached end of pattern prematurely",
            ),
            ("[a-z", "unclosed character class"),
            ("a{2", "unclosed counted repetition"),
        ] {
            let why = Matcher::pattern(expression).expect_err(expression);
            assert_eq!(why, ExpressionError::Syntax(reason.into()), "{expression}");
        }
        // What compiles on its own stays anchored: a stray `]` is a literal.
        let bracket = Matcher::pattern("a]").expect("compiles");
        assert!(bracket.matches("a]") && !bracket.matches("xa]") && !bracket.matches("a]x"));
        let empty_branch = Matcher::pattern("a|").expect("compiles");
        assert!(empty_branch.matches("a") && empty_branch.matches(""));
        assert!(!empty_branch.matches("ab") && !empty_branch.matches("anything"));
        // Flags set inside the expression stay inside the anchoring group: `(?m)` does not
        // turn the closing `$` into an end of line.
        let multi_line = Matcher::pattern("(?m)a").expect("compiles");
        assert!(multi_line.matches("a") && !multi_line.matches("a\nb"));
        // A comment of the x flag would run over the anchors: refused, with how to fix it.
        assert_eq!(
            Matcher::pattern("(?x)https://github\\.com/org/.* # any repository")
                .expect_err("refused"),
            ExpressionError::OpenComment
        );
        let commented =
            Matcher::pattern("(?x)https://github\\.com/org/.* # any repository\n").expect("ok");
        assert!(commented.matches("https://github.com/org/x"));
        assert!(!commented.matches("x https://github.com/org/x"));
    }

    #[test]
    fn nesting_and_repetition_have_limits() {
        let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert!(Matcher::pattern(&deep(MAX_NESTING as usize)).is_ok());
        let why = Matcher::pattern(&deep(MAX_NESTING as usize + 1)).expect_err("too deep");
        assert!(
            matches!(&why, ExpressionError::Syntax(reason) if reason.contains("(64)")),
            "{why}"
        );
        // Counted repetitions multiply; the size limit stops them while they compile.
        for huge in ["a{1000}{1000}", "(?:a{1,1000}){1,1000}", "[\\w\\d]{5000}"] {
            assert_eq!(
                Matcher::pattern(huge).expect_err(huge),
                ExpressionError::TooBig,
                "{huge}"
            );
        }
        // A Unicode class repeated a little compiles within it (a few dozen times does not).
        assert!(Matcher::pattern("\\w{1,10}@example\\.com").is_ok());
    }

    /// A whole policy with malformed expressions: refused, each problem at its field path with
    /// the reason `InvalidIdentity`.
    #[test]
    fn a_policy_with_expressions_that_escape_their_anchors_is_refused() {
        use crate::policy::Snapshot;

        let keyless = |name: &str, issuer: &str, subject: &str| {
            serde_json::json!({"name": name, "keyless": {
                "issuerRegExp": issuer, "subjectRegExp": subject}})
        };
        let long = format!("{}x", "a".repeat(MAX_PATTERN_BYTES));
        let spec = serde_json::json!({"verification": {
            "keys": [
                keyless("escape", "https://token\\.actions\\.githubusercontent\\.com",
                        "https://github.com/other/x)|(.*"),
                keyless("backslash", "https://issuer)|(.*", "https://github.com/org/\\"),
                keyless("long", ".*", &long),
                keyless("big", "(?:\\w{100}){100}", "https://github\\.com/org/.*"),
                keyless("good", "https://issuer", "https://github\\.com/org/.*"),
            ],
            "images": [{"namePattern": "*", "keys": [
                {"name": "escape"}, {"name": "backslash"}, {"name": "long"},
                {"name": "big"}, {"name": "good"}]}],
        }});
        let spec = serde_json::from_value(spec).expect("spec");
        let problems = Snapshot::compile_spec(&spec).expect_err("refused").0;
        let found: Vec<(Reason, &str)> = problems
            .iter()
            .map(|p| (p.reason, p.path.as_str()))
            .collect();
        let at = |i: usize, field: &str| format!("spec.verification.keys[{i}].keyless.{field}");
        let expected = [
            at(0, "subjectRegExp"),
            at(1, "issuerRegExp"),
            at(1, "subjectRegExp"),
            at(2, "subjectRegExp"),
            at(3, "issuerRegExp"),
        ];
        assert_eq!(
            found,
            expected
                .iter()
                .map(|path| (Reason::InvalidIdentity, path.as_str()))
                .collect::<Vec<_>>()
        );
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages.first().copied(),
            Some(
                "\"https://github.com/other/x)|(.*\" is not a regular expression (unopened group)"
            )
        );
        let long_message = messages.get(3).copied().unwrap_or_default();
        assert!(long_message.contains("1025 bytes long"), "{long_message}");
        assert!(long_message.len() < 400, "quoted in part: {long_message}");
        assert!(
            messages
                .get(4)
                .is_some_and(|m| m.contains("too large once compiled"))
        );
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
        let escape = Keyless {
            issuer_reg_exp: Some("https://token.actions.githubusercontent.com)|(.*".into()),
            subject_reg_exp: Some("https://github.com/other/x)|(.*".into()),
            ..Keyless::default()
        };
        assert_eq!(
            compile(escape),
            (
                false,
                vec!["p.issuerRegExp".into(), "p.subjectRegExp".into()]
            )
        );
    }
}
