//! Secrets at rest: every value sealed with XChaCha20-Poly1305 under the service's key, with a
//! fresh random nonce, and bound to the place it is stored (organization, action, name), so
//! that a sealed value copied to another row does not open. Keys are told apart by an id kept
//! with each value, so that after a rotation the previous keys still open what they sealed
//! until everything is sealed again under the current one.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Bytes in a secrets key.
pub const SECRET_KEY_BYTES: usize = 32;
/// Bytes in a nonce: XChaCha20's 192 bits, so random nonces never collide in practice.
const NONCE_BYTES: usize = 24;
/// Hex characters of a key's id.
const KEY_ID_CHARS: usize = 16;
/// Prefix of the associated data, naming the format so that a later one cannot be confused
/// with it.
const AAD_DOMAIN: &[u8] = b"vivarium-secret-v1";

/// A 32-byte key that secrets are sealed with. Its bytes are wiped on drop, and neither they
/// nor their base64 are ever printed: `Debug` shows the key's id only.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; SECRET_KEY_BYTES],
    id: String,
}

impl SecretKey {
    /// A new key from the OS's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; SECRET_KEY_BYTES]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = hex::encode(digest);
        id.truncate(KEY_ID_CHARS);
        Self { bytes, id }
    }

    /// The key written as standard base64 (white space around it is ignored), as the
    /// configuration and the key file hold it. The error never repeats the text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::NotBase64)?,
        );
        let bytes: [u8; SECRET_KEY_BYTES] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(decoded.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as standard base64, for writing a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The first 16 hex characters of the key's SHA-256: stored with every value it seals,
    /// so that the key a value needs is known without trying each one.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .field("bytes", &"***")
            .finish()
    }
}

/// A configured key is not the base64 of 32 bytes. The message never repeats the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not standard base64.
    #[error("a secrets key must be the standard base64 of 32 random bytes; this one is not base64")]
    NotBase64,
    /// The text decodes to the wrong number of bytes.
    #[error(
        "a secrets key must be the standard base64 of 32 random bytes; this one decodes to {0} bytes"
    )]
    WrongLength(usize),
}

/// Where a sealed value is stored. It is bound into the ciphertext as associated data, so the
/// value opens only at this place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretPlace<'a> {
    /// The organization.
    pub org: &'a str,
    /// The action's id, or empty for a secret of the whole organization.
    pub action_id: &'a str,
    /// The secret's name.
    pub name: &'a str,
}

impl SecretPlace<'_> {
    /// The associated data: the format's name, then each part prefixed by its length, so that
    /// no two places give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        let mut data = AAD_DOMAIN.to_vec();
        for part in [self.org, self.action_id, self.name] {
            data.extend_from_slice(&(part.len() as u64).to_le_bytes());
            data.extend_from_slice(part.as_bytes());
        }
        data
    }
}

impl fmt::Display for SecretPlace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.action_id.is_empty() {
            write!(f, "secret {} of organization {}", self.name, self.org)
        } else {
            write!(
                f,
                "secret {} of action {} in organization {}",
                self.name, self.action_id, self.org
            )
        }
    }
}

/// A sealed value as it is stored: the id of the key that sealed it, and the nonce and the
/// ciphertext (with its tag) in standard base64, so that any database keeps them as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The [`SecretKey::id`] of the key that sealed it.
    pub key_id: String,
    /// The 24-byte nonce, base64.
    pub nonce: String,
    /// The ciphertext followed by the 16-byte tag, base64.
    pub ciphertext: String,
}

/// A value could not be sealed or opened. The messages say "it" for the value, so that the
/// caller can name the secret before them; they never hold a value or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The value was sealed with a key the keyring does not hold.
    #[error(
        "it was sealed with key {key_id}, which is neither the current secrets key ({current}) nor one of the previous keys"
    )]
    UnknownKey {
        /// The id of the key that sealed it.
        key_id: String,
        /// The id of the current key.
        current: String,
    },
    /// The key is known but the value does not open: it was altered, or moved to another
    /// place.
    #[error("it does not open with key {key_id}: it was altered, or copied from another place")]
    Mismatch {
        /// The id of the key it was opened with.
        key_id: String,
    },
    /// The stored nonce or ciphertext is not what sealing writes.
    #[error("its stored form is damaged ({0})")]
    Malformed(&'static str),
    /// The cipher refused to seal (it does not, for values that fit in memory).
    #[error("it could not be sealed")]
    Seal,
}

/// The current key, which seals, and the previous ones, which still open what they sealed.
pub struct Keyring {
    current: SecretKey,
    previous: Vec<SecretKey>,
}

impl Keyring {
    /// A keyring sealing with `current`; a previous key equal to it is dropped.
    pub fn new(current: SecretKey, previous: Vec<SecretKey>) -> Self {
        let previous = previous
            .into_iter()
            .filter(|key| key.id != current.id)
            .collect();
        Self { current, previous }
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `value` for `place` under the current key, with a fresh random nonce.
    pub fn seal(&self, place: SecretPlace<'_>, value: &str) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = place.associated_data();
        let ciphertext = cipher(&self.current)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        Ok(Sealed {
            key_id: self.current.id.clone(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Opens a value sealed for `place`, with whichever held key sealed it.
    pub fn open(&self, place: SecretPlace<'_>, sealed: &Sealed) -> Result<String, SealError> {
        let key = self.key(&sealed.key_id)?;
        let nonce: [u8; NONCE_BYTES] = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SealError::Malformed("the nonce is not 24 bytes of base64"))?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| SealError::Malformed("the ciphertext is not base64"))?;
        let aad = place.associated_data();
        let plain = cipher(key)
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Mismatch {
                key_id: key.id.clone(),
            })?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed("the value is not UTF-8"))
    }

    /// The value sealed again under the current key when a previous key sealed it; `None`
    /// when the current key already did.
    pub fn reseal(
        &self,
        place: SecretPlace<'_>,
        sealed: &Sealed,
    ) -> Result<Option<Sealed>, SealError> {
        if sealed.key_id == self.current.id {
            return Ok(None);
        }
        let value = Zeroizing::new(self.open(place, sealed)?);
        self.seal(place, &value).map(Some)
    }

    /// The held key with `id`.
    fn key(&self, id: &str) -> Result<&SecretKey, SealError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
            .ok_or_else(|| SealError::UnknownKey {
                key_id: id.to_string(),
                current: self.current.id.clone(),
            })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(SecretKey::id).collect();
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("previous", &previous)
            .finish()
    }
}

/// The AEAD over `key`.
fn cipher(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new((&key.bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG_WIDE: SecretPlace<'static> = SecretPlace {
        org: "acme",
        action_id: "",
        name: "API_TOKEN",
    };

    #[test]
    fn a_sealed_value_opens_at_its_place_with_a_fresh_nonce_each_time() {
        let keyring = Keyring::new(SecretKey::generate(), Vec::new());
        let first = keyring.seal(ORG_WIDE, "hunter2-secret ✓").unwrap();
        let second = keyring.seal(ORG_WIDE, "hunter2-secret ✓").unwrap();
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(first.key_id, keyring.current_id());
        assert!(!first.ciphertext.contains("hunter2"));
        assert_eq!(keyring.open(ORG_WIDE, &first).unwrap(), "hunter2-secret ✓");
        assert_eq!(keyring.open(ORG_WIDE, &second).unwrap(), "hunter2-secret ✓");
    }

    #[test]
    fn another_key_cannot_open_it() {
        let sealed = Keyring::new(SecretKey::generate(), Vec::new())
            .seal(ORG_WIDE, "value")
            .unwrap();
        let other = Keyring::new(SecretKey::generate(), Vec::new());
        let error = other.open(ORG_WIDE, &sealed).unwrap_err();
        assert!(
            matches!(&error, SealError::UnknownKey { key_id, .. } if *key_id == sealed.key_id),
            "{error:?}"
        );
        assert!(error.to_string().contains(&sealed.key_id), "{error}");

        // A key whose id was forged onto the value does not open it either.
        let forged = Sealed {
            key_id: other.current_id().to_string(),
            ..sealed
        };
        assert!(matches!(
            other.open(ORG_WIDE, &forged),
            Err(SealError::Mismatch { .. })
        ));
    }

    #[test]
    fn a_value_copied_to_another_place_or_altered_does_not_open() {
        let keyring = Keyring::new(SecretKey::generate(), Vec::new());
        let sealed = keyring.seal(ORG_WIDE, "value").unwrap();
        for place in [
            SecretPlace {
                org: "globex",
                ..ORG_WIDE
            },
            SecretPlace {
                action_id: "a1",
                ..ORG_WIDE
            },
            SecretPlace {
                name: "OTHER",
                ..ORG_WIDE
            },
            // Moving a character from one part to the next changes the associated data.
            SecretPlace {
                org: "acm",
                action_id: "e",
                name: "API_TOKEN",
            },
        ] {
            assert!(
                matches!(
                    keyring.open(place, &sealed),
                    Err(SealError::Mismatch { .. })
                ),
                "{place}"
            );
        }
        let mut bytes = STANDARD.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let altered = Sealed {
            ciphertext: STANDARD.encode(bytes),
            ..sealed.clone()
        };
        assert!(matches!(
            keyring.open(ORG_WIDE, &altered),
            Err(SealError::Mismatch { .. })
        ));
        let damaged = Sealed {
            nonce: "AAAA".into(),
            ..sealed
        };
        assert!(matches!(
            keyring.open(ORG_WIDE, &damaged),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn a_rotation_opens_with_the_previous_key_and_reseals_under_the_current_one() {
        let (old, new) = (SecretKey::generate(), SecretKey::generate());
        let before = Keyring::new(old.clone(), Vec::new());
        let sealed = before.seal(ORG_WIDE, "rotate me").unwrap();

        let during = Keyring::new(new.clone(), vec![old]);
        assert_eq!(during.open(ORG_WIDE, &sealed).unwrap(), "rotate me");
        let resealed = during.reseal(ORG_WIDE, &sealed).unwrap().unwrap();
        assert_eq!(resealed.key_id, new.id());
        assert_eq!(during.reseal(ORG_WIDE, &resealed).unwrap(), None);

        let after = Keyring::new(new, Vec::new());
        assert_eq!(after.open(ORG_WIDE, &resealed).unwrap(), "rotate me");
        assert!(matches!(
            after.reseal(ORG_WIDE, &sealed),
            Err(SealError::UnknownKey { .. })
        ));
    }

    #[test]
    fn keys_read_from_base64_and_never_show_themselves() {
        let key = SecretKey::generate();
        let text = key.to_base64();
        let read = SecretKey::from_base64(&format!("  {text}\n")).unwrap();
        assert_eq!(read.id(), key.id());
        assert_eq!(key.id().len(), 16);
        assert!(key.id().chars().all(|c| c.is_ascii_hexdigit()));

        assert_eq!(
            SecretKey::from_base64("not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            SecretKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err(),
            KeyError::WrongLength(16)
        );
        let shown = format!(
            "{key:?} {:?}",
            Keyring::new(key.clone(), vec![SecretKey::generate()])
        );
        assert!(!shown.contains(&text), "{shown}");
        assert!(shown.contains("***") && shown.contains(key.id()), "{shown}");
    }
}
