//! Versions of a document, and what a local edit is based on.
//!
//! A document's [`Version`] names its Automerge heads (the changes nothing applied depends on
//! yet) by the entries that carry them, so it can be shown, stored and sent back like any id.
//! An editor reads a post together with its version and hands that version back with the new
//! text as the edit's [`Base`]: the replica then computes the edit against the document as it
//! read at that version and merges it with whatever arrived since, exactly as an edit made
//! offline would be. Without a base, a save would diff the new text against the *current*
//! document and silently undo every change that arrived while the editor was open.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::id::{EntryId, IdError};

/// A version of a document: the entries carrying the head changes of its applied view, sorted
/// and without duplicates.
///
/// Printed as the entry ids joined by `+`, so a version with one head prints exactly like
/// that [`EntryId`] (as in a document's history).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(Vec<EntryId>);

impl Version {
    /// The version made of these entries, sorted and deduplicated.
    pub fn new(entries: impl IntoIterator<Item = EntryId>) -> Self {
        let set: BTreeSet<EntryId> = entries.into_iter().collect();
        Self(set.into_iter().collect())
    }

    /// The entries, sorted.
    pub fn entries(&self) -> &[EntryId] {
        &self.0
    }
}

impl From<EntryId> for Version {
    fn from(id: EntryId) -> Self {
        Self(vec![id])
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// A printed version that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VersionError {
    /// No entry id at all.
    #[error("a version names at least one entry")]
    Empty,
    /// One of the `+`-separated parts is not an entry id.
    #[error("version: {0}")]
    Entry(#[from] IdError),
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, VersionError> {
        if s.is_empty() {
            return Err(VersionError::Empty);
        }
        let ids = s
            .split('+')
            .map(EntryId::from_str)
            .collect::<Result<Vec<EntryId>, IdError>>()?;
        Ok(Self::new(ids))
    }
}

/// What a local edit is computed against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Base {
    /// The document as it reads now, on this replica. Right for programs that write without
    /// showing the text to anyone first; an editor should name the version it showed.
    Latest,
    /// The document as it read at this version (the one the writer saw): what changed since
    /// is merged with the edit, not undone by it.
    At(Version),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn printed_versions_round_trip(ids in proptest::collection::vec(any::<[u8; 32]>(), 1..5)) {
            let ids: Vec<EntryId> = ids.into_iter().map(EntryId::from_bytes).collect();
            let version = Version::new(ids.iter().copied().chain(ids.iter().rev().copied()));
            prop_assert!(version.entries().windows(2).all(|w| matches!(w, [a, b] if a < b)));
            prop_assert_eq!(version.to_string().parse::<Version>(), Ok(version));
        }
    }

    #[test]
    fn a_single_head_prints_as_its_entry_and_garbage_is_refused() {
        let id = EntryId::from_bytes([9; 32]);
        assert_eq!(Version::from(id).to_string(), id.to_string());
        assert_eq!(id.to_string().parse::<Version>(), Ok(Version::from(id)));
        assert_eq!("".parse::<Version>(), Err(VersionError::Empty));
        assert!(matches!(
            format!("{id}+").parse::<Version>(),
            Err(VersionError::Entry(_))
        ));
        assert!(matches!(
            "doc_x".parse::<Version>(),
            Err(VersionError::Entry(IdError::WrongPrefix { .. }))
        ));
    }
}
