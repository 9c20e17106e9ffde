//! Structure-aware mutation of a JSON document: an input is read as a program of edits, each
//! aimed at one node of the document (found by its position in a depth-first walk), that
//! replaces, deletes, duplicates or copies it, changes a number, or changes the bytes inside a
//! base64 string: as bytes, as the JSON document they hold (a DSSE payload), or as the DER of
//! a certificate, one TLV at a time. libFuzzer mutates the program; the edits keep the
//! document's shape, so that a mutation reaches the checks behind the parser.

use base64::Engine as _;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use base64::engine::{DecodePaddingMode, GeneralPurpose as Engine};
use serde_json::Value;

/// Standard base64 with padding optional and stray trailing bits allowed: what decodes to the
/// same bytes is the same value.
const LENIENT: GeneralPurpose = Engine::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The same, for the URL-safe alphabet.
const LENIENT_URL: GeneralPurpose = Engine::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The bytes a base64 string holds, in either alphabet, padded or not, white space ignored.
pub fn lenient_base64(text: &str) -> Option<Vec<u8>> {
    let text: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT
        .decode(&text)
        .or_else(|_| LENIENT_URL.decode(&text))
        .ok()
}

/// The deepest a nested document is edited (a DSSE payload inside a bundle).
const MAX_NESTING: u8 = 2;

/// The largest document the edits go on with: a program of a few hundred bytes that
/// duplicates nodes again and again made a bundle of 14 MB, whose verification took seconds,
/// where a registry's answer of more than its payload limit (1 MiB) is refused before anything
/// reads it. Edits stop once the document is larger; the target then drops it.
const MAX_DOCUMENT: usize = 1 << 20;

/// The most edits one program makes: each walks the whole document, so a long program on a
/// large document took seconds in the harness (10 KB programs: 0.5 to 3.5 s an input on the
/// loaded machine), where the verifier's own work is what is fuzzed.
const MAX_EDITS: usize = 64;

/// Reads a program of edits.
struct Program<'a> {
    data: &'a [u8],
}

impl<'a> Program<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(*first)
    }

    fn u16(&mut self) -> Option<usize> {
        Some(usize::from(self.byte()?) << 8 | usize::from(self.byte()?))
    }

    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let len = len.min(self.data.len());
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        taken
    }
}

/// Applies the edits of `program` to `document`.
pub fn apply(document: &mut Value, program: &[u8]) {
    apply_nested(document, program, 0);
}

fn apply_nested(document: &mut Value, program: &[u8], depth: u8) {
    let mut program = Program { data: program };
    let mut edits = 0;
    while let (Some(op), Some(target)) = (program.byte(), program.u16()) {
        edits += 1;
        if edits > MAX_EDITS {
            return;
        }
        let len = usize::from(program.byte().unwrap_or(0));
        let payload = program.bytes(len);
        let nodes = pointers(document);
        let Some(pointer) = nodes.get(target % nodes.len().max(1)) else {
            return;
        };
        edit(document, pointer, &nodes, op, payload, depth);
        if serde_json::to_vec(document).map_or(true, |bytes| bytes.len() > MAX_DOCUMENT) {
            return;
        }
    }
}

/// One edit of the node at `pointer`.
fn edit(document: &mut Value, pointer: &str, nodes: &[String], op: u8, payload: &[u8], depth: u8) {
    match op % 9 {
        0 => set(
            document,
            pointer,
            Value::String(String::from_utf8_lossy(payload).into()),
        ),
        1 => map_bytes(document, pointer, |bytes| mutate_bytes(bytes, payload)),
        2 if depth < MAX_NESTING => map_bytes(document, pointer, |bytes| {
            if let Ok(mut nested) = serde_json::from_slice::<Value>(bytes) {
                apply_nested(&mut nested, payload, depth + 1);
                *bytes = serde_json::to_vec(&nested).unwrap_or_default();
            }
        }),
        3 => map_bytes(document, pointer, |bytes| mutate_der(bytes, payload)),
        4 => {
            if let Some(node) = document.pointer_mut(pointer) {
                *node = number(node, payload);
            }
        }
        5 => remove(document, pointer),
        6 => duplicate(document, pointer, payload),
        7 => {
            let from = payload
                .first()
                .and_then(|i| nodes.get(usize::from(*i) % nodes.len().max(1)));
            if let Some(copy) = from.and_then(|from| document.pointer(from)).cloned() {
                set(document, pointer, copy);
            }
        }
        _ => respell(document, pointer, payload),
    }
}

/// The JSON pointers of every node but the root, depth first.
fn pointers(document: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), document)];
    while let Some((at, node)) = stack.pop() {
        if !at.is_empty() {
            out.push(at.clone());
        }
        let children: Vec<(String, &Value)> = match node {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    (
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        v,
                    )
                })
                .collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{at}/{i}"), v))
                .collect(),
            _ => Vec::new(),
        };
        stack.extend(children.into_iter().rev());
    }
    out
}

fn set(document: &mut Value, pointer: &str, value: Value) {
    if let Some(node) = document.pointer_mut(pointer) {
        *node = value;
    }
}

/// The parent's pointer and the last segment.
fn parent(pointer: &str) -> Option<(&str, String)> {
    let (parent, last) = pointer.rsplit_once('/')?;
    Some((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn remove(document: &mut Value, pointer: &str) {
    let Some((at, last)) = parent(pointer) else {
        return;
    };
    match document.pointer_mut(at) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

fn duplicate(document: &mut Value, pointer: &str, payload: &[u8]) {
    let Some((at, last)) = parent(pointer) else {
        return;
    };
    let Some(copy) = document.pointer(pointer).cloned() else {
        return;
    };
    match document.pointer_mut(at) {
        Some(Value::Object(map)) => {
            let key = if payload.is_empty() {
                format!("{last}_")
            } else {
                String::from_utf8_lossy(payload).into_owned()
            };
            map.insert(key, copy);
        }
        Some(Value::Array(items)) => items.push(copy),
        _ => {}
    }
}

/// The bytes inside a base64 string, changed by `change` and written back in standard
/// base64; a string that is no base64 has its own bytes changed.
fn map_bytes(document: &mut Value, pointer: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let Some(Value::String(text)) = document.pointer_mut(pointer) else {
        return;
    };
    match lenient_base64(text) {
        Some(mut bytes) => {
            change(&mut bytes);
            *text = STANDARD.encode(&bytes);
        }
        None => {
            let mut bytes = text.clone().into_bytes();
            change(&mut bytes);
            *text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
}

/// One change of a byte string: a bit flipped, a byte set, bytes inserted, a range removed,
/// the end cut.
fn mutate_bytes(bytes: &mut Vec<u8>, payload: &[u8]) {
    let mut program = Program { data: payload };
    let op = program.byte().unwrap_or(0);
    let at = program.u16().unwrap_or(0) % (bytes.len() + 1);
    let arg = program.byte().unwrap_or(1);
    match op % 5 {
        0 => {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << (arg % 8);
            }
        }
        1 => {
            if let Some(b) = bytes.get_mut(at) {
                *b = arg;
            }
        }
        2 => {
            let insert = program.bytes(usize::from(arg));
            bytes.splice(at..at, insert.iter().copied());
        }
        3 => {
            let end = (at + usize::from(arg)).min(bytes.len());
            bytes.drain(at..end);
        }
        _ => bytes.truncate(at),
    }
}

/// One TLV of a DER encoding: where its tag, length and value are.
#[derive(Clone, Copy)]
struct Tlv {
    tag: usize,
    length: usize,
    value: usize,
    end: usize,
}

/// The TLVs of `bytes[start..end]` and those inside constructed ones, in order; reading stops
/// at the first that does not parse.
fn tlvs(bytes: &[u8], start: usize, end: usize, depth: u8, out: &mut Vec<Tlv>) {
    let mut at = start;
    while at < end && out.len() < 4096 {
        let Some(&tag) = bytes.get(at) else { return };
        if tag & 0x1f == 0x1f {
            return;
        }
        let Some(&first) = bytes.get(at + 1) else {
            return;
        };
        let (len, value) = if first < 0x80 {
            (usize::from(first), at + 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 {
                return;
            }
            let Some(len_bytes) = bytes.get(at + 2..at + 2 + n) else {
                return;
            };
            let len = len_bytes
                .iter()
                .fold(0usize, |l, b| l << 8 | usize::from(*b));
            (len, at + 2 + n)
        };
        let value_end = value + len;
        if value_end > end {
            return;
        }
        out.push(Tlv {
            tag: at,
            length: at + 1,
            value,
            end: value_end,
        });
        if tag & 0x20 != 0 && depth < 16 {
            tlvs(bytes, value, value_end, depth + 1, out);
        }
        at = value_end;
    }
}

/// One change of a DER encoding aimed at one TLV: a bit of its value flipped, its tag or
/// length changed, its value cut or replaced, the TLV removed or doubled.
fn mutate_der(bytes: &mut Vec<u8>, payload: &[u8]) {
    let mut found = Vec::new();
    tlvs(bytes, 0, bytes.len(), 0, &mut found);
    let mut program = Program { data: payload };
    let pick = program.u16().unwrap_or(0);
    let op = program.byte().unwrap_or(0);
    let arg = program.u16().unwrap_or(0);
    let Some(tlv) = found.get(pick % found.len().max(1)).copied() else {
        mutate_bytes(bytes, payload);
        return;
    };
    let value_len = tlv.end - tlv.value;
    match op % 7 {
        0 => {
            if let Some(b) = bytes.get_mut(tlv.value + arg % value_len.max(1)) {
                *b ^= 1 << (arg % 8);
            }
        }
        1 => {
            if let Some(b) = bytes.get_mut(tlv.tag) {
                *b ^= (arg as u8) | 1;
            }
        }
        2 => {
            if let Some(b) = bytes.get_mut(tlv.length) {
                *b = b.wrapping_add(1 + (arg as u8 % 3));
            }
        }
        3 => {
            bytes.drain(tlv.end.saturating_sub(1 + arg % value_len.max(1))..tlv.end);
        }
        4 => {
            let rest = program.bytes(usize::MAX);
            bytes.splice(tlv.value..tlv.end, rest.iter().copied());
        }
        5 => {
            bytes.drain(tlv.tag..tlv.end);
        }
        _ => {
            let copy = bytes.get(tlv.tag..tlv.end).unwrap_or_default().to_vec();
            bytes.splice(tlv.end..tlv.end, copy);
        }
    }
}

/// A number, or a numeric string, changed: 0, -1, the bounds of 64 bits, off by one, a
/// float, the other form.
fn number(node: &Value, payload: &[u8]) -> Value {
    let current: i128 = match node {
        Value::Number(n) => n.as_i64().map(i128::from).unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let op = payload.first().copied().unwrap_or(0);
    let as_text = payload.get(1).is_some_and(|b| b % 2 == 1);
    let changed: i128 = match op % 8 {
        0 => 0,
        1 => -1,
        2 => i128::from(u64::MAX),
        3 => i128::from(i64::MIN),
        4 => current + 1,
        5 => current - 1,
        6 => return serde_json::json!(1e300),
        _ => {
            // The same number in the other form: a string for a number and back.
            return match node {
                Value::String(_) => i64::try_from(current).map_or(Value::Null, Value::from),
                _ => Value::String(current.to_string()),
            };
        }
    };
    if as_text {
        Value::String(changed.to_string())
    } else {
        serde_json::from_str(&changed.to_string()).unwrap_or(Value::Null)
    }
}

/// The same bytes written another way: URL-safe base64, no padding, or a line break
/// inside.
fn respell(document: &mut Value, pointer: &str, payload: &[u8]) {
    let Some(Value::String(text)) = document.pointer_mut(pointer) else {
        return;
    };
    let Some(bytes) = lenient_base64(text) else {
        return;
    };
    *text = match payload.first().copied().unwrap_or(0) % 3 {
        0 => URL_SAFE_NO_PAD.encode(&bytes),
        1 => STANDARD.encode(&bytes).trim_end_matches('=').to_owned(),
        _ => {
            let encoded = STANDARD.encode(&bytes);
            let cut = encoded.len() / 2;
            format!(
                "{}\n{}",
                encoded.get(..cut).unwrap_or_default(),
                encoded.get(cut..).unwrap_or_default()
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_reach_every_node_and_the_bytes_inside() {
        let original = serde_json::json!({"a": {"b": [1, "AAEC"]}, "c": "x"});
        assert_eq!(
            pointers(&original),
            ["/a", "/a/b", "/a/b/0", "/a/b/1", "/c"]
        );
        let mut edited = original.clone();
        // Flip bit 0 of byte 1 of the base64 at node 3.
        apply(&mut edited, &[1, 0, 3, 4, 0, 0, 1, 0]);
        assert_eq!(edited.pointer("/a/b/1"), Some(&Value::from("AAAC")));
        let mut removed = original.clone();
        apply(&mut removed, &[5, 0, 4, 0]);
        assert_eq!(removed, serde_json::json!({"a": {"b": [1, "AAEC"]}}));
        assert_eq!(lenient_base64("AAE"), Some(vec![0, 1]));
        assert_eq!(lenient_base64("-_8"), Some(vec![0xfb, 0xff]));
    }

    #[test]
    fn der_edits_find_the_tlvs() {
        // SEQUENCE { INTEGER 5, OCTET STRING "ab" }
        let der = [0x30, 0x07, 0x02, 0x01, 0x05, 0x04, 0x02, b'a', b'b'];
        let mut found = Vec::new();
        tlvs(&der, 0, der.len(), 0, &mut found);
        let starts: Vec<usize> = found.iter().map(|t| t.tag).collect();
        assert_eq!(starts, [0, 2, 5]);
        let mut flipped = der.to_vec();
        // TLV 1 (the INTEGER), op 0: flip bit 0 of its value.
        mutate_der(&mut flipped, &[0, 1, 0, 0, 0]);
        assert_eq!(flipped.get(4), Some(&0x04));
    }
}
