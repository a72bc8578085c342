//! The rules a commit of an action's state writes follows, whatever keeps the state (the
//! metadata database, or the file `vivarium run` keeps): the writes apply in order over the
//! live entries of the keys they touch; a compare-and-set compares with the version it
//! replaces, an increment adds to the integer stored at commit, a time to live counts from
//! the commit, and the resulting state is held to the quotas. The keeper reads those entries
//! and the usage under its own lock, and stores what [`Commit::apply`] leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use vivarium_sandbox::{StateEntry, StateQuotas, StateUsage, StateWrite};

use crate::model::StateRefusal;

/// A live entry as a commit reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Its value and version.
    pub entry: StateEntry,
    /// Its key's and value's bytes.
    pub bytes: u64,
    /// When it expires (microseconds since the epoch).
    pub expires_at: Option<i64>,
}

/// What a key holds after a commit: the entry and its value's JSON text, to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    /// The entry.
    pub held: Held,
    /// Its value as JSON text.
    pub text: String,
}

/// What a commit leaves.
#[derive(Debug, Default)]
pub struct Applied {
    /// Each key a write changed (a delete of an absent key changes none) and what it holds
    /// now: `None` when it is gone.
    pub changed: BTreeMap<String, Option<Next>>,
    /// The entry the last write left, if it left one.
    pub last: Option<StateEntry>,
}

/// The limits a commit is held to and when it applies.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The limits on the resulting state.
    pub quotas: &'a StateQuotas,
    /// When the writes apply (microseconds since the epoch).
    pub now: i64,
}

/// The keys `writes` touch, each once: what the keeper reads before [`Commit::apply`].
pub fn touched_keys(writes: &[StateWrite]) -> BTreeSet<&str> {
    writes.iter().map(StateWrite::key).collect()
}

impl Commit<'_> {
    /// Applies `writes` in order over `held` (the live entries among the [`touched_keys`])
    /// and the `found` usage of the whole state; refused, with nothing to store, when a write
    /// is refused or the result passes a quota.
    pub fn apply(
        &self,
        found: StateUsage,
        held: &BTreeMap<String, Held>,
        writes: &[StateWrite],
    ) -> Result<Applied, StateRefusal> {
        let mut usage = found;
        let mut added_key = None;
        let mut grew = None;
        let mut applied = Applied::default();
        for write in writes {
            let key = write.key();
            self.check_key(key)?;
            let before = match applied.changed.get(key) {
                Some(after) => after.as_ref().map(|next| &next.held),
                None => held.get(key),
            };
            let after = self.next(write, before)?;
            let before_bytes = before.map_or(0, |held| held.bytes);
            let after_bytes = after.as_ref().map_or(0, |next| next.held.bytes);
            match (before.is_some(), after.is_some()) {
                (false, true) => {
                    usage.keys += 1;
                    added_key = Some(key);
                }
                (true, false) => usage.keys = usage.keys.saturating_sub(1),
                (false, false) => continue,
                (true, true) => {}
            }
            usage.bytes = (usage.bytes + after_bytes).saturating_sub(before_bytes);
            if after_bytes > before_bytes {
                grew = Some(key);
            }
            applied.last = after.as_ref().map(|next| next.held.entry.clone());
            applied.changed.insert(key.to_string(), after);
        }
        self.check_usage(found, usage, added_key, grew)?;
        Ok(applied)
    }

    /// What `write` leaves under its key, which holds `before`; refused when its
    /// compare-and-set fails, when it increments a value that is not an integer (or past
    /// 64 bits), or when its value passes the size of one.
    fn next(
        &self,
        write: &StateWrite,
        before: Option<&Held>,
    ) -> Result<Option<Next>, StateRefusal> {
        let found = before.map_or(0, |held| held.entry.version);
        let (key, value, expires_at) = match write {
            StateWrite::Set {
                key,
                value,
                ttl,
                if_version,
            } => {
                check_version(key, *if_version, found)?;
                (key, value.clone(), ttl.map(|ttl| expiry(self.now, ttl)))
            }
            StateWrite::Incr { key, delta, ttl } => {
                let current = match before {
                    None => 0,
                    Some(held) => held
                        .entry
                        .value
                        .as_i64()
                        .ok_or_else(|| StateRefusal::NotAnInteger { key: key.clone() })?,
                };
                let sum = current.checked_add(*delta).ok_or_else(|| {
                    StateRefusal::Quota(format!(
                        "incrementing the state key {key:?} ({current}) by {delta} would pass \
                         the 64-bit range an integer in state may hold; reset it with a set"
                    ))
                })?;
                let kept = before.and_then(|held| held.expires_at);
                let expires_at = ttl.map(|ttl| expiry(self.now, ttl)).or(kept);
                (key, Value::from(sum), expires_at)
            }
            StateWrite::Delete { key, if_version } => {
                check_version(key, *if_version, found)?;
                return Ok(None);
            }
        };
        let text = value.to_string();
        let value_bytes = text.len() as u64;
        if value_bytes > self.quotas.value_bytes {
            return Err(StateRefusal::Quota(format!(
                "the value for the state key {key:?} is {value_bytes} bytes of JSON, over the {} \
                 a value may hold; store less under one key",
                self.quotas.value_bytes
            )));
        }
        Ok(Some(Next {
            held: Held {
                entry: StateEntry {
                    value,
                    version: found + 1,
                },
                bytes: key.len() as u64 + value_bytes,
                expires_at,
            },
            text,
        }))
    }

    /// Refuses a key that is empty or longer than a key may be.
    fn check_key(&self, key: &str) -> Result<(), StateRefusal> {
        if key.is_empty() || key.len() as u64 > self.quotas.key_bytes {
            return Err(StateRefusal::Quota(format!(
                "a state key is 1 to {} bytes; {key:?} is {}",
                self.quotas.key_bytes,
                key.len()
            )));
        }
        Ok(())
    }

    /// Refuses a resulting state (`usage`, from the `found` one) that passes a quota and
    /// grew past what was found (so that writes shrinking a state kept over lowered quotas
    /// are let through). The refusal names the last key that added a key or bytes.
    fn check_usage(
        &self,
        found: StateUsage,
        usage: StateUsage,
        added_key: Option<&str>,
        grew: Option<&str>,
    ) -> Result<(), StateRefusal> {
        let limits = self.quotas;
        if let Some(key) = added_key
            && usage.keys > limits.keys_per_action
            && usage.keys > found.keys
        {
            return Err(StateRefusal::Quota(format!(
                "writing the state key {key:?} would make {} keys, over the {} an action may \
                 keep; delete keys it no longer needs",
                usage.keys, limits.keys_per_action
            )));
        }
        if let Some(key) = grew
            && usage.bytes > limits.bytes_per_action
            && usage.bytes > found.bytes
        {
            return Err(StateRefusal::Quota(format!(
                "writing the state key {key:?} would make {} bytes of state, over the {} an \
                 action may keep; delete keys it no longer needs",
                usage.bytes, limits.bytes_per_action
            )));
        }
        Ok(())
    }
}

/// Refuses a compare-and-set expecting another version than the `found` one.
fn check_version(key: &str, expected: Option<i64>, found: i64) -> Result<(), StateRefusal> {
    match expected {
        Some(expected) if expected != found => Err(StateRefusal::Conflict {
            key: key.to_string(),
            expected,
            found,
        }),
        _ => Ok(()),
    }
}

/// When an entry written at `now` to live for `ttl` expires.
fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_000_000;

    fn commit(quotas: &StateQuotas) -> Commit<'_> {
        Commit { quotas, now: NOW }
    }

    fn set(key: &str, value: Value) -> StateWrite {
        StateWrite::Set {
            key: key.into(),
            value,
            ttl: None,
            if_version: None,
        }
    }

    fn held(value: Value, version: i64) -> Held {
        Held {
            bytes: value.to_string().len() as u64 + 1,
            entry: StateEntry { value, version },
            expires_at: None,
        }
    }

    #[test]
    fn writes_of_one_key_apply_in_order_and_leave_the_last() {
        let quotas = StateQuotas::DEFAULT;
        let stored = BTreeMap::from([("n".to_string(), held(json!(5), 3))]);
        let writes = [
            StateWrite::Incr {
                key: "n".into(),
                delta: 2,
                ttl: None,
            },
            StateWrite::Incr {
                key: "n".into(),
                delta: 1,
                ttl: Some(Duration::from_secs(1)),
            },
        ];
        let found = StateUsage { keys: 1, bytes: 2 };
        let applied = commit(&quotas).apply(found, &stored, &writes).unwrap();
        let next = applied.changed["n"].as_ref().unwrap();
        assert_eq!(
            next.held.entry,
            StateEntry {
                value: json!(8),
                version: 5
            }
        );
        assert_eq!(next.held.expires_at, Some(NOW + 1_000_000));
        assert_eq!(next.text, "8");
    }

    #[test]
    fn a_compare_and_set_names_the_version_it_found() {
        let quotas = StateQuotas::DEFAULT;
        let stored = BTreeMap::from([("k".to_string(), held(json!("a"), 2))]);
        let write = StateWrite::Set {
            key: "k".into(),
            value: json!("b"),
            ttl: None,
            if_version: Some(1),
        };
        let refusal = commit(&quotas)
            .apply(StateUsage::default(), &stored, &[write])
            .unwrap_err();
        assert_eq!(
            refusal,
            StateRefusal::Conflict {
                key: "k".into(),
                expected: 1,
                found: 2
            }
        );
    }

    #[test]
    fn a_delete_of_an_absent_key_changes_nothing() {
        let quotas = StateQuotas::DEFAULT;
        let write = StateWrite::Delete {
            key: "gone".into(),
            if_version: None,
        };
        let applied = commit(&quotas)
            .apply(StateUsage::default(), &BTreeMap::new(), &[write])
            .unwrap();
        assert!(applied.changed.is_empty());
    }

    #[test]
    fn quotas_count_the_whole_resulting_state() {
        let quotas = StateQuotas {
            keys_per_action: 2,
            ..StateQuotas::DEFAULT
        };
        let found = StateUsage { keys: 2, bytes: 10 };
        let refusal = commit(&quotas)
            .apply(found, &BTreeMap::new(), &[set("third", json!(1))])
            .unwrap_err();
        assert!(
            refusal.to_string().contains("would make 3 keys"),
            "{refusal}"
        );
    }

    #[test]
    fn an_increment_of_text_is_refused() {
        let quotas = StateQuotas::DEFAULT;
        let stored = BTreeMap::from([("t".to_string(), held(json!("x"), 1))]);
        let write = StateWrite::Incr {
            key: "t".into(),
            delta: 1,
            ttl: None,
        };
        let refusal = commit(&quotas)
            .apply(StateUsage::default(), &stored, &[write])
            .unwrap_err();
        assert_eq!(refusal, StateRefusal::NotAnInteger { key: "t".into() });
    }

    #[test]
    fn each_touched_key_is_read_once() {
        let writes = [set("b", json!(1)), set("a", json!(2)), set("b", json!(3))];
        assert_eq!(touched_keys(&writes), BTreeSet::from(["a", "b"]));
    }
}
