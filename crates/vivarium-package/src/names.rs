//! Entry names: validation, normalisation, junk detection and collision checks.
//!
//! Everything here is pure string work, so the rules can be tested without building archives.

use std::collections::HashMap;

use crate::PackageError;

/// A validated entry path split into its components (no `.`, `..` or empty components).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPath {
    /// Normal components, in order; empty for an entry naming the root itself (`./`).
    pub components: Vec<String>,
    /// Whether the name ended in `/` (a folder entry).
    pub is_dir: bool,
}

/// Makes a name safe to print: control characters are escaped, everything else is kept.
pub(crate) fn shown(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Checks an entry name against every path rule and splits it into components.
pub(crate) fn parse(name: &str) -> Result<EntryPath, PackageError> {
    check_characters(name)?;
    let (body, is_dir) = match name.strip_suffix('/') {
        Some(body) => (body, true),
        None => (name, false),
    };
    let components = split_components(name, body)?;
    Ok(EntryPath { components, is_dir })
}

/// Refuses names that are empty, absolute, Windows-flavoured or hold control characters.
fn check_characters(name: &str) -> Result<(), PackageError> {
    let entry = shown(name);
    if name.is_empty() {
        return Err(PackageError::EmptyComponent { entry });
    }
    if name.chars().any(char::is_control) {
        return Err(PackageError::ControlCharacter { entry });
    }
    if name.contains('\\') {
        return Err(PackageError::Backslash { entry });
    }
    if name.starts_with('/') {
        return Err(PackageError::AbsolutePath { entry });
    }
    if has_drive_letter(name) {
        return Err(PackageError::DriveLetter { entry });
    }
    Ok(())
}

/// Whether the name starts like `C:` (a Windows drive, absolute or drive-relative).
fn has_drive_letter(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(
        (chars.next(), chars.next()),
        (Some(letter), Some(':')) if letter.is_ascii_alphabetic()
    )
}

/// Splits on `/`, dropping `.` and refusing `..` and empty components.
fn split_components(name: &str, body: &str) -> Result<Vec<String>, PackageError> {
    let mut components = Vec::new();
    for component in body.split('/') {
        match component {
            "." => {}
            ".." => return Err(PackageError::ParentComponent { entry: shown(name) }),
            "" => return Err(PackageError::EmptyComponent { entry: shown(name) }),
            normal => components.push(normal.to_owned()),
        }
    }
    Ok(components)
}

/// Whether an entry is macOS metadata that is never extracted: anything under `__MACOSX/` and
/// `.DS_Store` files.
pub(crate) fn is_junk(path: &EntryPath) -> bool {
    let first = path.components.first().map(String::as_str);
    let last = path.components.last().map(String::as_str);
    first == Some("__MACOSX") || (last == Some(".DS_Store") && !path.is_dir)
}

/// One entry as seen by the collision check: its original name and its normalised path.
pub(crate) struct Named<'a> {
    /// The name as written in the archive (for messages).
    pub name: &'a str,
    /// The validated path.
    pub path: &'a EntryPath,
}

/// Refuses duplicates, names equal ignoring ASCII case, and files standing where another entry
/// needs a folder.
pub(crate) fn check_collisions(entries: &[Named<'_>]) -> Result<(), PackageError> {
    check_duplicates(entries)?;
    check_file_folder_conflicts(entries)
}

/// Refuses two entries with the same normalised path, exactly or ignoring ASCII case.
fn check_duplicates(entries: &[Named<'_>]) -> Result<(), PackageError> {
    let mut folded: HashMap<String, (&str, String)> = HashMap::new();
    for entry in entries {
        let key = entry.path.components.join("/");
        match folded.get(&key.to_ascii_lowercase()) {
            Some((_, earlier)) if *earlier == key => {
                return Err(PackageError::DuplicateEntry {
                    entry: shown(entry.name),
                });
            }
            Some((other, _)) => {
                return Err(PackageError::CaseCollision {
                    entry: shown(entry.name),
                    other: shown(other),
                });
            }
            None => {
                folded.insert(key.to_ascii_lowercase(), (entry.name, key));
            }
        }
    }
    Ok(())
}

/// Refuses a file entry whose path (ignoring ASCII case) is a folder some other entry lives in.
fn check_file_folder_conflicts(entries: &[Named<'_>]) -> Result<(), PackageError> {
    let files: HashMap<String, &str> = entries
        .iter()
        .filter(|entry| !entry.path.is_dir)
        .map(|entry| (folded_prefix(&entry.path.components), entry.name))
        .collect();
    for entry in entries {
        let components = &entry.path.components;
        for depth in 1..components.len() {
            if let Some(file) = files.get(&folded_prefix(&components[..depth])) {
                return Err(PackageError::PathConflict {
                    entry: shown(file),
                    other: shown(entry.name),
                });
            }
        }
    }
    Ok(())
}

/// The first components joined by `/`, in ASCII lower case.
fn folded_prefix(components: &[String]) -> String {
    components.join("/").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(name: &str) -> Vec<String> {
        parse(name).unwrap().components
    }

    #[test]
    fn plain_names_split_into_components() {
        assert_eq!(components("a/b/c.py"), ["a", "b", "c.py"]);
        assert_eq!(components("./a/./b.py"), ["a", "b.py"]);
        assert!(parse("pkg/").unwrap().is_dir);
        assert!(parse("./").unwrap().components.is_empty());
    }

    #[test]
    fn each_hostile_name_gets_its_own_variant() {
        type IsExpected = fn(&PackageError) -> bool;
        let cases: &[(&str, IsExpected)] = &[
            ("/etc/passwd", |e| {
                matches!(e, PackageError::AbsolutePath { .. })
            }),
            ("a/../../x", |e| {
                matches!(e, PackageError::ParentComponent { .. })
            }),
            ("..", |e| matches!(e, PackageError::ParentComponent { .. })),
            ("a\\b.py", |e| matches!(e, PackageError::Backslash { .. })),
            ("C:/x.py", |e| matches!(e, PackageError::DriveLetter { .. })),
            ("c:x.py", |e| matches!(e, PackageError::DriveLetter { .. })),
            ("a\0b", |e| {
                matches!(e, PackageError::ControlCharacter { .. })
            }),
            ("a\nb", |e| {
                matches!(e, PackageError::ControlCharacter { .. })
            }),
            ("a//b", |e| matches!(e, PackageError::EmptyComponent { .. })),
            ("", |e| matches!(e, PackageError::EmptyComponent { .. })),
        ];
        for (name, is_expected) in cases {
            let error = parse(name).unwrap_err();
            assert!(is_expected(&error), "{name:?} gave {error:?}");
        }
    }

    #[test]
    fn control_characters_are_escaped_in_messages() {
        let error = parse("evil\u{1b}[2Jname").unwrap_err();
        assert!(matches!(error, PackageError::ControlCharacter { .. }));
        assert!(!error.to_string().contains('\u{1b}'));
        assert!(error.to_string().contains("evil\\u{1b}[2Jname"));
    }

    #[test]
    fn macos_junk_is_recognised() {
        assert!(is_junk(&parse("__MACOSX/._main.py").unwrap()));
        assert!(is_junk(&parse("__MACOSX/").unwrap()));
        assert!(is_junk(&parse("pkg/.DS_Store").unwrap()));
        assert!(!is_junk(&parse("pkg/main.py").unwrap()));
    }

    fn collide(names: &[&str]) -> Result<(), PackageError> {
        let paths: Vec<EntryPath> = names.iter().map(|n| parse(n).unwrap()).collect();
        let entries: Vec<Named<'_>> = names
            .iter()
            .zip(&paths)
            .map(|(name, path)| Named { name, path })
            .collect();
        check_collisions(&entries)
    }

    #[test]
    fn collisions_are_classified() {
        assert!(collide(&["a/", "a/b.py", "c.py"]).is_ok());
        assert!(matches!(
            collide(&["a.py", "./a.py"]),
            Err(PackageError::DuplicateEntry { .. })
        ));
        assert!(matches!(
            collide(&["a", "a/"]),
            Err(PackageError::DuplicateEntry { .. })
        ));
        assert!(matches!(
            collide(&["Lib.py", "lib.py"]),
            Err(PackageError::CaseCollision { .. })
        ));
        assert!(matches!(
            collide(&["lib", "lib/x.py"]),
            Err(PackageError::PathConflict { .. })
        ));
        assert!(matches!(
            collide(&["LIB", "lib/x.py"]),
            Err(PackageError::PathConflict { .. })
        ));
    }
}
