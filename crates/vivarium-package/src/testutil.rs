//! Test helpers: build small archives in memory and patch their headers to craft hostile ones.

use std::io::{Cursor, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Signature of a local file header.
const LOCAL: &[u8] = b"PK\x03\x04";
/// Signature of a central-directory file header.
const CENTRAL: &[u8] = b"PK\x01\x02";

/// A header field: its offset in the local header and in the central-directory header.
#[derive(Clone, Copy)]
pub struct Field {
    local: usize,
    central: usize,
}

/// General-purpose flags (bit 0: encrypted).
pub const FLAGS: Field = Field {
    local: 6,
    central: 8,
};
/// Compression method.
pub const METHOD: Field = Field {
    local: 8,
    central: 10,
};
/// Declared uncompressed size (32-bit).
pub const UNCOMPRESSED: Field = Field {
    local: 22,
    central: 24,
};

/// Options for a Deflated entry with ordinary permissions.
pub fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o644)
}

/// Options for a Stored entry with ordinary permissions.
pub fn stored() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o644)
}

/// An archive of the given entries (a name ending in `/` is a folder), with these options.
pub fn zip_with(entries: &[(&str, &[u8])], options: SimpleFileOptions) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        if name.ends_with('/') {
            writer.add_directory(*name, options).unwrap();
        } else {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

/// A Deflated archive of the given entries.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, deflated())
}

/// The smallest valid action: a root `main.py`.
pub fn minimal() -> Vec<u8> {
    zip_of(&[("main.py", b"print('hi')\n")])
}

/// Replaces every occurrence of `from` by `to` (same length), e.g. to give an entry a name the
/// writer would refuse.
pub fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "replacement must keep the length");
    let mut found = 0;
    let mut at = 0;
    while at + from.len() <= bytes.len() {
        if &bytes[at..at + from.len()] == from {
            bytes[at..at + from.len()].copy_from_slice(to);
            found += 1;
            at += from.len();
        } else {
            at += 1;
        }
    }
    assert!(found > 0, "{from:?} not found");
}

/// Offsets of the local and central headers of the entry called `name`, each with whether it is
/// the local one.
fn headers_of(bytes: &[u8], name: &str) -> Vec<(usize, bool)> {
    let mut found = Vec::new();
    for at in 0..bytes.len().saturating_sub(46) {
        let is_local = match &bytes[at..at + 4] {
            s if s == LOCAL => true,
            s if s == CENTRAL => false,
            _ => continue,
        };
        let (len_at, name_at) = if is_local { (26, 30) } else { (28, 46) };
        let len = usize::from(u16::from_le_bytes([
            bytes[at + len_at],
            bytes[at + len_at + 1],
        ]));
        if bytes.get(at + name_at..at + name_at + len) == Some(name.as_bytes()) {
            found.push((at, is_local));
        }
    }
    assert_eq!(
        found.len(),
        2,
        "expected one local and one central header for {name}"
    );
    found
}

/// Writes `value` into a header field of entry `name`, in both its local and central headers.
fn set_field(bytes: &mut [u8], name: &str, field: Field, value: &[u8]) {
    for (at, is_local) in headers_of(bytes, name) {
        let offset = at + if is_local { field.local } else { field.central };
        bytes[offset..offset + value.len()].copy_from_slice(value);
    }
}

/// Sets a 16-bit header field of entry `name`.
pub fn set_u16(bytes: &mut [u8], name: &str, field: Field, value: u16) {
    set_field(bytes, name, field, &value.to_le_bytes());
}

/// Sets a 32-bit header field of entry `name`.
pub fn set_u32(bytes: &mut [u8], name: &str, field: Field, value: u32) {
    set_field(bytes, name, field, &value.to_le_bytes());
}

/// A temporary cache folder that is removed even when it holds sealed (read-only) extractions,
/// which a plain `TempDir` cannot do for a non-root user.
pub struct Cache(Option<tempfile::TempDir>);

impl Cache {
    /// A fresh, empty cache folder.
    pub fn new() -> Self {
        Self(Some(tempfile::tempdir().unwrap()))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            crate::extract::discard(&dir.keep()).unwrap();
        }
    }
}
