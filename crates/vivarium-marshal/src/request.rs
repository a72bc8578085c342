//! The request in marshal form: the guest reads the user guide's 100 records several times
//! faster than with `json.loads`, which was a third of the example's guest instructions. Only
//! the types `json.loads` produces are written, so the guest sees exactly the objects it would
//! have parsed from the JSON. A repeated dict key is written once and referred back to, as
//! `json.loads` reuses one string per key; so is a repeated string value of at most
//! [`MOST_SHARED_BYTES`], which log records have many of (namespaces, hosts, levels): the guest
//! builds and hashes it once. Strings are immutable, so only `is` can tell that two equal
//! values are one object.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use crate::RequestFlags;

use super::{
    ASCII, BINARY_FLOAT, DICT, END_OF_DICT, FALSE, FLAG_REF, INT, LIST, LONG, MARSHAL_TAG, NONE,
    REFERENCE, SHORT_ASCII, TRUE, UNICODE,
};

/// Longest string value written once and referred back to when repeated.
const MOST_SHARED_BYTES: usize = 64;
/// Deeper documents are sent as JSON (parsed JSON is at most 128 deep).
const MAX_DEPTH: usize = 200;
/// Longest string the short-string types can hold.
const SHORT: usize = u8::MAX as usize;

/// The request `{"data": data, "layer": ..., "reply": ...}` (without `data` when there is
/// none) as [`MARSHAL_TAG`] and its marshal bytes, or `None` when the data holds something
/// this writer leaves to JSON: an integer outside 64 bits, or nesting deeper than
/// [`MAX_DEPTH`].
pub fn encode_request(data: Option<&Value>, flags: RequestFlags) -> Option<Vec<u8>> {
    let mut writer = Writer::new();
    writer.out.push(DICT);
    if let Some(data) = data {
        writer.shared_string("data");
        writer.value(data, 1)?;
    }
    writer.shared_string("layer");
    writer.out.push(if flags.layer { TRUE } else { FALSE });
    writer.shared_string("reply");
    writer.string(flags.reply.as_str(), 0);
    writer.out.push(END_OF_DICT);
    Some(writer.out)
}

struct Writer<'a> {
    out: Vec<u8>,
    /// Each shared string written so far, by the reference number the reader gives it.
    shared: HashMap<&'a str, u32>,
    references: u32,
}

impl<'a> Writer<'a> {
    fn new() -> Self {
        Self {
            out: vec![MARSHAL_TAG],
            shared: HashMap::new(),
            references: 0,
        }
    }

    fn value(&mut self, value: &'a Value, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match value {
            Value::Null => self.out.push(NONE),
            Value::Bool(false) => self.out.push(FALSE),
            Value::Bool(true) => self.out.push(TRUE),
            Value::Number(number) => self.number(number)?,
            Value::String(text) if text.len() <= MOST_SHARED_BYTES => self.shared_string(text),
            Value::String(text) => self.string(text, 0),
            Value::Array(items) => {
                self.out.push(LIST);
                self.length(items.len())?;
                for item in items {
                    self.value(item, depth + 1)?;
                }
            }
            Value::Object(map) => self.dict(map, depth)?,
        }
        Some(())
    }

    fn dict(&mut self, map: &'a Map<String, Value>, depth: usize) -> Option<()> {
        self.out.push(DICT);
        for (key, item) in map {
            self.shared_string(key);
            self.value(item, depth + 1)?;
        }
        self.out.push(END_OF_DICT);
        Some(())
    }

    /// A dict key or a short value: written the first time with a reference number, referred
    /// to afterwards.
    fn shared_string(&mut self, text: &'a str) {
        if let Some(&reference) = self.shared.get(text) {
            self.out.push(REFERENCE);
            self.out.extend_from_slice(&reference.to_le_bytes());
            return;
        }
        self.shared.insert(text, self.references);
        self.references += 1;
        self.string(text, FLAG_REF);
    }

    fn string(&mut self, text: &str, flags: u8) {
        let bytes = text.as_bytes();
        match (text.is_ascii(), bytes.len()) {
            (true, len) if len <= SHORT => {
                self.out
                    .extend_from_slice(&[SHORT_ASCII | flags, len as u8]);
            }
            (ascii, len) => {
                self.out.push(if ascii { ASCII } else { UNICODE } | flags);
                self.out.extend_from_slice(&(len as u32).to_le_bytes());
            }
        }
        self.out.extend_from_slice(bytes);
    }

    /// A number as `json.loads` reads its text: a float when it has a fraction or an exponent
    /// (out of range: infinity, as Python's `float` gives), else an integer.
    fn number(&mut self, number: &Number) -> Option<()> {
        let text = number.as_str();
        if text.contains(['.', 'e', 'E']) {
            let float: f64 = text.parse().ok()?;
            self.out.push(BINARY_FLOAT);
            self.out.extend_from_slice(&float.to_le_bytes());
            return Some(());
        }
        let integer: i64 = text.parse().ok()?;
        match i32::try_from(integer) {
            Ok(small) => {
                self.out.push(INT);
                self.out.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) => self.long(integer),
        }
        Some(())
    }

    /// An integer as CPython's 15-bit digits, least significant first, the sign on the count.
    fn long(&mut self, integer: i64) {
        let mut magnitude = integer.unsigned_abs();
        let mut digits = Vec::new();
        while magnitude > 0 {
            digits.push((magnitude & 0x7fff) as u16);
            magnitude >>= 15;
        }
        let count = digits.len() as i32;
        self.out.push(LONG);
        let signed = if integer < 0 { -count } else { count };
        self.out.extend_from_slice(&signed.to_le_bytes());
        for digit in digits {
            self.out.extend_from_slice(&digit.to_le_bytes());
        }
    }

    fn length(&mut self, len: usize) -> Option<()> {
        let len = u32::try_from(len).ok()?;
        self.out.extend_from_slice(&len.to_le_bytes());
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplyForm;
    use serde_json::json;

    const LAYER_KEY: [u8; 7] = [SHORT_ASCII | FLAG_REF, 5, b'l', b'a', b'y', b'e', b'r'];
    /// The "reply" key and its value "json".
    const REPLY_JSON: [u8; 13] = [
        SHORT_ASCII | FLAG_REF,
        5,
        b'r',
        b'e',
        b'p',
        b'l',
        b'y',
        SHORT_ASCII,
        4,
        b'j',
        b's',
        b'o',
        b'n',
    ];
    const JSON_REPLY: RequestFlags = RequestFlags {
        layer: false,
        reply: ReplyForm::Json,
    };

    /// `value`'s bytes alone, as the request's data (after the tag, the dict and its key;
    /// before the layer flag).
    fn encoded(value: Value) -> Vec<u8> {
        let request = encode_request(Some(&value), JSON_REPLY).expect("encodable");
        let prefix = [
            MARSHAL_TAG,
            DICT,
            SHORT_ASCII | FLAG_REF,
            4,
            b'd',
            b'a',
            b't',
            b'a',
        ];
        let suffix = [&LAYER_KEY[..], &[FALSE], &REPLY_JSON, &[END_OF_DICT]].concat();
        assert_eq!(request[..prefix.len()], prefix);
        assert!(request.ends_with(&suffix));
        request[prefix.len()..request.len() - suffix.len()].to_vec()
    }

    #[test]
    fn scalars_use_the_types_json_loads_produces() {
        assert_eq!(encoded(json!(null)), b"N");
        assert_eq!(encoded(json!(true)), b"T");
        assert_eq!(encoded(json!(false)), b"F");
        assert_eq!(encoded(json!(-2)), [b'i', 0xfe, 0xff, 0xff, 0xff]);
        let mut float = vec![b'g'];
        float.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(encoded(json!(1.5)), float);
        assert_eq!(encoded(json!("hi")), [b'z' | FLAG_REF, 2, b'h', b'i']);
    }

    #[test]
    fn integers_beyond_32_bits_are_15_bit_digits() {
        // 2^31 = 2 * 2^30: digits 0, 0, 2.
        assert_eq!(
            encoded(json!(2_147_483_648_i64)),
            [b'l', 3, 0, 0, 0, 0, 0, 0, 0, 2, 0]
        );
        assert_eq!(
            encoded(json!(-2_147_483_649_i64)),
            [b'l', 0xfd, 0xff, 0xff, 0xff, 1, 0, 0, 0, 2, 0]
        );
    }

    #[test]
    fn a_repeated_key_is_written_once() {
        // Reference 0 is the request's own key, "data".
        let bytes = encoded(json!([{"k": 1}, {"k": 2}]));
        let expected: Vec<u8> = [
            &[b'[', 2, 0, 0, 0][..],
            &[b'{', b'z' | FLAG_REF, 1, b'k', b'i', 1, 0, 0, 0, b'0'],
            &[b'{', b'r', 1, 0, 0, 0, b'i', 2, 0, 0, 0, b'0'],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_repeated_short_value_is_written_once_and_a_long_one_each_time() {
        let long = "v".repeat(MOST_SHARED_BYTES + 1);
        let bytes = encoded(json!(["v", "v", long, long]));
        // Reference 0 is the request's own key, "data"; "v" gets 1.
        let mut expected = vec![b'[', 4, 0, 0, 0, b'z' | FLAG_REF, 1, b'v', b'r', 1, 0, 0, 0];
        for _ in 0..2 {
            expected.extend_from_slice(&[b'z', 65]);
            expected.extend_from_slice(long.as_bytes());
        }
        assert_eq!(bytes, expected);
    }

    #[test]
    fn long_and_non_ascii_strings_carry_a_four_byte_length() {
        let long = "x".repeat(300);
        let bytes = encoded(json!(long));
        assert_eq!(&bytes[..5], [b'a', 44, 1, 0, 0]);
        assert_eq!(
            encoded(json!("é")),
            [b'u' | FLAG_REF, 2, 0, 0, 0, 0xc3, 0xa9]
        );
    }

    #[test]
    fn what_marshal_is_not_used_for_is_refused() {
        let huge: Value = serde_json::from_str("123456789012345678901234567890").unwrap();
        assert!(encode_request(Some(&huge), JSON_REPLY).is_none());
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(encode_request(Some(&deep), JSON_REPLY).is_none());
    }

    #[test]
    fn a_scheduled_request_holds_only_the_flags() {
        let expected = [
            &[MARSHAL_TAG, DICT][..],
            &LAYER_KEY,
            &[TRUE],
            &REPLY_JSON,
            &[END_OF_DICT],
        ]
        .concat();
        let flags = RequestFlags {
            layer: true,
            ..JSON_REPLY
        };
        assert_eq!(encode_request(None, flags), Some(expected));
    }
}
