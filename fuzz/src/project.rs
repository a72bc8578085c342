//! What describes an action's dependencies and where they come from: the `pyproject.toml` in
//! the upload (with its PEP 508 requirements) and the package index's project pages.

use url::Url;
use vivarium_deps::{Requirements, requirements_from_pyproject};

/// The page URL fuzzed pages are read as if fetched from.
const PAGE_URL: &str = "https://index.example/simple/demo/";

/// A `pyproject.toml` from an upload: read or refused, and what is read is accepted again
/// when written canonically, which then settles (the canonical form is the lock's identity).
pub fn pyproject(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(requirements) = requirements_from_pyproject(text) else {
        return;
    };
    let canonical = requirements.canonical();
    let again = Requirements::parse(&canonical)
        .unwrap_or_else(|e| panic!("the canonical form {canonical:?} is refused: {e}"))
        .canonical();
    // pep508_rs may simplify a marker on the first pass and respell it on the second
    // (`python_version ~= '3.3.1'` becomes `python_version < '0'`, then
    // `python_full_version < '0'`); from the second form on, the spelling holds.
    let third = Requirements::parse(&again)
        .unwrap_or_else(|e| panic!("the canonical form {again:?} is refused: {e}"))
        .canonical();
    assert_eq!(third, again);
}

/// A project page from the index, hostile: the first byte picks the form (odd: PEP 691 JSON),
/// the rest is the body. Every listed file has an absolute URL without a fragment.
pub fn project_page(bytes: &[u8]) {
    let Some((&form, body)) = bytes.split_first() else {
        return;
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let Ok(urls) = vivarium_deps::fuzzing::listed_urls(PAGE_URL, body, form & 1 == 1) else {
        return;
    };
    for url in urls {
        let parsed = Url::parse(&url).unwrap_or_else(|e| panic!("{url} is not absolute: {e}"));
        assert_eq!(parsed.fragment(), None, "{url} kept its fragment");
    }
}
