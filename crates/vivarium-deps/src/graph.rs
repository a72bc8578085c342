//! The nodes of the dependency graph and the version sets PubGrub solves over, shared by the
//! resolver, its failure reports and the newest-release check.

use std::fmt;

use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName};
use pubgrub::Ranges;

/// Version sets as PubGrub handles them.
pub(crate) type Vs = Ranges<Version>;

/// A node of the dependency graph.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Pkg {
    /// The action itself.
    Root,
    /// A distribution.
    Base(PackageName),
    /// A distribution with one extra enabled; depends on `Base` at the same version.
    Extra(PackageName, ExtraName),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => f.write_str("the action"),
            Pkg::Base(name) => write!(f, "{name}"),
            Pkg::Extra(name, extra) => write!(f, "{name}[{extra}]"),
        }
    }
}

impl Pkg {
    /// The distribution name, if this is not the root.
    pub fn name(&self) -> Option<&PackageName> {
        match self {
            Pkg::Root => None,
            Pkg::Base(name) | Pkg::Extra(name, _) => Some(name),
        }
    }
}
