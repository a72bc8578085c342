//! The actions service's state: metadata (organizations, identities, roles, actions, runs) in
//! a SQL database, and action ZIPs and dependency wheels in an object store.
//!
//! Both sit behind traits ([`MetadataStore`], [`BlobStore`]) so handlers never know which
//! backend serves them: SQLite and a local folder by default, PostgreSQL and an S3-compatible
//! store when several replicas share one state. [`SqlStore`] serves both databases;
//! [`ObjectBlobStore`] serves both kinds of blob storage.

#![warn(missing_docs)]

mod blob;
mod error;
mod journal;
mod location;
mod meta;
mod model;
mod object_blob;
mod sql;
pub mod state_rules;

pub use blob::{BlobKey, BlobStore};
pub use error::StoreError;
pub use journal::RunJournal;
pub use location::{BadBlobLocation, BlobLocation};
pub use meta::MetadataStore;
pub use model::*;
pub use object_blob::ObjectBlobStore;
pub use sql::SqlStore;
