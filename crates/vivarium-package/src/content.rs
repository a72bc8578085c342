//! The content pass: decompresses entries without trusting their declared sizes.
//!
//! Each entry is read through a cap of `max_entry_bytes + 1` bytes, and the per-entry, total and
//! ratio limits are re-checked on the bytes actually produced. The ZIP reader verifies the CRC
//! when an entry is read to its end and refuses output beyond the declared size; a short entry
//! is caught here by comparing the bytes read with the declared size.

use std::io::{self, Read, Write};

use crate::scan::{self, Archive, Planned};
use crate::{PackageError, PackageLimits};

/// Size of the copy buffer.
const CHUNK: usize = 64 * 1024;

/// Decompresses one file entry into `out`, enforcing every limit on the real bytes.
///
/// `total_before` is the number of bytes of earlier entries; returns this entry's byte count.
pub(crate) fn copy_entry<W: Write>(
    archive: &mut Archive<'_>,
    entry: &Planned,
    limits: &PackageLimits,
    total_before: u64,
    out: &mut W,
) -> Result<u64, PackageError> {
    let file = archive
        .by_index(entry.index)
        .map_err(|error| corrupt(entry, error.to_string()))?;
    let mut capped = file.take(limits.max_entry_bytes.saturating_add(1));
    let mut buffer = vec![0_u8; CHUNK];
    let mut written: u64 = 0;
    loop {
        let count = match capped.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(corrupt(entry, error.to_string())),
        };
        written = written.saturating_add(u64::try_from(count).unwrap_or(u64::MAX));
        check_progress(entry, written, total_before, limits)?;
        let chunk = buffer.get(..count).unwrap_or_default();
        out.write_all(chunk)
            .map_err(|error| PackageError::io(format!("could not write `{}`", entry.name), error))?;
    }
    check_complete(entry, written)?;
    Ok(written)
}

/// Limits on the bytes produced so far by one entry.
fn check_progress(
    entry: &Planned,
    written: u64,
    total_before: u64,
    limits: &PackageLimits,
) -> Result<(), PackageError> {
    scan::check_entry_size(&entry.name, written, limits)?;
    scan::check_ratio(&entry.name, written, entry.compressed, limits)?;
    scan::check_total(&entry.name, total_before.saturating_add(written), limits)
}

/// The entry must hold exactly as many bytes as it declares.
fn check_complete(entry: &Planned, written: u64) -> Result<(), PackageError> {
    if written == entry.size {
        return Ok(());
    }
    Err(corrupt(
        entry,
        format!("it declares {} bytes but holds {written}", entry.size),
    ))
}

/// A `CorruptEntry` error for this entry.
fn corrupt(entry: &Planned, reason: String) -> PackageError {
    PackageError::CorruptEntry {
        entry: entry.name.clone(),
        reason,
    }
}

/// Reads every file entry of the plan to the end without storing it; returns the total size.
pub(crate) fn verify_all(
    archive: &mut Archive<'_>,
    entries: &[Planned],
    limits: &PackageLimits,
) -> Result<u64, PackageError> {
    let mut total: u64 = 0;
    for entry in entries.iter().filter(|e| !e.is_dir) {
        let size = copy_entry(archive, entry, limits, total, &mut io::sink())?;
        total = total.saturating_add(size);
    }
    Ok(total)
}
