//! The result in marshal form: `marshal.dumps` writes the user guide's 100 records about
//! seven times faster than `json.dumps`, which was the largest part of the example's guest
//! instructions. The host reads from it only what `json.dumps` would have written plainly,
//! and builds exactly the value the host would have parsed from that JSON (numbers keep
//! Python's spelling). Everything else is left to the guest's `json.dumps`, which decides what
//! it becomes or which error it is: keys that are not strings, NaN and infinities, integers
//! beyond 64 bits, strings holding lone surrogates, types JSON lacks, cycles, nesting deeper
//! than the host reads, and results whose JSON would be near or over the result limit.

use std::str::FromStr;

use serde_json::{Map, Number, Value};

use super::{
    ASCII, ASCII_INTERNED, BINARY_FLOAT, DICT, END_OF_DICT, FALSE, FLAG_REF, INT, INTERNED, LIST,
    LONG, NONE, REFERENCE, SHORT_ASCII, SHORT_ASCII_INTERNED, SMALL_TUPLE, TRUE, TUPLE, UNICODE,
};
use crate::MAX_NESTING;

/// Bits in one digit of a marshalled integer.
const DIGIT_BITS: u32 = 15;
/// Digits of a marshalled integer read into an `i128` at most (120 bits: every 64-bit value).
const MOST_DIGITS: usize = 8;

/// The value `bytes` (the marshal form after its tag) holds, when its compact JSON is at most
/// `json_budget` bytes; `None` for anything the guest's `json.dumps` has to decide (see the
/// module's documentation).
pub fn decode_result(bytes: &[u8], json_budget: usize) -> Option<Value> {
    let mut reader = Reader {
        bytes,
        at: 0,
        references: Vec::new(),
        registering: true,
        json_len: 0,
        json_budget,
    };
    let value = reader.value(0)?;
    (reader.at == bytes.len()).then_some(value)
}

/// An object the writer flagged so that later references can name it.
#[derive(Clone, Copy)]
struct Referable {
    /// Where its type byte is.
    start: usize,
    /// The length of its JSON once read; `None` while it is being read (a reference to it
    /// then is a cycle).
    json_len: Option<usize>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The referable objects, in the order the writer numbered them.
    references: Vec<Referable>,
    /// False while an object is read again for a reference: its inner objects already have
    /// their numbers.
    registering: bool,
    /// The length of the compact, ASCII-only JSON of everything read so far.
    json_len: usize,
    json_budget: usize,
}

impl Reader<'_> {
    /// The next value, its JSON counted in `json_len`.
    fn value(&mut self, depth: usize) -> Option<Value> {
        let start = self.at;
        let code = self.byte()?;
        let slot = (code & FLAG_REF != 0 && self.registering).then(|| {
            self.references.push(Referable {
                start,
                json_len: None,
            });
            (self.references.len() - 1, self.json_len)
        });
        let value = match code & !FLAG_REF {
            NONE => self.counted(Value::Null, 4)?,
            TRUE => self.counted(Value::Bool(true), 4)?,
            FALSE => self.counted(Value::Bool(false), 5)?,
            INT => {
                let number = integer(i128::from(self.i32()?))?;
                self.number(number)?
            }
            LONG => {
                let number = integer(self.long()?)?;
                self.number(number)?
            }
            BINARY_FLOAT => {
                let number = float(f64::from_le_bytes(self.array()?))?;
                self.number(number)?
            }
            SHORT_ASCII | SHORT_ASCII_INTERNED => {
                let len = usize::from(self.byte()?);
                Value::String(self.string(len)?)
            }
            ASCII | ASCII_INTERNED | UNICODE | INTERNED => {
                let len = self.length()?;
                Value::String(self.string(len)?)
            }
            SMALL_TUPLE => {
                let len = usize::from(self.byte()?);
                self.list(len, depth)?
            }
            TUPLE | LIST => {
                let len = self.length()?;
                self.list(len, depth)?
            }
            DICT => self.dict(depth)?,
            REFERENCE => self.reference(depth)?,
            _ => return None,
        };
        if let Some((slot, before)) = slot {
            self.references[slot].json_len = Some(self.json_len - before);
        }
        Some(value)
    }

    /// Counts `json_len` more bytes of JSON, within the budget.
    fn count(&mut self, json_len: usize) -> Option<()> {
        self.json_len = self.json_len.checked_add(json_len)?;
        (self.json_len <= self.json_budget).then_some(())
    }

    fn counted(&mut self, value: Value, json_len: usize) -> Option<Value> {
        self.count(json_len)?;
        Some(value)
    }

    fn number(&mut self, number: Number) -> Option<Value> {
        self.count(number.as_str().len())?;
        Some(Value::Number(number))
    }

    fn list(&mut self, len: usize, depth: usize) -> Option<Value> {
        if depth >= MAX_NESTING {
            return None;
        }
        self.count(2 + len.saturating_sub(1))?;
        let mut items = Vec::with_capacity(len.min(self.remaining()));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Some(Value::Array(items))
    }

    fn dict(&mut self, depth: usize) -> Option<Value> {
        if depth >= MAX_NESTING {
            return None;
        }
        self.count(2)?;
        let mut map = Map::new();
        while self.peek()? != END_OF_DICT {
            let Value::String(key) = self.value(depth + 1)? else {
                return None;
            };
            let comma = usize::from(!map.is_empty());
            self.count(comma + 1)?;
            let item = self.value(depth + 1)?;
            map.insert(key, item);
        }
        self.at += 1;
        Some(Value::Object(map))
    }

    /// The object a reference names, read again from where it was written.
    fn reference(&mut self, depth: usize) -> Option<Value> {
        let index = usize::try_from(u32::from_le_bytes(self.array()?)).ok()?;
        let named = *self.references.get(index)?;
        // Still being read: a cycle.
        named.json_len?;
        // Read again, it counts against the budget again, so that a reference named over and
        // over cannot inflate the result.
        let (resume_at, was_registering) = (self.at, self.registering);
        (self.at, self.registering) = (named.start, false);
        let read = self.value(depth);
        (self.at, self.registering) = (resume_at, was_registering);
        read
    }

    /// A string of `len` bytes of UTF-8 (lone surrogates, which marshal writes and Rust
    /// refuses, are left to the guest).
    fn string(&mut self, len: usize) -> Option<String> {
        let text = std::str::from_utf8(self.take(len)?).ok()?.to_owned();
        self.count(ascii_json_len(&text))?;
        Some(text)
    }

    /// An integer beyond 32 bits: a signed count of 15-bit digits, least significant first.
    fn long(&mut self) -> Option<i128> {
        let count = self.i32()?;
        let digits = usize::try_from(count.unsigned_abs()).ok()?;
        if digits > MOST_DIGITS {
            return None;
        }
        let mut magnitude: i128 = 0;
        for position in 0..digits {
            let digit = u16::from_le_bytes(self.array()?);
            magnitude |= i128::from(digit) << (DIGIT_BITS * position as u32);
        }
        Some(if count < 0 { -magnitude } else { magnitude })
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn take(&mut self, len: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(len)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.array()?))
    }

    fn length(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }
}

/// An integer as JSON holds it, within 64 bits (the host's numbers beyond are the guest's to
/// write).
fn integer(value: i128) -> Option<Number> {
    Some(match u64::try_from(value) {
        Ok(unsigned) => Number::from(unsigned),
        Err(_) => Number::from(i64::try_from(value).ok()?),
    })
}

/// A finite float, spelled as Python writes it (`json.dumps` uses `float.__repr__`).
fn float(value: f64) -> Option<Number> {
    if !value.is_finite() {
        return None;
    }
    Number::from_str(&python_float_repr(value)).ok()
}

/// `repr(value)` for a finite float in CPython: the shortest digits that read back as the
/// same float, in positional notation when the decimal point falls within 16 digits of them
/// (with `.0` on whole numbers), else in scientific notation with at least two exponent
/// digits.
fn python_float_repr(value: f64) -> String {
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits = mantissa.replace('.', "");
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if value.is_sign_negative() { "-" } else { "" };
    let point = exponent + 1;
    if !(-4 < point && point <= 16) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.abs()
        );
    }
    match usize::try_from(point) {
        Err(_) | Ok(0) => format!(
            "{sign}0.{}{digits}",
            "0".repeat(point.unsigned_abs() as usize)
        ),
        Ok(point) if point >= digits.len() => {
            format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
        }
        Ok(point) => format!("{sign}{}.{}", &digits[..point], &digits[point..]),
    }
}

/// The length of `text` as `json.dumps` writes it with `ensure_ascii`, quotes included.
fn ascii_json_len(text: &str) -> usize {
    let plain = |byte: &u8| (b' '..=b'~').contains(byte) && *byte != b'"' && *byte != b'\\';
    if text.as_bytes().iter().all(plain) {
        return text.len() + 2;
    }
    2 + text
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            ' '..='~' => 1,
            c if c > '\u{ffff}' => 12,
            _ => 6,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_request;
    use crate::{ReplyForm, RequestFlags};
    use serde_json::json;

    const BUDGET: usize = 1 << 20;

    fn decoded(hex: &str) -> Option<Value> {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
            .collect();
        decode_result(&bytes, BUDGET)
    }

    #[test]
    fn what_python_wrote_reads_as_its_json_would() {
        // marshal.dumps([(1, 2), {'a': None}]) in CPython: a tuple becomes a list, as in JSON.
        assert_eq!(
            decoded("5b02000000a902e901000000e9020000007bda01614e30"),
            Some(json!([[1, 2], {"a": null}]))
        );
        // x = 'k'; marshal.dumps([x, x]): the second item refers back to the first.
        assert_eq!(
            decoded("db02000000da016b7201000000"),
            Some(json!(["k", "k"]))
        );
    }

    #[test]
    fn what_the_request_writer_writes_reads_back_the_same() {
        let data = json!([
            {"text": "é \"quoted\"\n\u{1F600}", "n": 1.5, "big": -9_007_199_254_740_993_i64},
            {"text": "x".repeat(300), "n": 0, "none": null, "flags": [true, false]},
            {"max": i64::MAX, "min": i64::MIN, "tiny": 5e-324},
        ]);
        let flags = RequestFlags {
            layer: false,
            reply: ReplyForm::Json,
        };
        let request = encode_request(Some(&data), flags).expect("encodable");
        // Skip the tag, the dict, and the key "data" (a short string flagged referable).
        let read = decode_result(&request[1..], BUDGET).expect("readable");
        assert_eq!(read["data"], data);
        assert_eq!(read["reply"], json!("json"));
    }

    #[test]
    fn numbers_keep_the_spelling_python_gives_them() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (2.5e-5, "2.5e-05"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (12345678901234567890.0, "1.2345678901234567e+19"),
            (123456.789, "123456.789"),
            (-1e-7, "-1e-07"),
            (100.0, "100.0"),
            (1e22, "1e+22"),
            (0.001234, "0.001234"),
        ];
        for (value, python) in cases {
            assert_eq!(python_float_repr(value), python, "{value:e}");
            let parsed: Value = serde_json::from_str(python).expect("json");
            assert_eq!(float(value).map(Value::Number), Some(parsed), "{python}");
        }
    }

    #[test]
    fn what_json_dumps_must_decide_is_left_to_it() {
        let unreadable = [
            // {1: 'a'}: a key that is not a string (json.dumps writes "1").
            "fbe901000000da016130",
            // float('nan')
            "e7000000000000f87f",
            // {1, 2}: a set.
            "bc02000000e901000000e902000000",
            // b'x': bytes.
            "f30100000078",
            // 2**120: beyond 64 bits.
            "ec09000000000000000000000000000000000000000100",
            // '\ud800': a lone surrogate.
            "f503000000eda080",
            // l = []; l.append(l): a cycle.
            "db010000007200000000",
            // Something after the value.
            "4e4e",
            // Truncated.
            "5b02000000",
        ];
        for hex in unreadable {
            assert_eq!(decoded(hex), None, "{hex}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_host_reads_is_left_to_the_guest() {
        let nested = |levels: usize| {
            let mut bytes = [LIST, 1, 0, 0, 0].repeat(levels);
            bytes.push(NONE);
            decode_result(&bytes, BUDGET)
        };
        assert!(nested(MAX_NESTING).is_some());
        assert_eq!(nested(MAX_NESTING + 1), None);
    }

    #[test]
    fn the_budget_is_the_length_of_the_ascii_json() {
        // ["é\n"] is ["\u00e9\n"] in ASCII-only JSON: 2 + 2 + 6 + 2 bytes.
        let bytes = [
            &[LIST, 1, 0, 0, 0, UNICODE, 3, 0, 0, 0][..],
            "é\n".as_bytes(),
        ]
        .concat();
        assert_eq!(decode_result(&bytes, 12), Some(json!(["é\n"])));
        assert_eq!(decode_result(&bytes, 11), None);
    }

    #[test]
    fn references_cannot_inflate_the_result_past_the_budget() {
        // x = 'a' * 1000; marshal.dumps([x] * 1000): 1 MB of JSON from 6 kB.
        let mut bytes = vec![LIST];
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(&[ASCII | FLAG_REF, 0xe8, 0x03, 0, 0]);
        bytes.extend_from_slice(&[b'a'; 1000]);
        for _ in 1..1000 {
            bytes.extend_from_slice(&[REFERENCE, 0, 0, 0, 0]);
        }
        assert_eq!(decode_result(&bytes, 100_000), None);
        let read = decode_result(&bytes, 1_003_001).expect("within the budget");
        assert_eq!(read.as_array().map(Vec::len), Some(1000));
    }

    #[test]
    fn ascii_json_escapes_as_json_dumps_does() {
        assert_eq!(ascii_json_len("plain ~"), 9);
        assert_eq!(ascii_json_len("\"\\\n\r\t\u{8}\u{c}"), 2 + 7 * 2);
        assert_eq!(ascii_json_len("\u{1}\u{7f}é€"), 2 + 4 * 6);
        assert_eq!(ascii_json_len("\u{1F600}"), 2 + 12);
    }
}
