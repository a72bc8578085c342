//! What describes an action's dependencies and where they come from: the `pyproject.toml` in
//! the upload (with its PEP 508 requirements) and the package index's project pages.

use url::Url;
use vivarium_deps::{Requirements, requirements_from_pyproject};

/// The page URL fuzzed pages are read as if fetched from.
const PAGE_URL: &str = "https://index.example/simple/demo/";

/// A `pyproject.toml` from an upload: read or refused, and what is read keeps its meaning when
/// written canonically and read again (the canonical form is the lock's identity).
pub fn pyproject(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(requirements) = requirements_from_pyproject(text) else {
        return;
    };
    let canonical = requirements.canonical();
    let again = Requirements::parse(&canonical)
        .unwrap_or_else(|e| panic!("the canonical form {canonical:?} is refused: {e}"));
    assert_eq!(again.canonical(), canonical);
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
