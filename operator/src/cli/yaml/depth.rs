//! How deeply the flow collections (`[...]`, `{...}`) of a YAML text nest, found in one linear
//! pass before libyaml reads it.
//!
//! libyaml's scanner keeps one "simple key" per open flow collection and looks through all of
//! them at every token, so its time grows with the square of the flow nesting: a 200 KB text
//! of 100,000 `[` took 93 s to reach serde_yaml's recursion limit, which is checked only
//! after libyaml has read the whole document. Block nesting (indentation, `- - -`) costs
//! libyaml no such time, and serde_yaml's limit refuses it quickly.
//!
//! The pass over-approximates the flow nesting libyaml would reach, and is linear whatever the
//! text. Inside a flow collection, YAML's tokens do not depend on indentation, so a small
//! lexer can follow libyaml's scanner (`scan_to_next_token`, `fetch_next_token`,
//! `scan_plain_scalar`, the quoted scalars, anchors and tags) exactly. Where a flow collection
//! starts is harder to tell from outside libyaml (a `[` in a block scalar, a comment or a
//! block-context string is no collection), so every `[` and `{` outside a flow collection is
//! taken as the start of one: a lexer is started there, and those that were not collections
//! die at their matching bracket or stay higher than the truth. Lexers in the same state are
//! merged, keeping the deepest, so there are at most [`MODES`] of them: a lexer in the same
//! state and deeper reaches at least the same depth on any text. Since the lexer of the real
//! collection is among them, the deepest is never below libyaml's flow level. A text is only
//! refused too eagerly when its strings, comments or block scalars hold more than the limit
//! of unmatched `[` and `{` in all.

/// Where a text's flow collections first nest deeper than the limit, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooDeep {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// The states of a lexer inside a flow collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between tokens.
    Token,
    /// In a word of a plain scalar.
    Plain,
    /// After blanks or breaks inside a plain scalar, which may go on or end.
    PlainSpace,
    /// In a single-quoted scalar.
    Single,
    /// On the second quote of a `''` in a single-quoted scalar.
    SingleQuote,
    /// In a double-quoted scalar.
    Double,
    /// After a `\` in a double-quoted scalar.
    Escape,
    /// In a comment.
    Comment,
    /// In an anchor or alias name.
    Anchor,
    /// In a tag (`!x`, `!!x`, `!h!x`).
    Tag,
    /// In a verbatim tag (`!<...>`), whose characters may be `[`, `]` and `,`.
    Verbatim,
}

/// How many lexer states there are.
const MODES: usize = 11;

const ALL: [Mode; MODES] = [
    Mode::Token,
    Mode::Plain,
    Mode::PlainSpace,
    Mode::Single,
    Mode::SingleQuote,
    Mode::Double,
    Mode::Escape,
    Mode::Comment,
    Mode::Anchor,
    Mode::Tag,
    Mode::Verbatim,
];

/// One character as libyaml's scanner tells them apart.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// A line break: `\r`, `\n`, NEL, LS or PS.
    Break,
    /// A byte order mark at the start of a line, which libyaml skips between tokens.
    Bom,
    /// Any other byte (the bytes of a multi-byte character are never special).
    Byte(u8),
}

/// `Ok` when the flow collections of `text` nest at most `limit` deep (an upper bound of
/// libyaml's flow level anywhere in it); else where they first go deeper.
pub(crate) fn check(text: &[u8], limit: u32) -> Result<(), TooDeep> {
    // The deepest lexer in each mode; 0 when there is none.
    let mut depth = [0u32; MODES];
    let (mut line, mut column) = (1, 1);
    let mut i = 0;
    while i < text.len() {
        if column == 1 && document_marker(text, i) {
            // A document marker inside a collection or a quoted scalar is an error to
            // libyaml, which stops there; anywhere else, it is outside any collection.
            depth = [0; MODES];
        }
        let (unit, width) = unit_at(text, i, column == 1);
        let mut next = [0u32; MODES];
        if let Unit::Byte(b'[' | b'{') = unit {
            raise(&mut next, Mode::Token, 1);
        }
        for (mode, d) in ALL.into_iter().zip(depth) {
            if d == 0 {
                continue;
            }
            if let Some((mode, d)) = step(mode, d, unit, text, i + width) {
                raise(&mut next, mode, d);
            }
        }
        if next.iter().any(|d| *d > limit) {
            return Err(TooDeep { line, column });
        }
        depth = next;
        match unit {
            Unit::Break if !(text.get(i) == Some(&b'\r') && text.get(i + 1) == Some(&b'\n')) => {
                line += 1;
                column = 1;
            }
            Unit::Break => {}
            _ => column += text.get(i..i + width).map_or(0, char_starts),
        }
        i += width;
    }
    Ok(())
}

/// Keeps the deeper of the lexers in `mode`.
fn raise(depth: &mut [u32; MODES], mode: Mode, d: u32) {
    if let Some(slot) = depth.get_mut(mode as usize) {
        *slot = (*slot).max(d);
    }
}

/// The next state of a lexer in `mode` at depth `d` after `unit`, the text going on at
/// `after`; `None` when it leaves its outermost collection.
fn step(mode: Mode, d: u32, unit: Unit, text: &[u8], after: usize) -> Option<(Mode, u32)> {
    let b = match unit {
        Unit::Byte(b) => b,
        Unit::Break => {
            return Some(match mode {
                Mode::Token | Mode::Comment | Mode::Anchor | Mode::Tag => (Mode::Token, d),
                Mode::Plain | Mode::PlainSpace => (Mode::PlainSpace, d),
                Mode::Escape => (Mode::Double, d),
                Mode::SingleQuote => (Mode::Single, d),
                Mode::Single | Mode::Double | Mode::Verbatim => (mode, d),
            });
        }
        Unit::Bom => {
            return Some(match mode {
                Mode::Token => (Mode::Token, d),
                Mode::Escape => (Mode::Double, d),
                Mode::SingleQuote => (Mode::Single, d),
                Mode::PlainSpace | Mode::Anchor | Mode::Tag => (Mode::Plain, d),
                other => (other, d),
            });
        }
    };
    match mode {
        Mode::Token => token(b, d, text, after),
        Mode::Plain | Mode::PlainSpace => plain(mode, b, d, text, after),
        Mode::Single => Some(match b {
            // `''` is a quote inside the scalar.
            b'\'' if text.get(after) == Some(&b'\'') => (Mode::SingleQuote, d),
            b'\'' => (Mode::Token, d),
            _ => (Mode::Single, d),
        }),
        Mode::Double => Some(match b {
            b'\\' => (Mode::Escape, d),
            b'"' => (Mode::Token, d),
            _ => (Mode::Double, d),
        }),
        Mode::SingleQuote => Some((Mode::Single, d)),
        Mode::Escape => Some((Mode::Double, d)),
        Mode::Comment => Some((Mode::Comment, d)),
        Mode::Anchor if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
            Some((Mode::Anchor, d))
        }
        Mode::Tag if b.is_ascii_alphanumeric() || b"-_;/?:@&=+$.%!~*'()".contains(&b) => {
            Some((Mode::Tag, d))
        }
        // The name or tag ends here, and this byte starts what follows it.
        Mode::Anchor | Mode::Tag => token(b, d, text, after),
        Mode::Verbatim => Some(match b {
            b'>' => (Mode::Token, d),
            _ => (Mode::Verbatim, d),
        }),
    }
}

/// A byte between tokens (libyaml's `fetch_next_token` in a flow collection).
fn token(b: u8, d: u32, text: &[u8], after: usize) -> Option<(Mode, u32)> {
    let mode = match b {
        b' ' | b'\t' => Mode::Token,
        b'#' => Mode::Comment,
        b'[' | b'{' => return Some((Mode::Token, d + 1)),
        b']' | b'}' => return (d > 1).then(|| (Mode::Token, d - 1)),
        // In a flow collection `?` and `:` are indicators wherever a token starts, and `-`
        // before a blank is a (misplaced) block entry.
        b',' | b'?' | b':' => Mode::Token,
        b'-' if blankz(text, after) => Mode::Token,
        b'*' | b'&' => Mode::Anchor,
        b'!' if text.get(after) == Some(&b'<') => Mode::Verbatim,
        b'!' => Mode::Tag,
        b'\'' => Mode::Single,
        b'"' => Mode::Double,
        _ => Mode::Plain,
    };
    Some((mode, d))
}

/// A byte in a plain scalar (libyaml's `scan_plain_scalar` in a flow collection): a word
/// goes on until a blank, `: `, or a flow indicator; after blanks, the scalar goes on unless
/// a comment, `: ` or a flow indicator follows.
fn plain(mode: Mode, b: u8, d: u32, text: &[u8], after: usize) -> Option<(Mode, u32)> {
    match b {
        b' ' | b'\t' => Some((Mode::PlainSpace, d)),
        b'#' if mode == Mode::PlainSpace => Some((Mode::Comment, d)),
        b':' if blankz(text, after) => Some((Mode::Token, d)),
        b',' | b'[' | b'{' | b']' | b'}' => token(b, d, text, after),
        _ => Some((Mode::Plain, d)),
    }
}

/// The unit at `i` and how many bytes it takes.
fn unit_at(text: &[u8], i: usize, line_start: bool) -> (Unit, usize) {
    match break_width(text, i) {
        0 if line_start && text.get(i..i + 3) == Some(b"\xEF\xBB\xBF") => (Unit::Bom, 3),
        0 => (Unit::Byte(text.get(i).copied().unwrap_or_default()), 1),
        width => (Unit::Break, width),
    }
}

/// The length of the line break at `i` (libyaml's `IS_BREAK`), 0 if none.
fn break_width(text: &[u8], i: usize) -> usize {
    let rest = text.get(i..).unwrap_or_default();
    if rest.starts_with(b"\r") || rest.starts_with(b"\n") {
        1
    } else if rest.starts_with(b"\xC2\x85") {
        2
    } else if rest.starts_with(b"\xE2\x80\xA8") || rest.starts_with(b"\xE2\x80\xA9") {
        3
    } else {
        0
    }
}

/// Whether `i` is a blank, a break or the end (libyaml's `IS_BLANKZ`).
fn blankz(text: &[u8], i: usize) -> bool {
    matches!(text.get(i), None | Some(b' ' | b'\t' | b'\0')) || break_width(text, i) > 0
}

/// Whether a document marker (`---` or `...` before a blank, a break or the end) starts at
/// `i`, at the start of a line.
fn document_marker(text: &[u8], i: usize) -> bool {
    matches!(text.get(i..i + 3), Some(b"---" | b"...")) && blankz(text, i + 3)
}

/// How many characters start in `bytes` (those that are not UTF-8 continuation bytes).
fn char_starts(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_of(text: &str) -> u32 {
        (0..=1000)
            .find(|limit| check(text.as_bytes(), *limit).is_ok())
            .unwrap_or(u32::MAX)
    }

    #[test]
    fn flow_collections_are_counted_as_libyaml_nests_them() {
        for (text, depth) in [
            ("a: b", 0),
            ("a: [b, c]", 1),
            ("a: {b: [c, {d: e}]}", 3),
            ("[[[]], [[[]]]]", 4),
            ("- [a]\n- [[b]]\n", 2),
            // Quoted scalars, comments, anchors and tags hold no collection (a `[` in them
            // is counted only when it is left open: see the module's documentation).
            (r#"[ "[a]]]" , 'it''s ]', "\"]" ]"#, 1),
            ("[ # a comment [x] ]]]\n  a ]", 1),
            ("[#]]]\n[a]]", 2),
            ("[ !<tag:[]]]> a, !t[b] ]", 2),
            ("[ &a1 [b], *a1 ]", 2),
            // A plain scalar goes on over quotes and `#` inside words, and ends at `: `.
            ("[ a\"b [c] ]", 2),
            ("[ a#b, c'd, [e] ]", 2),
            ("{ a: [b], c:d }", 2),
            // Brackets outside a collection: a key, a string, a block scalar.
            ("key: \"[a]\"\nother: |\n  x[y]\n", 1),
        ] {
            assert_eq!(depth_of(text), depth, "{text:?}");
        }
    }

    #[test]
    fn a_quote_after_a_comment_break_of_any_kind_is_a_quote() {
        // NEL, LS and PS end a comment to libyaml: the brackets after are structure.
        for brk in ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let text = format!("[ # note{brk}[[[ ]]] ]");
            assert_eq!(depth_of(&text), 4, "{text:?}");
        }
    }

    #[test]
    fn the_limit_is_refused_at_the_bracket_past_it() {
        let at = format!("a: {}{}", "[".repeat(128), "]".repeat(128));
        assert_eq!(check(at.as_bytes(), 128), Ok(()));
        let past = format!("a:\n  {}{}", "[".repeat(129), "]".repeat(129));
        assert_eq!(
            check(past.as_bytes(), 128),
            Err(TooDeep {
                line: 2,
                column: 131
            })
        );
    }

    /// Closing brackets hidden where a naive count would take them (strings, comments,
    /// verbatim tags, after a break libyaml knows) never hide the depth.
    #[test]
    fn hidden_closing_brackets_do_not_lower_the_count() {
        let n = 200;
        for level in [
            "[ \"]\" ",
            "[ ']' ",
            "[ !<]> a, ",
            "[ #]\n",
            "{ a: \"}\", b: ",
        ] {
            let text = level.repeat(n);
            assert!(
                check(text.as_bytes(), 128).is_err(),
                "{level:?} repeated {n} times"
            );
        }
    }

    #[test]
    fn document_markers_start_anew() {
        let text = format!("a: \"{}\"\n---\nb: [c]\n", "[".repeat(100));
        assert!(check(text.as_bytes(), 128).is_ok());
        let text = format!("a: \"{}\"\n---\nb: [c]\n", "[".repeat(200));
        assert!(check(text.as_bytes(), 128).is_err());
    }

    #[test]
    fn the_pass_is_linear() {
        // 2 MB of nesting is refused at its 129th bracket; 2 MB of siblings is read through.
        let deep = "[".repeat(2_000_000);
        assert!(check(deep.as_bytes(), 128).is_err());
        let wide = "[a], ".repeat(400_000);
        assert!(check(wide.as_bytes(), 128).is_ok());
    }
}
