//! The regular expressions of keyless identities (`subjectRegExp`, `issuerRegExp`).
//!
//! Input: NUL-separated strings; the first is the expression, the others values.
//!
//! Properties: an expression is refused only when it is not a regular expression on its own
//! or passes a limit; one that is accepted matches a value exactly when the value as a whole
//! is in its language, decided independently of the anchoring the product writes (a lazy DFA
//! run from the first byte to the last, which knows nothing of `^(?:…)$`).

use image_policy::policy::Matcher;
use image_policy::policy::identity::ExpressionError;
use regex_automata::hybrid::dfa::DFA;
use regex_automata::{Anchored, Input, MatchKind};

/// The target.
pub fn run(data: &[u8]) {
    let texts = crate::parts(data);
    let Some((expression, values)) = texts.split_first() else {
        return;
    };
    match Matcher::pattern(expression) {
        Ok(matcher) => {
            let Some(whole) = WholeMatch::new(expression) else {
                return;
            };
            for value in values.iter().chain([expression, &String::new()]) {
                if let Some(expected) = whole.matches(value) {
                    assert_eq!(
                        matcher.matches(value),
                        expected,
                        "/{expression}/ on {value:?}"
                    );
                }
            }
        }
        Err(ExpressionError::Syntax(_)) => {
            // Refused as not an expression: then it is not one, under the same limits.
            assert!(
                regex::RegexBuilder::new(expression)
                    .nest_limit(image_policy::policy::identity::MAX_NESTING)
                    .build()
                    .is_err(),
                "{expression:?} is an expression"
            );
        }
        Err(_) => {}
    }
}

/// Whether a value is in an expression's language, as a whole.
struct WholeMatch(DFA);

impl WholeMatch {
    /// `None` when the expression is beyond this checker's own limits.
    fn new(expression: &str) -> Option<Self> {
        DFA::builder()
            .configure(DFA::config().match_kind(MatchKind::All))
            .build(expression)
            .ok()
            .map(WholeMatch)
    }

    /// `None` when the lazy DFA gives up.
    fn matches(&self, value: &str) -> Option<bool> {
        let mut cache = self.0.create_cache();
        let input = Input::new(value).anchored(Anchored::Yes);
        // With every match kind, the forward search reports the end of the longest match that
        // starts at the first byte.
        let found = self.0.try_search_fwd(&mut cache, &input).ok()?;
        Some(found.is_some_and(|m| m.offset() == value.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_match_is_decided_by_the_longest_match_from_the_start() {
        let check = |expression: &str, value: &str| {
            WholeMatch::new(expression)
                .and_then(|w| w.matches(value))
                .expect("decided")
        };
        // Leftmost-first would stop at "a"; the whole value is in the language all the same.
        assert!(check("a|ab", "ab"));
        assert!(!check("a|ab", "abc") && !check("a", "xa"));
        assert!(check("(?m)a$", "a") && !check("(?m)a$", "a\nb"));
        assert!(check("", "") && !check("", "x"));
        // The product agrees on each.
        for (expression, value) in [("a|ab", "ab"), ("a|ab", "abc"), ("(?m)a$", "a\nb")] {
            let matcher = Matcher::pattern(expression).expect("compiles");
            assert_eq!(matcher.matches(value), check(expression, value));
        }
    }
}
