//! Shared helpers for the crdt integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agora_crdt::{
    AuthorKey, ChangeStatus, Content, DocChange, DocId, Entry, EntryId, Equivocation, FeedCursor,
    HistoryItem, Payload, Policy, PostContent, Replica, Source, Timestamp,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const T0: u64 = 1_700_000_000_000;

/// Cases per property test: 256, or `AGORA_PROPTEST_CASES` (for example 10000 for a long run).
pub fn cases() -> u32 {
    std::env::var("AGORA_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

pub fn key(n: u8) -> AuthorKey {
    AuthorKey::from_secret([n; 32], [n; 8])
}

pub fn post(title: &str, body: &str) -> PostContent {
    PostContent {
        title: title.into(),
        body: body.into(),
        ..Default::default()
    }
}

/// A founded subwiki, open edit policy.
pub fn founded(founder: &AuthorKey) -> Replica {
    Replica::found(
        founder,
        Timestamp(T0),
        "test",
        "a test subwiki",
        Policy::default(),
    )
    .expect("found")
    .0
}

/// A fresh replica of the same subwiki as `other`.
pub fn fresh(other: &Replica) -> Replica {
    Replica::new(other.genesis_entry().clone()).expect("genesis")
}

/// Gives `to` every entry `from` holds.
pub fn sync(from: &Replica, to: &mut Replica) {
    let entries: Vec<_> = from.entries().cloned().collect();
    to.ingest(entries);
}

/// A document's id, contents, heads and history.
pub type DocSnapshot = (
    DocId,
    Option<Content>,
    Vec<agora_crdt::ChangeHash>,
    Vec<HistoryItem>,
);

/// Everything a reader can observe of a replica, in a comparable form.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: Vec<EntryId>,
    /// Id, title, body, edits, comments, and the statement that retracted it if it was.
    pub feed: Vec<(DocId, String, String, usize, usize, Option<EntryId>)>,
    pub docs: Vec<DocSnapshot>,
    pub tombstones: Vec<agora_crdt::Tombstone>,
    pub equivocations: Vec<Equivocation>,
    pub pending: Vec<EntryId>,
}

pub fn snapshot(r: &Replica) -> Snapshot {
    let mut entries: Vec<EntryId> = r.entry_ids().copied().collect();
    entries.sort();
    let mut feed = Vec::new();
    let mut cursor: Option<FeedCursor> = None;
    loop {
        let page = r.feed(cursor, 3);
        for p in &page.items {
            feed.push((
                p.meta.id,
                p.content.title.clone(),
                p.content.body.clone(),
                p.edits,
                p.comments,
                p.retracted.as_ref().map(|t| t.by),
            ));
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let docs = r
        .doc_ids()
        .into_iter()
        .map(|d| {
            (
                d,
                r.content(&d),
                r.heads(&d).unwrap(),
                r.history(&d).unwrap(),
            )
        })
        .collect();
    let mut tombstones: Vec<agora_crdt::Tombstone> = r.tombstones().cloned().collect();
    tombstones.sort_by_key(|t| t.meta.id);
    Snapshot {
        entries,
        feed,
        docs,
        tombstones,
        equivocations: r.equivocations(),
        pending: r.pending(),
    }
}

/// Applied history items only.
pub fn applied(history: &[HistoryItem]) -> usize {
    history
        .iter()
        .filter(|h| h.status == ChangeStatus::Applied)
        .count()
}

/// A tiny deterministic RNG (xorshift64*), for shuffles driven by a proptest seed.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// A founded subwiki with the given policy.
pub fn founded_with(founder: &AuthorKey, policy: Policy) -> Replica {
    Replica::found(founder, Timestamp(T0), "test", "a test subwiki", policy)
        .expect("found")
        .0
}

/// Signs an entry of `replica`'s subwiki, as any client (honest or not) could.
pub fn sign(replica: &Replica, key: &AuthorKey, t: Timestamp, payload: Payload) -> Entry {
    Entry::sign(key, Some(replica.id()), t, payload).expect("sign")
}

/// A change to `doc` that makes it read `post`, made on `replica`'s view of it by `key`'s
/// device, without asking the replica whether the edit is allowed: what a modified client
/// would send. Not ingested.
pub fn forge_edit(
    replica: &Replica,
    key: &AuthorKey,
    t: Timestamp,
    doc: DocId,
    post: PostContent,
) -> Entry {
    forge_change(replica, key, t, doc, &Content::Post(post))
}

/// Like [`forge_edit`], for any document: a change making `doc` read `content`.
pub fn forge_change(
    replica: &Replica,
    key: &AuthorKey,
    t: Timestamp,
    doc: DocId,
    content: &Content,
) -> Entry {
    let saved = replica.save_document(&doc).expect("document");
    let mut am = automerge::Automerge::load(&saved)
        .expect("load")
        .with_actor(key.actor());
    let mut tx = am.transaction();
    content.write(&mut tx).expect("write");
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(t.as_secs()));
    let change = am
        .get_last_local_change()
        .expect("a change")
        .raw_bytes()
        .to_vec();
    sign(replica, key, t, Payload::Change(DocChange { doc, change }))
}

/// A fresh replica of `genesis` given `entries` in a shuffled order, with about a third
/// duplicated, in random batches of 1 to 8.
pub fn deliver_shuffled(genesis: &Entry, entries: &[Entry], seed: u64) -> Replica {
    let mut rng = Rng(seed);
    let mut order: Vec<Entry> = entries.to_vec();
    for e in entries {
        if rng.below(3) == 0 {
            order.push(e.clone());
        }
    }
    rng.shuffle(&mut order);
    let mut replica = Replica::new(genesis.clone()).expect("genesis");
    let mut rest = order.as_slice();
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(8));
        let (batch, tail) = rest.split_at(n);
        replica.ingest(batch.to_vec());
        rest = tail;
    }
    // Everything offered once more, as catch-up does: a purge that the final roles undo (a
    // moderator's redaction, then that moderator removed) dropped entries that come back.
    replica.ingest(entries.to_vec());
    replica
}

/// A [`Source`] in memory, the way a node's store serves a replica: it holds the entries the
/// replica released and the snapshots it saved, and counts what it was asked.
#[derive(Debug, Default)]
pub struct MemorySource {
    pub entries: Mutex<HashMap<EntryId, Entry>>,
    pub snapshots: Mutex<HashMap<DocId, Vec<u8>>>,
    pub snapshot_reads: AtomicUsize,
    pub snapshot_saves: AtomicUsize,
}

impl MemorySource {
    pub fn hold(&self, entries: &[Entry]) {
        let mut held = self.entries.lock().unwrap();
        for e in entries {
            held.insert(e.id(), e.clone());
        }
    }
}

impl Source for MemorySource {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry> {
        let held = self.entries.lock().unwrap();
        ids.iter().filter_map(|id| held.get(id).cloned()).collect()
    }
    fn snapshot(&self, doc: &DocId) -> Option<Vec<u8>> {
        self.snapshot_reads.fetch_add(1, Ordering::Relaxed);
        self.snapshots.lock().unwrap().get(doc).cloned()
    }
    fn save_snapshot(&self, doc: &DocId, bytes: Vec<u8>) {
        self.snapshot_saves.fetch_add(1, Ordering::Relaxed);
        self.snapshots.lock().unwrap().insert(*doc, bytes);
    }
}

/// Ingests `entries` into `replica` the way a node does: the source stores them, then the
/// replica lets go of them.
pub fn ingest_and_release(replica: &mut Replica, source: &MemorySource, entries: Vec<Entry>) {
    source.hold(&entries);
    let report = replica.ingest(entries);
    replica.release(report.accepted.iter());
}
