//! Secrets on the service's side: the keyring the configuration names (a configured key, a
//! key file, or one generated on first start), sealing again at start what a previous key
//! sealed, the rules for secret names, values and origin cluster URLs, and what a run is
//! given.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use vivarium_auth::{Keyring, SecretKey, SecretPlace};
use vivarium_sandbox::ORIGIN_CLUSTER_URL;
use vivarium_store::{MetadataStore, SecretRecord, StoreError};
use zeroize::Zeroizing;

use crate::config::ServerConfig;
use crate::mask::SecretMask;
use crate::validate::{Checked, Invalid};

/// The key file made in the data folder when no key is configured.
pub const DEFAULT_KEY_FILE: &str = "secrets.key";
/// Largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The settings an operator checks when a secret does not open.
const KEY_SETTINGS: &str = "secrets_key, secrets_key_file and secrets_previous_keys";

/// What a run is given besides its action's environment variables: its secrets and the
/// origin cluster URL in force, and the mask that hides the secrets' values in what the run
/// leaves behind. `Debug` shows the variables' names only.
#[derive(Clone, Default)]
pub struct RunSecrets {
    /// Variables laid over the action's own, in this order (later wins): the organization's
    /// secrets, the action's, then `ORIGIN_CLUSTER_URL` when one is in force. A secret named
    /// `ORIGIN_CLUSTER_TOKEN` is the cluster's token.
    pub env: BTreeMap<String, String>,
    /// The origin cluster URL in force: the organization's own, else the service's; what the
    /// egress policy lets the run reach as its cluster.
    pub origin_cluster_url: Option<String>,
    /// Hides every secret value (not the URL) and its base64.
    pub mask: SecretMask,
}

impl std::fmt::Debug for RunSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSecrets")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("origin_cluster_url", &self.origin_cluster_url)
            .field("mask", &self.mask)
            .finish()
    }
}

/// The secrets of a run: `sealed` (the organization's, then the action's) opened, with the
/// origin cluster URL in force. Every opened value is masked, an organization's one that the
/// action's overrides too. A secret that does not open fails the run with a message naming
/// it and the settings to check.
pub fn for_run(
    keyring: &Keyring,
    sealed: &[SecretRecord],
    origin_cluster_url: Option<String>,
) -> Result<RunSecrets, SecretUnreadable> {
    let opened = sealed
        .iter()
        .map(|secret| Ok((secret.name.clone(), open(keyring, secret)?)))
        .collect::<Result<Vec<_>, SecretUnreadable>>()?;
    let mask = SecretMask::new(opened.iter().map(|(_, value)| value.as_str()));
    let mut env = BTreeMap::new();
    for (name, value) in opened {
        env.insert(name, value);
    }
    if let Some(url) = &origin_cluster_url {
        env.insert(ORIGIN_CLUSTER_URL.to_string(), url.clone());
    }
    Ok(RunSecrets {
        env,
        origin_cluster_url,
        mask,
    })
}

/// A stored secret no held key opens: the operator's keys are wrong, not the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretUnreadable(String);

/// A stored secret's value, or the error naming the secret and the settings to check when no
/// held key opens it.
fn open(keyring: &Keyring, secret: &SecretRecord) -> Result<String, SecretUnreadable> {
    keyring
        .open(place(secret), &secret.sealed)
        .map_err(|error| {
            let message = format!(
                "{} cannot be opened: {error}; check {KEY_SETTINGS} in the service's configuration",
                place(secret)
            );
            tracing::error!("{message}");
            SecretUnreadable(message)
        })
}

/// Where a stored secret lives, as its sealing binds it.
pub fn place(secret: &SecretRecord) -> SecretPlace<'_> {
    SecretPlace {
        org: &secret.org,
        action_id: &secret.action_id,
        name: &secret.name,
    }
}

/// The keyring the configuration names: the current key from `secrets_key`, from
/// `secrets_key_file`, or from `{data_dir}/secrets.key` (made on first start, with an
/// embedded database only), and the `secrets_previous_keys`.
pub fn keyring(config: &ServerConfig) -> anyhow::Result<Keyring> {
    let current = current_key(config)?;
    let previous = config
        .secrets_previous_keys
        .iter()
        .enumerate()
        .map(|(index, text)| {
            SecretKey::from_base64(text.expose())
                .with_context(|| format!("secrets_previous_keys[{index}] is not a valid key"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Keyring::new(current, previous))
}

/// The key that seals.
fn current_key(config: &ServerConfig) -> anyhow::Result<SecretKey> {
    match (&config.secrets_key, &config.secrets_key_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("set secrets_key or secrets_key_file, not both")
        }
        (Some(text), None) => {
            SecretKey::from_base64(text.expose()).context("secrets_key is not a valid key")
        }
        (None, Some(path)) => read_key_file(path, "secrets_key_file"),
        (None, None) if config.embedded_database() => data_dir_key(&config.data_dir),
        (None, None) => anyhow::bail!(
            "the database is shared by replicas, so each one needs the same secrets key: set \
             secrets_key or secrets_key_file to the base64 of 32 random bytes (such as the \
             output of `openssl rand -base64 32`)"
        ),
    }
}

/// The key a file holds; `setting` names where the file came from, for the error.
fn read_key_file(path: &Path, setting: &str) -> anyhow::Result<SecretKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {setting} {}", path.display()))?,
    );
    SecretKey::from_base64(&text)
        .with_context(|| format!("the {setting} {} holds no valid key", path.display()))
}

/// The key in `{data_dir}/secrets.key`, generated there on first start.
fn data_dir_key(data_dir: &Path) -> anyhow::Result<SecretKey> {
    let path = data_dir.join(DEFAULT_KEY_FILE);
    let key = SecretKey::generate();
    match create_key_file(&path, &key) {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                "generated the secrets key; back it up with the database, secrets cannot be opened without it"
            );
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = read_key_file(&path, "key file")?;
            tracing::info!(path = %path.display(), "secrets are sealed with the key in this file");
            Ok(key)
        }
        Err(error) => Err(error)
            .with_context(|| format!("cannot write the secrets key file {}", path.display())),
    }
}

/// Writes `key` to a new file only its owner may read (mode 0600); `AlreadyExists` when the
/// file is there.
fn create_key_file(path: &Path, key: &SecretKey) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let text = Zeroizing::new(format!("{}\n", key.to_base64()));
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Seals again under the current key every secret a previous key sealed, and says how many,
/// so that the previous keys can be removed after one start. A secret no held key opens is
/// left as it is, with a warning naming it: the service still starts, and the runs that need
/// it fail with the same message.
pub async fn reseal_all(meta: &dyn MetadataStore, keyring: &Keyring) -> Result<u64, StoreError> {
    let mut resealed = 0;
    for secret in meta.all_secrets().await? {
        match keyring.reseal(place(&secret), &secret.sealed) {
            Ok(None) => {}
            Ok(Some(sealed)) => {
                let next = SecretRecord {
                    sealed,
                    ..secret.clone()
                };
                if meta.reseal_secret(&next, &secret.sealed).await? {
                    resealed += 1;
                }
            }
            Err(error) => tracing::warn!(
                "{} cannot be sealed with the current key: {error}; check {KEY_SETTINGS}",
                place(&secret)
            ),
        }
    }
    if resealed > 0 {
        tracing::info!(
            resealed,
            key = keyring.current_id(),
            "secrets sealed with a previous key were sealed again with the current one"
        );
    }
    Ok(resealed)
}

/// A secret's name follows the environment-variable rule, `^[A-Z][A-Z0-9_]*$`: it becomes
/// one. `ORIGIN_CLUSTER_URL` is no secret: it comes from the `origin_cluster_url` settings.
pub fn check_name(name: &str) -> Checked<()> {
    if name == ORIGIN_CLUSTER_URL {
        return Err(Invalid::new(
            "ORIGIN_CLUSTER_URL is not a secret: the root user sets it for the organization with PUT /api/organizations/{org}, the operator for the service with origin_cluster_url",
        ));
    }
    if vivarium_sandbox::is_valid_key(name) {
        return Ok(());
    }
    Err(Invalid::new(format!(
        "secret name {name:?} is not valid: it becomes an environment variable, so use an \
         uppercase letter followed by uppercase letters, digits or '_' (such as API_TOKEN)"
    )))
}

/// A secret's value is a non-empty string of at most 64 KiB without NUL characters.
pub fn check_value(value: &str) -> Checked<()> {
    if value.is_empty() {
        return Err(Invalid::new(
            "the secret's value is empty: give the secret as a non-empty string in \"value\"",
        ));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Invalid::new(format!(
            "the secret's value is {} bytes; at most {} are accepted: keep a token or a key here, not a file",
            value.len(),
            vivarium_sandbox::human_bytes(MAX_VALUE_BYTES as u64)
        )));
    }
    if value.contains('\0') {
        return Err(Invalid::new(
            "the secret's value contains a NUL character, which an environment variable cannot hold; remove it",
        ));
    }
    Ok(())
}

/// An origin cluster URL is an absolute `http` or `https` URL with a host and no
/// credentials (the token goes in the `ORIGIN_CLUSTER_TOKEN` secret); returns it trimmed, as
/// given, so that actions joining paths to it see what was written.
pub fn check_origin_cluster_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let url = url::Url::parse(text).map_err(|e| {
        format!("origin_cluster_url {text:?} is not a URL ({e}); give one such as https://o2.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "origin_cluster_url {text:?} must be an http or https URL with a host, such as https://o2.example.com"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "origin_cluster_url must not hold credentials; keep them in the ORIGIN_CLUSTER_TOKEN secret and give the URL as {}://{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ));
    }
    Ok(text.to_string())
}

/// The service-wide origin cluster URL of the configuration, checked.
pub fn configured_origin(config: &ServerConfig) -> anyhow::Result<Option<String>> {
    config
        .origin_cluster_url
        .as_deref()
        .map(check_origin_cluster_url)
        .transpose()
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use vivarium_auth::Sealed;

    use super::*;
    use crate::config::KeyText;

    fn record(keyring: &Keyring, action_id: &str, name: &str, value: &str) -> SecretRecord {
        let place = SecretPlace {
            org: "acme",
            action_id,
            name,
        };
        SecretRecord {
            org: "acme".into(),
            action_id: action_id.into(),
            name: name.into(),
            sealed: keyring.seal(place, value).unwrap(),
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn a_run_sees_the_actions_secret_over_the_orgs_and_the_origin_url() {
        let keyring = Keyring::new(SecretKey::generate(), Vec::new());
        let sealed = [
            record(&keyring, "", "TOKEN", "org-token-value"),
            record(&keyring, "", "ORIGIN_CLUSTER_TOKEN", "cm9vdDpwYXNz"),
            record(&keyring, "a1", "TOKEN", "action-token-value"),
        ];
        let secrets = for_run(
            &keyring,
            &sealed,
            Some("https://o2.example.com".to_string()),
        )
        .unwrap();
        assert_eq!(secrets.env["TOKEN"], "action-token-value");
        assert_eq!(secrets.env["ORIGIN_CLUSTER_TOKEN"], "cm9vdDpwYXNz");
        assert_eq!(secrets.env[ORIGIN_CLUSTER_URL], "https://o2.example.com");
        assert_eq!(
            secrets.origin_cluster_url.as_deref(),
            Some("https://o2.example.com")
        );
        assert_eq!(secrets.mask.mask("org-token-value"), "***");
        assert_eq!(
            secrets.mask.mask("https://o2.example.com"),
            "https://o2.example.com"
        );
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("token-value") && shown.contains("TOKEN"),
            "{shown}"
        );

        let none = for_run(&keyring, &[], None).unwrap();
        assert!(none.env.is_empty() && none.origin_cluster_url.is_none());
    }

    #[test]
    fn a_secret_that_does_not_open_names_itself_and_the_settings() {
        let sealed = [record(
            &Keyring::new(SecretKey::generate(), Vec::new()),
            "a1",
            "API_TOKEN",
            "value",
        )];
        let other = Keyring::new(SecretKey::generate(), Vec::new());
        let error = for_run(&other, &sealed, None).unwrap_err();
        assert!(
            error
                .0
                .starts_with("secret API_TOKEN of action a1 in organization acme cannot be opened: it was sealed with key "),
            "{}",
            error.0
        );
        assert!(error.0.contains(KEY_SETTINGS), "{}", error.0);
    }

    #[test]
    fn the_key_file_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        let first = keyring(&config).unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = keyring(&config).unwrap();
        assert_eq!(first.current_id(), again.current_id());

        std::fs::write(&path, "garbage").unwrap();
        let error = format!("{:#}", keyring(&config).unwrap_err());
        assert!(error.contains("holds no valid key"), "{error}");
    }

    #[test]
    fn configured_keys_are_read_checked_and_not_repeated_in_errors() {
        let (current, previous) = (SecretKey::generate(), SecretKey::generate());
        let config = ServerConfig {
            secrets_key: Some(KeyText::from(current.to_base64())),
            secrets_previous_keys: vec![KeyText::from(previous.to_base64())],
            ..ServerConfig::default()
        };
        let keys = keyring(&config).unwrap();
        assert_eq!(keys.current_id(), current.id());
        let place = SecretPlace {
            org: "o",
            action_id: "",
            name: "N",
        };
        let old = Keyring::new(previous, Vec::new()).seal(place, "v").unwrap();
        assert_eq!(keys.open(place, &old).unwrap(), "v");

        let bad = ServerConfig {
            secrets_key: Some(KeyText::from("c2hvcnQ=".to_string())),
            ..ServerConfig::default()
        };
        let error = format!("{:#}", keyring(&bad).unwrap_err());
        assert!(
            error.starts_with("secrets_key is not a valid key"),
            "{error}"
        );
        assert!(!error.contains("c2hvcnQ="), "{error}");

        let both = ServerConfig {
            secrets_key_file: Some("/nowhere".into()),
            ..config.clone()
        };
        assert!(keyring(&both).unwrap_err().to_string().contains("not both"));
        let shared = ServerConfig {
            database_url: Some("postgres://db/vivarium".into()),
            ..ServerConfig::default()
        };
        let error = keyring(&shared).unwrap_err().to_string();
        assert!(
            error.contains("set secrets_key or secrets_key_file"),
            "{error}"
        );
    }

    #[test]
    fn names_values_and_origin_urls_are_checked() {
        check_name("API_TOKEN").unwrap();
        check_name("ORIGIN_CLUSTER_TOKEN").unwrap();
        let error = check_name("ORIGIN_CLUSTER_URL").unwrap_err();
        assert!(
            error.message.contains("PUT /api/organizations/{org}"),
            "{}",
            error.message
        );
        for bad in ["", "api_token", "1TOKEN", "API-TOKEN"] {
            let error = check_name(bad).unwrap_err();
            assert!(error.message.contains("uppercase letter"), "{bad}");
        }
        check_value("x").unwrap();
        check_value(&"x".repeat(MAX_VALUE_BYTES)).unwrap();
        assert!(check_value("").unwrap_err().message.contains("empty"));
        assert!(
            check_value(&"x".repeat(MAX_VALUE_BYTES + 1))
                .unwrap_err()
                .message
                .contains("at most 64 KiB")
        );
        assert!(check_value("a\0b").unwrap_err().message.contains("NUL"));

        assert_eq!(
            check_origin_cluster_url(" https://o2.example.com:5080 ").unwrap(),
            "https://o2.example.com:5080"
        );
        check_origin_cluster_url("http://openobserve.internal/base").unwrap();
        for bad in [
            "o2.example.com",
            "ftp://o2.example.com",
            "https://",
            "file:///x",
        ] {
            assert!(check_origin_cluster_url(bad).is_err(), "{bad}");
        }
        let error = check_origin_cluster_url("https://root:pw@o2.example.com").unwrap_err();
        assert!(
            error.contains("ORIGIN_CLUSTER_TOKEN") && !error.contains("pw"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_start_reseals_what_a_previous_key_sealed() {
        let store = vivarium_store::SqlStore::connect("sqlite::memory:")
            .await
            .unwrap();
        store.ensure_org("acme").await.unwrap();
        let (old, new) = (SecretKey::generate(), SecretKey::generate());
        let before = Keyring::new(old.clone(), Vec::new());
        store
            .put_secret(&record(&before, "", "TOKEN", "rotate-me"))
            .await
            .unwrap();
        let lost = SecretRecord {
            sealed: Sealed {
                key_id: "ffffffffffffffff".into(),
                ..before
                    .seal(
                        SecretPlace {
                            org: "acme",
                            action_id: "",
                            name: "LOST",
                        },
                        "x",
                    )
                    .unwrap()
            },
            ..record(&before, "", "LOST", "x")
        };
        store.put_secret(&lost).await.unwrap();

        let during = Keyring::new(new.clone(), vec![old]);
        assert_eq!(reseal_all(&store, &during).await.unwrap(), 1);
        assert_eq!(reseal_all(&store, &during).await.unwrap(), 0);
        let after = Keyring::new(new, Vec::new());
        let stored = store.secrets_for_run("acme", "a1").await.unwrap();
        let token = stored.iter().find(|s| s.name == "TOKEN").unwrap();
        assert_eq!(token.sealed.key_id, after.current_id());
        assert_eq!(
            after.open(place(token), &token.sealed).unwrap(),
            "rotate-me"
        );
        store.close().await;
    }
}
