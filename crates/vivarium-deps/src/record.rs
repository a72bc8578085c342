//! Wheel `RECORD` files: CSV rows of `path,sha256=<urlsafe b64>,size`, used to check that each
//! installed file is the one the wheel's builder recorded.

/// The rows of a RECORD text that carry a sha256: `(path, urlsafe-b64 digest)`.
/// Rows with no hash (RECORD itself, signatures) or another algorithm are left out.
pub(crate) fn sha256_rows(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let fields = split_csv(line.strip_suffix('\r').unwrap_or(line));
            let path = fields.first()?.clone();
            let digest = fields.get(1)?.strip_prefix("sha256=")?.to_string();
            Some((path, digest))
        })
        .collect()
}

/// Splits one CSV line (RFC 4180 quoting, as Python's `csv` module writes it).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_with_hashes() {
        let text = "pkg/__init__.py,sha256=abc_-,12\r\n\"pkg/a,b.py\",sha256=def,3\n\
                    pkg-1.0.dist-info/RECORD,,\npkg/x.py,sha512=zzz,1\n";
        assert_eq!(
            sha256_rows(text),
            vec![
                ("pkg/__init__.py".to_string(), "abc_-".to_string()),
                ("pkg/a,b.py".to_string(), "def".to_string()),
            ]
        );
    }

    #[test]
    fn splits_quoted_fields() {
        assert_eq!(split_csv(r#""a""b",c"#), vec!["a\"b", "c"]);
    }
}
