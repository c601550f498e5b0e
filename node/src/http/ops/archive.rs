//! Whole subwikis to and from files of signed entries.

use std::path::PathBuf;

use agora_crdt::SubwikiId;
use serde::{Deserialize, Serialize};

use super::parser;
use crate::Node;
use crate::http::{ApiError, Operation};

/// Write a subwiki's signed entries to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Export {
    /// The subwiki.
    #[arg(value_parser = parser::<SubwikiId>("subwiki id"))]
    pub subwiki: SubwikiId,
    /// The file to write (the node writes it: an absolute path).
    pub file: PathBuf,
}

/// A subwiki written to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// The subwiki.
    pub id: SubwikiId,
    /// The file.
    pub file: PathBuf,
    /// Entries written.
    pub entries: usize,
}

impl Operation for Export {
    const PATH: &'static str = "export";
    type Answer = Exported;

    async fn run(self, node: &Node) -> Result<Exported, ApiError> {
        let entries = node.export(self.subwiki, &self.file)?;
        Ok(Exported {
            id: self.subwiki,
            file: self.file,
            entries,
        })
    }
}

/// Read a file of signed entries; every entry is checked, a bad file changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Import {
    /// The file (the node reads it: an absolute path).
    pub file: PathBuf,
}

/// A file imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// The subwiki, now joined.
    pub id: SubwikiId,
    /// Entries that were new.
    pub new: usize,
    /// Entries already held.
    pub duplicates: usize,
}

impl Operation for Import {
    const PATH: &'static str = "import";
    type Answer = Imported;

    async fn run(self, node: &Node) -> Result<Imported, ApiError> {
        if !self.file.exists() {
            return Err(ApiError::usage(format!(
                "{}: no such file",
                self.file.display()
            )));
        }
        let (id, accepted) = node.import(&self.file).await?;
        Ok(Imported {
            id,
            new: accepted.new.len(),
            duplicates: accepted.duplicates,
        })
    }
}
