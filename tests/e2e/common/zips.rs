//! Action ZIPs built in memory: from a folder, from named entries, or around one `main.py`.

use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

/// Builds a ZIP (deflated) of every file under `dir`, with names under `prefix/` when given.
/// Folder entries are written too, as zip tools do.
pub fn zip_dir(dir: &Path, prefix: Option<&str>) -> Vec<u8> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let name = |relative: &str| match prefix {
        Some(prefix) => format!("{prefix}/{relative}"),
        None => relative.to_string(),
    };
    if let Some(prefix) = prefix {
        writer
            .add_directory(format!("{prefix}/"), options)
            .expect("adding a folder entry");
    }
    for (relative, is_dir) in files {
        if is_dir {
            writer
                .add_directory(format!("{}/", name(&relative)), options)
                .expect("adding a folder entry");
        } else {
            writer
                .start_file(name(&relative), options)
                .expect("starting a ZIP entry");
            let bytes = std::fs::read(dir.join(&relative)).expect("reading an action file");
            writer.write_all(&bytes).expect("writing a ZIP entry");
        }
    }
    writer.finish().expect("finishing the ZIP").into_inner()
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, bool)>) {
    for entry in std::fs::read_dir(dir).expect("listing a folder") {
        let path = entry.expect("listing a folder").path();
        let relative = path
            .strip_prefix(root)
            .expect("under the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if path.is_dir() {
            out.push((relative, true));
            collect(root, &path, out);
        } else {
            out.push((relative, false));
        }
    }
}

/// Builds a ZIP from in-memory `(name, contents)` pairs, stored or deflated as asked.
pub fn zip_entries(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .unix_permissions(0o644);
    for (name, contents) in entries {
        writer
            .start_file(*name, options)
            .expect("starting a ZIP entry");
        writer.write_all(contents).expect("writing a ZIP entry");
    }
    writer.finish().expect("finishing the ZIP").into_inner()
}

/// A minimal valid `main.py`.
pub const IDENTITY_MAIN: &str = "def main(data, logger):\n    return data\n";

/// A ZIP holding one `main.py` with `source`.
pub fn zip_main(source: &str) -> Vec<u8> {
    zip_entries(
        &[("main.py", source.as_bytes())],
        zip::CompressionMethod::Deflated,
    )
}

/// Incompressible bytes, reproducibly (for entries that must keep their size in a ZIP).
pub fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
