//! Real nodes replicate over loopback TCP: join by id, gossip, reconciliation, offline edits,
//! an edit based on the version read, catch-up after absence.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "replication/budget.rs"]
mod budget;
#[path = "replication/cards.rs"]
mod cards;
#[path = "replication/retract.rs"]
mod retract;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agora_crdt::{
    Base, BlobHash, DocId, Entry, EntryId, Policy, PostContent, Purged, SubwikiId, Timestamp,
    Tombstone,
};
use agora_node::home::Home;
use agora_node::store::{
    FeedKey, Loaded, MemoryStore, Put, Rebuilt, Store, StoreError, SubwikiRecord,
};
use agora_node::{Config, Node};
use support::*;

fn post(title: &str, body: &str) -> PostContent {
    PostContent {
        title: title.into(),
        body: body.into(),
        ..Default::default()
    }
}

fn titles(node: &Node) -> Vec<String> {
    node.feed(None, None, 1000)
        .map(|f| f.into_iter().map(|i| i.post.content.title).collect())
        .unwrap_or_default()
}

fn body(node: &Node, id: DocId) -> Option<String> {
    node.post(id).ok().map(|p| p.post.content.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_reach_the_same_feed_and_text() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("rust", "All things Rust", Policy::default())
        .await
        .unwrap();
    let mut posts = Vec::new();
    for i in 0..3 {
        posts.push(
            a.create_post(subwiki, post(&format!("post {i}"), "hello"))
                .await
                .unwrap(),
        );
    }

    let b = start(dirs[1].path(), vec![]).await;
    let c = start(dirs[2].path(), vec![]).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    c.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    let expected = titles(&a);
    assert_eq!(expected.len(), 3);
    until(&b, "B has A's posts", |n| titles(n) == expected).await;
    until(&c, "C has A's posts", |n| titles(n) == expected).await;

    // New posts and edits travel by gossip (and reconciliation) to everyone.
    let newer = b
        .create_post(subwiki, post("from B", "b's text"))
        .await
        .unwrap();
    c.edit_post(
        posts[0],
        Base::Latest,
        post("post 0", "hello, improved by C"),
    )
    .await
    .unwrap();
    for node in [&a, &b, &c] {
        until(node, "B's post everywhere", |n| {
            body(n, newer).as_deref() == Some("b's text")
        })
        .await;
        until(node, "C's edit everywhere", |n| {
            body(n, posts[0]).as_deref() == Some("hello, improved by C")
        })
        .await;
    }
    let feed_a = titles(&a);
    assert_eq!(feed_a[0], "from B");
    assert_eq!(titles(&b), feed_a);
    assert_eq!(titles(&c), feed_a);
    for node in [&a, &b, &c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_merge_when_the_node_comes_back() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = start(dir_a.path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("notes", "", Policy::default())
        .await
        .unwrap();
    let text = "First paragraph.\n\nSecond paragraph.";
    let id = a.create_post(subwiki, post("Shared", text)).await.unwrap();

    let b = start(dir_b.path(), vec![]).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    until(&b, "B has the post", |n| {
        body(n, id).as_deref() == Some(text)
    })
    .await;
    b.shutdown().await;
    drop(b);

    // B edits offline, with the store opened directly; A edits the other paragraph meanwhile.
    {
        let offline = Node::open_offline(dir_b.path()).unwrap();
        let edited = text.replace("First paragraph.", "First paragraph, edited offline by B.");
        offline
            .edit_post(id, Base::Latest, post("Shared", &edited))
            .await
            .unwrap();
    }
    let edited = text.replace("Second paragraph.", "Second paragraph, edited by A.");
    a.edit_post(id, Base::Latest, post("Shared", &edited))
        .await
        .unwrap();

    let b = start(dir_b.path(), vec![a_addr]).await;
    let merged = "First paragraph, edited offline by B.\n\nSecond paragraph, edited by A.";
    until(&a, "A has B's offline edit", |n| {
        body(n, id).as_deref() == Some(merged)
    })
    .await;
    until(&b, "B has A's edit", |n| {
        body(n, id).as_deref() == Some(merged)
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// The lost update: A reads a post (v1) and opens it in an editor; B's edit of paragraph 2
/// reaches A meanwhile; A saves an edit of paragraph 1 based on v1. Computed against the
/// current text instead, the save would put paragraph 2 back as A's editor showed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_based_on_the_version_read_keeps_an_edit_that_arrived_meanwhile() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = start(dir_a.path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("notes", "", Policy::default())
        .await
        .unwrap();
    let text = "First paragraph.\n\nSecond paragraph.";
    let id = a.create_post(subwiki, post("Shared", text)).await.unwrap();
    let b = start(dir_b.path(), vec![]).await;
    b.join(subwiki, vec![a_addr]).await.unwrap();
    until(&b, "B has the post", |n| {
        body(n, id).as_deref() == Some(text)
    })
    .await;

    // A's editor opens version v1.
    let read = a.post(id).unwrap().post;
    let v1 = read.version.clone();
    assert_eq!(a.post_at(id, v1.clone()).unwrap(), read.content);

    let theirs = text.replace("Second paragraph.", "Second paragraph, by B.");
    b.edit_post(id, Base::Latest, post("Shared", &theirs))
        .await
        .unwrap()
        .expect("B's edit changes the text");
    until(&a, "B's edit reaches A", |n| {
        body(n, id).as_deref() == Some(theirs.as_str())
    })
    .await;
    assert_ne!(a.post(id).unwrap().post.version, v1);

    // A saves what the editor holds: v1 with paragraph 1 changed.
    let mine = read
        .content
        .body
        .replace("First paragraph.", "First paragraph, by A.");
    a.edit_post(id, Base::At(v1), post("Shared", &mine))
        .await
        .unwrap()
        .expect("A's edit changes v1");
    let both = "First paragraph, by A.\n\nSecond paragraph, by B.";
    assert_eq!(body(&a, id).as_deref(), Some(both));
    until(&b, "A's edit reaches B", |n| {
        body(n, id).as_deref() == Some(both)
    })
    .await;
    assert_eq!(
        a.post(id).unwrap().post.version,
        b.post(id).unwrap().post.version
    );
    assert_eq!(a.post(id).unwrap().post.version.entries().len(), 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_node_catches_up_by_reconciliation() {
    const ENTRIES: usize = 1000;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("busy", "", Policy::default())
        .await
        .unwrap();
    let b = start(dirs[1].path(), vec![]).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    let c = start(dirs[2].path(), vec![]).await;
    c.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    until(&c, "C has the subwiki", |n| {
        n.subwikis().unwrap().iter().any(|s| s.genesis.is_some())
    })
    .await;
    c.shutdown().await;
    drop(c);

    // While C is away, A and B write 1,000 entries between them: posts and edits.
    let mut ids = [Vec::new(), Vec::new()];
    for i in 0..ENTRIES {
        let (writer, own) = if i % 2 == 0 {
            (&a, &mut ids[0])
        } else {
            (&b, &mut ids[1])
        };
        if i % 5 < 2 || own.is_empty() {
            own.push(
                writer
                    .create_post(subwiki, post(&format!("p{i}"), "x"))
                    .await
                    .unwrap(),
            );
        } else {
            let id = own[i % own.len()];
            writer
                .edit_post(id, Base::Latest, post("edited", &format!("x{i}")))
                .await
                .unwrap();
        }
    }
    let entries = |n: &Node| {
        n.subwikis()
            .unwrap()
            .iter()
            .find(|s| s.id == subwiki)
            .map_or(0, |s| s.entries)
    };
    // Genesis, plus everything written.
    let total = ENTRIES + 1;
    until(&a, "A has B's half", |n| entries(n) == total).await;
    until(&b, "B has A's half", |n| entries(n) == total).await;

    let c = start(dirs[2].path(), vec![a_addr]).await;
    until(&c, "C caught up", |n| entries(n) >= total).await;
    until(&a, "A has everything", |n| entries(n) == total).await;
    assert_eq!(titles(&c), titles(&a));
    // The entries are stored before the session that fetched them reports it is done.
    until(&c, "C's session done", |n| {
        n.sync_status()
            .get(&subwiki)
            .is_some_and(|s| s.syncs >= 1 && s.bytes_received > 0)
    })
    .await;
    let status = c.sync_status();
    let s = status.get(&subwiki).cloned().unwrap_or_default();
    eprintln!(
        "catch-up of {total} entries: {} bytes received by reconciliation, {} round trips, {} syncs",
        s.bytes_received, s.round_trips, s.syncs
    );
    assert!(s.syncs >= 1);
    for node in [&a, &b, &c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_fetched_from_peers_and_checked() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = start(dir_a.path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("pics", "", Policy::default())
        .await
        .unwrap();
    let image = png(200_000);
    let hash = a.add_image(&image).unwrap();
    let with_image = PostContent {
        images: vec![hash],
        ..post("a picture", "look")
    };
    let id = a.create_post(subwiki, with_image).await.unwrap();
    // Over the size cap: refused.
    assert!(
        a.add_image(&vec![0u8; agora_node::store::MAX_BLOB_BYTES + 1])
            .is_err()
    );

    let b = start(dir_b.path(), vec![]).await;
    b.join(subwiki, vec![a_addr]).await.unwrap();
    until(&b, "B has the post", |n| n.post(id).is_ok()).await;
    let wanted = b.post(id).unwrap().post.content.images;
    assert_eq!(wanted, vec![hash]);
    let fetched = b.image(hash).await.unwrap();
    assert_eq!(fetched.as_deref(), Some(image.as_slice()));
    // Kept: a second read needs no peer.
    a.shutdown().await;
    assert_eq!(
        b.image(hash).await.unwrap().as_deref(),
        Some(image.as_slice())
    );
    // A blob nobody has is `None`, not an error.
    let unknown = agora_crdt::BlobHash::of(b"nobody has this");
    assert_eq!(b.image(unknown).await.unwrap(), None);
    b.shutdown().await;
}

/// An honest memory store, except that it answers a read of one blob with other bytes, as a
/// hostile or broken peer would serve them.
struct WrongBlobStore {
    inner: MemoryStore,
    /// The hash asked for and the bytes given for it.
    wrong: (BlobHash, Vec<u8>),
    /// Times the wrong bytes were given.
    served: AtomicUsize,
}

impl Store for WrongBlobStore {
    fn put_entries(&self, entries: &[Entry]) -> Result<Put, StoreError> {
        self.inner.put_entries(entries)
    }
    fn remove_entries(&self, ids: &[EntryId]) -> Result<(), StoreError> {
        self.inner.remove_entries(ids)
    }
    fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.inner.entry(id)
    }
    fn contains(&self, id: &EntryId) -> Result<bool, StoreError> {
        self.inner.contains(id)
    }
    fn len(&self) -> Result<usize, StoreError> {
        self.inner.len()
    }
    fn count(&self, subwiki: &SubwikiId) -> Result<usize, StoreError> {
        self.inner.count(subwiki)
    }
    fn items(&self, subwiki: &SubwikiId) -> Result<Vec<(Timestamp, EntryId)>, StoreError> {
        self.inner.items(subwiki)
    }
    fn load(&self, subwiki: &SubwikiId) -> Result<Loaded, StoreError> {
        self.inner.load(subwiki)
    }
    fn index(&self, subwiki: &SubwikiId) -> Result<Option<Vec<agora_crdt::Held>>, StoreError> {
        self.inner.index(subwiki)
    }
    fn feed(
        &self,
        subwikis: &[SubwikiId],
        before: Option<(Timestamp, DocId)>,
        limit: usize,
    ) -> Result<Vec<FeedKey>, StoreError> {
        self.inner.feed(subwikis, before, limit)
    }
    fn set_subwiki(&self, record: SubwikiRecord) -> Result<(), StoreError> {
        self.inner.set_subwiki(record)
    }
    fn subwikis(&self) -> Result<Vec<SubwikiRecord>, StoreError> {
        self.inner.subwikis()
    }
    fn put_snapshots(&self, snapshots: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        self.inner.put_snapshots(snapshots)
    }
    fn snapshot(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.snapshot(doc)
    }
    fn put_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        self.inner.put_views(views)
    }
    fn cache_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        self.inner.cache_views(views)
    }
    fn remove_views(&self, docs: &[DocId]) -> Result<(), StoreError> {
        self.inner.remove_views(docs)
    }
    fn view(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.view(doc)
    }
    fn put_blob(&self, bytes: &[u8]) -> Result<BlobHash, StoreError> {
        self.inner.put_blob(bytes)
    }
    fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        if *hash == self.wrong.0 {
            self.served.fetch_add(1, Ordering::SeqCst);
            return Ok(Some(self.wrong.1.clone()));
        }
        self.inner.blob(hash)
    }
    fn remove_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.inner.remove_blob(hash)
    }
    fn purge(&self, subwiki: &SubwikiId, purged: &[Purged]) -> Result<(), StoreError> {
        self.inner.purge(subwiki, purged)
    }
    fn unpurge(&self, subwiki: &SubwikiId, docs: &[DocId]) -> Result<(), StoreError> {
        self.inner.unpurge(subwiki, docs)
    }
    fn tombstones(&self, subwiki: &SubwikiId) -> Result<Vec<Tombstone>, StoreError> {
        self.inner.tombstones(subwiki)
    }
    fn purged_ids(&self, subwiki: &SubwikiId) -> Result<Vec<EntryId>, StoreError> {
        self.inner.purged_ids(subwiki)
    }
    fn remove_subwiki(&self, subwiki: &SubwikiId) -> Result<(), StoreError> {
        self.inner.remove_subwiki(subwiki)
    }
    fn rebuild_indexes(&self) -> Result<Rebuilt, StoreError> {
        self.inner.rebuild_indexes()
    }
}

/// A node started on `store` in `home`, listening on a free loopback port, mDNS off.
async fn start_on(store: Arc<dyn Store>, home: &std::path::Path) -> Node {
    let identity = Home::new(home).load_or_init().unwrap();
    let mut config = Config::new(home);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.mdns = false;
    Node::start_with(store, identity, &config).await.unwrap()
}

/// A peer that answers an image request with bytes that are not that image (same length,
/// one byte changed): the fetching node neither keeps nor returns them, under either hash, and
/// still gets the image from an honest peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_image_bytes_from_a_peer_are_not_kept() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let image = png(200_000);
    let hash = BlobHash::of(&image);
    let mut wrong = image.clone();
    wrong[1000] ^= 1;
    let liar = Arc::new(WrongBlobStore {
        inner: MemoryStore::new(),
        wrong: (hash, wrong.clone()),
        served: AtomicUsize::new(0),
    });
    let h = start_on(liar.clone(), dirs[0].path()).await;
    let b_store = Arc::new(MemoryStore::new());
    let b = start_on(b_store.clone(), dirs[1].path()).await;

    // The liar is B's only peer: it is asked, it answers, and B refuses the answer.
    b.connect(addr(&h).await).await.unwrap();
    // Compared by hash: the images are too long to print.
    let of = |bytes: Option<Vec<u8>>| bytes.map(|b| BlobHash::of(&b));
    assert_eq!(of(b.image(hash).await.unwrap()), None);
    assert!(
        liar.served.load(Ordering::SeqCst) >= 1,
        "the liar was asked"
    );
    assert_eq!(of(b_store.blob(&hash).unwrap()), None);
    assert_eq!(of(b_store.blob(&BlobHash::of(&wrong)).unwrap()), None);

    // With an honest peer too, B gets the right bytes and keeps them.
    let a = start(dirs[2].path(), vec![]).await;
    assert_eq!(a.add_image(&image).unwrap(), hash);
    b.connect(addr(&a).await).await.unwrap();
    assert_eq!(of(b.image(hash).await.unwrap()), Some(hash));
    assert_eq!(of(b_store.blob(&hash).unwrap()), Some(hash));
    assert_eq!(of(b_store.blob(&BlobHash::of(&wrong)).unwrap()), None);
    for node in [&h, &a, &b] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_subwikis_are_announced_in_the_directory() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = start(dir_a.path(), vec![]).await;
    let a_addr = addr(&a).await;
    let b = start(dir_b.path(), vec![a_addr]).await;
    // Wait until the two are connected, so the announcement has someone to reach.
    until_connected(&a, b.peer_id()).await;
    let mut found = Vec::new();
    for attempt in 0..50 {
        let subwiki = a
            .create_subwiki(
                &format!("announced {attempt}"),
                "a new community",
                Policy::default(),
            )
            .await
            .unwrap();
        let mut changes = b.changes();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline {
            found = b.discovered().await;
            if found.iter().any(|(id, _)| *id == subwiki) {
                break;
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
        if !found.is_empty() {
            break;
        }
    }
    assert!(
        found
            .iter()
            .any(|(_, g)| g.description == "a new community"),
        "B heard of A's subwiki: {found:?}"
    );
    a.shutdown().await;
    // B remembers the directory across a restart, with nobody to hear it from again.
    let mut changes = b.changes();
    let deadline = tokio::time::Instant::now() + GUARD;
    while !dir_b.path().join("directory.agora").exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the directory was never kept"
        );
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(200), changes.changed()).await;
    }
    b.shutdown().await;
    drop(b);
    let b = start(dir_b.path(), vec![]).await;
    let again = b.discovered().await;
    assert!(
        found
            .iter()
            .all(|(id, _)| again.iter().any(|(a, _)| a == id)),
        "B forgot the directory: {again:?}"
    );
    b.shutdown().await;
}

/// Two nodes that met once find each other again after one restarts with no bootstrap peer and
/// no mDNS: the restarted one dials the peers of its address book, catches up with a post
/// written while it was away, and receives one written after by gossip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_finds_its_peers_again_by_itself() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("kept", "", Policy::default())
        .await
        .unwrap();
    let b = start(dirs[1].path(), vec![a_addr.clone()]).await;
    b.join(subwiki, vec![a_addr]).await.unwrap();
    until(&b, "B has the subwiki", |n| {
        n.subwikis()
            .unwrap()
            .iter()
            .any(|s| s.id == subwiki && s.genesis.is_some())
    })
    .await;
    // B keeps A in its address book.
    let book = dirs[1].path().join("peers.json");
    let a_id = a.peer_id().to_string();
    let deadline = tokio::time::Instant::now() + GUARD;
    while !std::fs::read_to_string(&book).is_ok_and(|t| t.contains(&a_id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never reached B's address book"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    b.shutdown().await;
    drop(b);

    let meanwhile = a
        .create_post(subwiki, post("Meanwhile", "written while B was away"))
        .await
        .unwrap();
    // No bootstrap peer, no mDNS (the helper turns it off): only the address book.
    let b = start(dirs[1].path(), vec![]).await;
    until(&b, "the post written meanwhile", |n| {
        n.post(meanwhile).is_ok()
    })
    .await;
    until_connected(&a, b.peer_id()).await;
    let after = a
        .create_post(subwiki, post("After", "written once B was back"))
        .await
        .unwrap();
    until(&b, "the post written after", |n| n.post(after).is_ok()).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A node in 200 subwikis (twice gossipsub's default cap of 100 topics per peer) gets new
/// posts of every one of them by gossip: with reconciliation turned off after the first
/// catch-up, each of 200 posts, one per subwiki, reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_two_hundred_subwikis_gets_gossip_for_all_of_them() {
    const SUBWIKIS: usize = 200;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // No periodic reconciliation: after the joins, only gossip brings anything.
    let quiet = |c: &mut Config| c.resync_interval = std::time::Duration::from_secs(3600);
    let a = start_with(dirs[0].path(), vec![], quiet).await;
    let a_addr = addr(&a).await;
    let mut subwikis = Vec::with_capacity(SUBWIKIS);
    for i in 0..SUBWIKIS {
        subwikis.push(
            a.create_subwiki(&format!("community {i}"), "", Policy::default())
                .await
                .unwrap(),
        );
    }
    let b = start_with(dirs[1].path(), vec![a_addr.clone()], quiet).await;
    until_connected(&b, a.peer_id()).await;
    for s in &subwikis {
        b.join(*s, Vec::new()).await.unwrap();
    }
    until_every_genesis(&b, SUBWIKIS).await;
    let round_trips = |n: &Node| -> u64 { n.sync_status().values().map(|s| s.round_trips).sum() };
    let before = round_trips(&b);
    let mut posts = Vec::with_capacity(SUBWIKIS);
    for (i, s) in subwikis.iter().enumerate() {
        posts.push(
            a.create_post(*s, post(&format!("news {i}"), "by gossip"))
                .await
                .unwrap(),
        );
    }
    until(&b, "every post at B", |n| {
        posts.iter().all(|p| n.post(*p).is_ok())
    })
    .await;
    assert_eq!(
        round_trips(&b),
        before,
        "the posts came by gossip, not by reconciliation"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A and B know only a third node H, which holds nothing of the subwiki. B joins by id with no
/// address: the DHT (provider records on H) leads it to A, and it syncs from A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subwiki_is_found_through_the_dht() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let h = start_with(dirs[0].path(), vec![], |c| c.dht_server = true).await;
    let h_addr = addr(&h).await;
    let a = start(dirs[1].path(), vec![h_addr.clone()]).await;
    let subwiki = a
        .create_subwiki("found by key", "", Policy::default())
        .await
        .unwrap();
    a.create_post(subwiki, post("from A", "hello"))
        .await
        .unwrap();

    let b = start(dirs[2].path(), vec![h_addr]).await;
    b.join(subwiki, vec![]).await.unwrap();
    until(&b, "B finds A's post through the DHT", |n| {
        titles(n) == vec!["from A".to_owned()]
    })
    .await;
    assert!(h.subwikis().unwrap().is_empty(), "H holds nothing");
}

/// `len` bytes that a node takes as an image: PNG's signature, then a pattern.
fn png(len: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((8..len).map(|i| (i % 251) as u8));
    bytes
}
/// The inbox and follows across two real nodes (issue 16): B's comment on A's post and B's
/// mention of A by A's author id reach A's inbox; B taking A's display name and "mentioning"
/// A by that name, by A's fingerprint or by an id that is not A's gives A nothing. A's inbox
/// and what A read survive a restart. A follows B: B's posts are in A's following feed, and
/// leave it when A unfollows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_gets_comments_and_true_mentions_and_follows_stay_local() {
    use agora_crdt::ProfileContent;
    use agora_node::inbox::{Kind, mention};

    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("town", "", Policy::default())
        .await
        .unwrap();
    let name = |n: &str| ProfileContent {
        name: n.into(),
        bio: String::new(),
    };
    a.set_profile(subwiki, name("alice")).await.unwrap();
    let mine = a
        .create_post(subwiki, post("My post", "hello"))
        .await
        .unwrap();
    let b = start(dirs[1].path(), vec![]).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    until(&b, "B has A's post", |n| n.post(mine).is_ok()).await;

    let has = |n: &Node, kind: Kind, doc: DocId| {
        n.inbox(false, 1000)
            .unwrap()
            .items
            .iter()
            .any(|(i, _)| i.kind == kind && i.doc == Some(doc))
    };
    let comment = b.comment(mine, None, "nice post").await.unwrap();
    let asking = format!("{} knows about this", mention(&a.author()));
    let mentioning = b
        .create_post(subwiki, post("Ask her", &asking))
        .await
        .unwrap();
    until(&a, "B's comment and mention in A's inbox", |n| {
        has(n, Kind::Comment, comment) && has(n, Kind::Mention, mentioning)
    })
    .await;

    // A look-alike: B takes A's name and names A without A's key.
    b.set_profile(subwiki, name("alice")).await.unwrap();
    let fp = a.author().fingerprint();
    let mut other_id = a.author().to_string();
    let flipped = if other_id.as_bytes()[10] == b'0' {
        "1"
    } else {
        "0"
    };
    other_id.replace_range(10..11, flipped);
    let fake_text = format!("@alice says hi. @alice~{fp} @au_{fp} @{other_id}");
    let fake = b
        .create_post(subwiki, post("alice here", &fake_text))
        .await
        .unwrap();
    until(&a, "A holds the look-alike's post", |n| {
        n.post(fake).is_ok()
    })
    .await;
    // A write after it: once its item is in, the look-alike was looked at.
    let later = b.comment(mine, None, "one more thing").await.unwrap();
    until(&a, "B's second comment in A's inbox", |n| {
        has(n, Kind::Comment, later)
    })
    .await;
    let inbox = a.inbox(false, 1000).unwrap();
    assert!(
        !inbox.items.iter().any(|(i, _)| i.doc == Some(fake)),
        "the look-alike reached the inbox: {inbox:#?}"
    );
    assert_eq!(inbox.total, 3, "{inbox:#?}");
    assert_eq!(inbox.unread, 3);
    let comment_item = agora_crdt::EntryId::from(comment).to_string();
    assert_eq!(a.mark_read(Some(&comment_item)).unwrap(), Some(1));

    // Follows are A's own: B's posts in A's following feed, then out of it.
    assert!(a.following_feed(None, None, 10, false).unwrap().is_empty());
    assert!(a.follow(b.author()).unwrap());
    let followed: Vec<DocId> = a
        .following_feed(None, None, 10, false)
        .unwrap()
        .iter()
        .map(|(item, _)| item.post.meta.id)
        .collect();
    assert_eq!(followed, vec![fake, mentioning], "newest first, B's only");
    assert!(a.unfollow(b.author()).unwrap());
    assert!(a.following_feed(None, None, 10, false).unwrap().is_empty());
    assert!(a.following().is_empty());
    assert!(b.following().is_empty(), "nothing travelled to B");

    // A restart keeps the inbox and what was read.
    a.shutdown().await;
    drop(a);
    let a = start(dirs[0].path(), vec![]).await;
    // Items written less than a second before the stop are derived again at the start.
    until(&a, "A's inbox after the restart", |n| {
        n.inbox(false, 1000).unwrap().total == 3
    })
    .await;
    assert_eq!(a.inbox(false, 1000).unwrap().unread, 2);
    for node in [&a, &b] {
        node.shutdown().await;
    }
}

/// Waits until `check` holds on `node`, re-checking whenever its search index has taken in a
/// batch of writes.
async fn until_searched(node: &Node, what: &str, mut check: impl FnMut(&Node) -> bool) {
    let mut batches = node.search_commits();
    let deadline = tokio::time::Instant::now() + GUARD;
    while !check(node) {
        match tokio::time::timeout_at(deadline, batches.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the search index stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// The posts a search of `node` finds, best first.
fn found(node: &Node, text: &str, show_hidden: bool) -> Vec<DocId> {
    let mut query = agora_node::SearchQuery::new(text);
    query.show_hidden = show_hidden;
    node.search(&query)
        .map(|hits| hits.into_iter().map(|h| h.item.post.meta.id).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_written_on_one_node_is_found_by_a_word_of_its_body_on_another() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    // The founder's hide vote is enough to hide a post.
    let policy = Policy {
        hide_quorum: 1,
        ..Policy::default()
    };
    let subwiki = a.create_subwiki("herbs", "", policy).await.unwrap();
    let basil = a
        .create_post(
            subwiki,
            post(
                "Basil",
                "Pinch the flowering tops so the leaves stay sweet.",
            ),
        )
        .await
        .unwrap();
    let spam = a
        .create_post(
            subwiki,
            post("Cheap seeds", "Sweet deals on seeds, click here."),
        )
        .await
        .unwrap();
    a.vote_post(spam, agora_crdt::VoteValue::Hide, "spam")
        .await
        .unwrap();

    let b = start(dirs[1].path(), vec![]).await;
    b.join(subwiki, vec![a_addr]).await.unwrap();
    until_searched(&b, "A's post found at B by a word of its body", |n| {
        found(n, "flowering", false) == vec![basil]
    })
    .await;
    // The hidden post is in B's index, and found only when asked for.
    until(&b, "the hide vote at B", |n| {
        n.post_status(spam).is_ok_and(|s| s.hidden.is_some())
    })
    .await;
    until_searched(&b, "the hidden post indexed at B", |n| {
        found(n, "seeds", true) == vec![spam]
    })
    .await;
    assert!(found(&b, "seeds", false).is_empty());
    assert_eq!(found(&b, "sweet", false), vec![basil]);
    let mut both = found(&b, "sweet", true);
    both.sort();
    let mut expected = vec![basil, spam];
    expected.sort();
    assert_eq!(both, expected);
    // A post written on A later reaches B's index too (by gossip).
    let mint = a
        .create_post(subwiki, post("Mint", "Keep it in a pot: it spreads."))
        .await
        .unwrap();
    until_searched(&b, "A's new post found at B", |n| {
        found(n, "spreads", false) == vec![mint]
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Waits until `node` holds the genesis entry of `count` subwikis.
async fn until_every_genesis(node: &Node, count: usize) {
    until(node, "every subwiki's genesis", |n| {
        n.subwikis()
            .unwrap()
            .iter()
            .filter(|s| s.genesis.is_some())
            .count()
            == count
    })
    .await;
}
