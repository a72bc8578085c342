//! The multipart upload form, which anyone who may upload an action sends.
//!
//! An input's first byte chooses the check. Even: the rest is a raw body under a fixed
//! boundary, read within a limit the next two bytes give; reading must answer, never panic.
//! Odd: the rest describes a form (parts split at `0xFF` bytes, each naming its field by its
//! first byte), which is encoded, streamed in chunks of a size the input chooses, and must
//! read back to the same file and the last value of each text field, and be refused as too
//! large under a limit below its payload.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::executor::block_on;
use futures::{StreamExt, stream};
use vivarium_form::{FilePart, Form, FormError};

/// The file part's field name.
const FILE: &str = "file";
/// The field names a described form chooses from.
const NAMES: [&str; 5] = [FILE, "name", "id", "cron_expr", "environment_variables"];
/// The file names a described file part chooses from.
const FILE_NAMES: [Option<&str>; 3] = [None, Some("action.zip"), Some("my action 1.zip")];
/// Separates the parts of a described form.
const PART_END: u8 = 0xFF;

/// One input.
pub fn run(bytes: &[u8]) {
    match bytes.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => raw(rest),
        Some((_, rest)) => round_trip(rest),
        None => {}
    }
}

fn raw(bytes: &[u8]) {
    let [high, low, chunk, body @ ..] = bytes else {
        return;
    };
    let limit = usize::from(u16::from_be_bytes([*high, *low]));
    let (answer, pulled) = read_counting(body, "multipart/form-data; boundary=b", *chunk, limit);
    let most = if answer.is_ok() {
        limit
    } else {
        limit + usize::from((*chunk).max(1))
    };
    assert!(
        pulled <= most,
        "{pulled} bytes read under a {limit}-byte limit"
    );
}

fn round_trip(bytes: &[u8]) {
    let Some((chunk, description)) = bytes.split_first() else {
        return;
    };
    let parts = describe(description);
    let boundary = boundary_for(&parts);
    let body = encode(&parts, &boundary);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let mut form = read(&body, &content_type, *chunk, body.len())
        .unwrap_or_else(|refusal| panic!("a well-formed form was refused: {refusal}"));
    let (file, texts) = expected(&parts);
    assert_eq!(form.take_file(), file, "the file part");
    let read_texts: HashMap<String, String> = form
        .text_fields()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    assert_eq!(read_texts, texts, "the text fields");
    let payload: usize = parts.iter().map(|part| part.value.len()).sum();
    if payload > 0 {
        let refusal = read(&body, &content_type, *chunk, payload - 1).err();
        assert_eq!(refusal, Some(FormError::TooLarge { limit: payload - 1 }));
    }
}

/// One part of a described form.
struct Part {
    name: &'static str,
    file_name: Option<&'static str>,
    value: Vec<u8>,
}

fn describe(bytes: &[u8]) -> Vec<Part> {
    bytes
        .split(|byte| *byte == PART_END)
        .filter_map(|part| {
            let (choice, value) = part.split_first()?;
            let name = NAMES[usize::from(*choice) % NAMES.len()];
            let value = if name == FILE {
                value.to_vec()
            } else {
                String::from_utf8_lossy(value).into_owned().into_bytes()
            };
            let file_name = FILE_NAMES[usize::from(*choice / 8) % FILE_NAMES.len()];
            Some(Part {
                name,
                file_name: file_name.filter(|_| name == FILE),
                value,
            })
        })
        .collect()
}

/// A boundary that none of the values contains.
fn boundary_for(parts: &[Part]) -> String {
    (0u64..)
        .map(|n| format!("vivarium-{n:x}"))
        .find(|boundary| {
            parts.iter().all(|part| {
                !part
                    .value
                    .windows(boundary.len())
                    .any(|window| window == boundary.as_bytes())
            })
        })
        .unwrap_or_default()
}

fn encode(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match part.file_name {
            Some(file_name) => format!("name=\"{}\"; filename=\"{file_name}\"", part.name),
            None => format!("name=\"{}\"", part.name),
        };
        body.extend_from_slice(
            format!("Content-Disposition: form-data; {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&part.value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// The file part and the text fields a reader must answer for `parts`: the last of each.
fn expected(parts: &[Part]) -> (Option<FilePart>, HashMap<String, String>) {
    let mut file = None;
    let mut texts = HashMap::new();
    for part in parts {
        if part.name == FILE {
            file = Some(FilePart {
                file_name: part.file_name.map(str::to_string),
                bytes: Bytes::from(part.value.clone()),
            });
        } else {
            let text = String::from_utf8_lossy(&part.value).into_owned();
            texts.insert(part.name.to_string(), text);
        }
    }
    (file, texts)
}

/// Reads `body` streamed in chunks of `chunk` bytes (at least one).
fn read(body: &[u8], content_type: &str, chunk: u8, limit: usize) -> Result<Form, FormError> {
    read_counting(body, content_type, chunk, limit).0
}

/// Reads `body` as [`read`] does, and counts the bytes the reader pulled from the stream.
fn read_counting(
    body: &[u8],
    content_type: &str,
    chunk: u8,
    limit: usize,
) -> (Result<Form, FormError>, usize) {
    let chunks: Vec<Result<Bytes, Infallible>> = body
        .chunks(usize::from(chunk.max(1)))
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let stream = stream::iter(chunks).inspect(move |piece| {
        let size = piece.as_ref().map_or(0, Bytes::len);
        counter.fetch_add(size, Ordering::Relaxed);
    });
    let answer = block_on(vivarium_form::read(stream, Some(content_type), FILE, limit));
    (answer, pulled.load(Ordering::Relaxed))
}
