//! The multipart form of an action upload, read from untrusted bytes.
//!
//! [`read`] takes the request body as a stream and its `Content-Type`, and answers every part
//! by name: the file part's bytes as they came, the others as text. The whole body is held to
//! one size limit while it streams in, so a client cannot make the service buffer more than
//! that. The parsing itself is `multer`'s; this crate is the one place that drives it, so the
//! fuzz target exercises exactly what the upload route runs.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::Stream;
use multer::{Constraints, Multipart, SizeLimit};

/// Why a body is not a form this service reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    /// The `Content-Type` is missing or not `multipart/form-data` with a boundary.
    #[error("the Content-Type is not multipart/form-data with a boundary")]
    NotMultipart,
    /// The body streamed past the limit; reading stopped there.
    #[error("the body is larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not well-formed multipart, or the stream failed.
    #[error("{0}")]
    Malformed(String),
}

/// The file part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The `filename` its `Content-Disposition` carried, if any.
    pub file_name: Option<String>,
    /// Its bytes, exactly as sent.
    pub bytes: Bytes,
}

/// A form as read: its file part and its text fields. A field sent twice keeps its last
/// value, as HTML forms are read; parts without a name are dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    file: Option<FilePart>,
    texts: HashMap<String, String>,
}

impl Form {
    /// Takes the file part out of the form.
    pub fn take_file(&mut self) -> Option<FilePart> {
        self.file.take()
    }

    /// Takes the text field `name` out of the form.
    pub fn take_text(&mut self, name: &str) -> Option<String> {
        self.texts.remove(name)
    }

    /// Every text field left in the form, by name, in no particular order.
    pub fn text_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.texts
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
    }
}

/// Reads the form in `body`, a stream of chunks, whose `Content-Type` header is
/// `content_type`. The part named `file_field` is the file; every other part is read as
/// UTF-8 text (malformed sequences replaced). At most `limit` bytes of the body are read:
/// past that the answer is [`FormError::TooLarge`].
pub async fn read<S, O, E>(
    body: S,
    content_type: Option<&str>,
    file_field: &str,
    limit: usize,
) -> Result<Form, FormError>
where
    S: Stream<Item = Result<O, E>> + Send + 'static,
    O: Into<Bytes> + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let boundary = content_type
        .and_then(|value| multer::parse_boundary(value).ok())
        .ok_or(FormError::NotMultipart)?;
    let limits = Constraints::new().size_limit(SizeLimit::new().whole_stream(limit as u64));
    let mut multipart = Multipart::with_constraints(body, boundary, limits);
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(refusal)? {
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        if name == file_field {
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(refusal)?;
            form.file = Some(FilePart { file_name, bytes });
        } else {
            let text = field.text().await.map_err(refusal)?;
            form.texts.insert(name, text);
        }
    }
    Ok(form)
}

fn refusal(error: multer::Error) -> FormError {
    match error {
        multer::Error::StreamSizeExceeded { limit } => FormError::TooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        other => FormError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures::executor::block_on;
    use futures::stream;

    use super::*;

    const TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn body(text: &str) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let chunks: Vec<Result<Bytes, Infallible>> = text
            .as_bytes()
            .chunks(7)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        stream::iter(chunks)
    }

    fn read_text(text: &str, limit: usize) -> Result<Form, FormError> {
        block_on(read(body(text), Some(TYPE), "file", limit))
    }

    const FORM: &str = "--XyZ\r\n\
        Content-Disposition: form-data; name=\"name\"\r\n\r\n\
        first\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\
        Content-Type: application/zip\r\n\r\n\
        PK\x03\x04\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"name\"\r\n\r\n\
        second\r\n\
        --XyZ--\r\n";

    #[test]
    fn reads_the_file_and_the_last_value_of_each_text_field() {
        let mut form = read_text(FORM, 1 << 20).unwrap();
        let file = form.take_file().unwrap();
        assert_eq!(file.file_name.as_deref(), Some("a.zip"));
        assert_eq!(&file.bytes[..], b"PK\x03\x04");
        assert_eq!(form.take_text("name").as_deref(), Some("second"));
        assert_eq!(form.take_text("name"), None);
    }

    #[test]
    fn a_body_past_the_limit_is_refused_as_too_large() {
        assert_eq!(
            read_text(FORM, 40).unwrap_err(),
            FormError::TooLarge { limit: 40 }
        );
    }

    #[test]
    fn a_content_type_without_a_boundary_is_not_multipart() {
        for content_type in [None, Some("application/json"), Some("multipart/form-data")] {
            let answer = block_on(read(body(FORM), content_type, "file", 1 << 20));
            assert_eq!(answer.unwrap_err(), FormError::NotMultipart);
        }
    }

    #[test]
    fn a_truncated_body_is_malformed() {
        let cut = &FORM[..FORM.len() / 2];
        assert!(matches!(
            read_text(cut, 1 << 20).unwrap_err(),
            FormError::Malformed(_)
        ));
    }

    #[test]
    fn parts_without_a_name_are_dropped() {
        let text = "--XyZ\r\nContent-Disposition: form-data\r\n\r\nlost\r\n--XyZ--\r\n";
        assert_eq!(read_text(text, 1 << 20).unwrap(), Form::default());
    }
}
