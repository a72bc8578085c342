//! The marshal form of an HTTP exchange across the host call: the guest's request,
//! `marshal.dumps((method, url, [(name, value), ...], body, timeout))` with the method, URL
//! and header names as `str`, header values and the body as `bytes`, the timeout a `float`
//! or `None`; and the host's answer, `("ok", status, reason, [(name, value), ...], body)` or
//! `("error", code, message, class)` (the class names the exception to raise, see
//! [`vivarium_egress::FailureClass`]), which the guest reads with `marshal.loads`.

use std::time::Duration;

use vivarium_egress::{Failure, GuestRequest, GuestResponse};

use super::{
    ASCII, ASCII_INTERNED, BINARY_FLOAT, BYTES, FLAG_REF, INT, INTERNED, LIST, NONE, REFERENCE,
    SHORT_ASCII, SHORT_ASCII_INTERNED, SMALL_TUPLE, TUPLE, UNICODE,
};

/// The values an exchange is made of.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    None,
    Int(i32),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Sequence(Vec<Item>),
}

/// Longest sequence the reader accepts (a request's headers are capped well below it).
const MOST_ITEMS: usize = 10_000;
/// Deepest nesting an exchange has (the request tuple, its header list, one header pair).
const MOST_DEPTH: usize = 3;

/// The guest's request, or why its bytes are not one.
pub fn decode_exchange_request(bytes: &[u8]) -> Result<GuestRequest, String> {
    let mut reader = Reader {
        bytes,
        at: 0,
        references: Vec::new(),
    };
    let item = reader.item(0)?;
    if reader.at != bytes.len() {
        return Err("trailing bytes after the request".into());
    }
    let Item::Sequence(fields) = item else {
        return Err("the request is not a tuple".into());
    };
    let [method, url, headers, body, timeout] = <[Item; 5]>::try_from(fields)
        .map_err(|fields| format!("the request has {} fields, not 5", fields.len()))?;
    Ok(GuestRequest {
        method: text(method, "method")?,
        url: text(url, "url")?,
        headers: header_list(headers)?,
        body: bytes_of(body, "body")?,
        timeout: match timeout {
            Item::None => None,
            Item::Float(seconds) => Some(
                Duration::try_from_secs_f64(seconds.max(0.0))
                    .map_err(|_| format!("timeout {seconds} is not a duration"))?,
            ),
            Item::Int(seconds) => Some(Duration::from_secs(
                u64::try_from(seconds.max(0)).unwrap_or(0),
            )),
            _ => return Err("timeout is neither a number nor None".into()),
        },
    })
}

/// The answer to a request: the response, or the failure's code and message.
pub fn encode_exchange_reply(reply: &Result<GuestResponse, Failure>) -> Vec<u8> {
    let mut out = Vec::new();
    match reply {
        Ok(response) => {
            out.extend([SMALL_TUPLE, 5]);
            write_text(&mut out, "ok");
            out.push(INT);
            out.extend(i32::from(response.status).to_le_bytes());
            write_text(&mut out, &response.reason);
            write_headers(&mut out, &response.headers);
            write_bytes(&mut out, &response.body);
        }
        Err(failure) => {
            out.extend([SMALL_TUPLE, 4]);
            write_text(&mut out, "error");
            write_text(&mut out, failure.code.as_str());
            write_text(&mut out, &failure.message);
            write_text(&mut out, failure.code.class().as_str());
        }
    }
    out
}

fn write_headers(out: &mut Vec<u8>, headers: &[(String, Vec<u8>)]) {
    out.push(LIST);
    out.extend(length(headers.len()));
    for (name, value) in headers {
        out.extend([SMALL_TUPLE, 2]);
        write_text(out, name);
        write_bytes(out, value);
    }
}

fn write_text(out: &mut Vec<u8>, text: &str) {
    out.push(UNICODE);
    out.extend(length(text.len()));
    out.extend(text.as_bytes());
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(BYTES);
    out.extend(length(bytes.len()));
    out.extend(bytes);
}

/// A marshal length; the host's caps keep every length far below 2^31.
fn length(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes()
}

fn text(item: Item, what: &str) -> Result<String, String> {
    match item {
        Item::Text(text) => Ok(text),
        _ => Err(format!("{what} is not a str")),
    }
}

fn bytes_of(item: Item, what: &str) -> Result<Vec<u8>, String> {
    match item {
        Item::Bytes(bytes) => Ok(bytes),
        _ => Err(format!("{what} is not bytes")),
    }
}

fn header_list(item: Item) -> Result<Vec<(String, Vec<u8>)>, String> {
    let Item::Sequence(pairs) = item else {
        return Err("headers are not a list".into());
    };
    pairs
        .into_iter()
        .map(|pair| match pair {
            Item::Sequence(pair) => match <[Item; 2]>::try_from(pair) {
                Ok([name, value]) => Ok((
                    text(name, "a header name")?,
                    bytes_of(value, "a header value")?,
                )),
                Err(_) => Err("a header is not a (name, value) pair".into()),
            },
            _ => Err("a header is not a (name, value) pair".into()),
        })
        .collect()
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Objects the writer flagged for reference, in its numbering; `None` while being read.
    references: Vec<Option<Item>>,
}

impl Reader<'_> {
    fn item(&mut self, depth: usize) -> Result<Item, String> {
        let code = self.byte()?;
        let slot = (code & FLAG_REF != 0).then(|| {
            self.references.push(None);
            self.references.len() - 1
        });
        let item = match code & !FLAG_REF {
            NONE => Item::None,
            INT => Item::Int(i32::from_le_bytes(self.array()?)),
            BINARY_FLOAT => Item::Float(f64::from_le_bytes(self.array()?)),
            SHORT_ASCII | SHORT_ASCII_INTERNED => {
                let len = usize::from(self.byte()?);
                Item::Text(self.text(len)?)
            }
            ASCII | ASCII_INTERNED | UNICODE | INTERNED => {
                let len = self.length()?;
                Item::Text(self.text(len)?)
            }
            BYTES => {
                let len = self.length()?;
                Item::Bytes(self.take(len)?.to_vec())
            }
            SMALL_TUPLE => {
                let len = usize::from(self.byte()?);
                self.sequence(len, depth)?
            }
            TUPLE | LIST => {
                let len = self.length()?;
                self.sequence(len, depth)?
            }
            REFERENCE => {
                let index = usize::try_from(u32::from_le_bytes(self.array()?))
                    .map_err(|_| "bad reference".to_string())?;
                self.references
                    .get(index)
                    .cloned()
                    .flatten()
                    .ok_or("a reference to an object not read yet")?
            }
            other => return Err(format!("unexpected marshal type {:?}", char::from(other))),
        };
        if let Some(slot) = slot {
            self.references[slot] = Some(item.clone());
        }
        Ok(item)
    }

    fn sequence(&mut self, len: usize, depth: usize) -> Result<Item, String> {
        if depth >= MOST_DEPTH || len > MOST_ITEMS {
            return Err("the request nests deeper or holds more than an exchange does".into());
        }
        (0..len)
            .map(|_| self.item(depth + 1))
            .collect::<Result<_, _>>()
            .map(Item::Sequence)
    }

    fn text(&mut self, len: usize) -> Result<String, String> {
        std::str::from_utf8(self.take(len)?)
            .map(str::to_owned)
            .map_err(|_| "a str is not UTF-8".to_string())
    }

    fn length(&mut self) -> Result<usize, String> {
        usize::try_from(i32::from_le_bytes(self.array()?))
            .map_err(|_| "negative length".to_string())
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn take(&mut self, len: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or("the request is cut short")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vivarium_egress::ErrorCode;

    /// What CPython writes for `marshal.dumps(("POST", "https://a.example/x",
    /// [("Content-Type", b"application/json")], b"{}", 2.5))`.
    fn python_request() -> Vec<u8> {
        vec![
            41, 5, 218, 4, 80, 79, 83, 84, 250, 19, 104, 116, 116, 112, 115, 58, 47, 47, 97, 46,
            101, 120, 97, 109, 112, 108, 101, 47, 120, 91, 1, 0, 0, 0, 169, 2, 250, 12, 67, 111,
            110, 116, 101, 110, 116, 45, 84, 121, 112, 101, 243, 16, 0, 0, 0, 97, 112, 112, 108,
            105, 99, 97, 116, 105, 111, 110, 47, 106, 115, 111, 110, 243, 2, 0, 0, 0, 123, 125,
            231, 0, 0, 0, 0, 0, 0, 4, 64,
        ]
    }

    #[test]
    fn a_python_request_decodes() {
        let request = decode_exchange_request(&python_request()).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "https://a.example/x");
        assert_eq!(
            request.headers,
            [("Content-Type".to_string(), b"application/json".to_vec())]
        );
        assert_eq!(request.body, b"{}");
        assert_eq!(request.timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn references_to_repeated_objects_are_followed() {
        // ("GET", "u", [(k, b"v"), (k, b"v")] with k written once and referred back to, b"", None)
        let mut out = vec![SMALL_TUPLE, 5, SHORT_ASCII, 3];
        out.extend(b"GET");
        out.extend([SHORT_ASCII, 1, b'u', LIST, 2, 0, 0, 0]);
        out.extend([
            SMALL_TUPLE,
            2,
            SHORT_ASCII_INTERNED | FLAG_REF,
            1,
            b'k',
            BYTES,
            1,
            0,
            0,
            0,
            b'v',
        ]);
        out.extend([
            SMALL_TUPLE,
            2,
            REFERENCE,
            0,
            0,
            0,
            0,
            BYTES,
            1,
            0,
            0,
            0,
            b'v',
        ]);
        out.extend([BYTES, 0, 0, 0, 0, NONE]);
        let request = decode_exchange_request(&out).unwrap();
        assert_eq!(request.headers.len(), 2);
        assert_eq!(request.headers[1].0, "k");
        assert_eq!(request.timeout, None);
    }

    #[test]
    fn malformed_requests_are_refused_not_trusted() {
        let full = python_request();
        for cut in 0..full.len() {
            assert!(
                decode_exchange_request(&full[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(decode_exchange_request(&[NONE]).is_err());
        let mut trailing = full.clone();
        trailing.push(NONE);
        assert!(decode_exchange_request(&trailing).is_err());
        // A reference to itself (a cycle) is refused.
        assert!(
            decode_exchange_request(&[LIST | FLAG_REF, 1, 0, 0, 0, REFERENCE, 0, 0, 0, 0]).is_err()
        );
        // A huge declared length does not allocate.
        assert!(decode_exchange_request(&[LIST, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }

    #[test]
    fn replies_are_written_in_the_types_python_reads() {
        let ok = encode_exchange_reply(&Ok(GuestResponse {
            status: 201,
            reason: "Created".into(),
            headers: vec![("x".into(), b"1".to_vec())],
            body: b"hi".to_vec(),
        }));
        let mut expected = vec![
            SMALL_TUPLE,
            5,
            UNICODE,
            2,
            0,
            0,
            0,
            b'o',
            b'k',
            INT,
            201,
            0,
            0,
            0,
        ];
        expected.extend([UNICODE, 7, 0, 0, 0]);
        expected.extend(b"Created");
        expected.extend([
            LIST,
            1,
            0,
            0,
            0,
            SMALL_TUPLE,
            2,
            UNICODE,
            1,
            0,
            0,
            0,
            b'x',
            BYTES,
            1,
            0,
            0,
            0,
            b'1',
        ]);
        expected.extend([BYTES, 2, 0, 0, 0, b'h', b'i']);
        assert_eq!(ok, expected);
        let error =
            encode_exchange_reply(&Err(Failure::new(ErrorCode::DnsError, "dns_error", "no")));
        assert_eq!(&error[..2], &[SMALL_TUPLE, 4]);
        assert!(error.windows(9).any(|w| w == b"DNS-error"));
        assert!(error.ends_with(b"name_not_resolved"));
    }
}
