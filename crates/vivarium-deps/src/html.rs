//! A minimal reader for the anchors of PEP 503 HTML project pages: `<a href=... data-*=...>
//! text</a>`, attributes in any quoting style, with HTML character references decoded. Nothing
//! else of HTML matters to the Simple API.

use std::collections::HashMap;

/// One `<a>` element: its attributes (names lowercased, values decoded) and its text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Anchor {
    /// Attribute name to decoded value; valueless attributes map to "".
    pub attributes: HashMap<String, String>,
    /// The decoded, trimmed text between `<a ...>` and `</a>`.
    pub text: String,
}

/// Every anchor of `page`, in order.
pub(crate) fn anchors(page: &str) -> Vec<Anchor> {
    let lower = page.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = find_anchor_start(&lower, at) {
        let Some((attributes, after_tag)) = parse_tag(page, start + 2) else {
            break;
        };
        let end = lower[after_tag..]
            .find("</a")
            .map_or(page.len(), |i| after_tag + i);
        found.push(Anchor {
            attributes,
            text: decode_entities(page[after_tag..end].trim()),
        });
        at = end;
    }
    found
}

/// Finds the next `<a` followed by whitespace or `>`.
fn find_anchor_start(lower: &str, mut from: usize) -> Option<usize> {
    loop {
        let start = from + lower.get(from..)?.find("<a")?;
        match lower.as_bytes().get(start + 2) {
            Some(b) if b.is_ascii_whitespace() || *b == b'>' => return Some(start),
            Some(_) => from = start + 2,
            None => return None,
        }
    }
}

/// Parses attributes from `at` up to the closing `>`; returns them and the index after `>`.
fn parse_tag(page: &str, mut at: usize) -> Option<(HashMap<String, String>, usize)> {
    let bytes = page.as_bytes();
    let mut attributes = HashMap::new();
    loop {
        at = skip_whitespace(bytes, at);
        match bytes.get(at)? {
            b'>' => return Some((attributes, at + 1)),
            b'/' => at += 1,
            _ => {
                let (name, value, next) = parse_attribute(page, at)?;
                attributes.insert(name, value);
                at = next;
            }
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Parses `name`, `name=value`, `name="value"` or `name='value'` starting at `at`.
fn parse_attribute(page: &str, at: usize) -> Option<(String, String, usize)> {
    let bytes = page.as_bytes();
    let name_end = (at..bytes.len())
        .find(|&i| bytes[i].is_ascii_whitespace() || matches!(bytes[i], b'=' | b'>' | b'/'))
        .unwrap_or(bytes.len());
    let name = page[at..name_end].to_ascii_lowercase();
    let mut next = skip_whitespace(bytes, name_end);
    if bytes.get(next) != Some(&b'=') {
        return Some((name, String::new(), name_end.max(at + 1)));
    }
    next = skip_whitespace(bytes, next + 1);
    let (raw, after) = match bytes.get(next)? {
        quote @ (b'"' | b'\'') => {
            let close = next + 1 + page[next + 1..].find(*quote as char)?;
            (&page[next + 1..close], close + 1)
        }
        _ => {
            let end = (next..bytes.len())
                .find(|&i| bytes[i].is_ascii_whitespace() || bytes[i] == b'>')
                .unwrap_or(bytes.len());
            (&page[next..end], end)
        }
    };
    Some((name, decode_entities(raw), after))
}

/// Decodes the character references the Simple API uses (`&lt;`, `&#62;`, `&#x3e;`, ...).
pub(crate) fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match rest
            .find(';')
            .and_then(|semi| Some((decode_one(&rest[1..semi])?, semi)))
        {
            Some((decoded, semi)) => {
                out.push(decoded);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(entity: &str) -> Option<char> {
    match entity {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_simple_api_anchors() {
        let page = r#"<!DOCTYPE html><html><body>
            <h1>Links for demo</h1>
            <a href="../../files/demo-1.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3.8">demo-1.0-py3-none-any.whl</a><br/>
            <A HREF='/x/demo-0.9.tar.gz' data-yanked>demo-0.9.tar.gz</A>
            <a href=plain.whl data-core-metadata="sha256=def">plain.whl</a>
            <abbr>not an anchor</abbr>
        </body></html>"#;
        let found = anchors(page);
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[0].attributes["href"],
            "../../files/demo-1.0-py3-none-any.whl#sha256=abc"
        );
        assert_eq!(found[0].attributes["data-requires-python"], ">=3.8");
        assert_eq!(found[0].text, "demo-1.0-py3-none-any.whl");
        assert_eq!(found[1].attributes["data-yanked"], "");
        assert_eq!(found[1].text, "demo-0.9.tar.gz");
        assert_eq!(found[2].attributes["href"], "plain.whl");
        assert_eq!(found[2].attributes["data-core-metadata"], "sha256=def");
    }

    #[test]
    fn decodes_entities() {
        assert_eq!(
            decode_entities("&lt;4,&#62;=3.8&amp;&#x21;&bogus;"),
            "<4,>=3.8&!&bogus;"
        );
        assert_eq!(decode_entities("a & b"), "a & b");
    }

    #[test]
    fn survives_truncated_markup() {
        assert!(anchors("<a href=\"x").is_empty());
        assert_eq!(anchors("<a href=x>text").len(), 1);
    }
}
