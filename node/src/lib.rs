//! The Agora node: a durable store of signed entries and the replication protocol.
//!
//! - [`store`]: the [`store::Store`] trait, its sled (on disk, the default) and in-memory
//!   implementations, and the indexes derived from the entries.
//! - [`proto`]: replication without IO: range-based set reconciliation of a subwiki's entry ids
//!   between two nodes, then bounded fetches of what is missing.

#![deny(missing_docs)]

mod api;
mod export;
pub mod home;
pub mod http;
mod moderation;
pub mod net;
pub mod proto;
pub mod store;
mod view;

pub use api::{Accepted, Config, FeedItem, Node, NodeError, PeerInfo, SubwikiInfo, SyncStatus};
pub use moderation::PostStatus;
