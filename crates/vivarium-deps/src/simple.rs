//! The Simple repository API's project pages, in both forms: PEP 691 JSON and PEP 503 HTML
//! (with PEP 592 yanking, PEP 658/714 metadata files and `requires-python`), read into one list
//! of files with absolute URLs.

use std::collections::HashMap;

use serde::Deserialize;
use url::Url;

use crate::html;

/// The media type of PEP 691 JSON project pages.
pub(crate) const JSON_MEDIA_TYPE: &str = "application/vnd.pypi.simple.v1+json";

/// The `Accept` header sent for project pages: JSON preferred, HTML accepted.
pub(crate) const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// Whether the index offers a file's core metadata separately (PEP 658).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MetadataOffer {
    /// No `.metadata` file: the wheel itself must be read.
    Absent,
    /// `<file url>.metadata` exists, with its sha256 when announced.
    Present(Option<String>),
}

/// One file of a project page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedFile {
    /// The file name.
    pub filename: String,
    /// Absolute download URL, without fragment.
    pub url: String,
    /// Announced sha256 (lowercase hex), if any.
    pub sha256: Option<String>,
    /// Announced `requires-python`, if any.
    pub requires_python: Option<String>,
    /// Whether a PEP 658 metadata file is offered.
    pub metadata: MetadataOffer,
    /// Whether the file is yanked (PEP 592).
    pub yanked: bool,
}

/// Whether a `Content-Type` value designates a PEP 691 JSON page.
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim().starts_with(JSON_MEDIA_TYPE))
}

/// Reads a project page fetched from `page_url`, JSON or HTML as `json` says.
pub(crate) fn parse_page(
    page_url: &str,
    body: &str,
    json: bool,
) -> Result<Vec<ListedFile>, String> {
    let base = Url::parse(page_url).map_err(|e| format!("the page URL is invalid: {e}"))?;
    if json {
        parse_json(&base, body)
    } else {
        Ok(parse_html(&base, body))
    }
}

#[derive(Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default, rename = "core-metadata")]
    core_metadata: Option<JsonMetadata>,
    #[serde(default, rename = "dist-info-metadata")]
    dist_info_metadata: Option<JsonMetadata>,
    #[serde(default)]
    yanked: Option<JsonYanked>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonMetadata {
    Flag(bool),
    Hashes(HashMap<String, String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonYanked {
    Flag(bool),
    Reason(String),
}

fn parse_json(base: &Url, body: &str) -> Result<Vec<ListedFile>, String> {
    let page: JsonPage =
        serde_json::from_str(body).map_err(|e| format!("invalid PEP 691 JSON: {e}"))?;
    page.files
        .into_iter()
        .map(|file| json_file(base, file))
        .collect()
}

fn json_file(base: &Url, file: JsonFile) -> Result<ListedFile, String> {
    let (url, fragment_hash) = absolute_url(base, &file.url)?;
    let metadata = match file.core_metadata.or(file.dist_info_metadata) {
        None | Some(JsonMetadata::Flag(false)) => MetadataOffer::Absent,
        Some(JsonMetadata::Flag(true)) => MetadataOffer::Present(None),
        Some(JsonMetadata::Hashes(hashes)) => MetadataOffer::Present(sha256_of(&hashes)),
    };
    let yanked = match &file.yanked {
        None | Some(JsonYanked::Flag(false)) => false,
        Some(JsonYanked::Flag(true)) => true,
        Some(JsonYanked::Reason(reason)) => {
            tracing::debug!(filename = %file.filename, %reason, "skipping a yanked file");
            true
        }
    };
    Ok(ListedFile {
        filename: file.filename,
        url,
        sha256: sha256_of(&file.hashes).or(fragment_hash),
        requires_python: file.requires_python.filter(|s| !s.trim().is_empty()),
        metadata,
        yanked,
    })
}

fn sha256_of(hashes: &HashMap<String, String>) -> Option<String> {
    hashes.get("sha256").map(|h| h.trim().to_ascii_lowercase())
}

fn parse_html(base: &Url, body: &str) -> Vec<ListedFile> {
    html::anchors(body)
        .into_iter()
        .filter_map(|anchor| html_file(base, anchor))
        .collect()
}

fn html_file(base: &Url, anchor: html::Anchor) -> Option<ListedFile> {
    let attrs = &anchor.attributes;
    let (url, sha256) = absolute_url(base, attrs.get("href")?).ok()?;
    let filename = if anchor.text.is_empty() {
        url.rsplit('/').next().unwrap_or_default().to_string()
    } else {
        anchor.text.clone()
    };
    let metadata = match attrs
        .get("data-core-metadata")
        .or_else(|| attrs.get("data-dist-info-metadata"))
    {
        None => MetadataOffer::Absent,
        Some(value) if value == "false" => MetadataOffer::Absent,
        Some(value) => MetadataOffer::Present(
            value
                .strip_prefix("sha256=")
                .map(|h| h.trim().to_ascii_lowercase()),
        ),
    };
    Some(ListedFile {
        filename,
        url,
        sha256,
        requires_python: attrs
            .get("data-requires-python")
            .filter(|s| !s.trim().is_empty())
            .cloned(),
        metadata,
        yanked: attrs.contains_key("data-yanked"),
    })
}

/// Joins `href` onto the page URL and splits off a `#sha256=` fragment.
fn absolute_url(base: &Url, href: &str) -> Result<(String, Option<String>), String> {
    let mut url = base
        .join(href)
        .map_err(|e| format!("file URL \"{href}\" is invalid: {e}"))?;
    let sha256 = url.fragment().and_then(|fragment| {
        fragment
            .strip_prefix("sha256=")
            .map(|h| h.trim().to_ascii_lowercase())
    });
    url.set_fragment(None);
    Ok((url.to_string(), sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://index.example/simple/demo/";

    #[test]
    fn reads_pep691_json() {
        let body = r#"{"meta": {"api-version": "1.1"}, "name": "demo", "files": [
            {"filename": "demo-1.0-py3-none-any.whl", "url": "../../files/demo-1.0-py3-none-any.whl",
             "hashes": {"sha256": "AA11"}, "requires-python": ">=3.8",
             "core-metadata": {"sha256": "bb22"}, "yanked": false},
            {"filename": "demo-0.9.tar.gz", "url": "https://cdn.example/demo-0.9.tar.gz#sha256=cc33",
             "hashes": {}, "dist-info-metadata": true, "yanked": "broken"}
        ]}"#;
        let files = parse_page(PAGE, body, true).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "https://index.example/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("aa11"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(
            files[0].metadata,
            MetadataOffer::Present(Some("bb22".into()))
        );
        assert!(!files[0].yanked);
        assert_eq!(files[1].sha256.as_deref(), Some("cc33"));
        assert_eq!(files[1].metadata, MetadataOffer::Present(None));
        assert!(files[1].yanked);
    }

    #[test]
    fn reads_pep503_html() {
        let body = r#"<html><body>
            <a href="/files/demo-1.0-py3-none-any.whl#sha256=DD44" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=ee55">demo-1.0-py3-none-any.whl</a>
            <a href="demo-0.9-py3-none-any.whl" data-yanked="">demo-0.9-py3-none-any.whl</a>
        </body></html>"#;
        let files = parse_page(PAGE, body, false).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "https://index.example/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("dd44"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(
            files[0].metadata,
            MetadataOffer::Present(Some("ee55".into()))
        );
        assert_eq!(
            files[1].url,
            "https://index.example/simple/demo/demo-0.9-py3-none-any.whl"
        );
        assert!(files[1].yanked);
        assert_eq!(files[1].metadata, MetadataOffer::Absent);
    }

    #[test]
    fn rejects_bad_json() {
        assert!(parse_page(PAGE, "{", true).is_err());
        assert!(is_json(Some(
            "application/vnd.pypi.simple.v1+json; charset=utf-8"
        )));
        assert!(!is_json(Some("text/html")));
        assert!(!is_json(None));
    }
}
