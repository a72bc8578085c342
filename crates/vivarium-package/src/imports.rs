//! Which top-level modules an action's Python sources import, read from their `import` and
//! `from ... import` statements: enough to tell whether an action needs a runtime profile
//! with a native package built in (numpy), without running anything.
//!
//! The reading is by lines, not by a Python parser: a statement spread over lines with a
//! backslash or parentheses is read from its first line, which names the module; an import
//! written inside a string is taken for one. An import done by `importlib` with a computed
//! name is not seen; such an action names its package in `pyproject.toml` instead.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use walkdir::WalkDir;

/// The top-level modules the `.py` files under `root` import (relative imports excluded).
/// Unreadable files and folders are skipped: the action's own import reports them.
pub fn imported_modules(root: &Path) -> BTreeSet<String> {
    WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "py"))
        .filter_map(|entry| fs::read_to_string(entry.path()).ok())
        .flat_map(|source| modules_in(&source))
        .collect()
}

/// The top-level modules one source's import statements name.
fn modules_in(source: &str) -> Vec<String> {
    source
        .lines()
        .flat_map(|line| line.split(';'))
        .flat_map(statement_modules)
        .collect()
}

/// The top-level modules of one statement: `import a.b, c as d` gives `a` and `c`;
/// `from a.b import c` gives `a`; `from . import c` nothing.
fn statement_modules(statement: &str) -> Vec<String> {
    let statement = statement.trim_start();
    if let Some(rest) = statement.strip_prefix("import") {
        if !rest.starts_with([' ', '\t']) {
            return Vec::new();
        }
        return rest
            .split(',')
            .filter_map(|part| top_level(part.split_whitespace().next()?))
            .collect();
    }
    if let Some(rest) = statement.strip_prefix("from") {
        if !rest.starts_with([' ', '\t']) {
            return Vec::new();
        }
        return rest
            .split_whitespace()
            .next()
            .and_then(top_level)
            .into_iter()
            .collect();
    }
    Vec::new()
}

/// The first component of a dotted module name, if it is an identifier (not a relative
/// import, not a parenthesis or a backslash).
fn top_level(dotted: &str) -> Option<String> {
    let first = dotted.split('.').next()?;
    let mut chars = first.chars();
    let starts_well = chars.next().is_some_and(|c| c == '_' || c.is_alphabetic());
    (starts_well && chars.all(|c| c == '_' || c.is_alphanumeric())).then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(source: &str) -> Vec<String> {
        let mut found = modules_in(source);
        found.sort();
        found
    }

    #[test]
    fn import_statements_name_their_top_level_modules() {
        let source = "import numpy as np\nimport os, json\nfrom numpy.linalg import inv\n\
                      from collections import (\n    deque,\n)\n";
        assert_eq!(
            modules(source),
            ["collections", "json", "numpy", "numpy", "os"]
        );
    }

    #[test]
    fn indented_and_semicolon_separated_imports_are_read() {
        let source = "def main(data, logger):\n    import numpy; import math\n";
        assert_eq!(modules(source), ["math", "numpy"]);
    }

    #[test]
    fn relative_imports_and_lookalikes_name_nothing() {
        let source = "from . import helpers\nfrom .util import x\nimported = 1\nfromage = 2\n\
                      # numpy is not imported here\n";
        assert!(modules(source).is_empty(), "{:?}", modules(source));
    }

    #[test]
    fn every_python_file_of_the_folder_is_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("main.py"), "import helpers\n").unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join("lib/helpers.py"), "import numpy\n").unwrap();
        fs::write(dir.path().join("notes.txt"), "import pandas\n").unwrap();
        let found = imported_modules(dir.path());
        assert!(
            found.contains("numpy") && found.contains("helpers"),
            "{found:?}"
        );
        assert!(!found.contains("pandas"));
    }
}
