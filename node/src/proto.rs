//! Catch-up replication without IO: range-based set reconciliation of a subwiki's entry ids
//! between two nodes, then bounded transfers of what each side lacks.
//!
//! # Algorithm
//!
//! The two nodes first agree on which entries of a subwiki each one lacks with **range-based
//! set reconciliation** (Aljoscha Meyer, "Range-Based Set Reconciliation", 2023), as implemented
//! by the [`negentropy`] crate (protocol version `0x61`). Each side's set is the sorted list of
//! `(claimed time, entry id)` items of the subwiki ([`Snapshot`]). The initiator sends
//! fingerprints of 16 ranges covering the whole set; the responder compares each with its own,
//! skips the ranges that match and splits the ones that differ, recursively, until ranges are
//! small enough to list their ids outright. The cost grows with the number of differences `d`
//! and only logarithmically with the set size `n`: about `d · log₁₆(n)` fingerprints, plus the id
//! lists of the ranges that differ, whatever `n` is. Every reconciliation message is capped
//! ([`Config::frame_size_limit`], 60 KiB by default) so one fits a single request; a message
//! that would be larger is cut and the rest of the work is carried to the next round.
//!
//! Meanwhile the initiator **fetches** the ids it lacks, **newest first** (so a newcomer sees the
//! current feed before the old history), in batches of at most [`MAX_FETCH_IDS`] ids whose
//! answers hold at most [`MAX_BATCH_BYTES`], and **pushes** the entries the responder lacks in
//! batches under the same limits. Every entry received either way goes through the same
//! validation (signature, limits, subwiki) before it is handed to the driver to store.
//!
//! # Shape
//!
//! - [`wire`]: the [`Request`] and [`Response`] messages and their binary codec. This is what
//!   the libp2p request-response protocol carries.
//! - [`Session`]: the initiator, one per (peer, subwiki). [`Session::start`] gives the first
//!   request, [`Session::handle`] takes each response and returns [`Output`]s.
//! - [`Responder`]: the other side, stateless apart from the [`Snapshot`] of local items that
//!   the driver builds or caches per subwiki.
//!
//! Nothing here does IO, keeps time or draws random numbers: the driver passes the clock in,
//! loads entries from its store when asked and sends the requests. A peer that breaks the
//! protocol gets a typed [`ProtoError`] (or a [`Fault`] on the responder side), never a panic.
//!
//! # Ordering newest first
//!
//! Items are keyed for negentropy by their claimed time counted *down* from the top of the key
//! space ([`Snapshot`]), so negentropy's ascending order is newest first. Negentropy walks
//! ranges in that order and cuts each message at the frame size limit, leaving the rest for the
//! next round: the first rounds name the newest entries. A newcomer to a subwiki of 100,000
//! posts learns the newest ~1,900 ids in the first response, and the session fetches them at
//! once while reconciliation goes on over the older history (two requests in flight: one
//! reconciliation round, one fetch).
//!
//! Negentropy reports the ids the initiator lacks without their times. They all come from id
//! lists in the responder's messages, which list ids in ascending key order, each list
//! covering a range below a known upper bound; the ranges that end up as id lists never
//! overlap. The session reads those bounds and positions from each message it receives and
//! keeps the ids it lacks ordered by `(range bound, position)`: that is exactly the responder's
//! order, newest first, without an extra round trip. Ids named by a later round can be newer
//! than ids already fetched (a range still being split), so the order is newest first among
//! what is known when each batch is sent.
//!
//! # Several peers
//!
//! The driver may run sessions about one subwiki with several peers at once and give them the
//! same [`Claims`]: each id is fetched from one peer only, and the transfer splits across the
//! peers that hold it.
//!
//! # Hostile input
//!
//! Negentropy 0.5.3's decoder was read for panics: every read is length-checked, id list
//! counts are checked against the bytes left (0.5.2 fixed an allocation abort there), and
//! bounds longer than an id are refused. The one indexing that can go out of range
//! (`get_minimal_bound` on two identical adjacent items) is only reachable through a storage
//! holding duplicates, which [`Snapshot`] never does. On top of that, every payload is first
//! parsed by a strict parser of our own (bounded varints, ordered bounds, id-list counts checked
//! before any allocation), and calls into negentropy run under `catch_unwind`, so a panic that a
//! future version might introduce becomes [`ProtoError::NegentropyPanicked`] rather than a
//! crash (an allocation failure still aborts; the parser keeps those out).

use agora_crdt::{Entry, EntryError, EntryId, SubwikiId, Timestamp};
use thiserror::Error;

mod reconcile;
mod responder;
mod session;
pub mod wire;

#[cfg(test)]
mod tests;

pub use self::reconcile::{PayloadError, Snapshot};
pub use self::responder::{Fault, Reply, Responder};
pub use self::session::{Checked, Claims, Output, Session};
pub use self::wire::{Request, Response, WireError};

/// The reconciliation frame size limit used unless configured otherwise: 60 KiB, so a
/// reconciliation message fits one request with room for the envelope.
pub const DEFAULT_FRAME_SIZE_LIMIT: usize = 60 * 1024;
/// The smallest frame size limit negentropy accepts.
pub const MIN_FRAME_SIZE_LIMIT: usize = 4096;
/// The largest reconciliation payload a message may carry: 64 KiB.
pub const MAX_RECONCILE_PAYLOAD: usize = 64 * 1024;
/// The most ids a single fetch may ask for.
pub const MAX_FETCH_IDS: usize = 512;
/// The most entries a single batch (an [`Response::Entries`] or a [`Request::Push`]) may hold.
pub const MAX_BATCH_ENTRIES: usize = 512;
/// The most entry bytes a single batch may hold, summed over its entries: 4 MiB.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// The longest refusal reason, in bytes.
pub const MAX_REASON_BYTES: usize = 256;
/// The largest encoded message: a full batch plus its framing.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES + 64 * 1024;

/// Limits of one side of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The largest reconciliation message this side writes, in bytes. Between
    /// [`MIN_FRAME_SIZE_LIMIT`] and [`MAX_RECONCILE_PAYLOAD`].
    pub frame_size_limit: usize,
    /// The most reconciliation round trips of one session; more is an error. A newcomer needs
    /// about `n · 32 / frame_size_limit` rounds to learn `n` ids, so the default (1,024) covers
    /// about two million entries.
    pub max_rounds: u32,
    /// Ids per fetch request, at most [`MAX_FETCH_IDS`].
    pub fetch_batch: usize,
    /// Ids per [`Output::NeedEntries`], that is, entries the driver loads at a time for pushing.
    pub push_batch: usize,
    /// The most ids one session will fetch; a peer announcing more is an error.
    pub max_missing: usize,
    /// Fetch requests a session keeps in flight at once, 1 to [`MAX_FETCHES_IN_FLIGHT`]: with
    /// two, the peer reads the next batch while this side checks the last one. One by default:
    /// on a two-core machine shared by the newcomer and its holders, two made catch-up slower
    /// (`docs/performance.md` §4c).
    pub fetches_in_flight: usize,
}

/// The most fetch requests a session keeps in flight ([`Config::fetches_in_flight`]).
pub const MAX_FETCHES_IN_FLIGHT: usize = 4;

impl Default for Config {
    fn default() -> Self {
        Self {
            frame_size_limit: DEFAULT_FRAME_SIZE_LIMIT,
            max_rounds: 1024,
            fetch_batch: MAX_FETCH_IDS,
            push_batch: MAX_BATCH_ENTRIES,
            max_missing: 1 << 20,
            fetches_in_flight: 1,
        }
    }
}

impl Config {
    /// Checks that every limit is in range.
    pub fn check(&self) -> Result<(), ProtoError> {
        if !(MIN_FRAME_SIZE_LIMIT..=MAX_RECONCILE_PAYLOAD).contains(&self.frame_size_limit) {
            return Err(ProtoError::Config("frame size limit out of range"));
        }
        if self.max_rounds == 0 {
            return Err(ProtoError::Config("max rounds must be at least 1"));
        }
        if !(1..=MAX_FETCH_IDS).contains(&self.fetch_batch) {
            return Err(ProtoError::Config("fetch batch out of range"));
        }
        if !(1..=MAX_BATCH_ENTRIES).contains(&self.push_batch) {
            return Err(ProtoError::Config("push batch out of range"));
        }
        if !(1..=MAX_FETCHES_IN_FLIGHT).contains(&self.fetches_in_flight) {
            return Err(ProtoError::Config("fetches in flight out of range"));
        }
        Ok(())
    }
}

/// What a session cost, reported when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Round trips, of every kind.
    pub rounds: u32,
    /// Round trips spent on reconciliation.
    pub reconcile_rounds: u32,
    /// Encoded bytes of the requests sent.
    pub bytes_sent: u64,
    /// Encoded bytes of the responses received.
    pub bytes_received: u64,
    /// Encoded bytes of reconciliation requests and responses (part of the two above).
    pub reconcile_bytes: u64,
    /// Entries received, validated and handed over to store.
    pub fetched: u64,
    /// Entries the peer accepted from our pushes.
    pub pushed: u64,
    /// Entries received that failed validation.
    pub invalid: u64,
}

/// How the protocol checks an entry that arrives from a peer. [`Signed`] is the real check;
/// tests and benchmarks plug in cheaper ones to run with millions of synthetic entries.
pub trait Verify {
    /// A checked entry.
    type Entry;

    /// Checks raw entry bytes; `now` is the receiver's clock.
    fn verify(&self, bytes: &[u8], now: Timestamp) -> Result<Self::Entry, EntryError>;

    /// The id of a checked entry.
    fn id(&self, entry: &Self::Entry) -> EntryId;

    /// The subwiki a checked entry belongs to.
    fn subwiki(&self, entry: &Self::Entry) -> SubwikiId;
}

/// The real check: [`agora_crdt::validate`] (signature, limits, claimed time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signed;

impl Verify for Signed {
    type Entry = Entry;

    fn verify(&self, bytes: &[u8], now: Timestamp) -> Result<Entry, EntryError> {
        agora_crdt::validate(bytes, now)
    }

    fn id(&self, entry: &Entry) -> EntryId {
        entry.id()
    }

    fn subwiki(&self, entry: &Entry) -> SubwikiId {
        entry.subwiki()
    }
}

/// Why a received entry was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Rejection {
    /// It does not validate.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// It is valid but belongs to another subwiki.
    #[error("entry {id} belongs to subwiki {actual}, not {expected}")]
    WrongSubwiki {
        /// The entry.
        id: EntryId,
        /// The subwiki being replicated.
        expected: SubwikiId,
        /// The subwiki it belongs to.
        actual: SubwikiId,
    },
}

/// A peer broke the protocol, or a configuration is out of range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// A [`Config`] limit is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A response that does not answer the request in flight, or none was in flight.
    #[error("unexpected {got} response; expected {expected}")]
    Unexpected {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// The session has ended; nothing more is accepted.
    #[error("the session has ended")]
    Finished,
    /// [`Session::provide`] was called without an [`Output::NeedEntries`] waiting for it.
    #[error("no entries were asked for")]
    NotAwaitingEntries,
    /// Reconciliation took more round trips than [`Config::max_rounds`].
    #[error("reconciliation exceeded {max} rounds")]
    TooManyRounds {
        /// The limit.
        max: u32,
    },
    /// A reconciliation message over the frame size limit.
    #[error("reconciliation message of {len} bytes, over the limit of {max}")]
    FrameTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A reconciliation payload that does not parse.
    #[error("malformed reconciliation message: {0}")]
    Malformed(#[from] PayloadError),
    /// Negentropy refused a reconciliation message.
    #[error("reconciliation failed: {0}")]
    Negentropy(String),
    /// Negentropy panicked on a reconciliation message (caught).
    #[error("reconciliation panicked on a peer's message")]
    NegentropyPanicked,
    /// The peer sent an entry that was not asked for, or the same one twice.
    #[error("peer sent entry {id}, which was not asked for")]
    NotRequested {
        /// The entry.
        id: EntryId,
    },
    /// A batch with more entries, or more bytes, than allowed or than asked for.
    #[error("batch of {got} {what}, over the limit of {max}")]
    BatchTooLarge {
        /// Entries or bytes.
        what: &'static str,
        /// How many.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The peer claims more missing entries than [`Config::max_missing`].
    #[error("peer announced more than {max} entries to fetch")]
    TooManyMissing {
        /// The limit.
        max: usize,
    },
    /// The peer refused a request.
    #[error("peer refused: {reason}")]
    Refused {
        /// The reason it gave.
        reason: String,
    },
    /// A message that does not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
}
