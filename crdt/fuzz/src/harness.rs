//! The code paths the fuzz targets drive, shared with the regression test.
//!
//! This file uses only `agora_crdt` and `std`, so `crdt/tests/fuzz_regressions.rs` includes it
//! with `#[path]` and replays saved inputs through exactly what the fuzzer ran. Keep it that way:
//! no `libfuzzer-sys`, no other crates.
//!
//! Besides "nothing panics", the harness checks a few properties (oracles), and fails with an
//! `assert!` when one breaks:
//!
//! * a body that decodes re-encodes to the same bytes (the encoding is canonical);
//! * `validate` accepts an entry's own bytes again, with the same id;
//! * two replicas given the same entries in opposite orders and batchings end in the same state
//!   (entries held, pending, equivocations, documents, heads, contents and histories);
//! * every applied version in a history can be read back with `content_at`;
//! * a feed cursor survives its printable form;
//! * a post stays readable after a local edit or revert, and one that failed changes nothing.
//!
//! Setting `AGORA_FUZZ_SKIP` to a comma-separated list of oracle names (`canonical`,
//! `revalidate`, `converge` (all of the convergence checks), `converge-content` (document
//! contents), `converge-history` (histories, with the fields each change touched), `content_at`,
//! `cursor`, `local-edit`) turns those off, so a fuzzing run can go past a known finding.

use std::sync::OnceLock;

use agora_crdt::entry::SIGNATURE_LEN;
use agora_crdt::{
    AuthorKey, Base, BlobHash, Body, ChangeStatus, Content, CreateDocument, DocChange, DocId,
    DocKind, EditPolicy, Entry, EntryError, EntryId, FeedCursor, Payload, Policy, PostContent,
    ProfileContent, Replica, RoleAction, RoleStatement, Timestamp, Vote, VoteTarget, VoteValue,
    validate,
};

/// The receiver's clock for every validation: far enough ahead that no claimed time is refused
/// as being in the future, unless it is near `u64::MAX`.
pub const NOW: Timestamp = Timestamp(u64::MAX / 2);
/// When the fixed subwiki was founded.
pub const GENESIS_TIME: Timestamp = Timestamp(1_700_000_000_000);
/// When local edits made by the harness are signed.
const LOCAL_TIME: Timestamp = Timestamp(GENESIS_TIME.0 + 1_000_000_000);
/// At most this many entries are built from one `signed_changes` input.
pub const MAX_RECORDS: usize = 24;
/// At most this many chunks are read from one `replica` input.
pub const MAX_CHUNKS: usize = 64;
/// Automerge's magic bytes, which start every chunk.
const AUTOMERGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Automerge's chunk type of an uncompressed change.
const CHUNK_TYPE_CHANGE: u8 = 1;

/// Whether an oracle is on (see the module documentation).
fn oracle(name: &str) -> bool {
    static SKIP: OnceLock<Vec<String>> = OnceLock::new();
    !SKIP
        .get_or_init(|| {
            std::env::var("AGORA_FUZZ_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|s| s == name)
}

/// The three fixed author keys: 0 founds the subwiki, 1 and 2 are members.
pub fn keys() -> &'static [AuthorKey; 3] {
    static KEYS: OnceLock<[AuthorKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            AuthorKey::from_secret([1; 32], [1; 8]),
            AuthorKey::from_secret([2; 32], [2; 8]),
            AuthorKey::from_secret([3; 32], [3; 8]),
        ]
    })
}

/// One of the fixed keys, chosen by a fuzzer byte.
pub fn key(selector: u8) -> &'static AuthorKey {
    let [founder, alice, bob] = keys();
    match selector % 3 {
        0 => founder,
        1 => alice,
        _ => bob,
    }
}

/// The policy of the fixed subwiki: low quorums, so that single votes count.
fn policy() -> Policy {
    Policy {
        edit: EditPolicy::Open,
        vouch_threshold: 1,
        hide_quorum: 1,
        mark_quorum: 1,
    }
}

/// The genesis entry of the fixed subwiki, founded by `keys()[0]` at [`GENESIS_TIME`].
/// Signing is deterministic, so its id is the same in every run.
pub fn genesis() -> &'static Entry {
    static GENESIS: OnceLock<Entry> = OnceLock::new();
    GENESIS.get_or_init(|| {
        let [founder, _, _] = keys();
        match Replica::found(
            founder,
            GENESIS_TIME,
            "fuzz",
            "A subwiki that the fuzzer writes to.",
            policy(),
        ) {
            Ok((_, genesis)) => genesis,
            Err(e) => unreachable!("the fixed genesis entry must sign: {e}"),
        }
    })
}

/// A replica of the fixed subwiki holding only its genesis entry.
pub fn fresh_replica() -> Replica {
    match Replica::new(genesis().clone()) {
        Ok(replica) => replica,
        Err(e) => unreachable!("the fixed genesis entry must found a replica: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Target `validate`: arbitrary bytes as one entry.

/// Validates `data` as an entry. A valid entry is also ingested, into an empty replica of the
/// fixed subwiki and into one holding every seed entry (or founds a replica if it is a genesis
/// entry), and every view is read. Returns what `validate` said.
pub fn run_validate(data: &[u8]) -> Result<Entry, EntryError> {
    if oracle("canonical")
        && let Some(body) = data
            .len()
            .checked_sub(SIGNATURE_LEN)
            .and_then(|n| data.get(..n))
        && let Ok(decoded) = Body::decode(body)
    {
        assert!(
            decoded.encode() == body,
            "a body that decodes must re-encode to the same bytes: {decoded:?}"
        );
    }
    let result = validate(data, NOW);
    if let Ok(entry) = &result {
        if oracle("revalidate") {
            assert!(entry.bytes() == data, "an entry keeps its exact bytes");
            let again = validate(entry.bytes(), NOW).map(|e| e.id());
            assert!(
                again == Ok(entry.id()),
                "an entry's own bytes must validate again to the same id, got {again:?}"
            );
        }
        if matches!(entry.payload(), Payload::Genesis(_)) {
            if let Ok(mut replica) = Replica::new(entry.clone()) {
                exercise_views(&replica);
                exercise_local_edits(&mut replica);
            }
        } else {
            let mut replica = fresh_replica();
            replica.ingest([entry.clone()]);
            exercise_views(&replica);
            let mut seeded = fresh_replica();
            seeded.ingest(seed_entries().iter().map(|(_, e)| e.clone()));
            seeded.ingest([entry.clone()]);
            exercise_views(&seeded);
            exercise_local_edits(&mut seeded);
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Target `replica`: several length-prefixed entries, ingested together.

/// What a `replica` input held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaRun {
    /// Chunks that validated.
    pub valid: usize,
    /// Chunks that did not.
    pub invalid: usize,
}

/// Splits a `replica` input into its flags byte and its chunks.
///
/// Format: one flags byte (bits 0, 1 and 3, see [`ingest_and_check`]), then up to [`MAX_CHUNKS`] chunks, each a
/// big-endian `u16` length and that many bytes (fewer if the input ends first).
pub fn split_chunks(data: &[u8]) -> (u8, Vec<&[u8]>) {
    let mut input = Input::new(data);
    let flags = input.u8().unwrap_or(0);
    let mut chunks = Vec::new();
    while !input.is_empty() && chunks.len() < MAX_CHUNKS {
        chunks.push(input.chunk());
    }
    (flags, chunks)
}

/// Builds a `replica` input from entries (the inverse of [`split_chunks`]).
pub fn join_chunks(flags: u8, entries: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![flags];
    for entry in entries {
        let len = u16::try_from(entry.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry.get(..usize::from(len)).unwrap_or(entry));
    }
    out
}

/// Validates every chunk and ingests the valid ones into replicas of the fixed subwiki, then
/// checks and reads them (see [`ingest_and_check`]).
pub fn run_replica(data: &[u8]) -> ReplicaRun {
    let (flags, chunks) = split_chunks(data);
    let mut run = ReplicaRun::default();
    let mut entries = Vec::new();
    for chunk in chunks {
        match validate(chunk, NOW) {
            Ok(entry) => {
                run.valid += 1;
                entries.push(entry);
            }
            Err(_) => run.invalid += 1,
        }
    }
    ingest_and_check(flags, entries);
    run
}

// ---------------------------------------------------------------------------------------------
// Target `signed_changes`: entries built from fuzzer-chosen fields and signed with fixed keys.

/// What a `signed_changes` input held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedRun {
    /// Records that made a valid entry.
    pub signed: usize,
    /// Records that `Entry::sign` refused (bad Automerge change, actor of another key, ...).
    pub refused: usize,
}

/// One record of a `signed_changes` input, before signing. Used to write seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Op 0: create a document. `parent` and `reply_to` are 0 for none, else 1 + an index into
    /// the documents created so far.
    Create {
        /// Key selector.
        key: u8,
        /// Seconds after genesis.
        secs: u16,
        /// Document kind tag (0 post, 1 comment, 2 profile, 3 info).
        kind: u8,
        /// Parent selector.
        parent: u8,
        /// Reply-to selector.
        reply_to: u8,
        /// The change: its body, or the whole chunk if the raw flag is set.
        change: Vec<u8>,
    },
    /// Op 1: change a document. `doc` below 0x80 indexes the documents created so far; from
    /// 0x80 it indexes every entry signed so far (genesis first), documents or not.
    Change {
        /// Key selector.
        key: u8,
        /// Seconds after genesis.
        secs: u16,
        /// Document selector.
        doc: u8,
        /// The change: its body, or the whole chunk if the raw flag is set.
        change: Vec<u8>,
    },
    /// Op 2: a vote. `target` below 0x80 indexes the documents, from 0x80 the keys.
    Vote {
        /// Key selector.
        key: u8,
        /// Seconds after genesis.
        secs: u16,
        /// Target selector.
        target: u8,
        /// Vote value tag.
        value: u8,
        /// Reason.
        reason: Vec<u8>,
    },
    /// Op 3: a role statement about one of the keys.
    Role {
        /// Key selector.
        key: u8,
        /// Seconds after genesis.
        secs: u16,
        /// Role action tag.
        action: u8,
        /// Subject key selector.
        subject: u8,
    },
}

/// Flag bit of a `signed_changes` input: change bytes are whole chunks, not chunk bodies (the
/// harness still fixes their checksum).
pub const FLAG_RAW_CHANGES: u8 = 0b100;

/// Encodes a `signed_changes` input (the inverse of the parsing in [`run_signed_changes`]).
///
/// Format: a flags byte (bits 0, 1 and 3 as in [`ingest_and_check`], bit 2
/// [`FLAG_RAW_CHANGES`]), then records until the input ends. A record is an op byte (op % 4),
/// a key selector byte, a big-endian `u16` of seconds after genesis, and then: for a create, kind,
/// parent and reply-to bytes and a `u16`-length-prefixed change; for a change, a document
/// selector and a `u16`-length-prefixed change; for a vote, target and value bytes and a
/// `u8`-length-prefixed reason; for a role, action and subject bytes. Missing bytes read as 0.
pub fn encode_records(flags: u8, records: &[Record]) -> Vec<u8> {
    let mut out = vec![flags];
    let chunk = |out: &mut Vec<u8>, bytes: &[u8]| {
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
    };
    for record in records {
        match record {
            Record::Create {
                key,
                secs,
                kind,
                parent,
                reply_to,
                change,
            } => {
                out.extend_from_slice(&[0, *key]);
                out.extend_from_slice(&secs.to_be_bytes());
                out.extend_from_slice(&[*kind, *parent, *reply_to]);
                chunk(&mut out, change);
            }
            Record::Change {
                key,
                secs,
                doc,
                change,
            } => {
                out.extend_from_slice(&[1, *key]);
                out.extend_from_slice(&secs.to_be_bytes());
                out.push(*doc);
                chunk(&mut out, change);
            }
            Record::Vote {
                key,
                secs,
                target,
                value,
                reason,
            } => {
                out.extend_from_slice(&[2, *key]);
                out.extend_from_slice(&secs.to_be_bytes());
                out.extend_from_slice(&[*target, *value]);
                let len = u8::try_from(reason.len()).unwrap_or(u8::MAX);
                out.push(len);
                out.extend_from_slice(reason.get(..usize::from(len)).unwrap_or(reason));
            }
            Record::Role {
                key,
                secs,
                action,
                subject,
            } => {
                out.extend_from_slice(&[3, *key]);
                out.extend_from_slice(&secs.to_be_bytes());
                out.extend_from_slice(&[*action, *subject]);
            }
        }
    }
    out
}

/// Builds entries from fuzzer-chosen fields, signs each with one of the fixed keys (so
/// malformed but signed Automerge changes reach the replica), and ingests them (see
/// [`ingest_and_check`]).
pub fn run_signed_changes(data: &[u8]) -> SignedRun {
    let mut input = Input::new(data);
    let flags = input.u8().unwrap_or(0);
    let raw = flags & FLAG_RAW_CHANGES != 0;
    let subwiki = genesis().subwiki();
    let mut run = SignedRun::default();
    let mut docs: Vec<DocId> = Vec::new();
    let mut ids: Vec<EntryId> = vec![genesis().id()];
    let mut entries = Vec::new();
    while run.signed + run.refused < MAX_RECORDS {
        let Some(op) = input.u8() else { break };
        let signer = key(input.u8_or_0());
        let secs = input.u16_or_0();
        let timestamp = Timestamp(GENESIS_TIME.0 + u64::from(secs) * 1000);
        let change = |input: &mut Input<'_>| {
            let bytes = input.chunk();
            if raw {
                let mut chunk = bytes.to_vec();
                fix_checksum(&mut chunk);
                chunk
            } else {
                wrap_change(bytes)
            }
        };
        let payload = match op % 4 {
            0 => {
                let kind = match input.u8_or_0() % 4 {
                    0 => DocKind::Post,
                    1 => DocKind::Comment,
                    2 => DocKind::Profile,
                    _ => DocKind::Info,
                };
                let parent = pick_optional_doc(input.u8_or_0(), &docs);
                let reply_to = pick_optional_doc(input.u8_or_0(), &docs);
                Payload::CreateDocument(CreateDocument {
                    kind,
                    parent,
                    reply_to,
                    change: change(&mut input),
                })
            }
            1 => {
                let selector = input.u8_or_0();
                let doc = if selector & 0x80 != 0 {
                    pick(selector & 0x7f, &ids).map(DocId::from)
                } else {
                    pick(selector, &docs)
                }
                .unwrap_or(DocId::from_bytes([selector; 32]));
                Payload::Change(DocChange {
                    doc,
                    change: change(&mut input),
                })
            }
            2 => {
                let selector = input.u8_or_0();
                let target = if selector & 0x80 != 0 {
                    VoteTarget::Author(key_from(selector).id())
                } else {
                    VoteTarget::Post(
                        pick(selector, &docs).unwrap_or(DocId::from_bytes([selector; 32])),
                    )
                };
                let value = match input.u8_or_0() % 7 {
                    0 => VoteValue::Hide,
                    1 => VoteValue::Keep,
                    2 => VoteValue::Misleading,
                    3 => VoteValue::Verified,
                    4 => VoteValue::Withdraw,
                    5 => VoteValue::Mute,
                    _ => VoteValue::Unmute,
                };
                let len = input.u8_or_0();
                let reason = String::from_utf8_lossy(input.bytes(usize::from(len))).into_owned();
                Payload::Vote(Vote {
                    target,
                    value,
                    reason,
                })
            }
            _ => {
                let action = match input.u8_or_0() % 4 {
                    0 => RoleAction::AppointModerator,
                    1 => RoleAction::RemoveModerator,
                    2 => RoleAction::Vouch,
                    _ => RoleAction::Revoke,
                };
                let subject = key(input.u8_or_0()).id();
                Payload::Role(RoleStatement { action, subject })
            }
        };
        let creates = matches!(payload, Payload::CreateDocument(_));
        match Entry::sign(signer, Some(subwiki), timestamp, payload) {
            Ok(entry) => {
                run.signed += 1;
                if creates {
                    docs.push(entry.id().into());
                }
                ids.push(entry.id());
                entries.push(entry);
            }
            Err(_) => run.refused += 1,
        }
    }
    ingest_and_check(flags, entries);
    run
}

fn key_from(selector: u8) -> &'static AuthorKey {
    key(selector & 0x7f)
}

fn pick<T: Copy>(selector: u8, items: &[T]) -> Option<T> {
    let len = items.len();
    if len == 0 {
        return None;
    }
    items.get(usize::from(selector) % len).copied()
}

fn pick_optional_doc(selector: u8, docs: &[DocId]) -> Option<DocId> {
    match selector {
        0 => None,
        n => Some(pick(n - 1, docs).unwrap_or(DocId::from_bytes([n; 32]))),
    }
}

/// Puts an Automerge change chunk header (magic, checksum, type "change", length) in front of
/// a change body, so that mutations of the body keep a well-formed envelope with a checksum
/// that matches.
pub fn wrap_change(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&AUTOMERGE_MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.push(CHUNK_TYPE_CHANGE);
    let mut len = body.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    fix_checksum(&mut out);
    out
}

/// Sets an Automerge chunk's checksum (bytes 4..8) to the first four bytes of the SHA-256 of
/// everything after it (chunk type, length, data), which is what it must be when the length is
/// right. Leaves chunks shorter than a header alone.
pub fn fix_checksum(chunk: &mut [u8]) {
    let Some(covered) = chunk.get(8..) else {
        return;
    };
    let hash = sha256(covered);
    if let (Some(checksum), Some(first)) = (chunk.get_mut(4..8), hash.get(..4)) {
        checksum.copy_from_slice(first);
    }
}

/// SHA-256 (FIPS 180-4), here so that the harness needs nothing but `agora_crdt` and std.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, w) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(*w);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, add) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(add);
        }
    }
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(h) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// The body of an Automerge change chunk: what follows magic, checksum, type and length.
/// `None` if `chunk` is not a whole change chunk.
pub fn change_body(chunk: &[u8]) -> Option<&[u8]> {
    if chunk.get(..4)? != AUTOMERGE_MAGIC || *chunk.get(8)? != CHUNK_TYPE_CHANGE {
        return None;
    }
    let mut len: u64 = 0;
    for (i, shift) in (0..64).step_by(7).enumerate() {
        let byte = *chunk.get(9 + i)?;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let body = chunk.get(10 + i..)?;
            return (body.len() as u64 == len).then_some(body);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Shared: ingestion, convergence, views.

/// Flag bit: replica A ingests all entries in one call (else one call per entry).
pub const FLAG_ONE_BATCH: u8 = 0b01;
/// Flag bit: replica A takes the entries in reverse order.
pub const FLAG_REVERSE: u8 = 0b10;
/// Flag bit: after ingesting, make local edits on A's documents (slow, so the fuzzer chooses).
pub const FLAG_LOCAL_EDITS: u8 = 0b1000;

/// Ingests `entries` into two replicas of the fixed subwiki: A in the order and batching chosen
/// by `flags`, B in the opposite order and the other batching (then everything again, as
/// duplicates). Checks that they converge and reads every view of A. With
/// [`FLAG_LOCAL_EDITS`], it then makes local edits on A's documents (as a user would on hostile
/// documents) and reads the views again.
pub fn ingest_and_check(flags: u8, mut entries: Vec<Entry>) {
    if flags & FLAG_REVERSE != 0 {
        entries.reverse();
    }
    let one_batch = flags & FLAG_ONE_BATCH != 0;
    let mut a = fresh_replica();
    let mut b = fresh_replica();
    if one_batch {
        a.ingest(entries.iter().cloned());
        for entry in entries.iter().rev() {
            b.ingest([entry.clone()]);
        }
    } else {
        for entry in &entries {
            a.ingest([entry.clone()]);
        }
        b.ingest(entries.iter().rev().cloned());
    }
    let again = b.ingest(entries.iter().cloned());
    assert!(
        again.accepted.is_empty() || !oracle("converge"),
        "entries already held or refused must not be accepted again: {:?}",
        again.accepted
    );
    if oracle("converge") {
        assert_converged(&a, &b);
    }
    exercise_views(&a);
    if flags & FLAG_LOCAL_EDITS != 0 {
        exercise_local_edits(&mut a);
        exercise_views(&a);
    }
}

/// Asserts that two replicas hold the same state.
pub fn assert_converged(a: &Replica, b: &Replica) {
    let held = |r: &Replica| {
        let mut ids: Vec<EntryId> = r.entries().map(Entry::id).collect();
        ids.sort();
        ids
    };
    assert_eq!(held(a), held(b), "replicas hold different entries");
    assert_eq!(
        a.pending(),
        b.pending(),
        "replicas have different pending entries"
    );
    assert_eq!(
        a.equivocations(),
        b.equivocations(),
        "replicas see different equivocations"
    );
    assert_eq!(
        a.doc_ids(),
        b.doc_ids(),
        "replicas hold different documents"
    );
    for doc in a.doc_ids() {
        assert_eq!(a.heads(&doc), b.heads(&doc), "heads of {doc} differ");
        if oracle("converge-content") {
            assert_eq!(a.content(&doc), b.content(&doc), "content of {doc} differs");
        }
        if oracle("converge-history") {
            assert_eq!(a.history(&doc), b.history(&doc), "history of {doc} differs");
        }
    }
}

/// Reads every view of a replica.
pub fn exercise_views(replica: &Replica) {
    let _ = (replica.id(), replica.genesis(), replica.founder());
    let _ = (replica.len(), replica.is_empty(), replica.genesis_entry());
    for entry in replica.entries() {
        assert!(replica.contains(&entry.id()), "an entry listed is held");
        let _ = replica.entry(&entry.id());
    }
    let _ = replica.votes().count() + replica.role_statements().count();
    let _ = replica.pending();
    let _ = replica.equivocations();
    let _ = replica.feed_keys().count();
    let mut cursor = None;
    for _ in 0..64 {
        let page = replica.feed(cursor, 2);
        for item in &page.items {
            let _ = replica.comments(&item.meta.id);
        }
        let Some(next) = page.next else { break };
        if oracle("cursor") {
            let parsed = next.to_string().parse::<FeedCursor>();
            assert!(
                parsed == Ok(next),
                "a feed cursor must survive its printable form"
            );
        }
        cursor = Some(next);
    }
    for doc in replica.doc_ids() {
        let _ = replica.doc_meta(&doc);
        let _ = replica.content(&doc);
        let _ = replica.heads(&doc);
        let _ = replica.post(&doc);
        let _ = replica.comments(&doc);
        let _ = replica.save_document(&doc);
        for item in replica.history(&doc).unwrap_or_default() {
            let read = replica.content_at(&doc, &item.version.into());
            if item.status == ChangeStatus::Applied && oracle("content_at") {
                assert!(
                    read.is_ok(),
                    "an applied version of {doc} must be readable: {read:?}"
                );
            }
        }
    }
    for key in keys() {
        let _ = replica.display_name(&key.id());
    }
}

/// Local operations a user may make on documents that came from others: edit posts (on the
/// latest version, as `agora post edit` does, and on the version read, as the web editor
/// does) and revert them, answer comments, edit their profile. Errors are fine; panics are
/// not, and a post stays readable, unchanged by an edit that failed (oracle `local-edit`).
pub fn exercise_local_edits(replica: &mut Replica) {
    let [founder, alice, bob] = keys();
    let docs = replica.doc_ids();
    for doc in docs.iter().take(4) {
        let Some(meta) = replica.doc_meta(doc).cloned() else {
            continue;
        };
        match meta.kind {
            DocKind::Post => {
                let edited = PostContent {
                    title: "Edited by the fuzz harness".into(),
                    body: "A new first line.\nFirst post.\n".into(),
                    link: Some("https://example.org/edited".into()),
                    images: vec![BlobHash::of(b"image")],
                    tags: vec!["edited".into()],
                    card: None,
                };
                let read = replica.post(doc).map(|p| p.version);
                let before = replica.content(doc);
                let outcome = replica.edit_post(bob, LOCAL_TIME, *doc, &Base::Latest, edited);
                check_local_edit(replica, doc, &before, outcome.is_err());
                if let Some(version) = read {
                    let edited = PostContent {
                        title: "Edited from the version read".into(),
                        body: "First post.\nA new last line.\n".into(),
                        ..PostContent::default()
                    };
                    let before = replica.content(doc);
                    let at = Timestamp(LOCAL_TIME.0 + 3);
                    let outcome = replica.edit_post(founder, at, *doc, &Base::At(version), edited);
                    check_local_edit(replica, doc, &before, outcome.is_err());
                }
                let first = replica
                    .history(doc)
                    .and_then(|h| h.first().map(|i| i.version));
                if let Some(version) = first {
                    let before = replica.content(doc);
                    let at = Timestamp(LOCAL_TIME.0 + 1);
                    let outcome = replica.revert(alice, at, *doc, version);
                    check_local_edit(replica, doc, &before, outcome.is_err());
                }
            }
            DocKind::Comment => {
                let post = meta.parent.unwrap_or(*doc);
                let _ = replica.comment(founder, LOCAL_TIME, post, Some(*doc), "An answer.");
            }
            DocKind::Profile | DocKind::Info => {}
        }
    }
    for key in [founder, alice] {
        let profile = ProfileContent {
            name: "Edited name".into(),
            bio: "Edited bio".into(),
        };
        let _ = replica.set_profile(key, Timestamp(LOCAL_TIME.0 + 2), profile);
    }
}

/// After a local edit of a post: it is still readable, and unchanged if the edit failed.
fn check_local_edit(replica: &Replica, doc: &DocId, before: &Option<Content>, failed: bool) {
    if !oracle("local-edit") {
        return;
    }
    assert!(
        replica.post(doc).is_some(),
        "{doc} must stay readable after a local edit"
    );
    if failed {
        assert!(
            replica.content(doc) == *before,
            "a local edit of {doc} that failed must change nothing"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds: real, valid entries of the fixed subwiki.

/// Every kind of entry, made through the replica's own API in one subwiki, in an order in which
/// each can be ingested: genesis, post create, edits (two of them concurrent), comment and
/// reply, profile create and edit, votes, roles, a revert. Deterministic: built once per run.
pub fn seed_entries() -> &'static [(&'static str, Entry)] {
    static SEEDS: OnceLock<Vec<(&'static str, Entry)>> = OnceLock::new();
    SEEDS.get_or_init(|| match build_seed_entries() {
        Ok(seeds) => seeds,
        Err(e) => unreachable!("seed entries must build: {e}"),
    })
}

fn build_seed_entries() -> Result<Vec<(&'static str, Entry)>, Box<dyn std::error::Error>> {
    let [founder, alice, bob] = keys();
    let at = |secs: u64| Timestamp(GENESIS_TIME.0 + secs * 1000);
    let missing = || "an edit that changes nothing";
    let mut out = vec![("genesis", genesis().clone())];
    let mut r = fresh_replica();
    let post = r.create_post(
        alice,
        at(1),
        PostContent {
            title: "Hello".into(),
            body: "First post.\nSecond line.".into(),
            link: Some("https://example.org/a".into()),
            images: vec![BlobHash::of(b"picture")],
            tags: vec!["rust".into(), "fuzz".into()],
            card: None,
        },
    )?;
    let post_id = DocId::from(post.id());
    out.push(("post-create", post.clone()));
    // A concurrent edit, made on another replica that has only seen the post.
    let mut other = fresh_replica();
    other.ingest([post.clone()]);
    let concurrent = other
        .edit_post(
            founder,
            at(2),
            post_id,
            &Base::Latest,
            PostContent {
                title: "Hello".into(),
                body: "First post.\nSecond line, by the founder.".into(),
                link: Some("https://example.org/a".into()),
                images: vec![],
                tags: vec!["rust".into(), "fuzz".into(), "founder".into()],
                card: None,
            },
        )?
        .ok_or_else(missing)?;
    let edit = r
        .edit_post(
            bob,
            at(3),
            post_id,
            &Base::Latest,
            PostContent {
                title: "Hello, world".into(),
                body: "First post, edited.\nSecond line.".into(),
                link: None,
                images: vec![BlobHash::of(b"picture")],
                tags: vec!["rust".into()],
                card: None,
            },
        )?
        .ok_or_else(missing)?;
    out.push(("post-edit", edit));
    r.ingest([concurrent.clone()]);
    out.push(("post-edit-concurrent", concurrent));
    let merge = r
        .edit_post(
            alice,
            at(4),
            post_id,
            &Base::Latest,
            PostContent {
                title: "Hello, world!".into(),
                body: "First post, edited.\nSecond line, by the founder.\nThird.".into(),
                link: Some("https://example.org/b".into()),
                images: vec![],
                tags: vec!["rust".into(), "merged".into()],
                card: None,
            },
        )?
        .ok_or_else(missing)?;
    out.push(("post-edit-merge", merge));
    let comment = r.comment(bob, at(5), post_id, None, "Nice post.")?;
    let comment_id = DocId::from(comment.id());
    out.push(("comment", comment));
    let reply = r.comment(alice, at(6), post_id, Some(comment_id), "Thanks!")?;
    out.push(("comment-reply", reply));
    let profile = r
        .set_profile(
            alice,
            at(7),
            ProfileContent {
                name: "Alice".into(),
                bio: "Writes about Rust.".into(),
            },
        )?
        .ok_or_else(missing)?;
    out.push(("profile-create", profile));
    let profile_edit = r
        .set_profile(
            alice,
            at(8),
            ProfileContent {
                name: "Alice A.".into(),
                bio: "Writes about Rust and fuzzing.".into(),
            },
        )?
        .ok_or_else(missing)?;
    out.push(("profile-edit", profile_edit));
    let hide = r.vote(
        bob,
        at(9),
        VoteTarget::Post(post_id),
        VoteValue::Hide,
        "off topic",
    )?;
    out.push(("vote-hide", hide));
    let mute = r.vote(
        founder,
        at(10),
        VoteTarget::Author(bob.id()),
        VoteValue::Mute,
        "",
    )?;
    out.push(("vote-mute", mute));
    let vouch = r.state_role(founder, at(11), RoleAction::Vouch, alice.id())?;
    out.push(("role-vouch", vouch));
    let appoint = r.state_role(founder, at(12), RoleAction::AppointModerator, bob.id())?;
    out.push(("role-appoint", appoint));
    let revert = r
        .revert(alice, at(13), post_id, post.id())?
        .ok_or_else(missing)?;
    out.push(("post-revert", revert));
    Ok(out)
}

/// Seed inputs for each target, as (target, file name, bytes).
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let seeds = seed_entries();
    let mut out = Vec::new();
    for (name, entry) in seeds {
        out.push(("validate", (*name).to_owned(), entry.bytes().to_vec()));
    }
    let all: Vec<&[u8]> = seeds.iter().map(|(_, e)| e.bytes()).collect();
    let reversed: Vec<&[u8]> = all.iter().rev().copied().collect();
    out.push((
        "replica",
        "all-in-order-local-edits".into(),
        join_chunks(FLAG_LOCAL_EDITS, &all),
    ));
    out.push((
        "replica",
        "all-reversed-one-batch".into(),
        join_chunks(FLAG_ONE_BATCH, &reversed),
    ));
    let posts: Vec<&[u8]> = seeds
        .iter()
        .filter(|(n, _)| n.starts_with("post") || n.starts_with("comment"))
        .map(|(_, e)| e.bytes())
        .collect();
    out.push((
        "replica",
        "post-thread".into(),
        join_chunks(FLAG_REVERSE, &posts),
    ));
    // The same history as records, for `signed_changes`: docs are numbered in creation order
    // (post 0, comment 1, reply 2, profile 3), keys by index.
    let records = seed_records(seeds);
    out.push((
        "signed_changes",
        "all-in-order-local-edits".into(),
        encode_records(FLAG_LOCAL_EDITS, &records),
    ));
    let raw: Vec<Record> = seed_records_raw(seeds);
    out.push((
        "signed_changes",
        "all-raw-one-batch".into(),
        encode_records(FLAG_RAW_CHANGES | FLAG_ONE_BATCH, &raw),
    ));
    out
}

fn seed_records(seeds: &[(&'static str, Entry)]) -> Vec<Record> {
    records_from(seeds, |chunk| change_body(chunk).unwrap_or(chunk).to_vec())
}

fn seed_records_raw(seeds: &[(&'static str, Entry)]) -> Vec<Record> {
    records_from(seeds, <[u8]>::to_vec)
}

fn records_from(seeds: &[(&'static str, Entry)], change: impl Fn(&[u8]) -> Vec<u8>) -> Vec<Record> {
    let key_index = |entry: &Entry| -> u8 {
        let index = keys().iter().position(|k| k.id() == entry.author());
        index.and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
    };
    let secs = |entry: &Entry| -> u16 {
        let secs = entry.timestamp().0.saturating_sub(GENESIS_TIME.0) / 1000;
        u16::try_from(secs).unwrap_or(u16::MAX)
    };
    let mut docs: Vec<DocId> = Vec::new();
    let doc_index = |docs: &[DocId], doc: DocId| -> u8 {
        let index = docs.iter().position(|d| *d == doc);
        index.and_then(|i| u8::try_from(i).ok()).unwrap_or(0x7f)
    };
    let mut out = Vec::new();
    for (_, entry) in seeds {
        let (key, secs) = (key_index(entry), secs(entry));
        match entry.payload() {
            // Not generated by the fuzzer yet: retractions are exercised by the property
            // tests (`crdt/tests/determinism.rs`).
            Payload::Genesis(_) | Payload::Retract(_) => {}
            Payload::CreateDocument(c) => {
                let kind = match c.kind {
                    DocKind::Post => 0,
                    DocKind::Comment => 1,
                    DocKind::Profile => 2,
                    DocKind::Info => 3,
                };
                let optional = |d: Option<DocId>| d.map_or(0, |d| doc_index(&docs, d) + 1);
                out.push(Record::Create {
                    key,
                    secs,
                    kind,
                    parent: optional(c.parent),
                    reply_to: optional(c.reply_to),
                    change: change(&c.change),
                });
                docs.push(entry.id().into());
            }
            Payload::Change(c) => out.push(Record::Change {
                key,
                secs,
                doc: doc_index(&docs, c.doc),
                change: change(&c.change),
            }),
            Payload::Vote(v) => {
                let target = match v.target {
                    VoteTarget::Post(d) => doc_index(&docs, d),
                    VoteTarget::Author(a) => {
                        let index = keys().iter().position(|k| k.id() == a);
                        0x80 | index.and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
                    }
                };
                let value = match v.value {
                    VoteValue::Hide => 0,
                    VoteValue::Keep => 1,
                    VoteValue::Misleading => 2,
                    VoteValue::Verified => 3,
                    VoteValue::Withdraw => 4,
                    VoteValue::Mute => 5,
                    VoteValue::Unmute => 6,
                };
                out.push(Record::Vote {
                    key,
                    secs,
                    target,
                    value,
                    reason: v.reason.as_bytes().to_vec(),
                });
            }
            Payload::Role(r) => {
                let action = match r.action {
                    RoleAction::AppointModerator => 0,
                    RoleAction::RemoveModerator => 1,
                    RoleAction::Vouch => 2,
                    RoleAction::Revoke => 3,
                };
                let subject = keys().iter().position(|k| k.id() == r.subject);
                out.push(Record::Role {
                    key,
                    secs,
                    action,
                    subject: subject.and_then(|i| u8::try_from(i).ok()).unwrap_or(0),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Input reading.

/// Reads fuzzer bytes front to back, never past the end.
#[derive(Debug)]
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(*first)
    }

    fn u8_or_0(&mut self) -> u8 {
        self.u8().unwrap_or(0)
    }

    fn u16_or_0(&mut self) -> u16 {
        u16::from_be_bytes([self.u8_or_0(), self.u8_or_0()])
    }

    /// Up to `n` bytes: fewer if the input ends first.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// A `u16`-length-prefixed byte string.
    fn chunk(&mut self) -> &'a [u8] {
        let len = self.u16_or_0();
        self.bytes(usize::from(len))
    }
}
