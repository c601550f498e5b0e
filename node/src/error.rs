//! The one error type of the node's API.

use std::path::PathBuf;

use agora_crdt::{DocId, EntryError, LocalError, SubwikiId};
use thiserror::Error;

use crate::home::HomeError;
use crate::store::StoreError;

/// Something a node could not do.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The home directory or its keys.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local edit was refused.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// An entry was refused.
    #[error("invalid entry: {0}")]
    Entry(#[from] EntryError),
    /// This node holds no such subwiki.
    #[error("unknown subwiki {0} (join it first)")]
    UnknownSubwiki(SubwikiId),
    /// This node holds no such post or document.
    #[error("unknown post {0}")]
    UnknownDocument(DocId),
    /// Bytes given as an image are not a PNG, JPEG, GIF or WebP.
    #[error("not an image: a post's images may be PNG, JPEG, GIF or WebP")]
    NotAnImage,
    /// A search could not be run (see [`crate::search`]).
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// The network task could not be started or has stopped.
    #[error("network: {0}")]
    Network(String),
    /// An export or import file.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
