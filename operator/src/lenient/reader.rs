//! The reader under [`super::Lenient`]: a JSON body read token by token, in place, with the
//! values nothing reads skipped without being decoded.
//!
//! What it refuses anywhere in a body is what RFC 8259 refuses: bytes that are not UTF-8
//! (§8.1), and in its grammar a truncated body, a token that is not JSON, a missing or extra
//! comma or colon, unbalanced brackets, a key that is not a string, a control character or an
//! unknown escape in a string (`\u` and four hex digits included), a malformed number,
//! anything after the value; and nesting deeper than [`NESTING_LIMIT`], refused when the level
//! too deep opens. A string read ([`Reader::string`]) or a key is also unescaped and must hold
//! no lone surrogate, as a `serde_json::Value` requires; a string skipped is not decoded, and
//! no number is converted.
//!
//! Strings are scanned eight bytes at a time for a quote, a backslash or a control character
//! (Mycroft's test for a zero byte, as serde_json scans its own): most of a body is strings.

use std::borrow::Cow;

use super::NESTING_LIMIT;

/// Why a body is not JSON, and where: the byte offset of what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct JsonError {
    /// What is wrong.
    pub what: &'static str,
    /// The byte offset where it is.
    pub at: usize,
}

const END: &str = "unexpected end";
const VALUE: &str = "expected a value";
const KEY: &str = "expected a key (a string)";
const COLON: &str = "expected `:`";
const OBJECT_NEXT: &str = "expected `,` or `}`";
const ARRAY_NEXT: &str = "expected `,` or `]`";
const CONTROL: &str = "control character in a string";
const ESCAPE: &str = "invalid escape in a string";
const SURROGATE: &str = "lone surrogate in a \\u escape";
const UTF8: &str = "invalid UTF-8";
const NUMBER: &str = "invalid number";
const TRAILING: &str = "trailing characters after the value";
const TOO_DEEP: &str = "arrays and objects nested deeper than 127";

/// `0x0101…01`: one in each byte of a word.
const ONES: u64 = u64::MAX / 255;

/// A JSON body, read one value after another from its start.
#[derive(Debug)]
pub struct Reader<'a> {
    text: &'a str,
    /// The offset of the next byte to read.
    at: usize,
    /// How many arrays and objects are open.
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `body`, which must be UTF-8 as a whole: checked once here, so
    /// that every string read from it is a slice of it.
    pub fn new(body: &'a [u8]) -> Result<Self, JsonError> {
        let text = std::str::from_utf8(body).map_err(|e| JsonError {
            what: UTF8,
            at: e.valid_up_to(),
        })?;
        Ok(Reader {
            text,
            at: 0,
            depth: 0,
        })
    }

    /// Checks that nothing but whitespace follows the value read.
    pub fn end(mut self) -> Result<(), JsonError> {
        match self.peek() {
            Err(_) => Ok(()),
            Ok(_) => Err(self.error(TRAILING)),
        }
    }

    fn error(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.at }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not whitespace, left unread.
    #[inline]
    pub fn peek(&mut self) -> Result<u8, JsonError> {
        let bytes = self.bytes();
        while let Some(&byte) = bytes.get(self.at) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(byte);
            }
            self.at += 1;
        }
        Err(self.error(END))
    }

    /// Opens the array or object at the next byte, within the nesting limit.
    fn open(&mut self) -> Result<(), JsonError> {
        if self.depth >= NESTING_LIMIT {
            return Err(self.error(TOO_DEEP));
        }
        self.depth += 1;
        self.at += 1;
        Ok(())
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.at += 1;
    }

    /// Reads the object at the next byte (`{`): for each key, unescaped, `field` reads its
    /// value and returns `true`, or returns `false` for the value to be skipped.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &[u8]) -> Result<bool, JsonError>,
    ) -> Result<(), JsonError> {
        self.open()?;
        if self.peek()? == b'}' {
            self.close();
            return Ok(());
        }
        loop {
            let key = self.key()?;
            if !field(self, &key)? {
                self.skip()?;
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.close();
                    return Ok(());
                }
                _ => return Err(self.error(OBJECT_NEXT)),
            }
        }
    }

    /// Reads the array at the next byte (`[`): `item` reads each item.
    pub fn array(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.open()?;
        if self.peek()? == b']' {
            self.close();
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.close();
                    return Ok(());
                }
                _ => return Err(self.error(ARRAY_NEXT)),
            }
        }
    }

    /// A key and its colon: the key unescaped, as bytes (they are compared with the names of
    /// fields, which are ASCII).
    #[inline]
    fn key(&mut self) -> Result<Cow<'a, [u8]>, JsonError> {
        if self.peek()? != b'"' {
            return Err(self.error(KEY));
        }
        let start = self.at + 1;
        let (end, escaped) = self.string_end(start)?;
        let key = if escaped {
            let raw = self.text.get(start..end).unwrap_or_default();
            Cow::Owned(self.unescape(raw, start)?.into_bytes())
        } else {
            Cow::Borrowed(self.bytes().get(start..end).unwrap_or_default())
        };
        self.at = end + 1;
        self.colon()?;
        Ok(key)
    }

    /// The colon after a key.
    #[inline]
    fn colon(&mut self) -> Result<(), JsonError> {
        if self.peek()? != b':' {
            return Err(self.error(COLON));
        }
        self.at += 1;
        Ok(())
    }

    /// Skips a key and its colon, checking their grammar only.
    fn skip_key(&mut self) -> Result<(), JsonError> {
        if self.peek()? != b'"' {
            return Err(self.error(KEY));
        }
        self.at = self.string_end(self.at + 1)?.0 + 1;
        self.colon()
    }

    /// Reads the string at the next byte (`"`), unescaped: a slice of the body when it has no
    /// escape.
    pub fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.at + 1;
        let (end, escaped) = self.string_end(start)?;
        let raw = self.text.get(start..end).ok_or(JsonError {
            what: UTF8,
            at: start,
        })?;
        self.at = end + 1;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        self.unescape(raw, start).map(Cow::Owned)
    }

    /// Reads `true` or `false` at the next byte.
    pub fn boolean(&mut self) -> Result<bool, JsonError> {
        if self.literal(b"true") {
            return Ok(true);
        }
        if self.literal(b"false") {
            return Ok(false);
        }
        Err(self.error(VALUE))
    }

    /// Reads `null` at the next byte.
    pub fn null(&mut self) -> Result<(), JsonError> {
        if self.literal(b"null") {
            Ok(())
        } else {
            Err(self.error(VALUE))
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.bytes().get(self.at..self.at + word.len()) == Some(word);
        if found {
            self.at += word.len();
        }
        found
    }

    /// Where the string whose contents start at `from` ends (its closing quote), and whether
    /// it has an escape; checked for control characters and for the grammar of its escapes.
    #[inline(always)]
    fn string_end(&self, mut at: usize) -> Result<(usize, bool), JsonError> {
        let bytes = self.bytes();
        let mut escaped = false;
        loop {
            // Eight bytes at a time while there are eight: the lowest byte flagged is a true
            // one (a false flag needs a true one below it).
            while let Some(Ok(word)) = bytes.get(at..at + 8).map(<[u8; 8]>::try_from) {
                let word = u64::from_le_bytes(word);
                let control = word.wrapping_sub(ONES * 0x20) & !word;
                let quote = word ^ (ONES * u64::from(b'"'));
                let quote = quote.wrapping_sub(ONES) & !quote;
                let backslash = word ^ (ONES * u64::from(b'\\'));
                let backslash = backslash.wrapping_sub(ONES) & !backslash;
                let flagged = (control | quote | backslash) & (ONES << 7);
                if flagged != 0 {
                    at += flagged.trailing_zeros() as usize / 8;
                    break;
                }
                at += 8;
            }
            match bytes.get(at) {
                Some(b'"') => return Ok((at, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    at = escape_end(bytes, at)?;
                }
                Some(&byte) if byte < 0x20 => return Err(JsonError { what: CONTROL, at }),
                Some(_) => at += 1,
                None => return Err(JsonError { what: END, at }),
            }
        }
    }

    /// The contents `raw` of a string with escapes (at `start` in the body), unescaped: a
    /// `\u` escape of a high surrogate must be followed by one of a low surrogate.
    #[cold]
    #[inline(never)]
    fn unescape(&self, raw: &str, start: usize) -> Result<String, JsonError> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(backslash) = rest.find('\\') {
            let (plain, escape) = rest.split_at(backslash);
            out.push_str(plain);
            let at = start + (raw.len() - escape.len());
            let lone = JsonError {
                what: SURROGATE,
                at,
            };
            let bytes = escape.as_bytes();
            let (character, used) = match bytes.get(1) {
                Some(b'b') => ('\u{8}', 2),
                Some(b'f') => ('\u{c}', 2),
                Some(b'n') => ('\n', 2),
                Some(b'r') => ('\r', 2),
                Some(b't') => ('\t', 2),
                Some(b'u') => {
                    let unit = hex(escape.get(2..6));
                    match unit {
                        Some(high @ 0xd800..=0xdbff) => {
                            let low = match escape.get(6..8) {
                                Some("\\u") => hex(escape.get(8..12)),
                                _ => None,
                            };
                            let low = low.filter(|low| (0xdc00..=0xdfff).contains(low));
                            let low = low.ok_or(lone)?;
                            let code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                            (char::from_u32(code).ok_or(lone)?, 12)
                        }
                        Some(code) => (char::from_u32(code).ok_or(lone)?, 6),
                        None => return Err(JsonError { what: ESCAPE, at }),
                    }
                }
                // `"`, `\` and `/`: checked by `string_end`.
                Some(&other) => (char::from(other), 2),
                None => return Err(JsonError { what: ESCAPE, at }),
            };
            out.push(character);
            rest = escape.get(used..).unwrap_or_default();
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Skips the number at the next byte, checking its grammar.
    fn skip_number(&mut self) -> Result<(), JsonError> {
        let bytes = self.bytes();
        let digits = |reader: &mut Self| {
            let start = reader.at;
            while bytes.get(reader.at).is_some_and(u8::is_ascii_digit) {
                reader.at += 1;
            }
            if reader.at == start {
                Err(reader.error(NUMBER))
            } else {
                Ok(())
            }
        };
        if bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        if bytes.get(self.at) == Some(&b'0') {
            self.at += 1;
        } else {
            digits(self)?;
        }
        if bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            digits(self)?;
        }
        if matches!(bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            digits(self)?;
        }
        Ok(())
    }

    /// Skips one value, checking its grammar, without decoding it: iteratively, the kind of
    /// each open level in one bit (nesting is at most [`NESTING_LIMIT`], below 128).
    pub fn skip(&mut self) -> Result<(), JsonError> {
        let base = self.depth;
        // Bit n: whether the level n + 1 above `base` is an object.
        let mut objects: u128 = 0;
        loop {
            // A value.
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    self.open()?;
                    let bit = 1 << (self.depth - base - 1);
                    let close = if open == b'{' {
                        objects |= bit;
                        b'}'
                    } else {
                        objects &= !bit;
                        b']'
                    };
                    if self.peek()? == close {
                        self.close();
                    } else {
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                b'"' => self.at = self.string_end(self.at + 1)?.0 + 1,
                b't' | b'f' => {
                    self.boolean()?;
                }
                b'n' => self.null()?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return Err(self.error(VALUE)),
            }
            // After a value: the next one of its level, or the end of levels.
            loop {
                if self.depth == base {
                    return Ok(());
                }
                let object = (objects >> (self.depth - base - 1)) & 1 == 1;
                match (self.peek()?, object) {
                    (b',', _) => {
                        self.at += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    (b'}', true) | (b']', false) => self.close(),
                    (_, true) => return Err(self.error(OBJECT_NEXT)),
                    (_, false) => return Err(self.error(ARRAY_NEXT)),
                }
            }
        }
    }
}

/// Where the escape at `at` (a backslash) ends, when it is one JSON has.
fn escape_end(bytes: &[u8], at: usize) -> Result<usize, JsonError> {
    let error = |what| JsonError { what, at };
    match bytes.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
        Some(b'u') => match bytes.get(at + 2..at + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(at + 6),
            Some(_) => Err(error(ESCAPE)),
            None => Err(error(END)),
        },
        Some(_) => Err(error(ESCAPE)),
        None => Err(error(END)),
    }
}

/// Four hex digits as a number.
fn hex(digits: Option<&str>) -> Option<u32> {
    let digits = digits?;
    if digits.len() != 4 || !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}
