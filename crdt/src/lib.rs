//! Agora's data model: keys, ids, signed entries, documents over Automerge, and a replica of
//! one subwiki.
//!
//! Everything that replicates is an [`Entry`]: a canonical, versioned body signed with the
//! author's ed25519 key. [`validate`] is the one path every entry takes, from the network, the
//! disk or the keyboard. A [`Replica`] holds the valid entries of one subwiki and derives its
//! documents, feed and history from the *set* of entries, whatever order they came in.
//!
//! This crate does no IO beyond reading and writing a key file, and has no clock and no
//! randomness of its own: times and key material are passed in.
//!
//! ```
//! use agora_crdt::{AuthorKey, PostContent, Policy, Replica, Timestamp};
//!
//! let alice = AuthorKey::from_secret([1; 32], [1; 8]);
//! let (mut replica, _genesis) =
//!     Replica::found(&alice, Timestamp(1_000), "rust", "All things Rust", Policy::default())?;
//! let post = replica.create_post(
//!     &alice,
//!     Timestamp(2_000),
//!     PostContent { title: "Hello".into(), body: "First post.".into(), ..Default::default() },
//! )?;
//! let page = replica.feed(None, 20);
//! assert_eq!(page.items[0].meta.id, post.id().into());
//! assert_eq!(page.items[0].content.title, "Hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod codec;
pub mod doc;
pub mod entry;
pub mod held;
pub mod id;
pub mod key;
pub mod moderation;
pub mod replica;
mod text;
pub mod version;

pub use automerge::ChangeHash;
pub use codec::DecodeError;
pub use doc::{
    CommentContent, Content, DocMeta, Field, InfoContent, LinkCard, MAX_CONTENT_BYTES, PostContent,
    ProfileContent,
};
pub use entry::{
    Body, CreateDocument, DocChange, DocKind, EditPolicy, Entry, EntryError, Genesis, Payload,
    Policy, REOPEN_BATCH, Retraction, RoleAction, RoleStatement, Timestamp, Vote, VoteTarget,
    VoteValue, WritePolicy, limits, recheck, reopen, validate,
};
pub use held::{Held, HeldKind, Stamp};
pub use id::{AuthorId, BlobHash, DocId, EntryId, IdError, SubwikiId};
pub use key::{AuthorKey, KeyFileError};
pub use moderation::{
    AuthorOutcome, Contribution, Hidden, LogItem, Moderation, NotCounted, Overrides, PostOutcome,
    Role, Roles, Standing, Statement, Tally, changes_outcomes,
};
pub use replica::{
    ChangeStatus, CommentView, DEFAULT_CACHE_BYTES, Equivocation, Exclusion, FeedCursor, FeedPage,
    HistoryItem, IngestError, IngestReport, LocalError, Member, PostView, Purged, Replica, Source,
    Tombstone,
};
pub use text::UnknownName;
pub use version::{Base, Version, VersionError};
