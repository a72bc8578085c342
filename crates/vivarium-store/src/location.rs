//! [`BlobLocation`]: where the blob store lives, as an operator writes it in the configuration:
//! a folder on this machine, or `s3://bucket/prefix` on an S3-compatible service shared by
//! every replica.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A blob store's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// Files under a folder of this machine (the embedded default).
    Folder(PathBuf),
    /// Objects in an S3-compatible bucket, under `prefix` (empty: the whole bucket). Endpoint,
    /// region and credentials come from the usual `AWS_*` environment variables.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
}

/// Why a configured blob store location was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid blob store {given:?}: {reason}")]
pub struct BadBlobLocation {
    /// What was configured.
    pub given: String,
    /// What is wrong with it and what to write instead.
    pub reason: String,
}

impl FromStr for BlobLocation {
    type Err = BadBlobLocation;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: &str| BadBlobLocation {
            given: given.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = given.trim();
        if trimmed.is_empty() {
            return Err(refuse("it is empty; give a folder or s3://bucket/prefix"));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Ok(Self::Folder(PathBuf::from(trimmed)));
        };
        match scheme {
            "s3" => parse_s3(rest).map_err(|reason| refuse(&reason)),
            "file" => Ok(Self::Folder(PathBuf::from(rest))),
            other => Err(refuse(&format!(
                "the scheme {other}:// is not supported; use a folder or s3://bucket/prefix"
            ))),
        }
    }
}

/// The bucket and prefix of `bucket/prefix/...`.
fn parse_s3(rest: &str) -> Result<BlobLocation, String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !is_bucket_name(bucket) {
        return Err(format!(
            "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
        ));
    }
    let prefix = prefix.trim_matches('/');
    let bad_segment = prefix
        .split('/')
        .any(|segment| matches!(segment, "." | "..") || (segment.is_empty() && !prefix.is_empty()));
    if bad_segment || prefix.contains(['?', '#', '\\']) {
        return Err(format!(
            "the prefix {prefix:?} must be plain path segments separated by single '/'"
        ));
    }
    Ok(BlobLocation::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

/// S3's bucket naming rule, enough to catch typos before the first request.
fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BlobLocation, BadBlobLocation> {
        text.parse()
    }

    #[test]
    fn plain_paths_and_file_urls_are_folders() {
        assert_eq!(
            parse("./vivarium-data/blobs").unwrap(),
            BlobLocation::Folder("./vivarium-data/blobs".into())
        );
        assert_eq!(
            parse("file:///srv/blobs").unwrap(),
            BlobLocation::Folder("/srv/blobs".into())
        );
    }

    #[test]
    fn s3_urls_give_bucket_and_prefix() {
        assert_eq!(
            parse("s3://vivarium-prod/eu/blobs/").unwrap(),
            BlobLocation::S3 {
                bucket: "vivarium-prod".into(),
                prefix: "eu/blobs".into()
            }
        );
        assert_eq!(
            parse("s3://bucket").unwrap(),
            BlobLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            parse("s3://vivarium-prod/eu/blobs").unwrap().to_string(),
            "s3://vivarium-prod/eu/blobs"
        );
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        for (given, says) in [
            ("", "it is empty"),
            ("gs://bucket/x", "gs:// is not supported"),
            ("s3://", "is not a bucket name"),
            ("s3://Upper/x", "is not a bucket name"),
            ("s3://ab/x", "is not a bucket name"),
            ("s3://bucket/a/../b", "plain path segments"),
            ("s3://bucket/a//b", "plain path segments"),
            ("s3://bucket/a?x=1", "plain path segments"),
        ] {
            let refused = parse(given).expect_err(given);
            assert!(refused.to_string().contains(says), "{given}: {refused}");
        }
    }
}
