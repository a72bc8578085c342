//! Grants in OpenObserve's role-editor form, `{"object": "action_scripts:_all_<org>" |
//! "action_scripts:<id>", "permission": "AllowGet" | ... | "AllowAll"}`, accepted beside
//! Vivarium's own form and kept as they came, so that O2's role editor reads back what it
//! wrote. Each stands for Vivarium grants, which are what permission checks read.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::grants::{Grant, GrantError, ObjectScope, ResourceKind, Verb};

/// What an OpenObserve permission allows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum O2Permission {
    /// GET: read (for action scripts: run) one object.
    AllowGet,
    /// LIST: see what exists.
    AllowList,
    /// POST: create, or run an action by hand.
    AllowPost,
    /// PUT: change.
    AllowPut,
    /// DELETE: remove.
    AllowDelete,
    /// Every verb.
    AllowAll,
}

serde_plain::derive_display_from_serialize!(O2Permission);
serde_plain::derive_fromstr_from_deserialize!(O2Permission);

impl O2Permission {
    /// The verbs the permission stands for on `scope`: `AllowAll` on one object is every
    /// verb but `LIST`, which applies to a kind as a whole.
    pub fn verbs(self, scope: &ObjectScope) -> &'static [Verb] {
        match (self, scope) {
            (Self::AllowGet, _) => &[Verb::Get],
            (Self::AllowList, _) => &[Verb::List],
            (Self::AllowPost, _) => &[Verb::Post],
            (Self::AllowPut, _) => &[Verb::Put],
            (Self::AllowDelete, _) => &[Verb::Delete],
            (Self::AllowAll, ObjectScope::All) => {
                &[Verb::Get, Verb::List, Verb::Post, Verb::Put, Verb::Delete]
            }
            (Self::AllowAll, ObjectScope::One(_)) => {
                &[Verb::Get, Verb::Post, Verb::Put, Verb::Delete]
            }
        }
    }
}

/// One permission as OpenObserve's role editor writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "action_scripts:_all_default", "permission": "AllowGet"}))]
pub struct O2Grant {
    /// `<kind>:_all_<org>` for every object of the kind, or `<kind>:<id>` for one.
    pub object: String,
    /// What it allows.
    pub permission: O2Permission,
}

/// The object prefix OpenObserve writes for "every object of the organization".
const ALL_OF_ORG: &str = "_all_";

impl O2Grant {
    /// The grant of `permission` on `scope` of `resource`, as O2 writes it for `org`.
    pub fn new(
        org: &str,
        resource: ResourceKind,
        scope: &ObjectScope,
        permission: O2Permission,
    ) -> Self {
        let object = match scope {
            ObjectScope::All => format!("{resource}:{ALL_OF_ORG}{org}"),
            ObjectScope::One(id) => format!("{resource}:{id}"),
        };
        Self { object, permission }
    }

    /// The kind and objects the grant names, for organization `org`.
    pub fn scope(&self, org: &str) -> Result<(ResourceKind, ObjectScope), GrantError> {
        let bad = || GrantError::BadO2Object(self.object.clone());
        let (kind, rest) = self.object.split_once(':').ok_or_else(bad)?;
        let resource: ResourceKind = serde_plain::from_str(kind).map_err(|_| bad())?;
        let scope = match rest.strip_prefix(ALL_OF_ORG) {
            Some(named) if named == org => ObjectScope::All,
            Some(named) => {
                return Err(GrantError::OtherOrganization {
                    object: self.object.clone(),
                    named: named.to_string(),
                });
            }
            None => ObjectScope::One(rest.to_string()),
        };
        Ok((resource, scope))
    }

    /// The Vivarium grants this stands for in `org` (unchecked: see [`GrantForm::grants`]).
    fn grants(&self, org: &str) -> Result<Vec<Grant>, GrantError> {
        let (resource, object) = self.scope(org)?;
        let verbs = self.permission.verbs(&object);
        Ok(verbs
            .iter()
            .map(|&verb| Grant {
                resource,
                object: object.clone(),
                verb,
            })
            .collect())
    }
}

/// A grant in either form a role editor may write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum GrantForm {
    /// Vivarium's form: `{"resource", "object", "verb"}`.
    Vivarium(Grant),
    /// OpenObserve's form: `{"object", "permission"}`.
    OpenObserve(O2Grant),
}

impl From<Grant> for GrantForm {
    fn from(grant: Grant) -> Self {
        Self::Vivarium(grant)
    }
}

impl GrantForm {
    /// The Vivarium grants this stands for in `org`, each checked (`LIST` on one object is
    /// refused in either form).
    pub fn grants(&self, org: &str) -> Result<Vec<Grant>, GrantError> {
        let grants = match self {
            Self::Vivarium(grant) => vec![grant.clone()],
            Self::OpenObserve(o2) => o2.grants(org)?,
        };
        for grant in &grants {
            grant.validate()?;
        }
        Ok(grants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o2(object: &str, permission: O2Permission) -> O2Grant {
        O2Grant {
            object: object.into(),
            permission,
        }
    }

    #[test]
    fn all_of_the_organization_and_one_object_are_understood() {
        let all = GrantForm::OpenObserve(o2("action_scripts:_all_acme", O2Permission::AllowGet));
        assert_eq!(
            all.grants("acme").unwrap(),
            vec![Grant {
                resource: ResourceKind::ActionScripts,
                object: ObjectScope::All,
                verb: Verb::Get,
            }]
        );
        let verbs = |object: &str| -> Vec<Verb> {
            let form = GrantForm::OpenObserve(o2(object, O2Permission::AllowAll));
            form.grants("acme")
                .unwrap()
                .iter()
                .map(|g| g.verb)
                .collect()
        };
        assert_eq!(
            verbs("action_scripts:_all_acme"),
            [Verb::Get, Verb::List, Verb::Post, Verb::Put, Verb::Delete]
        );
        assert_eq!(
            verbs("action_scripts:0197-a"),
            [Verb::Get, Verb::Post, Verb::Put, Verb::Delete]
        );
    }

    #[test]
    fn the_form_round_trips_through_its_scope() {
        let all = o2("action_scripts:_all_acme", O2Permission::AllowPut);
        let (resource, scope) = all.scope("acme").unwrap();
        assert_eq!(O2Grant::new("acme", resource, &scope, all.permission), all);
    }

    #[test]
    fn bad_objects_are_refused_with_the_reason() {
        let other = o2("action_scripts:_all_beta", O2Permission::AllowGet);
        assert!(
            GrantForm::OpenObserve(other)
                .grants("acme")
                .unwrap_err()
                .to_string()
                .contains("beta")
        );
        for bad in ["action_scripts", "dashboards:_all_acme", ":x"] {
            let form = GrantForm::OpenObserve(o2(bad, O2Permission::AllowGet));
            let refused = form.grants("acme").unwrap_err();
            assert!(refused.to_string().contains(bad), "{refused}");
        }
        let listed_one = GrantForm::OpenObserve(o2("action_scripts:a1", O2Permission::AllowList));
        assert!(matches!(
            listed_one.grants("acme"),
            Err(GrantError::ListOnOneObject(_))
        ));
    }

    #[test]
    fn either_form_parses_from_json() {
        let vivarium: GrantForm =
            serde_json::from_str(r#"{"resource": "action_scripts", "verb": "GET"}"#).unwrap();
        assert!(matches!(vivarium, GrantForm::Vivarium(_)));
        let openobserve: GrantForm = serde_json::from_str(
            r#"{"object": "action_scripts:_all_acme", "permission": "AllowList"}"#,
        )
        .unwrap();
        assert!(matches!(openobserve, GrantForm::OpenObserve(_)));
        assert!(serde_json::from_str::<GrantForm>(r#"{"permission": "AllowGet"}"#).is_err());
    }
}
