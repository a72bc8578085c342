//! Permissions: a role holds grants of a verb on a kind of resource, for all of its objects
//! or for one; a principal may do what any of its roles' grants allow.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What is done to a resource. `List` makes sense only on all objects of a kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verb {
    /// Read one object (for action scripts: fetch and run it).
    Get,
    /// Create, or run an action by hand.
    Post,
    /// Change or replace.
    Put,
    /// Remove.
    Delete,
    /// See what exists.
    List,
}

/// Kinds of resources that grants name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// Action scripts (the uploaded ZIPs and their settings).
    ActionScripts,
    /// Log streams, for actions that read or write them.
    Streams,
}

serde_plain::derive_display_from_serialize!(ResourceKind);
serde_plain::derive_display_from_serialize!(Verb);

/// Which objects of a kind a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectScope {
    /// Every object of the kind, present and future.
    All,
    /// One object, by id.
    One(String),
}

/// The wire name for "every object": `_all`.
const ALL_OBJECTS: &str = "_all";

impl Serialize for ObjectScope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str(ALL_OBJECTS),
            Self::One(id) => serializer.serialize_str(id),
        }
    }
}

impl<'de> Deserialize<'de> for ObjectScope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(if text == ALL_OBJECTS {
            Self::All
        } else {
            Self::One(text)
        })
    }
}

/// One permission: `verb` on `resource`, for the objects in `object`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, ToSchema)]
#[schema(example = json!({"resource": "action_scripts", "object": "_all", "verb": "GET"}))]
pub struct Grant {
    /// The kind of resource.
    pub resource: ResourceKind,
    /// `_all` (the default) or one object's id (1 to 128 characters).
    #[serde(default = "all_objects")]
    #[schema(value_type = String, default = "_all")]
    pub object: ObjectScope,
    /// What may be done.
    pub verb: Verb,
}

fn all_objects() -> ObjectScope {
    ObjectScope::All
}

/// A grant that makes no sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// `LIST` was granted on a single object.
    #[error("LIST applies to all objects of a kind; grant it with object \"_all\", not {0:?}")]
    ListOnOneObject(String),
    /// The object id is empty or too long.
    #[error("the object id must be 1 to 128 characters")]
    BadObjectId,
    /// An OpenObserve-form object that is not `<kind>:_all_<org>` or `<kind>:<id>`.
    #[error(
        "the object {0:?} is not one OpenObserve's role editor writes: give \"action_scripts:_all_<org>\" for every action or \"action_scripts:<id>\" for one"
    )]
    BadO2Object(String),
    /// An OpenObserve-form object naming every object of another organization.
    #[error(
        "the object {object:?} names organization {named:?}; a role grants only in its own organization"
    )]
    OtherOrganization {
        /// The object as written.
        object: String,
        /// The organization it names.
        named: String,
    },
}

impl Grant {
    /// Checks that the grant is meaningful.
    pub fn validate(&self) -> Result<(), GrantError> {
        match (&self.object, self.verb) {
            (ObjectScope::One(id), _) if id.is_empty() || id.len() > 128 => {
                Err(GrantError::BadObjectId)
            }
            (ObjectScope::One(id), Verb::List) => Err(GrantError::ListOnOneObject(id.clone())),
            _ => Ok(()),
        }
    }

    fn covers(&self, verb: Verb, resource: ResourceKind, object: Option<&str>) -> bool {
        self.verb == verb
            && self.resource == resource
            && match (&self.object, object) {
                (ObjectScope::All, _) => true,
                (ObjectScope::One(id), Some(wanted)) => id == wanted,
                (ObjectScope::One(_), None) => false,
            }
    }
}

/// Whether `grants` allow `verb` on `resource` (on the object `object`, or on the kind as a
/// whole when `None`, as for listing and creating).
pub fn allows<'a>(
    grants: impl IntoIterator<Item = &'a Grant>,
    verb: Verb,
    resource: ResourceKind,
    object: Option<&str>,
) -> bool {
    grants
        .into_iter()
        .any(|grant| grant.covers(verb, resource, object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(verb: Verb, object: ObjectScope) -> Grant {
        Grant {
            resource: ResourceKind::ActionScripts,
            object,
            verb,
        }
    }

    #[test]
    fn a_grant_on_all_covers_every_object() {
        let grants = [grant(Verb::Get, ObjectScope::All)];
        assert!(allows(
            &grants,
            Verb::Get,
            ResourceKind::ActionScripts,
            Some("a1")
        ));
        assert!(!allows(
            &grants,
            Verb::Put,
            ResourceKind::ActionScripts,
            Some("a1")
        ));
        assert!(!allows(
            &grants,
            Verb::Get,
            ResourceKind::Streams,
            Some("a1")
        ));
    }

    #[test]
    fn a_grant_on_one_object_covers_only_it() {
        let grants = [grant(Verb::Get, ObjectScope::One("a1".into()))];
        assert!(allows(
            &grants,
            Verb::Get,
            ResourceKind::ActionScripts,
            Some("a1")
        ));
        assert!(!allows(
            &grants,
            Verb::Get,
            ResourceKind::ActionScripts,
            Some("a2")
        ));
        assert!(!allows(
            &grants,
            Verb::Get,
            ResourceKind::ActionScripts,
            None
        ));
    }

    #[test]
    fn no_grants_allow_nothing() {
        assert!(!allows(
            &[],
            Verb::Get,
            ResourceKind::ActionScripts,
            Some("a1")
        ));
    }

    #[test]
    fn list_on_one_object_is_refused() {
        let err = grant(Verb::List, ObjectScope::One("a1".into()))
            .validate()
            .unwrap_err();
        assert_eq!(err, GrantError::ListOnOneObject("a1".into()));
    }

    #[test]
    fn grants_read_and_write_the_wire_format() {
        let parsed: Grant =
            serde_json::from_str(r#"{"resource":"action_scripts","object":"_all","verb":"GET"}"#)
                .unwrap();
        assert_eq!(parsed, grant(Verb::Get, ObjectScope::All));
        let one: Grant =
            serde_json::from_str(r#"{"resource":"action_scripts","object":"x","verb":"DELETE"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#"{"resource":"action_scripts","object":"x","verb":"DELETE"}"#
        );
    }
}
