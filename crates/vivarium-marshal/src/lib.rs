//! CPython's `marshal` format for the values JSON carries, both ways across the guest
//! boundary: the host writes the request in it ([`request`]), which the guest reads several
//! times faster than JSON, and the guest answers a successful result in it ([`reply`]), which
//! it writes several times faster than `json.dumps`. Only the types JSON has (dict, list, str,
//! int, float, bool, None, and tuples, which JSON writes as lists) are used; the format of
//! these types has not changed since marshal version 3 (Python 3.4). The HTTP exchange of
//! the host call ([`exchange`]) adds `bytes`.

//!
//! This crate is the wire format alone, apart from the sandbox, so that the fuzz targets can
//! throw hostile bytes at it without building the sandbox's engine.

#![warn(missing_docs)]

mod exchange;
mod reply;
mod request;

pub use exchange::{decode_exchange_request, encode_exchange_reply};
pub use reply::decode_result;
pub use request::encode_request;

/// The first byte of a message in marshal form, which no JSON document starts with.
pub const MARSHAL_TAG: u8 = b'm';

/// Deepest nesting of arrays and objects the host reads in a result (serde_json's limit).
pub const MAX_NESTING: usize = 128;

/// How the guest answers a successful result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyForm {
    /// The JSON result document, whatever the interpreter.
    Json,
    /// The result in marshal form when marshal takes it (see [`decode_result`]), which the
    /// host reads and, for what JSON lacks, asks again as JSON: only the pre-initialized
    /// interpreter can be asked again, since it outlives its call.
    Marshal,
}

impl ReplyForm {
    /// The form's name in the request, `"json"` or `"marshal"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Marshal => "marshal",
        }
    }
}

/// What the guest is told besides its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFlags {
    /// Whether a dependency layer is mounted at `/deps`.
    pub layer: bool,
    /// How to answer a successful result.
    pub reply: ReplyForm,
}

const NONE: u8 = b'N';
/// `bytes` (marshal's `TYPE_STRING`), used only by the HTTP exchange.
const BYTES: u8 = b's';
const FALSE: u8 = b'F';
const TRUE: u8 = b'T';
const INT: u8 = b'i';
const LONG: u8 = b'l';
const BINARY_FLOAT: u8 = b'g';
const SHORT_ASCII: u8 = b'z';
const SHORT_ASCII_INTERNED: u8 = b'Z';
const ASCII: u8 = b'a';
const ASCII_INTERNED: u8 = b'A';
const UNICODE: u8 = b'u';
const INTERNED: u8 = b't';
const SMALL_TUPLE: u8 = b')';
const TUPLE: u8 = b'(';
const LIST: u8 = b'[';
const DICT: u8 = b'{';
const END_OF_DICT: u8 = b'0';
const REFERENCE: u8 = b'r';
/// Set on an object's type byte to let later `REFERENCE`s name it.
const FLAG_REF: u8 = 0x80;
