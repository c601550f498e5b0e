//! One test suite, run against every store implementation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use agora_crdt::{
    AuthorKey, Base, DocId, Entry, EntryId, Policy, PostContent, Purged, Replica, SubwikiId,
    Timestamp, VoteTarget, VoteValue,
};

use super::{MAX_BLOB_BYTES, MemoryStore, SledStore, Store, SubwikiRecord};

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn key(n: u8) -> AuthorKey {
    AuthorKey::from_secret([n; 32], [n; 8])
}

/// A subwiki with `posts` posts (one edit and one vote each); returns its replica and every
/// entry, genesis first.
pub(super) fn subwiki(founder: u8, name: &str, posts: u64, start: u64) -> (Replica, Vec<Entry>) {
    let k = key(founder);
    let (mut r, genesis) = Replica::found(&k, Timestamp(T0), name, "", Policy::default()).unwrap();
    let mut entries = vec![genesis];
    for i in 0..posts {
        let t = Timestamp(T0 + start + i * 10);
        let post = PostContent {
            title: format!("{name} {i}"),
            body: "body".into(),
            ..Default::default()
        };
        let created = r.create_post(&k, t, post.clone()).unwrap();
        let id: DocId = created.id().into();
        entries.push(created);
        let edited = PostContent {
            body: "body, edited".into(),
            ..post
        };
        entries.push(
            r.edit_post(&k, Timestamp(t.0 + 1), id, &Base::Latest, edited)
                .unwrap()
                .unwrap(),
        );
        entries.push(
            r.vote(
                &k,
                Timestamp(t.0 + 2),
                VoteTarget::Post(id),
                VoteValue::Keep,
                "",
            )
            .unwrap(),
        );
    }
    (r, entries)
}

fn both(test: impl Fn(&dyn Store)) {
    test(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    test(&SledStore::open(dir.path()).unwrap());
}

#[test]
fn entries_round_trip_and_duplicates_are_counted() {
    both(|store| {
        let (_, entries) = subwiki(1, "a", 3, 100);
        let put = store.put_entries(&entries).unwrap();
        assert_eq!(put.new.len(), entries.len());
        assert_eq!(put.existing, 0);
        let again = store.put_entries(&entries[..2]).unwrap();
        assert!(again.new.is_empty());
        assert_eq!(again.existing, 2);
        assert_eq!(store.len().unwrap(), entries.len());
        let subwiki = entries[0].subwiki();
        assert_eq!(store.count(&subwiki).unwrap(), entries.len());
        // Duplicates within one call are counted once too.
        let twice = [entries[1].clone(), entries[1].clone()];
        assert_eq!(store.put_entries(&twice).unwrap().existing, 2);
        assert_eq!(store.count(&subwiki).unwrap(), entries.len());
        assert_eq!(store.len().unwrap(), entries.len());
        for e in &entries {
            assert!(store.contains(&e.id()).unwrap());
            assert_eq!(store.entry(&e.id()).unwrap().unwrap().bytes(), e.bytes());
        }
        assert!(
            store
                .entry(&EntryId::from_bytes([9; 32]))
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn items_are_the_subwikis_entries_in_time_order() {
    both(|store| {
        let (a, ea) = subwiki(1, "a", 3, 100);
        let (b, eb) = subwiki(2, "b", 2, 50);
        store.put_entries(&eb).unwrap();
        store.put_entries(&ea).unwrap();
        let items = store.items(&a.id()).unwrap();
        let mut expected: Vec<(Timestamp, EntryId)> =
            ea.iter().map(|e| (e.timestamp(), e.id())).collect();
        expected.sort();
        assert_eq!(items, expected);
        assert_eq!(store.items(&b.id()).unwrap().len(), eb.len());
        assert_eq!(store.count(&a.id()).unwrap(), ea.len());
        assert_eq!(store.count(&b.id()).unwrap(), eb.len());
        assert_eq!(store.len().unwrap(), ea.len() + eb.len());
        assert_eq!(store.count(&SubwikiId::from_bytes([0; 32])).unwrap(), 0);
        let loaded = store.load(&a.id()).unwrap();
        assert!(loaded.corrupt.is_empty());
        let ids: Vec<(Timestamp, EntryId)> = loaded
            .entries
            .iter()
            .map(|e| (e.timestamp(), e.id()))
            .collect();
        assert_eq!(ids, expected);
        assert!(
            store
                .items(&SubwikiId::from_bytes([0; 32]))
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn the_feed_merges_subwikis_newest_first_and_pages() {
    both(|store| {
        let (a, ea) = subwiki(1, "a", 5, 100);
        let (b, eb) = subwiki(2, "b", 5, 105);
        let (c, ec) = subwiki(3, "c", 5, 0);
        for e in [&ea, &eb, &ec] {
            store.put_entries(e).unwrap();
        }
        let mut expected: Vec<(Timestamp, DocId)> = Vec::new();
        for r in [&a, &b] {
            expected.extend(
                r.feed(None, 100)
                    .items
                    .iter()
                    .map(|p| (p.meta.created_at, p.meta.id)),
            );
        }
        expected.sort();
        expected.reverse();
        let wanted = [a.id(), b.id()];
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store.feed(&wanted, before, 3).unwrap();
            if page.is_empty() {
                break;
            }
            seen.extend(page.iter().map(|k| (k.created_at, k.post)));
            let last = page.last().unwrap();
            assert!(wanted.contains(&last.subwiki));
            before = Some((last.created_at, last.post));
        }
        assert_eq!(seen, expected);
        assert_eq!(store.feed(&[c.id()], None, 100).unwrap().len(), 5);
        assert!(store.feed(&[], None, 100).unwrap().is_empty());
    });
}

#[test]
fn removed_entries_leave_no_index_keys() {
    both(|store| {
        let (a, ea) = subwiki(1, "a", 2, 100);
        store.put_entries(&ea).unwrap();
        let post = ea[1].id();
        store.remove_entries(&[post]).unwrap();
        assert!(!store.contains(&post).unwrap());
        assert!(
            !store
                .items(&a.id())
                .unwrap()
                .iter()
                .any(|(_, id)| *id == post)
        );
        assert_eq!(store.feed(&[a.id()], None, 10).unwrap().len(), 1);
        assert_eq!(store.count(&a.id()).unwrap(), ea.len() - 1);
        assert_eq!(store.len().unwrap(), ea.len() - 1);
        // Removing what is not held changes nothing.
        store
            .remove_entries(&[post, EntryId::from_bytes([9; 32])])
            .unwrap();
        assert_eq!(store.count(&a.id()).unwrap(), ea.len() - 1);
        assert_eq!(store.len().unwrap(), ea.len() - 1);
        store.remove_entries(&[ea[2].id(), ea[3].id()]).unwrap();
        assert_eq!(store.count(&a.id()).unwrap(), ea.len() - 3);
        assert_eq!(
            store.count(&a.id()).unwrap(),
            store.items(&a.id()).unwrap().len()
        );
        assert_eq!(store.len().unwrap(), ea.len() - 3);
    });
}

#[test]
fn subwikis_snapshots_and_blobs() {
    both(|store| {
        let id = SubwikiId::from_bytes([4; 32]);
        store
            .set_subwiki(SubwikiRecord { id, joined: true })
            .unwrap();
        assert_eq!(
            store.subwikis().unwrap(),
            vec![SubwikiRecord { id, joined: true }]
        );
        store
            .set_subwiki(SubwikiRecord { id, joined: false })
            .unwrap();
        assert_eq!(
            store.subwikis().unwrap(),
            vec![SubwikiRecord { id, joined: false }]
        );

        let doc = DocId::from_bytes([5; 32]);
        assert!(store.snapshot(&doc).unwrap().is_none());
        store.put_snapshots(&[(doc, b"one".to_vec())]).unwrap();
        store.put_snapshots(&[(doc, b"two".to_vec())]).unwrap();
        assert_eq!(store.snapshot(&doc).unwrap().as_deref(), Some(&b"two"[..]));
        store.rebuild_indexes().unwrap();
        assert!(
            store.snapshot(&doc).unwrap().is_none(),
            "a rebuild drops snapshots"
        );

        let hash = store.put_blob(b"image bytes").unwrap();
        assert_eq!(
            store.blob(&hash).unwrap().as_deref(),
            Some(&b"image bytes"[..])
        );
        let too_big = vec![0u8; MAX_BLOB_BYTES + 1];
        assert!(store.put_blob(&too_big).is_err());
    });
}

#[test]
fn rebuilding_the_indexes_gives_the_same_indexes() {
    both(|store| {
        let (a, ea) = subwiki(1, "a", 4, 100);
        store.put_entries(&ea).unwrap();
        let items = store.items(&a.id()).unwrap();
        let feed = store.feed(&[a.id()], None, 100).unwrap();
        let rebuilt = store.rebuild_indexes().unwrap();
        assert_eq!(rebuilt.entries, ea.len());
        assert_eq!(rebuilt.posts, 4);
        assert!(rebuilt.corrupt.is_empty());
        assert_eq!(store.items(&a.id()).unwrap(), items);
        assert_eq!(store.feed(&[a.id()], None, 100).unwrap(), feed);
        assert_eq!(store.count(&a.id()).unwrap(), ea.len());
        assert_eq!(store.len().unwrap(), ea.len());
    });
}

#[test]
fn rebuilding_recounts_and_drops_damaged_entries_from_the_counts() {
    let memory = MemoryStore::new();
    check_rebuild_recount(&memory, |id, bytes| memory.damage(id, bytes));
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(dir.path()).unwrap();
    check_rebuild_recount(&sled, |id, bytes| {
        sled.raw_entries().insert(id.as_bytes(), bytes).unwrap();
    });
}

fn check_rebuild_recount(store: &dyn Store, damage: impl Fn(&EntryId, Vec<u8>)) {
    let (a, ea) = subwiki(1, "a", 3, 100);
    let (b, eb) = subwiki(2, "b", 2, 100);
    store.put_entries(&ea).unwrap();
    store.put_entries(&eb).unwrap();
    let mut bytes = ea[4].bytes().to_vec();
    bytes[10] ^= 1;
    damage(&ea[4].id(), bytes);
    let rebuilt = store.rebuild_indexes().unwrap();
    assert_eq!(rebuilt.corrupt, vec![ea[4].id()]);
    assert_eq!(store.count(&a.id()).unwrap(), ea.len() - 1);
    assert_eq!(store.count(&b.id()).unwrap(), eb.len());
    assert_eq!(store.len().unwrap(), ea.len() + eb.len() - 1);
}

/// Damages one entry's bytes through `damage`, then checks it is reported, skipped and
/// removed with its index keys (so reconciliation fetches it again), and nothing else is lost.
fn check_corruption(store: &dyn Store, damage: impl Fn(&EntryId, Vec<u8>)) {
    let (a, ea) = subwiki(1, "a", 3, 100);
    store.put_entries(&ea).unwrap();
    let victim = ea[4].id();
    let mut bytes = ea[4].bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    damage(&victim, bytes);
    let loaded = store.load(&a.id()).unwrap();
    assert_eq!(loaded.corrupt, vec![victim]);
    assert_eq!(loaded.entries.len(), ea.len() - 1);
    assert!(!store.contains(&victim).unwrap());
    assert!(
        !store
            .items(&a.id())
            .unwrap()
            .iter()
            .any(|(_, id)| *id == victim)
    );
    assert_eq!(store.count(&a.id()).unwrap(), ea.len() - 1);
    assert_eq!(store.len().unwrap(), ea.len() - 1);
    // Fetched again from a peer, it is whole again.
    store.put_entries(&ea[4..5]).unwrap();
    assert_eq!(store.load(&a.id()).unwrap().entries.len(), ea.len());
    assert_eq!(store.count(&a.id()).unwrap(), ea.len());
    assert_eq!(store.len().unwrap(), ea.len());
}

#[test]
fn a_damaged_entry_is_reported_skipped_and_refetchable_in_memory() {
    let store = MemoryStore::new();
    check_corruption(&store, |id, bytes| store.damage(id, bytes));
}

#[test]
fn a_damaged_entry_is_reported_skipped_and_refetchable_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    check_corruption(&store, |id, bytes| {
        store.raw_entries().insert(id.as_bytes(), bytes).unwrap();
    });
}

/// Entries read to be served to a peer are checked too, without decoding their changes: one
/// whose signature or body was damaged reads as not held and is removed; the others come with
/// their subwiki and exact bytes.
fn check_damage_when_served(store: &dyn Store, damage: impl Fn(&EntryId, Vec<u8>)) {
    let (a, ea) = subwiki(1, "a", 3, 100);
    store.put_entries(&ea).unwrap();
    let mut signature = ea[4].bytes().to_vec();
    let last = signature.len() - 1;
    signature[last] ^= 1;
    damage(&ea[4].id(), signature);
    let mut body = ea[5].bytes().to_vec();
    body[40] ^= 1;
    damage(&ea[5].id(), body);
    let missing = EntryId::from_bytes([7; 32]);
    let ids = [ea[3].id(), ea[4].id(), ea[5].id(), missing, ea[6].id()];
    let served = store.entry_bytes(&ids).unwrap();
    assert_eq!(
        served,
        vec![
            Some((a.id(), ea[3].bytes().to_vec())),
            None,
            None,
            None,
            Some((a.id(), ea[6].bytes().to_vec())),
        ]
    );
    assert!(!store.contains(&ea[4].id()).unwrap());
    assert!(!store.contains(&ea[5].id()).unwrap());
    assert_eq!(store.count(&a.id()).unwrap(), ea.len() - 2);
}

#[test]
fn a_damaged_entry_is_not_served_in_memory() {
    let store = MemoryStore::new();
    check_damage_when_served(&store, |id, bytes| store.damage(id, bytes));
}

#[test]
fn a_damaged_entry_is_not_served_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    check_damage_when_served(&store, |id, bytes| {
        store.raw_entries().insert(id.as_bytes(), bytes).unwrap();
    });
}

#[test]
fn the_sled_store_keeps_everything_across_reopening_and_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ea) = subwiki(1, "a", 3, 100);
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.put_entries(&ea).unwrap();
        store
            .set_subwiki(SubwikiRecord {
                id: a.id(),
                joined: true,
            })
            .unwrap();
        let second = SledStore::open(dir.path());
        assert!(
            matches!(second, Err(super::StoreError::Locked(_))),
            "{second:?}"
        );
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.len().unwrap(), ea.len());
    assert_eq!(store.count(&a.id()).unwrap(), ea.len());
    assert_eq!(store.items(&a.id()).unwrap().len(), ea.len());
    assert_eq!(store.feed(&[a.id()], None, 10).unwrap().len(), 3);
    assert_eq!(store.subwikis().unwrap().len(), 1);
}

#[test]
fn concurrent_writers_all_return_share_syncs_and_everything_is_there_after_reopening() {
    const WRITERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let (a, ea) = subwiki(1, "a", 20, 100);
    let per = ea.len().div_ceil(WRITERS);
    {
        let store = SledStore::open(dir.path()).unwrap();
        let before = store.syncs();
        let barrier = std::sync::Barrier::new(WRITERS);
        std::thread::scope(|scope| {
            for chunk in ea.chunks(per) {
                let (store, barrier) = (store.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    // One write per entry, as gossip delivers them.
                    for entry in chunk {
                        store.put_entries(std::slice::from_ref(entry)).unwrap();
                    }
                });
            }
        });
        let syncs = store.syncs() - before;
        assert!(syncs >= 1);
        assert!(
            syncs <= ea.len() as u64,
            "{syncs} syncs for {} writes",
            ea.len()
        );
        assert_eq!(store.len().unwrap(), ea.len());
        assert_eq!(store.count(&a.id()).unwrap(), ea.len());
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.len().unwrap(), ea.len());
    assert_eq!(store.count(&a.id()).unwrap(), ea.len());
    for e in &ea {
        assert!(store.contains(&e.id()).unwrap());
    }
}

#[test]
fn a_store_without_counters_is_counted_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (a, ea) = subwiki(1, "a", 3, 100);
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.put_entries(&ea).unwrap();
        store.clear_counts();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.len().unwrap(), ea.len());
    assert_eq!(store.count(&a.id()).unwrap(), ea.len());
}

#[test]
fn views_are_cached_replaced_and_removed() {
    both(|store| {
        let (a, _) = subwiki(1, "a", 2, 100);
        let ids: Vec<DocId> = a.feed_keys().map(|(_, id)| *id).collect();
        store.put_views(&[(ids[0], b"one".to_vec())]).unwrap();
        store.cache_views(&[(ids[1], b"two".to_vec())]).unwrap();
        assert_eq!(store.view(&ids[0]).unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.view(&ids[1]).unwrap().as_deref(), Some(&b"two"[..]));
        store.cache_views(&[(ids[0], b"uno".to_vec())]).unwrap();
        assert_eq!(store.view(&ids[0]).unwrap().as_deref(), Some(&b"uno"[..]));
        store.remove_views(&ids).unwrap();
        assert_eq!(store.view(&ids[0]).unwrap(), None);
        assert_eq!(store.view(&ids[1]).unwrap(), None);
        // Removing what is not there is no error.
        store.remove_views(&ids).unwrap();
    });
}

#[test]
fn the_index_gives_each_entrys_record_without_reading_entries() {
    both(|store| {
        let (a, ea) = subwiki(1, "a", 3, 100);
        let (_, eb) = subwiki(2, "b", 2, 100);
        store.put_entries(&ea).unwrap();
        store.put_entries(&eb).unwrap();
        let records = store.index(&a.id()).unwrap().unwrap();
        let mut expected: Vec<agora_crdt::Held> = ea.iter().map(agora_crdt::Held::of).collect();
        expected.sort_by_key(|h| (h.timestamp, h.id));
        assert_eq!(records, expected);
        store.remove_entries(&[ea[1].id()]).unwrap();
        let records = store.index(&a.id()).unwrap().unwrap();
        assert_eq!(records.len(), ea.len() - 1);
        assert!(records.iter().all(|r| r.id != ea[1].id()));
        let rebuilt = store.rebuild_indexes().unwrap();
        assert_eq!(rebuilt.corrupt, vec![]);
        assert_eq!(store.index(&a.id()).unwrap().unwrap().len(), ea.len() - 1);
    });
}

/// The founder of `replica` (made by [`subwiki`] with `founder`) retracts its post `doc`;
/// returns the statement (stored like any entry) and what it purged.
pub(super) fn retract(
    replica: &mut Replica,
    founder: u8,
    doc: DocId,
    reason: &str,
) -> (Entry, Vec<Purged>) {
    let (statement, report) = replica
        .retract(&key(founder), Timestamp(T0 + 1_000_000), doc, reason)
        .unwrap();
    assert_eq!(report.purged.len(), 1, "{report:?}");
    (statement, report.purged)
}

/// The posts of a subwiki made by [`subwiki`], oldest first.
fn posts(replica: &Replica) -> Vec<DocId> {
    let mut posts: Vec<(Timestamp, DocId)> = replica.feed_keys().map(|(t, id)| (*t, *id)).collect();
    posts.sort();
    posts.into_iter().map(|(_, id)| id).collect()
}

fn feed_posts(store: &dyn Store, subwiki: SubwikiId) -> Vec<DocId> {
    let mut posts: Vec<DocId> = store
        .feed(&[subwiki], None, 1000)
        .unwrap()
        .iter()
        .map(|k| k.post)
        .collect();
    posts.reverse();
    posts
}

/// Checks that a store holds nothing of the purged entries `gone` but keeps everything else of
/// `entries`.
fn check_purged(store: &dyn Store, subwiki: SubwikiId, entries: &[Entry], gone: &[EntryId]) {
    for e in entries {
        let held = !gone.contains(&e.id());
        assert_eq!(store.contains(&e.id()).unwrap(), held, "{}", e.id());
        assert_eq!(store.entry(&e.id()).unwrap().is_some(), held);
    }
    let items = store.items(&subwiki).unwrap();
    assert!(items.iter().all(|(_, id)| !gone.contains(id)));
    assert_eq!(items.len(), entries.len() - gone.len());
    let index = store.index(&subwiki).unwrap().unwrap();
    assert!(index.iter().all(|h| !gone.contains(&h.id)));
    assert_eq!(index.len(), entries.len() - gone.len());
    let loaded = store.load(&subwiki).unwrap();
    assert!(loaded.corrupt.is_empty());
    assert_eq!(loaded.entries.len(), entries.len() - gone.len());
    assert_eq!(store.count(&subwiki).unwrap(), entries.len() - gone.len());
}

#[test]
fn a_purge_deletes_the_documents_entries_and_keeps_its_tombstone_ids_and_feed_key() {
    both(|store| {
        let (mut a, mut ea) = subwiki(1, "a", 3, 100);
        let (_, eb) = subwiki(2, "b", 2, 100);
        store.put_entries(&ea).unwrap();
        store.put_entries(&eb).unwrap();
        let docs = posts(&a);
        let (victim, other) = (docs[1], docs[2]);
        store
            .put_views(&[(victim, b"view".to_vec()), (other, b"view".to_vec())])
            .unwrap();
        store
            .put_snapshots(&[(victim, b"snap".to_vec()), (other, b"snap".to_vec())])
            .unwrap();
        let (statement, purged) = retract(&mut a, 1, victim, "mistake");
        // The create entry and the edit (the vote on it is not the document's).
        let gone = purged[0].ids.clone();
        assert_eq!(gone.len(), 2);
        assert!(gone.contains(&EntryId::from(victim)));
        store.put_entries(std::slice::from_ref(&statement)).unwrap();
        ea.push(statement);
        store.purge(&a.id(), &purged).unwrap();

        check_purged(store, a.id(), &ea, &gone);
        assert_eq!(store.len().unwrap(), ea.len() + eb.len() - gone.len());
        assert_eq!(store.count(&eb[0].subwiki()).unwrap(), eb.len());
        // Its feed key stays: the feed lists it, as retracted.
        assert_eq!(feed_posts(store, a.id()), docs);
        assert_eq!(store.view(&victim).unwrap(), None);
        assert_eq!(store.snapshot(&victim).unwrap(), None);
        assert_eq!(store.view(&other).unwrap().as_deref(), Some(&b"view"[..]));
        assert_eq!(
            store.snapshot(&other).unwrap().as_deref(),
            Some(&b"snap"[..])
        );
        let tombstone = purged[0].tombstone.clone();
        assert_eq!(store.tombstones(&a.id()).unwrap(), vec![tombstone.clone()]);
        let mut ids = gone.clone();
        ids.sort();
        assert_eq!(store.purged_ids(&a.id()).unwrap(), ids);
        assert!(store.tombstones(&eb[0].subwiki()).unwrap().is_empty());
        assert!(store.purged_ids(&eb[0].subwiki()).unwrap().is_empty());

        // Again, with a newer tombstone and one more id (an entry refused later): the tombstone
        // is replaced, the ids added to, nothing counted twice.
        let later = agora_crdt::Tombstone {
            reason: "again".into(),
            ..tombstone
        };
        let extra = EntryId::from_bytes([7; 32]);
        let again = Purged {
            tombstone: later.clone(),
            ids: vec![gone[0], extra],
        };
        store.purge(&a.id(), &[again]).unwrap();
        assert_eq!(store.tombstones(&a.id()).unwrap(), vec![later]);
        ids.push(extra);
        ids.sort();
        assert_eq!(store.purged_ids(&a.id()).unwrap(), ids);
        check_purged(store, a.id(), &ea, &gone);
        assert_eq!(feed_posts(store, a.id()), docs);
        // Nothing to purge is no error.
        store.purge(&a.id(), &[]).unwrap();
    });
}

#[test]
fn unpurging_forgets_the_tombstone_ids_and_feed_key_so_the_document_can_come_back() {
    both(|store| {
        let (mut a, ea) = subwiki(1, "a", 3, 100);
        store.put_entries(&ea).unwrap();
        let docs = posts(&a);
        let (_, purged) = retract(&mut a, 1, docs[0], "");
        let (_, second) = retract(&mut a, 1, docs[2], "");
        store.purge(&a.id(), &purged).unwrap();
        store.purge(&a.id(), &second).unwrap();
        assert_eq!(store.tombstones(&a.id()).unwrap().len(), 2);

        store.unpurge(&a.id(), &[docs[0]]).unwrap();
        assert_eq!(
            store.tombstones(&a.id()).unwrap(),
            vec![second[0].tombstone.clone()]
        );
        let mut ids = second[0].ids.clone();
        ids.sort();
        assert_eq!(store.purged_ids(&a.id()).unwrap(), ids);
        // Not held, no longer tombstoned: not in the feed until it arrives again.
        assert_eq!(feed_posts(store, a.id()), vec![docs[1], docs[2]]);
        let back: Vec<Entry> = ea
            .iter()
            .filter(|e| purged[0].ids.contains(&e.id()))
            .cloned()
            .collect();
        store.put_entries(&back).unwrap();
        assert_eq!(feed_posts(store, a.id()), docs);

        // A post held again when its tombstone goes keeps its feed key.
        let back: Vec<Entry> = ea
            .iter()
            .filter(|e| second[0].ids.contains(&e.id()))
            .cloned()
            .collect();
        store.put_entries(&back).unwrap();
        store.unpurge(&a.id(), &[docs[2]]).unwrap();
        assert_eq!(feed_posts(store, a.id()), docs);
        assert!(store.tombstones(&a.id()).unwrap().is_empty());
        assert!(store.purged_ids(&a.id()).unwrap().is_empty());
        check_purged(store, a.id(), &ea, &[]);
        // Forgetting what is not kept is no error.
        store.unpurge(&a.id(), &[docs[1]]).unwrap();
    });
}

#[test]
fn rebuilding_keeps_tombstoned_posts_in_the_feed_and_brings_nothing_back() {
    both(|store| {
        let (mut a, ea) = subwiki(1, "a", 3, 100);
        store.put_entries(&ea).unwrap();
        let docs = posts(&a);
        let (_, purged) = retract(&mut a, 1, docs[1], "");
        store.purge(&a.id(), &purged).unwrap();
        let gone = purged[0].ids.clone();
        // A purged entry held again against the record (a bug elsewhere): a rebuild removes it.
        let create = ea
            .iter()
            .find(|e| e.id() == EntryId::from(docs[1]))
            .unwrap();
        store.put_entries(std::slice::from_ref(create)).unwrap();

        let rebuilt = store.rebuild_indexes().unwrap();
        assert_eq!(rebuilt.purged, vec![create.id()]);
        assert_eq!(rebuilt.entries, ea.len() - gone.len());
        assert_eq!(rebuilt.posts, 3);
        assert!(rebuilt.corrupt.is_empty());
        assert_eq!(feed_posts(store, a.id()), docs);
        check_purged(store, a.id(), &ea, &gone);
        assert_eq!(store.len().unwrap(), ea.len() - gone.len());
        assert_eq!(store.tombstones(&a.id()).unwrap().len(), 1);
    });
}

#[test]
fn removing_a_subwiki_leaves_nothing_of_it_and_the_others_intact() {
    both(|store| {
        let (mut a, ea) = subwiki(1, "a", 3, 100);
        let (mut b, eb) = subwiki(2, "b", 3, 100);
        store.put_entries(&ea).unwrap();
        store.put_entries(&eb).unwrap();
        for id in [a.id(), b.id()] {
            store
                .set_subwiki(SubwikiRecord { id, joined: false })
                .unwrap();
        }
        let (da, db) = (posts(&a), posts(&b));
        let (_, pa) = retract(&mut a, 1, da[0], "");
        let (_, pb) = retract(&mut b, 2, db[0], "");
        store.purge(&a.id(), &pa).unwrap();
        store.purge(&b.id(), &pb).unwrap();
        let genesis_a = DocId::from(EntryId::from(a.id()));
        for d in [&da[..], &db[..], &[genesis_a][..]].concat() {
            store.put_views(&[(d, b"view".to_vec())]).unwrap();
            store.put_snapshots(&[(d, b"snap".to_vec())]).unwrap();
        }

        store.remove_subwiki(&a.id()).unwrap();
        for e in &ea {
            assert!(!store.contains(&e.id()).unwrap(), "{}", e.id());
        }
        assert!(store.items(&a.id()).unwrap().is_empty());
        assert!(store.index(&a.id()).unwrap().unwrap().is_empty());
        assert!(store.load(&a.id()).unwrap().entries.is_empty());
        assert_eq!(store.count(&a.id()).unwrap(), 0);
        assert!(store.feed(&[a.id()], None, 100).unwrap().is_empty());
        assert!(store.tombstones(&a.id()).unwrap().is_empty());
        assert!(store.purged_ids(&a.id()).unwrap().is_empty());
        for d in [&da[..], &[genesis_a][..]].concat() {
            assert_eq!(store.view(&d).unwrap(), None);
            assert_eq!(store.snapshot(&d).unwrap(), None);
        }
        assert_eq!(
            store.subwikis().unwrap(),
            vec![SubwikiRecord {
                id: b.id(),
                joined: false
            }]
        );

        let gone = pb[0].ids.clone();
        check_purged(store, b.id(), &eb, &gone);
        assert_eq!(store.len().unwrap(), eb.len() - gone.len());
        assert_eq!(feed_posts(store, b.id()), db);
        assert_eq!(
            store.tombstones(&b.id()).unwrap(),
            vec![pb[0].tombstone.clone()]
        );
        assert_eq!(store.purged_ids(&b.id()).unwrap().len(), gone.len());
        for d in &db {
            assert_eq!(store.view(d).unwrap().as_deref(), Some(&b"view"[..]));
            assert_eq!(store.snapshot(d).unwrap().as_deref(), Some(&b"snap"[..]));
        }
        // A rebuild finds nothing of it either.
        let rebuilt = store.rebuild_indexes().unwrap();
        assert_eq!(rebuilt.entries, eb.len() - gone.len());
        assert!(store.items(&a.id()).unwrap().is_empty());
        // Removing it again is no error.
        store.remove_subwiki(&a.id()).unwrap();
    });
}

#[test]
fn the_sled_store_keeps_a_purge_and_a_removal_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, ea) = subwiki(1, "a", 3, 100);
    let (b, eb) = subwiki(2, "b", 2, 100);
    let docs = posts(&a);
    let (_, purged) = retract(&mut a, 1, docs[0], "");
    let gone = purged[0].ids.clone();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.put_entries(&ea).unwrap();
        store.put_entries(&eb).unwrap();
        for id in [a.id(), b.id()] {
            store
                .set_subwiki(SubwikiRecord { id, joined: true })
                .unwrap();
        }
        store.purge(&a.id(), &purged).unwrap();
        store.remove_subwiki(&b.id()).unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    check_purged(&store, a.id(), &ea, &gone);
    assert_eq!(store.len().unwrap(), ea.len() - gone.len());
    assert_eq!(feed_posts(&store, a.id()), docs);
    assert_eq!(
        store.tombstones(&a.id()).unwrap(),
        vec![purged[0].tombstone.clone()]
    );
    assert_eq!(store.purged_ids(&a.id()).unwrap().len(), gone.len());
    assert_eq!(
        store.subwikis().unwrap(),
        vec![SubwikiRecord {
            id: a.id(),
            joined: true
        }]
    );
    // Deleted on purpose: neither counted as damage nor recorded again from the manifest.
    assert_eq!(store.damage().unwrap(), vec![]);
    assert!(store.opened().restored.is_empty());
    assert!(store.items(&b.id()).unwrap().is_empty());
    for e in &eb {
        assert!(!store.contains(&e.id()).unwrap());
    }
}
