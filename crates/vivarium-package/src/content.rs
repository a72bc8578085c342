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
        out.write_all(chunk).map_err(|error| {
            PackageError::io(format!("could not write `{}`", entry.name), error)
        })?;
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

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::testutil::{stored, zip_of, zip_with};

    /// An archive whose only entry is `data`, and a plan entry for it with declared sizes that
    /// the content pass must not trust.
    fn single(data: &[u8], compressed: bool) -> (Vec<u8>, Planned) {
        let bytes = if compressed {
            zip_of(&[("data.bin", data)])
        } else {
            zip_with(&[("data.bin", data)], stored())
        };
        let entry = Planned {
            index: 0,
            name: "data.bin".to_owned(),
            components: vec!["data.bin".to_owned()],
            is_dir: false,
            size: u64::try_from(data.len()).unwrap(),
            compressed: u64::try_from(data.len()).unwrap(),
        };
        (bytes, entry)
    }

    #[test]
    fn reads_at_most_limit_plus_one_bytes() {
        let (bytes, entry) = single(&[1_u8; 5000], false);
        let mut archive = scan::open(&bytes, &PackageLimits::default(), "test").unwrap();
        let limits = PackageLimits {
            max_entry_bytes: 100,
            ..PackageLimits::default()
        };
        let error = copy_entry(&mut archive, &entry, &limits, 0, &mut io::sink()).unwrap_err();
        assert!(matches!(
            error,
            PackageError::EntryTooLarge {
                size: 101,
                limit: 100,
                ..
            }
        ));
    }

    #[test]
    fn running_total_is_enforced_while_reading() {
        let (bytes, entry) = single(&[1_u8; 5000], false);
        let mut archive = scan::open(&bytes, &PackageLimits::default(), "test").unwrap();
        let limits = PackageLimits {
            max_total_bytes: 6000,
            ..PackageLimits::default()
        };
        let error = copy_entry(&mut archive, &entry, &limits, 2000, &mut io::sink()).unwrap_err();
        assert!(matches!(
            error,
            PackageError::TotalTooLarge { limit: 6000, .. }
        ));
    }

    #[test]
    fn ratio_is_enforced_on_real_bytes() {
        let (bytes, mut entry) = single(&vec![0_u8; 3 * 1024 * 1024], true);
        entry.compressed = 1000;
        let mut archive = scan::open(&bytes, &PackageLimits::default(), "test").unwrap();
        let limits = PackageLimits::default();
        let error = copy_entry(&mut archive, &entry, &limits, 0, &mut io::sink()).unwrap_err();
        assert!(matches!(
            error,
            PackageError::RatioTooHigh {
                compressed: 1000,
                ..
            }
        ));
    }
}
