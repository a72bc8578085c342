//! Each call's scratch folder: a fresh, empty, writable `/tmp` (the guest's `HOME` and
//! `TMPDIR`), made on the host for the call and removed when it ends, never shared between
//! calls.
//!
//! wasmtime-wasi sets no quota on a preopened folder, so the WASI functions through which a
//! guest can make the folder hold more are wrapped: `fd_write` and `fd_pwrite` on a file
//! opened under the scratch, and `path_open` with `O_CREAT`, `path_create_directory`,
//! `path_symlink` and `path_link` into it. A wrapper refuses with `ENOSPC` what could take the
//! folder past its cap, and otherwise calls WASI's own function (the one wasmtime-wasi's
//! linker calls, with the same memory and fuel for host calls). To know which descriptors lie under the scratch (its preopen and
//! whatever was opened from one of them: WASI resolves no path out of a descriptor's own
//! folder), the wrappers also watch `path_open`, `fd_close` and `fd_renumber`.
//!
//! What the folder holds is counted as `du` counts it: the disk blocks of its entries (so a
//! sparse file's holes count nothing, and a file of ten bytes counts a block), and the number
//! of entries (files, folders and links). The guard keeps an upper bound of both, grown by the
//! most each operation can add, and measures the folder only when that bound nears the cap,
//! so that a call writing a few files pays for no walk of the folder. A walk costs the guest
//! fuel by the entry, like any other work it causes.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1};
use wiggle::GuestMemory;

use crate::error::SandboxError;
use crate::sandbox::CallState;

/// Where the call's scratch folder appears inside the guest.
pub const SCRATCH_MOUNT: &str = "/tmp";
/// The WASI module the interpreter imports.
const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// WASI's `errno::nospc`: no space left on the device.
const ERRNO_NOSPC: i32 = 51;
/// WASI's `errno::io`: the folder could not be measured.
const ERRNO_IO: i32 = 29;
/// `path_open`'s `oflags::creat`.
const OFLAGS_CREAT: i32 = 1;
/// The most disk blocks' worth one operation adds beyond the bytes it writes: a write that
/// starts and ends inside blocks touches one more block at each end (a new folder takes one).
const BLOCK_SLACK_BYTES: u64 = 2 * 4096;
/// Fuel a walk of the folder costs per entry it finds.
const FUEL_PER_ENTRY_MEASURED: u64 = 20_000;

/// How much a call's scratch folder holds: blocks on disk (as `du` counts them) and entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScratchUsage {
    /// Bytes of the disk blocks its files, folders and links take.
    pub bytes: u64,
    /// Files, folders and links in it.
    pub files: u64,
}

impl ScratchUsage {
    /// Whether `self` plus `more` stays within `cap`.
    fn fits(self, more: Self, cap: Self) -> bool {
        self.bytes.saturating_add(more.bytes) <= cap.bytes
            && self.files.saturating_add(more.files) <= cap.files
    }

    fn plus(self, more: Self) -> Self {
        Self {
            bytes: self.bytes.saturating_add(more.bytes),
            files: self.files.saturating_add(more.files),
        }
    }
}

/// One call's scratch folder on the host, removed (whatever the guest left in it) when
/// dropped.
pub(crate) struct ScratchFolder(tempfile::TempDir);

impl ScratchFolder {
    /// A fresh, empty folder under the host's temporary folder, readable by this user only.
    pub(crate) fn create() -> Result<Self, SandboxError> {
        tempfile::Builder::new()
            .prefix("vivarium-scratch-")
            .tempdir()
            .map(Self)
            .map_err(|e| {
                SandboxError::Setup(format!(
                    "no scratch folder could be made under {}: {e}",
                    std::env::temp_dir().display()
                ))
            })
    }

    /// The folder on the host.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

/// What a call's store knows of its scratch folder: where it is on the host, its cap, which
/// of the guest's descriptors lie under it, and an upper bound of what it holds. The default
/// guards nothing (no descriptor lies under a scratch): every call goes straight to WASI.
#[derive(Default)]
pub(crate) struct ScratchGuard {
    root: PathBuf,
    cap: ScratchUsage,
    descriptors: HashSet<u32>,
    bound: ScratchUsage,
    grown: bool,
}

/// Whether an operation may go ahead, and how many entries measuring the folder found.
struct Admission {
    admitted: Result<(), i32>,
    walked: u64,
}

impl ScratchGuard {
    /// A guard over the folder at `root`, preopened as descriptor `preopen`, held to `cap`.
    pub(crate) fn new(root: &Path, preopen: u32, cap: ScratchUsage) -> Self {
        Self {
            root: root.to_path_buf(),
            cap,
            descriptors: HashSet::from([preopen]),
            ..Self::default()
        }
    }

    /// What the folder holds now, measured (nothing when no operation could have added to
    /// it); `None` when it cannot be measured.
    pub(crate) fn usage(&self) -> Option<ScratchUsage> {
        if !self.grown {
            return Some(ScratchUsage::default());
        }
        measure(&self.root).ok()
    }

    fn guards(&self, descriptor: i32) -> bool {
        u32::try_from(descriptor).is_ok_and(|fd| self.descriptors.contains(&fd))
    }

    /// Lets an operation adding at most `more` go ahead when the folder stays within its
    /// cap, measuring it first when the bound says it might not.
    fn admit(&mut self, more: ScratchUsage) -> Admission {
        let mut walked = 0;
        if !self.bound.fits(more, self.cap) {
            match measure(&self.root) {
                Ok(found) => {
                    walked = found.files;
                    self.bound = found;
                }
                Err(error) => {
                    tracing::warn!(%error, folder = %self.root.display(), "a call's scratch folder could not be measured");
                    return Admission {
                        admitted: Err(ERRNO_IO),
                        walked,
                    };
                }
            }
            if !self.bound.fits(more, self.cap) {
                return Admission {
                    admitted: Err(ERRNO_NOSPC),
                    walked,
                };
            }
        }
        self.bound = self.bound.plus(more);
        self.grown = true;
        Admission {
            admitted: Ok(()),
            walked,
        }
    }
}

/// What the folder at `root` holds, not following links.
fn measure(root: &Path) -> std::io::Result<ScratchUsage> {
    let mut usage = ScratchUsage::default();
    for entry in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let metadata = entry?.metadata()?;
        usage.files += 1;
        usage.bytes += metadata.blocks() * 512;
    }
    Ok(usage)
}

/// Wraps the WASI functions that can grow a folder (or tell which descriptors lie under the
/// scratch) over WASI's own definitions. Call after WASI is linked.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> Result<(), SandboxError> {
    linker.allow_shadowing(true);
    let wrapped = wrap_writes(linker)
        .and_then(|()| wrap_creations(linker))
        .and_then(|()| wrap_descriptor_changes(linker));
    linker.allow_shadowing(false);
    wrapped.map_err(|e| SandboxError::Setup(format!("wrapping WASI for /tmp: {e:#}")))
}

/// The guest's memory and the call's WASI context, as WASI's own functions take them (what
/// wasmtime-wasi's linker does before each of its functions).
fn wasi_and_memory<'a>(
    caller: &'a mut Caller<'_, CallState>,
) -> wasmtime::Result<(GuestMemory<'a>, &'a mut WasiP1Ctx)> {
    let fuel = caller.as_context_mut().hostcall_fuel();
    let memory = caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmtime::Error::msg("the guest exports no memory"))?;
    let (bytes, state) = memory.data_and_store_mut(caller);
    state.wasi.set_hostcall_fuel(fuel);
    Ok((GuestMemory::Unshared(bytes), &mut state.wasi))
}

/// `fd_write` and `fd_pwrite`: a write of `n` bytes to a file under the scratch may add `n`
/// bytes and the blocks at its ends.
fn wrap_writes(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        WASI_MODULE,
        "fd_write",
        |mut caller: Caller<'_, CallState>, (fd, iovs, iovs_len, written): (i32, i32, i32, i32)| {
            Box::new(async move {
                if let Err(errno) = admit_write(&mut caller, fd, iovs, iovs_len) {
                    return Ok(errno);
                }
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                p1::fd_write(wasi, &mut memory, fd, iovs, iovs_len, written).await
            })
        },
    )?;
    linker.func_wrap_async(
        WASI_MODULE,
        "fd_pwrite",
        |mut caller: Caller<'_, CallState>,
         (fd, iovs, iovs_len, offset, written): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                if let Err(errno) = admit_write(&mut caller, fd, iovs, iovs_len) {
                    return Ok(errno);
                }
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                p1::fd_pwrite(wasi, &mut memory, fd, iovs, iovs_len, offset, written).await
            })
        },
    )?;
    Ok(())
}

/// `path_open` with `O_CREAT`, `path_create_directory`, `path_symlink` and `path_link` into a
/// folder under the scratch may each add an entry (and a block).
fn wrap_creations(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        WASI_MODULE,
        "path_open",
        |mut caller: Caller<'_, CallState>,
         (dir, lookup, path, path_len, oflags, base, inheriting, fdflags, opened): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i64,
            i64,
            i32,
            i32,
        )| {
            Box::new(async move {
                let under = caller.data().scratch.guards(dir);
                if under
                    && oflags & OFLAGS_CREAT != 0
                    && let Err(errno) = admit_entry(&mut caller)
                {
                    return Ok(errno);
                }
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                let errno = p1::path_open(
                    wasi,
                    &mut memory,
                    dir,
                    lookup,
                    path,
                    path_len,
                    oflags,
                    base,
                    inheriting,
                    fdflags,
                    opened,
                )
                .await?;
                if under && errno == 0 {
                    let fd = read_u32(&mut caller, opened);
                    caller.data_mut().scratch.descriptors.extend(fd);
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap_async(
        WASI_MODULE,
        "path_create_directory",
        |mut caller: Caller<'_, CallState>, (dir, path, path_len): (i32, i32, i32)| {
            Box::new(async move {
                if let Err(errno) = admit_entry_into(&mut caller, dir) {
                    return Ok(errno);
                }
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                p1::path_create_directory(wasi, &mut memory, dir, path, path_len).await
            })
        },
    )?;
    linker.func_wrap_async(
        WASI_MODULE,
        "path_symlink",
        |mut caller: Caller<'_, CallState>,
         (target, target_len, dir, path, path_len): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                if let Err(errno) = admit_entry_into(&mut caller, dir) {
                    return Ok(errno);
                }
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                p1::path_symlink(wasi, &mut memory, target, target_len, dir, path, path_len).await
            })
        },
    )?;
    linker.func_wrap_async(
        WASI_MODULE,
        "path_link",
        |mut caller: Caller<'_, CallState>,
         (old_dir, old_lookup, old_path, old_len, new_dir, new_path, new_len): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
        )| {
            Box::new(async move {
                if let Err(errno) = admit_entry_into(&mut caller, new_dir) {
                    return Ok(errno);
                }
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                p1::path_link(
                    wasi,
                    &mut memory,
                    old_dir,
                    old_lookup,
                    old_path,
                    old_len,
                    new_dir,
                    new_path,
                    new_len,
                )
                .await
            })
        },
    )?;
    Ok(())
}

/// `fd_close` and `fd_renumber`: a descriptor under the scratch that is closed, or moved to
/// another number, is forgotten or followed.
fn wrap_descriptor_changes(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        WASI_MODULE,
        "fd_close",
        |mut caller: Caller<'_, CallState>, (fd,): (i32,)| {
            Box::new(async move {
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                let errno = p1::fd_close(wasi, &mut memory, fd).await?;
                if errno == 0 {
                    forget(&mut caller, fd);
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap_async(
        WASI_MODULE,
        "fd_renumber",
        |mut caller: Caller<'_, CallState>, (from, to): (i32, i32)| {
            Box::new(async move {
                let (mut memory, wasi) = wasi_and_memory(&mut caller)?;
                let errno = p1::fd_renumber(wasi, &mut memory, from, to).await?;
                if errno == 0 {
                    let moved = forget(&mut caller, from);
                    forget(&mut caller, to);
                    if moved {
                        caller
                            .data_mut()
                            .scratch
                            .descriptors
                            .extend(u32::try_from(to).ok());
                    }
                }
                Ok(errno)
            })
        },
    )?;
    Ok(())
}

/// Forgets `fd` as a descriptor under the scratch; whether it was one.
fn forget(caller: &mut Caller<'_, CallState>, fd: i32) -> bool {
    u32::try_from(fd).is_ok_and(|fd| caller.data_mut().scratch.descriptors.remove(&fd))
}

/// Admits a write of the buffers the `iovs_len` I/O vectors at `iovs` describe, when `fd` lies
/// under the scratch; the errno to answer otherwise. Vectors outside the guest's memory are
/// left for WASI to refuse.
fn admit_write(
    caller: &mut Caller<'_, CallState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
) -> Result<(), i32> {
    if !caller.data().scratch.guards(fd) {
        return Ok(());
    }
    let Some(bytes) = vectored_len(caller, iovs, iovs_len) else {
        return Ok(());
    };
    admit(
        caller,
        ScratchUsage {
            bytes: bytes.saturating_add(BLOCK_SLACK_BYTES),
            files: 0,
        },
    )
}

/// Admits a new entry in the folder `dir`, when it lies under the scratch.
fn admit_entry_into(caller: &mut Caller<'_, CallState>, dir: i32) -> Result<(), i32> {
    if !caller.data().scratch.guards(dir) {
        return Ok(());
    }
    admit_entry(caller)
}

/// Admits a new entry under the scratch.
fn admit_entry(caller: &mut Caller<'_, CallState>) -> Result<(), i32> {
    admit(
        caller,
        ScratchUsage {
            bytes: BLOCK_SLACK_BYTES,
            files: 1,
        },
    )
}

/// Asks the guard, charging the guest fuel for what a measure walked.
fn admit(caller: &mut Caller<'_, CallState>, more: ScratchUsage) -> Result<(), i32> {
    let admission = caller.data_mut().scratch.admit(more);
    if admission.walked > 0 {
        let fuel = caller.get_fuel().unwrap_or(0);
        let cost = admission.walked.saturating_mul(FUEL_PER_ENTRY_MEASURED);
        // The store meters fuel, so setting it cannot fail.
        let _ = caller.set_fuel(fuel.saturating_sub(cost));
    }
    admission.admitted
}

/// The total length of the buffers `count` WASI I/O vectors (`{buf: u32, len: u32}`) at `iovs`
/// describe, if they lie in the guest's memory.
fn vectored_len(caller: &mut Caller<'_, CallState>, iovs: i32, count: i32) -> Option<u64> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory)?;
    let start = usize::try_from(iovs).ok()?;
    let end = start.checked_add(usize::try_from(count).ok()?.checked_mul(8)?)?;
    let vectors = memory.data(&*caller).get(start..end)?;
    Some(
        vectors
            .chunks_exact(8)
            .map(|vector| {
                u64::from(u32::from_le_bytes([
                    vector[4], vector[5], vector[6], vector[7],
                ]))
            })
            .sum(),
    )
}

/// The `u32` at `ptr` in the guest's memory, if it lies there.
fn read_u32(caller: &mut Caller<'_, CallState>, ptr: i32) -> Option<u32> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory)?;
    let start = usize::try_from(ptr).ok()?;
    let bytes = memory.data(&*caller).get(start..start.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(bytes: u64, files: u64) -> ScratchUsage {
        ScratchUsage { bytes, files }
    }

    #[test]
    fn the_errnos_are_wasi_s_own() {
        use wasmtime_wasi::p1::types::Errno;
        assert_eq!(Errno::Nospc as i32, ERRNO_NOSPC);
        assert_eq!(Errno::Io as i32, ERRNO_IO);
    }

    #[test]
    fn growth_within_the_bound_walks_nothing() {
        let folder = ScratchFolder::create().unwrap();
        let mut guard = ScratchGuard::new(folder.path(), 7, cap(1 << 20, 10));
        for _ in 0..5 {
            let admission = guard.admit(cap(4096, 1));
            assert_eq!((admission.admitted, admission.walked), (Ok(()), 0));
        }
    }

    #[test]
    fn a_bound_past_the_cap_is_corrected_by_measuring() {
        let folder = ScratchFolder::create().unwrap();
        std::fs::write(folder.path().join("kept"), [1u8; 10]).unwrap();
        let mut guard = ScratchGuard::new(folder.path(), 7, cap(1 << 20, 3));
        guard.bound = cap(1 << 20, 3);
        let admission = guard.admit(cap(0, 1));
        assert_eq!((admission.admitted, admission.walked), (Ok(()), 1));
        assert_eq!(guard.bound.files, 2);
    }

    #[test]
    fn what_would_pass_the_cap_is_refused_with_enospc() {
        let folder = ScratchFolder::create().unwrap();
        let mut guard = ScratchGuard::new(folder.path(), 7, cap(1 << 20, 2));
        for name in ["a", "b"] {
            assert_eq!(guard.admit(cap(0, 1)).admitted, Ok(()));
            std::fs::write(folder.path().join(name), b"x").unwrap();
        }
        let third = guard.admit(cap(0, 1));
        assert_eq!((third.admitted, third.walked), (Err(ERRNO_NOSPC), 2));
        let mut small = ScratchGuard::new(folder.path(), 7, cap(4096, 10));
        assert_eq!(small.admit(cap(1 << 20, 0)).admitted, Err(ERRNO_NOSPC));
    }

    #[test]
    fn a_measure_counts_blocks_and_entries_without_following_links() {
        let folder = ScratchFolder::create().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![7u8; 1 << 20]).unwrap();
        std::fs::create_dir(folder.path().join("sub")).unwrap();
        std::fs::write(folder.path().join("sub/small"), b"hello").unwrap();
        std::os::unix::fs::symlink(outside.path(), folder.path().join("link")).unwrap();
        let usage = measure(folder.path()).unwrap();
        assert_eq!(usage.files, 3);
        assert!(usage.bytes < 1 << 20, "{usage:?}");
    }

    #[test]
    fn an_untouched_folder_is_reported_empty_and_removed_when_dropped() {
        let folder = ScratchFolder::create().unwrap();
        let path = folder.path().to_path_buf();
        let guard = ScratchGuard::new(&path, 7, cap(10, 10));
        assert_eq!(guard.usage(), Some(ScratchUsage::default()));
        std::fs::write(path.join("left"), b"x").unwrap();
        drop(folder);
        assert!(!path.exists());
    }

    #[test]
    fn only_the_preopen_is_guarded_at_first() {
        let guard = ScratchGuard::new(Path::new("/nowhere"), 7, cap(10, 10));
        assert!(guard.guards(7));
        assert!(!guard.guards(1) && !guard.guards(-1));
    }
}
