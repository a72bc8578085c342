//! Durable per-action state, as a call sees it: reads go to the host's store through a
//! [`StateReader`] and see the call's own writes; writes are buffered as [`StateWrite`]s and
//! handed back with the outcome, for the host to commit atomically when it records a run that
//! succeeded (a failed run changes nothing).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A future the state reader answers with.
pub type StateFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A stored entry: its value and its version (1 when first written, one more at each write).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateEntry {
    /// The JSON value.
    pub value: Value,
    /// How many writes made it; what a compare-and-set names.
    pub version: i64,
}

/// How much of its quota an action's stored state uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateUsage {
    /// Live keys.
    pub keys: u64,
    /// Bytes of keys and JSON values together.
    pub bytes: u64,
}

/// One write of a call, in the order the action made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StateWrite {
    /// Store `value` under `key`, expiring after `ttl` when given; with `if_version`, only if
    /// the stored version is that one (0: only if the key is absent).
    Set {
        /// The key.
        key: String,
        /// The JSON value.
        value: Value,
        /// Time to live, from the commit.
        #[serde(default, with = "humantime_serde")]
        ttl: Option<Duration>,
        /// The version the write expects to replace.
        #[serde(default)]
        if_version: Option<i64>,
    },
    /// Add `delta` to the integer under `key` (absent counts as 0), at commit, so that
    /// concurrent runs never lose a count.
    Incr {
        /// The key.
        key: String,
        /// What to add (may be negative).
        delta: i64,
        /// Time to live, from the commit, when given.
        #[serde(default, with = "humantime_serde")]
        ttl: Option<Duration>,
    },
    /// Remove `key`; with `if_version`, only if the stored version is that one.
    Delete {
        /// The key.
        key: String,
        /// The version the delete expects to remove.
        #[serde(default)]
        if_version: Option<i64>,
    },
}

impl StateWrite {
    /// The key the write changes.
    pub fn key(&self) -> &str {
        match self {
            Self::Set { key, .. } | Self::Incr { key, .. } | Self::Delete { key, .. } => key,
        }
    }
}

/// The limits on an action's stored state (in the service's configuration, the `[state]`
/// table; absent fields keep their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateQuotas {
    /// Live keys per action.
    pub keys_per_action: u64,
    /// Bytes of one JSON value.
    pub value_bytes: u64,
    /// Bytes of keys and values per action.
    pub bytes_per_action: u64,
    /// Bytes of one key.
    pub key_bytes: u64,
}

impl StateQuotas {
    /// The documented defaults: 1,000 keys, 64 KiB a value, 1 MiB an action, 256-byte keys.
    pub const DEFAULT: Self = Self {
        keys_per_action: 1_000,
        value_bytes: 64 * 1024,
        bytes_per_action: 1024 * 1024,
        key_bytes: 256,
    };
}

impl Default for StateQuotas {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a call reads its action's state through: the host's store, scoped to the action.
pub trait StateReader: Send + Sync {
    /// The live entry under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateEntry>>;
    /// The live keys starting with `prefix`, sorted.
    fn keys<'a>(&'a self, prefix: &'a str) -> StateFuture<'a, Vec<String>>;
    /// How much of the quotas the stored state uses.
    fn usage(&self) -> StateFuture<'_, StateUsage>;
}

/// A call's access to its action's state: the store's reader and the quotas that hold.
#[derive(Clone)]
pub struct StateAccess {
    /// Reads the action's stored state.
    pub reader: std::sync::Arc<dyn StateReader>,
    /// The limits writes are held to.
    pub quotas: StateQuotas,
}

impl StateAccess {
    /// A fresh session for one call.
    pub(crate) fn session(&self) -> StateSession {
        StateSession::new(self.reader.clone(), self.quotas)
    }
}

impl std::fmt::Debug for StateAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateAccess")
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

/// What the call knows of a key beyond the store: its value after the call's writes, with
/// the version those writes lead to, or that they removed it.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    Present(StateEntry),
    Absent,
}

/// The state a call works on: the store's, under the call's own writes.
pub struct StateSession {
    reader: std::sync::Arc<dyn StateReader>,
    quotas: StateQuotas,
    known: HashMap<String, Known>,
    writes: Vec<StateWrite>,
    usage: Option<StateUsage>,
}

/// Why a state operation failed inside the action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateFailure {
    /// A write would pass a quota.
    #[error("{0}")]
    Quota(String),
    /// The operation is malformed, or the value under the key is not what it needs.
    #[error("{0}")]
    Invalid(String),
    /// The store could not be read.
    #[error("the action's state could not be read: {0}")]
    Unavailable(String),
}

impl StateSession {
    /// A session over `reader`, held to `quotas`.
    pub fn new(reader: std::sync::Arc<dyn StateReader>, quotas: StateQuotas) -> Self {
        Self {
            reader,
            quotas,
            known: HashMap::new(),
            writes: Vec::new(),
            usage: None,
        }
    }

    /// The call's writes, in order, to commit with the run.
    pub fn into_writes(self) -> Vec<StateWrite> {
        self.writes
    }

    /// The largest request a call may need to send: a value at its quota and a key.
    pub(crate) fn most_request_bytes(&self) -> u64 {
        self.quotas.value_bytes + self.quotas.key_bytes
    }

    /// The entry under `key` as the call sees it.
    pub async fn get(&mut self, key: &str) -> Result<Option<StateEntry>, StateFailure> {
        self.check_key(key)?;
        match self.current(key).await? {
            Known::Present(entry) => Ok(Some(entry)),
            Known::Absent => Ok(None),
        }
    }

    /// The keys starting with `prefix` as the call sees them, sorted.
    pub async fn keys(&mut self, prefix: &str) -> Result<Vec<String>, StateFailure> {
        let stored = self
            .reader
            .keys(prefix)
            .await
            .map_err(StateFailure::Unavailable)?;
        let mut keys: std::collections::BTreeSet<String> = stored.into_iter().collect();
        for (key, known) in &self.known {
            if !key.starts_with(prefix) {
                continue;
            }
            match known {
                Known::Present(_) => keys.insert(key.clone()),
                Known::Absent => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }

    /// Buffers a write of `value` under `key`; answers the version it leads to.
    pub async fn set(
        &mut self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        if_version: Option<i64>,
    ) -> Result<i64, StateFailure> {
        self.check_key(key)?;
        let bytes = value_bytes(&value);
        if bytes > self.quotas.value_bytes {
            return Err(StateFailure::Quota(format!(
                "the value for {key:?} is {bytes} bytes of JSON, over the {} a value may hold",
                self.quotas.value_bytes
            )));
        }
        let before = self.current(key).await?;
        let version = version_of(&before) + 1;
        let after = Known::Present(StateEntry {
            value: value.clone(),
            version,
        });
        self.account(key, &before, &after).await?;
        self.known.insert(key.to_string(), after);
        self.writes.push(StateWrite::Set {
            key: key.to_string(),
            value,
            ttl,
            if_version,
        });
        Ok(version)
    }

    /// Buffers adding `delta` to the integer under `key`; answers the value as the call sees
    /// it (other runs' increments that commit first add to the stored one).
    pub async fn incr(
        &mut self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StateFailure> {
        self.check_key(key)?;
        let before = self.current(key).await?;
        let current = match &before {
            Known::Absent => 0,
            Known::Present(entry) => entry.value.as_i64().ok_or_else(|| {
                StateFailure::Invalid(format!(
                    "incr needs an integer under {key:?}, which holds {}",
                    entry.value
                ))
            })?,
        };
        let value = current.checked_add(delta).ok_or_else(|| {
            StateFailure::Invalid(format!("incr of {key:?} by {delta} overflows 64 bits"))
        })?;
        let after = Known::Present(StateEntry {
            value: Value::from(value),
            version: version_of(&before) + 1,
        });
        self.account(key, &before, &after).await?;
        self.known.insert(key.to_string(), after);
        self.writes.push(StateWrite::Incr {
            key: key.to_string(),
            delta,
            ttl,
        });
        Ok(value)
    }

    /// Buffers removing `key`; answers whether the call saw it present.
    pub async fn delete(
        &mut self,
        key: &str,
        if_version: Option<i64>,
    ) -> Result<bool, StateFailure> {
        self.check_key(key)?;
        let before = self.current(key).await?;
        self.account(key, &before, &Known::Absent).await?;
        self.known.insert(key.to_string(), Known::Absent);
        self.writes.push(StateWrite::Delete {
            key: key.to_string(),
            if_version,
        });
        Ok(matches!(before, Known::Present(_)))
    }

    /// What the call knows of `key`, read from the store the first time.
    async fn current(&mut self, key: &str) -> Result<Known, StateFailure> {
        if let Some(known) = self.known.get(key) {
            return Ok(known.clone());
        }
        let stored = self
            .reader
            .get(key)
            .await
            .map_err(StateFailure::Unavailable)?;
        let known = stored.map_or(Known::Absent, Known::Present);
        self.known.insert(key.to_string(), known.clone());
        Ok(known)
    }

    /// Counts a change of `key` from `before` to `after` against the quotas, refusing it
    /// when the action would pass one.
    async fn account(
        &mut self,
        key: &str,
        before: &Known,
        after: &Known,
    ) -> Result<(), StateFailure> {
        let usage = match self.usage {
            Some(usage) => usage,
            None => self
                .reader
                .usage()
                .await
                .map_err(StateFailure::Unavailable)?,
        };
        let size = |known: &Known| match known {
            Known::Present(entry) => key.len() as u64 + value_bytes(&entry.value),
            Known::Absent => 0,
        };
        let present = |known: &Known| u64::from(matches!(known, Known::Present(_)));
        let keys = (usage.keys + present(after)).saturating_sub(present(before));
        let bytes = (usage.bytes + size(after)).saturating_sub(size(before));
        if keys > self.quotas.keys_per_action {
            return Err(StateFailure::Quota(format!(
                "writing {key:?} would make {keys} keys, over the {} an action may keep; delete keys it no longer needs",
                self.quotas.keys_per_action
            )));
        }
        if bytes > self.quotas.bytes_per_action {
            return Err(StateFailure::Quota(format!(
                "writing {key:?} would make {bytes} bytes of state, over the {} an action may keep; delete keys it no longer needs",
                self.quotas.bytes_per_action
            )));
        }
        self.usage = Some(StateUsage { keys, bytes });
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), StateFailure> {
        if key.contains('\0') {
            return Err(StateFailure::Invalid(format!(
                "a state key cannot hold a NUL character; {key:?} does"
            )));
        }
        if key.is_empty() || key.len() as u64 > self.quotas.key_bytes {
            return Err(StateFailure::Invalid(format!(
                "a state key is 1 to {} bytes; {key:?} is {}",
                self.quotas.key_bytes,
                key.len()
            )));
        }
        Ok(())
    }
}

/// The version a known key has (0 when absent).
fn version_of(known: &Known) -> i64 {
    match known {
        Known::Present(entry) => entry.version,
        Known::Absent => 0,
    }
}

/// A key's time to live from its text (`90s`, `1h`, ...): a positive duration, or the message
/// saying what to give instead. Runs and the API read it alike.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|ttl| !ttl.is_zero())
        .ok_or_else(|| {
            format!(
                "ttl {text:?} is not a positive duration: give seconds or a text such as \"90s\" or \"1h\""
            )
        })
}

/// The bytes of a value's JSON text.
pub fn value_bytes(value: &Value) -> u64 {
    serde_json::to_string(value).map_or(u64::MAX, |text| text.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    /// A store held in memory, as the host's would answer.
    #[derive(Default)]
    struct Memory(Mutex<BTreeMap<String, StateEntry>>);

    impl StateReader for Memory {
        fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateEntry>> {
            let found = self.0.lock().unwrap().get(key).cloned();
            Box::pin(async move { Ok(found) })
        }
        fn keys<'a>(&'a self, prefix: &'a str) -> StateFuture<'a, Vec<String>> {
            let keys = self
                .0
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            Box::pin(async move { Ok(keys) })
        }
        fn usage(&self) -> StateFuture<'_, StateUsage> {
            let map = self.0.lock().unwrap();
            let usage = StateUsage {
                keys: map.len() as u64,
                bytes: map
                    .iter()
                    .map(|(k, e)| k.len() as u64 + value_bytes(&e.value))
                    .sum(),
            };
            Box::pin(async move { Ok(usage) })
        }
    }

    fn stored(entries: &[(&str, Value, i64)]) -> Arc<Memory> {
        let memory = Memory::default();
        for (key, value, version) in entries {
            memory.0.lock().unwrap().insert(
                key.to_string(),
                StateEntry {
                    value: value.clone(),
                    version: *version,
                },
            );
        }
        Arc::new(memory)
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn reads_see_the_calls_own_writes() {
        run(async {
            let mut session = StateSession::new(
                stored(&[("seen", json!(1), 4), ("gone", json!("x"), 1)]),
                StateQuotas::DEFAULT,
            );
            assert_eq!(session.get("seen").await.unwrap().unwrap().version, 4);
            assert_eq!(
                session.set("seen", json!(2), None, Some(4)).await.unwrap(),
                5
            );
            assert_eq!(session.get("seen").await.unwrap().unwrap().value, json!(2));
            assert!(session.delete("gone", None).await.unwrap());
            assert_eq!(session.get("gone").await.unwrap(), None);
            assert_eq!(session.incr("count", 3, None).await.unwrap(), 3);
            assert_eq!(session.incr("count", -1, None).await.unwrap(), 2);
            assert_eq!(session.keys("").await.unwrap(), ["count", "seen"]);
            let writes = session.into_writes();
            assert_eq!(writes.len(), 4);
            assert_eq!(
                writes[2],
                StateWrite::Incr {
                    key: "count".into(),
                    delta: 3,
                    ttl: None
                }
            );
        });
    }

    #[test]
    fn incr_needs_an_integer_and_keys_have_a_size() {
        run(async {
            let mut session =
                StateSession::new(stored(&[("name", json!("a"), 1)]), StateQuotas::DEFAULT);
            let refused = session.incr("name", 1, None).await.unwrap_err();
            assert!(matches!(refused, StateFailure::Invalid(ref m) if m.contains("integer")));
            assert!(session.get("").await.is_err());
            assert!(session.get(&"k".repeat(257)).await.is_err());
            assert!(
                session.into_writes().is_empty(),
                "a refused write is not buffered"
            );
        });
    }

    #[test]
    fn quotas_hold_for_values_keys_and_bytes() {
        run(async {
            let quotas = StateQuotas {
                keys_per_action: 2,
                value_bytes: 16,
                bytes_per_action: 25,
                key_bytes: 8,
            };
            let mut session = StateSession::new(stored(&[("a", json!(1), 1)]), quotas);
            let big = session
                .set("b", json!("x".repeat(20)), None, None)
                .await
                .unwrap_err();
            assert!(
                matches!(big, StateFailure::Quota(ref m) if m.contains("16")),
                "{big}"
            );
            session.set("b", json!(2), None, None).await.unwrap();
            let third = session.set("c", json!(3), None, None).await.unwrap_err();
            assert!(
                matches!(third, StateFailure::Quota(ref m) if m.contains("keys")),
                "{third}"
            );
            session.delete("a", None).await.unwrap();
            session
                .set("c", json!("0123456789"), None, None)
                .await
                .unwrap();
            let bytes = session
                .set("b", json!("0123456789abc"), None, None)
                .await
                .unwrap_err();
            assert!(
                matches!(bytes, StateFailure::Quota(ref m) if m.contains("bytes of state")),
                "{bytes}"
            );
        });
    }

    #[test]
    fn writes_round_trip_as_json_with_human_ttls() {
        let write = StateWrite::Set {
            key: "k".into(),
            value: json!({"a": 1}),
            ttl: Some(Duration::from_secs(3600)),
            if_version: Some(2),
        };
        let text = serde_json::to_string(&write).unwrap();
        assert!(text.contains("\"op\":\"set\""), "{text}");
        assert!(text.contains("\"ttl\":\"1h\""), "{text}");
        assert_eq!(serde_json::from_str::<StateWrite>(&text).unwrap(), write);
    }
}
