//! Signed entries: the envelope of everything that replicates.
//!
//! An entry is `body || signature`. The body is the canonical encoding (see [`crate::codec`]) of
//! a version byte, a payload kind, the author, a claimed time, the subwiki and the payload. Its
//! id is `blake3(body)`, and the signature is ed25519 (`verify_strict`) over
//! [`SIGNATURE_DOMAIN`] followed by the 32 id bytes. The exact bytes that were signed are kept
//! and sent; nothing is ever re-serialised to check a signature.
//!
//! [`validate`] is the one path that every entry goes through, local or remote. It checks the
//! cheapest things first: size, then decoding and field limits, then the Automerge change and its
//! actor, then the signature, and last the claimed time (so that only a genuine entry is ever
//! reported as "not yet"). Checks that need the rest of the subwiki
//! (ownership, founder-only documents, time before genesis) are made when the entry is ingested
//! by a [`crate::Replica`].

use std::fmt;
use std::panic::catch_unwind;
use std::sync::Arc;

use automerge::legacy::{Key, ObjectId, Op, OpType};
use automerge::{ObjType, ScalarValue};
use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;

use crate::codec::{DecodeError, Reader, Writer};
use crate::id::{AuthorId, DocId, EntryId, SubwikiId};
use crate::key::{AuthorKey, MAX_DEVICE_SUFFIX};

/// The only body version this implementation reads and writes.
pub const BODY_VERSION: u8 = 1;
/// Prefix of every signed message, so an entry signature can never be replayed as anything else.
pub const SIGNATURE_DOMAIN: &[u8] = b"agora-entry-v1:";
/// Length of the signature that ends every entry.
pub const SIGNATURE_LEN: usize = 64;

/// Size limits, part of validation.
pub mod limits {
    /// An entry, body and signature: 256 KiB.
    pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
    /// The Automerge change inside an entry.
    pub const MAX_CHANGE_BYTES: usize = 250 * 1024;
    /// A subwiki's name.
    pub const MAX_NAME_BYTES: usize = 100;
    /// A subwiki's description.
    pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
    /// The reason given with a vote.
    pub const MAX_REASON_BYTES: usize = 1024;
    /// How far ahead of the receiver's clock a claimed time may be, in milliseconds (10 min).
    pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;
}

/// Milliseconds since the Unix epoch, as claimed by an entry's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Whole seconds, as Automerge records change times.
    pub fn as_secs(self) -> i64 {
        i64::try_from(self.0 / 1000).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who may change the posts of a subwiki that they did not create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EditPolicy {
    /// Every member may edit every post (WT.Social style).
    Open,
    /// Only trusted members, moderators and the founder edit others' posts.
    Trusted,
}

/// The rules a subwiki is founded with. Fixed by the genesis entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Who edits others' posts.
    pub edit: EditPolicy,
    /// How many trusted members must vouch for someone to make them trusted (at least 1).
    pub vouch_threshold: u8,
    /// Counted hide votes needed to hide a post (at least 1).
    pub hide_quorum: u16,
    /// Counted misleading or verified votes needed to mark a post (at least 1).
    pub mark_quorum: u16,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            edit: EditPolicy::Open,
            vouch_threshold: 2,
            hide_quorum: 2,
            mark_quorum: 2,
        }
    }
}

/// The kind of a document, fixed when it is created; it decides the write policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocKind {
    /// A post: title, body, link, images, tags. Write policy `wiki`.
    Post,
    /// A comment on a post. Write policy `owner`.
    Comment,
    /// A member's profile in this subwiki. Write policy `owner`.
    Profile,
    /// The subwiki's own information page, created by the founder. Write policy `owner`.
    Info,
}

/// Who may change a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WritePolicy {
    /// Any member (subject to the subwiki's [`EditPolicy`]).
    Wiki,
    /// Only the document's creator.
    Owner,
}

impl DocKind {
    /// The write policy that documents of this kind have.
    pub fn write_policy(self) -> WritePolicy {
        match self {
            DocKind::Post => WritePolicy::Wiki,
            DocKind::Comment | DocKind::Profile | DocKind::Info => WritePolicy::Owner,
        }
    }
}

/// The founding entry of a subwiki; its id is the subwiki's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// A name; not unique, the id is what identifies a subwiki.
    pub name: String,
    /// What the subwiki is about.
    pub description: String,
    /// Its rules.
    pub policy: Policy,
}

/// Creates a document; its id is the document's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDocument {
    /// What it is.
    pub kind: DocKind,
    /// For a comment: the post it belongs to. None for other kinds.
    pub parent: Option<DocId>,
    /// For a comment: the comment it answers, if any. None for other kinds.
    pub reply_to: Option<DocId>,
    /// The document's first Automerge change (sequence number 1, no dependencies), raw bytes.
    pub change: Vec<u8>,
}

/// A change to an existing document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChange {
    /// The document changed.
    pub doc: DocId,
    /// One uncompressed Automerge change, raw bytes.
    pub change: Vec<u8>,
}

/// What a vote is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteTarget {
    /// A post (hide, keep, misleading, verified, withdraw).
    Post(DocId),
    /// An author in this subwiki (mute, unmute).
    Author(AuthorId),
}

/// A voter's stance. The latest vote of a voter on a target replaces the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteValue {
    /// Hide the post from the feed.
    Hide,
    /// Keep the post visible (counts against hide).
    Keep,
    /// Mark the post as misleading.
    Misleading,
    /// Mark the post as verified.
    Verified,
    /// Take back this voter's earlier vote on the post.
    Withdraw,
    /// Hide this author's posts and comments in the subwiki.
    Mute,
    /// Take back a mute.
    Unmute,
}

impl VoteValue {
    fn fits(self, target: &VoteTarget) -> bool {
        match target {
            VoteTarget::Post(_) => !matches!(self, VoteValue::Mute | VoteValue::Unmute),
            VoteTarget::Author(_) => matches!(self, VoteValue::Mute | VoteValue::Unmute),
        }
    }
}

/// A moderation vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// What it is about.
    pub target: VoteTarget,
    /// The stance.
    pub value: VoteValue,
    /// Why, in the voter's words (may be empty).
    pub reason: String,
}

/// A change of someone's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleAction {
    /// The founder makes the subject a moderator.
    AppointModerator,
    /// The founder removes a moderator.
    RemoveModerator,
    /// The signer vouches that the subject is trustworthy.
    Vouch,
    /// The signer takes back a vouch.
    Revoke,
}

/// A signed statement about a member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleStatement {
    /// What is stated.
    pub action: RoleAction,
    /// About whom.
    pub subject: AuthorId,
}

/// A signed request that every node delete a document's content: by its creator a
/// *retraction*, by the founder or a moderator a *redaction* (see `docs/moderation.md`). Nodes
/// keep the statement and the ids of what it removed, never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    /// The post, comment or profile to delete.
    pub doc: DocId,
    /// Why, in the signer's words (may be empty; a redaction's reason is in the moderation
    /// log).
    pub reason: String,
}

/// What an entry says. New kinds are added as new variants with new tags, never by changing
/// old ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Tag 0.
    Genesis(Genesis),
    /// Tag 1.
    CreateDocument(CreateDocument),
    /// Tag 2.
    Change(DocChange),
    /// Tag 3.
    Vote(Vote),
    /// Tag 4.
    Role(RoleStatement),
    /// Tag 5.
    Retract(Retraction),
}

impl Payload {
    fn tag(&self) -> u8 {
        match self {
            Payload::Genesis(_) => 0,
            Payload::CreateDocument(_) => 1,
            Payload::Change(_) => 2,
            Payload::Vote(_) => 3,
            Payload::Role(_) => 4,
            Payload::Retract(_) => 5,
        }
    }

    /// The raw Automerge change carried, if any.
    pub fn change_bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::CreateDocument(c) => Some(&c.change),
            Payload::Change(c) => Some(&c.change),
            _ => None,
        }
    }
}

/// The signed part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The subwiki; `None` only for a genesis entry, which founds one.
    pub subwiki: Option<SubwikiId>,
    /// The signer.
    pub author: AuthorId,
    /// When the author says it was made.
    pub timestamp: Timestamp,
    /// What it says.
    pub payload: Payload,
}

/// A document kind's tag, in entries and in the records kept of them.
pub(crate) fn kind_tag(kind: DocKind) -> u8 {
    match kind {
        DocKind::Post => 0,
        DocKind::Comment => 1,
        DocKind::Profile => 2,
        DocKind::Info => 3,
    }
}

/// The document kind of a tag; `None` for a tag no kind has.
pub(crate) fn kind_of_tag(tag: u8) -> Option<DocKind> {
    match tag {
        0 => Some(DocKind::Post),
        1 => Some(DocKind::Comment),
        2 => Some(DocKind::Profile),
        3 => Some(DocKind::Info),
        _ => None,
    }
}

fn vote_value_tag(value: VoteValue) -> u8 {
    match value {
        VoteValue::Hide => 0,
        VoteValue::Keep => 1,
        VoteValue::Misleading => 2,
        VoteValue::Verified => 3,
        VoteValue::Withdraw => 4,
        VoteValue::Mute => 5,
        VoteValue::Unmute => 6,
    }
}

fn role_tag(action: RoleAction) -> u8 {
    match action {
        RoleAction::AppointModerator => 0,
        RoleAction::RemoveModerator => 1,
        RoleAction::Vouch => 2,
        RoleAction::Revoke => 3,
    }
}

impl Body {
    /// The canonical encoding: the bytes that are hashed and signed.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(BODY_VERSION);
        w.u8(self.payload.tag());
        w.fixed(self.author.as_bytes());
        w.u64(self.timestamp.0);
        if !matches!(self.payload, Payload::Genesis(_)) {
            let subwiki = self.subwiki.unwrap_or(SubwikiId::from_bytes([0; 32]));
            w.fixed(subwiki.as_bytes());
        }
        match &self.payload {
            Payload::Genesis(g) => {
                w.str(&g.name);
                w.str(&g.description);
                w.u8(match g.policy.edit {
                    EditPolicy::Open => 0,
                    EditPolicy::Trusted => 1,
                });
                w.u8(g.policy.vouch_threshold);
                w.u16(g.policy.hide_quorum);
                w.u16(g.policy.mark_quorum);
            }
            Payload::CreateDocument(c) => {
                w.u8(kind_tag(c.kind));
                w.option(c.parent.as_ref(), |w, d| w.fixed(d.as_bytes()));
                w.option(c.reply_to.as_ref(), |w, d| w.fixed(d.as_bytes()));
                w.bytes(&c.change);
            }
            Payload::Change(c) => {
                w.fixed(c.doc.as_bytes());
                w.bytes(&c.change);
            }
            Payload::Vote(v) => {
                match &v.target {
                    VoteTarget::Post(d) => {
                        w.u8(0);
                        w.fixed(d.as_bytes());
                    }
                    VoteTarget::Author(a) => {
                        w.u8(1);
                        w.fixed(a.as_bytes());
                    }
                }
                w.u8(vote_value_tag(v.value));
                w.str(&v.reason);
            }
            Payload::Role(r) => {
                w.u8(role_tag(r.action));
                w.fixed(r.subject.as_bytes());
            }
            Payload::Retract(r) => {
                w.fixed(r.doc.as_bytes());
                w.str(&r.reason);
            }
        }
        w.into_bytes()
    }

    /// Decodes a body, checking every field's limits and the version. Returns the error that
    /// names the first problem found.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        use limits::*;
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != BODY_VERSION {
            return Err(EntryError::UnknownVersion(version));
        }
        let tag = r.u8("payload kind")?;
        if tag > 5 {
            return Err(DecodeError::UnknownTag {
                what: "payload kind",
                tag,
            }
            .into());
        }
        let author = AuthorId::from_bytes(r.array("author")?);
        let timestamp = Timestamp(r.u64("timestamp")?);
        let subwiki = if tag == 0 {
            None
        } else {
            Some(SubwikiId::from_bytes(r.array("subwiki")?))
        };
        let doc_id = |r: &mut Reader<'_>, what| r.array(what).map(DocId::from_bytes);
        let payload = match tag {
            0 => {
                let name = r.str("name", MAX_NAME_BYTES)?;
                let description = r.str("description", MAX_DESCRIPTION_BYTES)?;
                let edit = match r.u8("edit policy")? {
                    0 => EditPolicy::Open,
                    1 => EditPolicy::Trusted,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "edit policy",
                            tag,
                        }
                        .into());
                    }
                };
                let policy = Policy {
                    edit,
                    vouch_threshold: r.u8("vouch threshold")?,
                    hide_quorum: r.u16("hide quorum")?,
                    mark_quorum: r.u16("mark quorum")?,
                };
                if policy.vouch_threshold == 0 || policy.hide_quorum == 0 || policy.mark_quorum == 0
                {
                    return Err(EntryError::Invalid(
                        "policy thresholds and quorums must be at least 1",
                    ));
                }
                if name.trim().is_empty() {
                    return Err(EntryError::Invalid("a subwiki needs a name"));
                }
                Payload::Genesis(Genesis {
                    name,
                    description,
                    policy,
                })
            }
            1 => {
                let tag = r.u8("document kind")?;
                let kind = kind_of_tag(tag).ok_or(DecodeError::UnknownTag {
                    what: "document kind",
                    tag,
                })?;
                let parent = r.option("parent", |r| doc_id(r, "parent"))?;
                let reply_to = r.option("reply to", |r| doc_id(r, "reply to"))?;
                let change = r.bytes("change", MAX_CHANGE_BYTES)?.to_vec();
                match (kind, parent, reply_to) {
                    (DocKind::Comment, None, _) => {
                        return Err(EntryError::Invalid("a comment needs a parent post"));
                    }
                    (DocKind::Comment, Some(_), _) | (_, None, None) => {}
                    _ => return Err(EntryError::Invalid("only comments have a parent")),
                }
                Payload::CreateDocument(CreateDocument {
                    kind,
                    parent,
                    reply_to,
                    change,
                })
            }
            2 => Payload::Change(DocChange {
                doc: doc_id(&mut r, "document")?,
                change: r.bytes("change", MAX_CHANGE_BYTES)?.to_vec(),
            }),
            3 => {
                let target = match r.u8("vote target")? {
                    0 => VoteTarget::Post(doc_id(&mut r, "post")?),
                    1 => VoteTarget::Author(AuthorId::from_bytes(r.array("author")?)),
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "vote target",
                            tag,
                        }
                        .into());
                    }
                };
                let value = match r.u8("vote value")? {
                    0 => VoteValue::Hide,
                    1 => VoteValue::Keep,
                    2 => VoteValue::Misleading,
                    3 => VoteValue::Verified,
                    4 => VoteValue::Withdraw,
                    5 => VoteValue::Mute,
                    6 => VoteValue::Unmute,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "vote value",
                            tag,
                        }
                        .into());
                    }
                };
                if !value.fits(&target) {
                    return Err(EntryError::Invalid("vote value does not fit its target"));
                }
                let reason = r.str("reason", MAX_REASON_BYTES)?;
                Payload::Vote(Vote {
                    target,
                    value,
                    reason,
                })
            }
            4 => {
                let action = match r.u8("role action")? {
                    0 => RoleAction::AppointModerator,
                    1 => RoleAction::RemoveModerator,
                    2 => RoleAction::Vouch,
                    3 => RoleAction::Revoke,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "role action",
                            tag,
                        }
                        .into());
                    }
                };
                let subject = AuthorId::from_bytes(r.array("subject")?);
                Payload::Role(RoleStatement { action, subject })
            }
            5 => Payload::Retract(Retraction {
                doc: doc_id(&mut r, "document")?,
                reason: r.str("reason", MAX_REASON_BYTES)?,
            }),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "payload kind",
                    tag,
                }
                .into());
            }
        };
        r.finish()?;
        Ok(Body {
            subwiki,
            author,
            timestamp,
            payload,
        })
    }
}

/// Why an entry was refused. Each problem has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Over [`limits::MAX_ENTRY_BYTES`].
    #[error("entry is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too short to hold a signature and a body.
    #[error("entry is {0} bytes, too short to be an entry")]
    TooShort(usize),
    /// A body version this implementation does not know.
    #[error("unknown entry version {0}")]
    UnknownVersion(u8),
    /// The body does not decode.
    #[error("malformed entry: {0}")]
    Decode(#[from] DecodeError),
    /// The body decodes but breaks a rule of the format.
    #[error("invalid entry: {0}")]
    Invalid(&'static str),
    /// The claimed time is too far ahead of the receiver's clock; try again later.
    #[error("entry claims a time {ahead_ms} ms in the future; not accepted yet")]
    FromTheFuture {
        /// How far ahead of the receiver's clock.
        ahead_ms: u64,
    },
    /// The change is in Automerge's compressed form, which is not accepted (it could inflate
    /// past every limit).
    #[error("automerge change is compressed; only raw changes are accepted")]
    CompressedChange,
    /// The change bytes are not one valid Automerge change.
    #[error("malformed automerge change: {0}")]
    MalformedChange(String),
    /// The change's checksum does not match its contents: the bytes were damaged.
    #[error("automerge change checksum does not match its contents")]
    ChangeChecksum,
    /// The change's actor is not the signer's key followed by a device suffix.
    #[error("automerge actor is not the signing author's key plus a device suffix")]
    ActorMismatch,
    /// The change sets Automerge's unsigned "author" field, which Agora does not use.
    #[error("automerge change carries an author field; identity comes from the signature")]
    ChangeAuthorField,
    /// The change holds an Automerge mark operation (begin or end of a mark on text), which
    /// Agora never writes: one outside any text made every later edit of the document fail.
    #[error("the change contains an Automerge mark operation, which Agora documents do not use")]
    MarkOperation,
    /// The change holds another operation that Agora never writes (an increment, a value that
    /// is not a string, a string put where the schema has a text object, ...; see
    /// `docs/protocol.md` §7): some of them made later edits of the document fail.
    #[error("the change contains an operation Agora documents do not use: {what}")]
    UnexpectedOperation {
        /// The operation, in words.
        what: String,
    },
    /// A create-document entry whose change is not a first change.
    #[error("a document's first change must have sequence number 1 and no dependencies")]
    NotFirstChange,
    /// The author id is not a usable ed25519 public key.
    #[error("author id is not a valid ed25519 public key")]
    BadAuthorKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Bytes read back from storage do not hash to the id they were stored under.
    #[error("stored bytes do not match their id")]
    IdMismatch,
}

impl EntryError {
    /// True if the same bytes may be accepted later (the claimed time was in the future).
    pub fn is_retriable(&self) -> bool {
        matches!(self, EntryError::FromTheFuture { .. })
    }
}

/// A valid entry: decoded, within limits, its change bound to its signer, its signature checked.
/// The only ways to get one are [`validate`] and [`Entry::sign`], which calls it.
#[derive(Clone)]
pub struct Entry {
    id: EntryId,
    bytes: Arc<[u8]>,
    body: Body,
    change: Option<automerge::Change>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("author", &self.body.author)
            .field("timestamp", &self.body.timestamp)
            .field("kind", &self.body.payload.tag())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Entry {}

impl Entry {
    /// Encodes, signs and validates a new entry.
    pub fn sign(
        key: &AuthorKey,
        subwiki: Option<SubwikiId>,
        timestamp: Timestamp,
        payload: Payload,
    ) -> Result<Entry, EntryError> {
        if subwiki.is_some() == matches!(payload, Payload::Genesis(_)) {
            return Err(EntryError::Invalid(
                "a genesis entry names no subwiki; every other entry names one",
            ));
        }
        let body = Body {
            subwiki,
            author: key.id(),
            timestamp,
            payload,
        }
        .encode();
        let id = EntryId::from_bytes(*blake3::hash(&body).as_bytes());
        let signature = key.sign(&signed_message(&id));
        let mut bytes = body;
        bytes.extend_from_slice(&signature);
        validate(&bytes, timestamp)
    }

    /// The id: blake3 of the body bytes.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// The exact bytes, body then signature.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The signer.
    pub fn author(&self) -> AuthorId {
        self.body.author
    }

    /// The claimed time.
    pub fn timestamp(&self) -> Timestamp {
        self.body.timestamp
    }

    /// The subwiki this entry belongs to: for a genesis entry, the one it founds.
    pub fn subwiki(&self) -> SubwikiId {
        self.body.subwiki.unwrap_or_else(|| self.id.into())
    }

    /// What it says.
    pub fn payload(&self) -> &Payload {
        &self.body.payload
    }

    /// The decoded Automerge change, for create-document and change entries.
    pub fn change(&self) -> Option<&automerge::Change> {
        self.change.as_ref()
    }
}

fn signed_message(id: &EntryId) -> Vec<u8> {
    let mut message = SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(id.as_bytes());
    message
}

/// Byte offset of the chunk type in an Automerge chunk (after the 4 magic and 4 checksum bytes).
const CHUNK_TYPE_OFFSET: usize = 8;
/// Automerge's chunk type of an uncompressed change.
const CHUNK_TYPE_CHANGE: u8 = 1;
/// Automerge's chunk type of a compressed change.
const CHUNK_TYPE_COMPRESSED: u8 = 2;

fn check_change(author: &AuthorId, bytes: &[u8]) -> Result<automerge::Change, EntryError> {
    match bytes.get(CHUNK_TYPE_OFFSET) {
        Some(&CHUNK_TYPE_CHANGE) => {}
        Some(&CHUNK_TYPE_COMPRESSED) => return Err(EntryError::CompressedChange),
        _ => {
            return Err(EntryError::MalformedChange(
                "not an automerge change chunk".into(),
            ));
        }
    }
    // Automerge's decoder can panic on some malformed changes (an op id counter overflowing,
    // found by fuzzing): contain it, this runs on bytes from the network.
    let decoded = catch_unwind(|| automerge::Change::try_from(bytes))
        .map_err(|_| EntryError::MalformedChange("automerge's decoder panicked".into()))?;
    let change = decoded.map_err(|e| EntryError::MalformedChange(e.to_string()))?;
    // Automerge's chunk checksum is the first four bytes of the change hash, which `try_from`
    // recomputes from the contents but does not compare.
    if change.hash().0.get(..4) != bytes.get(4..8) {
        return Err(EntryError::ChangeChecksum);
    }
    let actor = change.actor_id().to_bytes();
    let suffix_len = actor.len().saturating_sub(32);
    if !actor.starts_with(author.as_bytes()) || suffix_len == 0 || suffix_len > MAX_DEVICE_SUFFIX {
        return Err(EntryError::ActorMismatch);
    }
    if change.author().is_some() {
        return Err(EntryError::ChangeAuthorField);
    }
    let operations = operations(&change)?;
    if operations
        .iter()
        .any(|op| matches!(op.action, OpType::MarkBegin(_) | OpType::MarkEnd(_)))
    {
        return Err(EntryError::MarkOperation);
    }
    if let Some(what) = operations.iter().find_map(unexpected_operation) {
        return Err(EntryError::UnexpectedOperation { what });
    }
    Ok(change)
}

/// The operations of a change, expanded.
///
/// Expanding panics only when an operation names an actor index the change does not list
/// (`unwrap` in automerge's `ExpandedChange::from`; such a change can never be applied either):
/// that is refused as malformed.
fn operations(change: &automerge::Change) -> Result<Vec<Op>, EntryError> {
    catch_unwind(|| change.decode().operations).map_err(|_| {
        EntryError::MalformedChange("an operation names an actor the change does not list".into())
    })
}

/// What a root key holds in every document kind that has it (`docs/protocol.md` §10).
#[derive(Clone, Copy)]
enum RootType {
    /// A text object: `title`, `body`, `text`, `name`, `bio`, `description`.
    Text,
    /// A list of strings: `images`, `tags`.
    List,
    /// A map of strings: the post's link `card`.
    Map,
    /// A string scalar: `link`, and the informative `kind`.
    String,
}

impl RootType {
    /// The type of a root key, if the schema has the key. The kind of the document is not
    /// known from a change entry (only from its create-document entry), so this is decided
    /// from the key alone: no key has two types across kinds (`name` is text in profiles and
    /// info pages alike), and the `card` map's own `title` and `description` are keys of that
    /// map, not of the root.
    fn of(key: &str) -> Option<RootType> {
        Some(match key {
            "title" | "body" | "text" | "name" | "bio" | "description" => RootType::Text,
            "images" | "tags" => RootType::List,
            "card" => RootType::Map,
            "link" | "kind" => RootType::String,
            _ => return None,
        })
    }

    /// Whether a key of this type may hold an object of type `made`.
    fn holds(self, made: ObjType) -> bool {
        matches!(
            (self, made),
            (RootType::Text, ObjType::Text)
                | (RootType::List, ObjType::List)
                | (RootType::Map, ObjType::Map)
        )
    }

    fn describe(self) -> &'static str {
        match self {
            RootType::Text => "a text object",
            RootType::List => "a list",
            RootType::Map => "a map",
            RootType::String => "a string",
        }
    }
}

/// Why an operation (not a mark, checked before) is one that Agora never writes, or `None` if
/// Agora writes operations like it. Decided from the operation alone, so every replica decides
/// it the same way in any order.
///
/// Agora's own changes ([`crate::Content::write`], and the `kind` put of a first change) hold
/// only: objects made under a root key (text, list, or the card's map); strings put under a root
/// key or a map key; strings inserted into a text (one character each) or a list; and deletes.
/// A schema key of the root holds only its own type (no string put where the schema has text,
/// no object made where it has a string). Everything else is refused: increments, counters and
/// every scalar type but strings, table objects, objects made inside other objects, puts over an
/// element of a list or text, inserts of anything but a string. Keys the schema does not have
/// are left free (within the same operations), so that a field can be added to the schema
/// without older nodes refusing the changes that write it.
///
/// Automerge 0.12 applies some changes outside this set and then fails on honest edits of the
/// document: an increment inserted into a text made edits that replace the text's first
/// characters panic, and a string holding an emoji put over the title's text object made some
/// title edits fail with `InvalidIndex`.
fn unexpected_operation(op: &Op) -> Option<String> {
    let root_key = match (&op.obj, &op.key) {
        (ObjectId::Root, Key::Map(key)) => Some((key.as_str(), RootType::of(key))),
        _ => None,
    };
    let what = match &op.action {
        OpType::Increment(_) => "an increment".into(),
        OpType::Put(value) if !matches!(value, ScalarValue::Str(_)) => {
            format!("a put of {}", scalar_name(value))
        }
        OpType::Make(ObjType::Table) => "a table object".into(),
        _ if op.insert => match (&op.action, &op.key) {
            (OpType::Put(_), Key::Seq(_)) => return None,
            _ => "an insert of anything but a string into a list or text".into(),
        },
        OpType::Put(_) if matches!(op.key, Key::Seq(_)) => {
            "a put over an element of a list or text".into()
        }
        OpType::Make(made) => match root_key {
            None => "an object made anywhere but under a key of the root map".into(),
            Some((key, Some(schema))) if !schema.holds(*made) => format!(
                "{} made under the root key `{key}`, which holds {}",
                object_name(*made),
                schema.describe()
            ),
            Some(_) => return None,
        },
        OpType::Put(_) => match root_key {
            Some((key, Some(schema))) if !matches!(schema, RootType::String) => format!(
                "a string put under the root key `{key}`, which holds {}",
                schema.describe()
            ),
            _ => return None,
        },
        OpType::Delete | OpType::MarkBegin(_) | OpType::MarkEnd(_) => return None,
    };
    Some(what)
}

/// The kind of an object, for an error message.
fn object_name(made: ObjType) -> &'static str {
    match made {
        ObjType::Map | ObjType::Table => "a map",
        ObjType::List => "a list",
        ObjType::Text => "a text object",
    }
}

/// The type of a scalar value, for an error message.
fn scalar_name(value: &ScalarValue) -> &'static str {
    match value {
        ScalarValue::Bytes(_) => "bytes",
        ScalarValue::Str(_) => "a string",
        ScalarValue::Int(_) => "an integer",
        ScalarValue::Uint(_) => "an unsigned integer",
        ScalarValue::F64(_) => "a float",
        ScalarValue::Counter(_) => "a counter",
        ScalarValue::Timestamp(_) => "a timestamp",
        ScalarValue::Boolean(_) => "a boolean",
        ScalarValue::Unknown { .. } => "a value of an unknown type",
        ScalarValue::Null => "null",
    }
}

/// Reads back entries that this node validated before it stored them, each under its id, and
/// returns for each the entry or what is wrong with it.
///
/// Everything [`validate`] checks is checked again except the claimed time: the bytes must
/// decode, their changes parse and match their author, their blake3 hash must be the id they
/// were stored under ([`EntryError::IdMismatch`]), and their signatures must verify. The
/// signatures are checked with ed25519 batch verification, [`REOPEN_BATCH`] at a time (about
/// six times the rate of one by one); a batch that fails is checked one by one with
/// `verify_strict` to find the damaged entries, so the answer for each entry is the same as
/// [`validate`]'s. Batch verification is only used here, on entries that already passed
/// `verify_strict` when they arrived: it detects damage, not the edge cases where the two
/// verifications disagree (see `docs/protocol.md` §6).
pub fn reopen(stored: &[(EntryId, &[u8])]) -> Vec<Result<Entry, EntryError>> {
    let mut out: Vec<Result<Entry, EntryError>> = stored
        .iter()
        .map(|(id, bytes)| reopen_unsigned(bytes, id))
        .collect();
    let mut chunk: Vec<usize> = Vec::with_capacity(REOPEN_BATCH);
    for i in 0..out.len() {
        if matches!(out.get(i), Some(Ok(_))) {
            chunk.push(i);
        }
        if chunk.len() == REOPEN_BATCH || (i + 1 == out.len() && !chunk.is_empty()) {
            verify_reopened(&mut out, &chunk);
            chunk.clear();
        }
    }
    out
}

/// Entries [`reopen`] verifies in one ed25519 batch.
pub const REOPEN_BATCH: usize = 256;

/// Batch-verifies the signatures of `out[i]` for `i` in `chunk` (all `Ok`); on failure checks
/// each with `verify_strict` and replaces the bad ones with their error.
fn verify_reopened(out: &mut [Result<Entry, EntryError>], chunk: &[usize]) {
    let parts: Vec<(usize, Result<Signed, EntryError>)> = chunk
        .iter()
        .filter_map(|&i| {
            let entry = out.get(i)?.as_ref().ok()?;
            Some((
                i,
                signature_parts(&entry.body.author, &entry.id, &entry.bytes),
            ))
        })
        .collect();
    for (i, error) in verify_signatures(parts) {
        if let Some(slot) = out.get_mut(i) {
            *slot = Err(error);
        }
    }
}

/// What a signature check needs: the author's key, the signed message, the signature.
struct Signed {
    key: VerifyingKey,
    message: Vec<u8>,
    signature: Signature,
}

/// Verifies signatures, all in one ed25519 batch; if the batch fails (or some could not even
/// be read), each with `verify_strict`. Returns the tags of those that fail, with the error.
fn verify_signatures<T: Copy>(parts: Vec<(T, Result<Signed, EntryError>)>) -> Vec<(T, EntryError)> {
    if parts.iter().all(|(_, p)| p.is_ok()) {
        let signed: Vec<&Signed> = parts.iter().filter_map(|(_, p)| p.as_ref().ok()).collect();
        let messages: Vec<&[u8]> = signed.iter().map(|s| s.message.as_slice()).collect();
        let signatures: Vec<Signature> = signed.iter().map(|s| s.signature).collect();
        let keys: Vec<VerifyingKey> = signed.iter().map(|s| s.key).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return Vec::new();
        }
    }
    parts
        .into_iter()
        .filter_map(|(tag, part)| {
            let checked = part.and_then(|s| {
                s.key
                    .verify_strict(&s.message, &s.signature)
                    .map_err(|_| EntryError::BadSignature)
            });
            checked.err().map(|e| (tag, e))
        })
        .collect()
}

/// The author's key, the signed message and the signature of the entry `bytes` with this id.
fn signature_parts(author: &AuthorId, id: &EntryId, bytes: &[u8]) -> Result<Signed, EntryError> {
    let key = VerifyingKey::from_bytes(author.as_bytes()).map_err(|_| EntryError::BadAuthorKey)?;
    if key.is_weak() {
        return Err(EntryError::BadAuthorKey);
    }
    let split = bytes.len().saturating_sub(SIGNATURE_LEN);
    let signature: [u8; SIGNATURE_LEN] = bytes
        .get(split..)
        .and_then(|s| s.try_into().ok())
        .ok_or(EntryError::BadSignature)?;
    Ok(Signed {
        key,
        message: signed_message(id),
        signature: Signature::from_bytes(&signature),
    })
}

/// Checks entries read back from storage for damage before passing them on (serving them to a
/// peer) without using them here; returns for each the subwiki it belongs to, or what is wrong
/// with it.
///
/// The body must decode and hash to the id it was stored under, and the signature must verify
/// (in batches, as [`reopen`]). The Automerge change is not decoded again: the hash shows the
/// body is the very one [`validate`] accepted when it arrived, and the signature bytes are
/// covered by the signature check, so any damage to the entry is found. Decoding changes is
/// most of what [`reopen`] costs for posts, whose text is one Automerge operation per
/// character: a node serving a newcomer's catch-up reads every entry it sends.
pub fn recheck(stored: &[(EntryId, &[u8])]) -> Vec<Result<SubwikiId, EntryError>> {
    let mut out: Vec<Result<SubwikiId, EntryError>> = Vec::with_capacity(stored.len());
    let mut parts: Vec<(usize, Result<Signed, EntryError>)> = Vec::new();
    for (i, (id, bytes)) in stored.iter().enumerate() {
        match recheck_unsigned(bytes, id) {
            Ok(body) => {
                parts.push((i, signature_parts(&body.author, id, bytes)));
                out.push(Ok(body.subwiki.unwrap_or_else(|| (*id).into())));
            }
            Err(e) => out.push(Err(e)),
        }
        if parts.len() == REOPEN_BATCH || (i + 1 == stored.len() && !parts.is_empty()) {
            for (i, error) in verify_signatures(std::mem::take(&mut parts)) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Err(error);
                }
            }
        }
    }
    out
}

/// The body of entry `bytes` (all but the signature), once the entry's size is checked.
fn body_of(bytes: &[u8]) -> Result<&[u8], EntryError> {
    if bytes.len() > limits::MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge {
            len: bytes.len(),
            max: limits::MAX_ENTRY_BYTES,
        });
    }
    let Some(split) = bytes.len().checked_sub(SIGNATURE_LEN).filter(|&n| n > 0) else {
        return Err(EntryError::TooShort(bytes.len()));
    };
    Ok(bytes.get(..split).unwrap_or_default())
}

/// [`recheck`] without the signature: size, body, hash.
fn recheck_unsigned(bytes: &[u8], id: &EntryId) -> Result<Body, EntryError> {
    let body_bytes = body_of(bytes)?;
    if blake3::hash(body_bytes).as_bytes() != id.as_bytes() {
        return Err(EntryError::IdMismatch);
    }
    Body::decode(body_bytes)
}

/// [`reopen`] without the signature.
fn reopen_unsigned(bytes: &[u8], id: &EntryId) -> Result<Entry, EntryError> {
    let (body_bytes, body, change) = check_unsigned(bytes)?;
    if blake3::hash(body_bytes).as_bytes() != id.as_bytes() {
        return Err(EntryError::IdMismatch);
    }
    Ok(Entry {
        id: *id,
        bytes: bytes.into(),
        body,
        change,
    })
}

/// The checks of [`validate`] that need no signature: size, body, Automerge change. Returns the
/// body bytes, the body and the decoded change.
fn check_unsigned(bytes: &[u8]) -> Result<(&[u8], Body, Option<automerge::Change>), EntryError> {
    let body_bytes = body_of(bytes)?;
    let body = Body::decode(body_bytes)?;
    let change = match &body.payload {
        Payload::CreateDocument(c) => {
            let change = check_change(&body.author, &c.change)?;
            if change.seq() != 1 || !change.deps().is_empty() {
                return Err(EntryError::NotFirstChange);
            }
            Some(change)
        }
        Payload::Change(c) => Some(check_change(&body.author, &c.change)?),
        _ => None,
    };
    Ok((body_bytes, body, change))
}

/// Checks raw entry bytes received from anywhere and returns the valid entry, or the first
/// problem found. `now` is the receiver's clock: entries claiming a time more than
/// [`limits::MAX_CLOCK_SKEW_MS`] ahead of it are refused as not yet acceptable.
pub fn validate(bytes: &[u8], now: Timestamp) -> Result<Entry, EntryError> {
    let (body_bytes, body, change) = check_unsigned(bytes)?;
    let signature = bytes.get(body_bytes.len()..).unwrap_or_default();
    let key =
        VerifyingKey::from_bytes(body.author.as_bytes()).map_err(|_| EntryError::BadAuthorKey)?;
    if key.is_weak() {
        return Err(EntryError::BadAuthorKey);
    }
    let signature: [u8; SIGNATURE_LEN] =
        signature.try_into().map_err(|_| EntryError::BadSignature)?;
    let id = EntryId::from_bytes(*blake3::hash(body_bytes).as_bytes());
    key.verify_strict(&signed_message(&id), &Signature::from_bytes(&signature))
        .map_err(|_| EntryError::BadSignature)?;
    // Checked last, so that only a genuine entry is ever reported as worth retrying.
    let ahead_ms = body.timestamp.0.saturating_sub(now.0);
    if ahead_ms > limits::MAX_CLOCK_SKEW_MS {
        return Err(EntryError::FromTheFuture { ahead_ms });
    }
    Ok(Entry {
        id,
        bytes: bytes.into(),
        body,
        change,
    })
}
