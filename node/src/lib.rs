//! The Agora node: a durable store of signed entries, the views derived from them, and their
//! replication with peers. Read it top-down; each layer only calls the ones below it.
//!
//! 1. **The handle**, [`Node`] (`node.rs`): what every front end calls. Opened offline
//!    ([`Node::open_offline`]) or started with networking from a [`Config`] (`config.rs`);
//!    every failure is a [`NodeError`] (`error.rs`). The local HTTP API of a running node
//!    ([`http`]: typed operations on axum, behind a guard against browsers and strangers) serves this handle to the command line and the web UI.
//!    When the owner posts a link, the handle fetches the page once in the background for the
//!    card stored in the post ([`cards`]); readers' nodes never contact the site.
//! 2. **The core** (`core.rs`, crate-private): the store, the subwikis' replicas and the
//!    author key. The one path every entry takes, local or remote: validated, checked by its
//!    replica, made durable, then its derived views written and watchers woken.
//! 3. **The network task**, [`net`]: one libp2p swarm (gossipsub, Kademlia, mDNS, relay,
//!    request-response) driven by commands from the handle. It hands what peers send to the
//!    core and never calls the handle: the network depends down on the core, never up.
//! 4. **Replication without IO**, [`proto`]: range-based set reconciliation of a subwiki's
//!    entry ids between two nodes, then bounded fetches of what is missing; a state machine
//!    the network task (and the simulator) drives.
//! 5. **Derived data**: rendered posts for the feed (`view.rs`) and each subwiki's moderation
//!    summary with the owner's personal overrides (`moderation.rs`, giving [`PostStatus`]),
//!    kept in the store so a page needs no replay; damaged or outdated ones are rendered
//!    again. The owner's [`inbox`] (what concerns them, kept by a task that follows the
//!    writes) and the authors they follow (`follow.rs`) are derived and kept in the home.
//!    So is the full-text [`search`] index (tantivy), updated by a task that follows the
//!    writes and checked against the store's counts at each start.
//! 6. **Storage**, [`store`]: the [`store::Store`] trait with its sled (on disk, the default)
//!    and in-memory implementations, and the indexes derived from the entries; export files
//!    (`export.rs`).
//! 7. **The home directory**, [`home`]: the author and node keys, and where the store lives.
//!
//! Below all of it, [`agora_crdt`] holds the data model: entries, validation, documents over
//! Automerge and the replica of one subwiki.
//!
//! ```
//! use agora_crdt::{Base, Policy, PostContent};
//! use agora_node::Node;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = tempfile::tempdir()?;
//! let node = Node::open_offline(home.path())?;
//! let subwiki = node.create_subwiki("rust", "All things Rust", Policy::default()).await?;
//! let hello = PostContent { title: "Hello".into(), ..Default::default() };
//! let id = node.create_post(subwiki, hello).await?;
//!
//! // An editor shows a version and saves against it, so edits that arrive meanwhile survive.
//! let read = node.post(id)?.post;
//! let edited = PostContent { body: "First post.".into(), ..read.content };
//! node.edit_post(id, Base::At(read.version), edited).await?;
//! assert_eq!(node.feed(None, None, 10)?[0].post.content.body, "First post.");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod cards;
mod config;
mod core;
mod error;
pub mod export;
mod follow;
pub mod home;
pub mod http;
pub mod inbox;
mod moderation;
pub mod net;
mod node;
pub mod proto;
pub mod search;
pub mod store;
mod view;

pub use crate::core::{Accepted, CatchUp, FeedItem, STORED_BACKLOG, Stored, SyncStatus};
pub use config::Config;
pub use error::NodeError;
pub use moderation::PostStatus;
pub use net::PeerInfo;
pub use node::{IMPORT_CHUNK, MemberView, Node, Retracted, SubwikiInfo};
pub use search::{AuthorFilter, SearchError, SearchHit, SearchQuery, Snippet};
