//! The repository suite: written once against [`MetadataStore`](crate::MetadataStore) and run
//! on every backend, plus the tests that need the database itself (reopening it, reading the
//! migration ledger, checking connection settings).

mod actions;
mod database;
mod identities;
mod replicas;
mod roles;
mod runs;
mod schedule;
mod secrets;
mod state;

pub(crate) use actions::*;
pub(crate) use database::*;
pub(crate) use identities::*;
pub(crate) use replicas::*;
pub(crate) use roles::*;
pub(crate) use runs::*;
pub(crate) use schedule::*;
pub(crate) use secrets::*;
pub(crate) use state::*;
