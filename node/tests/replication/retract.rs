//! Retraction and redaction over real nodes: the content leaves the store, feed, search index
//! and views of every node, one that was away included; a node that joins later never gets it;
//! a node that purged and one that did not know yet converge without fetching in circles; a
//! retraction by anyone but the creator does nothing; a moderator's redaction purges where the
//! moderator counts and not where the reader ignores them.
use std::time::Duration;

use super::support::*;
use super::{found, post, until_searched};
use agora_crdt::{
    AuthorKey, DocId, Entry, LocalError, Payload, Policy, Retraction, RoleAction, SubwikiId,
    Timestamp,
};
use agora_node::{Node, NodeError};

/// A word nothing else contains, to look for in a node's files and index.
const SECRET: &str = "quetzalcoatlquartz";

/// The subwiki exported to a file, as bytes: every entry the node holds.
fn exported(node: &Node, subwiki: SubwikiId, dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join(format!("export-{}", rand_suffix()));
    node.export(subwiki, &path).unwrap();
    std::fs::read(&path).unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn holds_secret(bytes: &[u8]) -> bool {
    bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
}

/// True once the node shows the post as retracted (content gone, who and when kept).
fn retracted(node: &Node, id: DocId) -> bool {
    node.post(id)
        .is_ok_and(|p| p.post.retracted.is_some() && p.post.content.body.is_empty())
}

fn entries(node: &Node, subwiki: SubwikiId) -> usize {
    node.subwikis()
        .unwrap()
        .iter()
        .find(|s| s.id == subwiki)
        .map_or(0, |s| s.entries)
}

/// Everything a node shows of a retracted post: the feed keeps its place with no content,
/// search does not find it, its export holds none of its text.
async fn gone_from(node: &Node, subwiki: SubwikiId, id: DocId, scratch: &std::path::Path) {
    let feed = node.feed(Some(subwiki), None, 100).unwrap();
    let item = feed
        .iter()
        .find(|i| i.post.meta.id == id)
        .expect("in the feed");
    assert!(item.post.retracted.is_some());
    assert!(item.post.content.title.is_empty() && item.post.content.body.is_empty());
    until_searched(node, "the retracted post out of the index", |n| {
        found(n, SECRET, true).is_empty()
    })
    .await;
    assert!(
        !holds_secret(&exported(node, subwiki, scratch)),
        "the node still holds the retracted text"
    );
    assert!(node.history(id).map_or(true, |h| h.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retracted_post_leaves_every_node_and_never_reaches_a_newcomer() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let scratch = dirs[4].path();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("garden", "", Policy::default())
        .await
        .unwrap();
    let b = start(dirs[1].path(), vec![a_addr.clone()]).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    let c = start(dirs[2].path(), vec![a_addr.clone()]).await;
    c.join(subwiki, vec![a_addr.clone()]).await.unwrap();

    let id = a
        .create_post(
            subwiki,
            post("My address", &format!("Come by: 12 {SECRET} Lane.")),
        )
        .await
        .unwrap();
    let keep = a
        .create_post(subwiki, post("Tomatoes", "Stake them early."))
        .await
        .unwrap();
    until(&b, "the post at B", |n| n.post(id).is_ok()).await;
    // B improves it and comments on it: the edit goes with the post, the comment stays.
    let mut edited = b.post(id).unwrap().post.content;
    edited.body.push_str(&format!(" (the blue door, {SECRET})"));
    b.edit_post(id, agora_crdt::Base::Latest, edited)
        .await
        .unwrap();
    let comment = b.comment(id, None, "See you there").await.unwrap();
    for node in [&a, &c] {
        until(node, "B's edit and comment", |n| {
            n.post(id)
                .is_ok_and(|p| p.post.edits == 1 && p.post.comments == 1)
        })
        .await;
    }
    until_searched(&c, "the post indexed at C", |n| {
        found(n, SECRET, true) == vec![id]
    })
    .await;

    assert!(
        holds_secret(&exported(&c, subwiki, scratch)),
        "the check can see the text"
    );
    // C goes away; A retracts its post.
    c.shutdown().await;
    drop(c);
    let done = a.retract(id, "moved house").await.unwrap();
    assert!(!done.redaction);
    assert_eq!(done.doc, id);
    gone_from(&a, subwiki, id, scratch).await;
    until(&b, "the retraction at B", |n| retracted(n, id)).await;
    gone_from(&b, subwiki, id, scratch).await;
    // The comment by B stays, under the retracted post; the other post is untouched.
    assert_eq!(b.comments(id).unwrap().len(), 1);
    assert_eq!(b.comments(id).unwrap()[0].meta.id, comment);
    assert_eq!(b.post(keep).unwrap().post.content.title, "Tomatoes");
    // Retracting it again says so.
    assert!(matches!(
        a.retract(id, "").await,
        Err(NodeError::Local(LocalError::AlreadyRetracted(_)) | NodeError::UnknownDocument(_))
    ));

    // C comes back and learns it by catch-up.
    let c = start(dirs[2].path(), vec![a_addr.clone()]).await;
    until(&c, "the retraction at C", |n| retracted(n, id)).await;
    gone_from(&c, subwiki, id, scratch).await;

    // D joins after: it gets the retraction and the comment, never the post: no node serves
    // it, so D does not even know it existed (no tombstone; the retraction is in its log,
    // waiting for a document that never comes).
    let d = start(dirs[3].path(), vec![]).await;
    d.join(subwiki, vec![addr(&b).await]).await.unwrap();
    until(&d, "D caught up", |n| {
        entries(n, subwiki) == entries(&a, subwiki)
    })
    .await;
    assert!(matches!(d.post(id), Err(NodeError::UnknownDocument(_))));
    let log = d.moderation(subwiki).unwrap();
    assert!(
        log.log_item(&done.entry).is_some(),
        "the retraction is in D's log"
    );
    assert!(!holds_secret(&exported(&d, subwiki, scratch)));
    until_searched(&d, "D's index", |n| found(n, SECRET, true).is_empty()).await;
    until_searched(&d, "D's index has the other post", |n| {
        found(n, "stake", true) == vec![keep]
    })
    .await;
    let status = d.sync_status().get(&subwiki).cloned().unwrap_or_default();
    assert_eq!(status.refused, 0, "nobody offered D anything invalid");
    for node in [&b, &c, &d] {
        node.shutdown().await;
    }

    // The bytes leave A's home: the store compacts at the next start; the search index merged
    // the post's segment away; the inbox dropped the item of B's edit, which quoted the text.
    a.shutdown().await;
    drop(a);
    eprintln!(
        "before compaction, A's home holds the text in: {:?}",
        files_holding(dirs[0].path(), SECRET)
    );
    let a = start(dirs[0].path(), vec![]).await;
    until_searched(&a, "A's index after the restart", |n| {
        found(n, "stake", true) == vec![keep]
    })
    .await;
    assert_eq!(a.post(keep).unwrap().post.content.title, "Tomatoes");
    assert!(retracted(&a, id));
    a.shutdown().await;
    drop(a);
    let left = files_holding(dirs[0].path(), SECRET);
    assert!(left.is_empty(), "the retracted text is still in {left:?}");
}

/// The files under `dir` whose bytes contain `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                out.push(path);
            }
        }
    }
    out
}

/// For tests that count reconciliations: every periodic resync reconciles, quiet or not.
fn counting(config: &mut agora_node::Config) {
    config.space_quiet_resyncs = false;
}

/// Polls `check` (sync counters change without a notification) until it holds.
async fn until_polled(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_purged_and_one_that_did_not_know_converge_without_fetching_in_circles() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let x = start_with(dirs[0].path(), vec![], counting).await;
    let x_addr = addr(&x).await;
    let subwiki = x
        .create_subwiki("ideas", "", Policy::default())
        .await
        .unwrap();
    let id = x
        .create_post(subwiki, post("Draft", &format!("an early {SECRET}")))
        .await
        .unwrap();
    let y = start_with(dirs[1].path(), vec![x_addr.clone()], counting).await;
    y.join(subwiki, vec![x_addr.clone()]).await.unwrap();
    until(&y, "the post at Y", |n| n.post(id).is_ok()).await;
    y.shutdown().await;
    drop(y);

    // Away, Y improves the post (edits X never sees); X retracts it meanwhile.
    let y = Node::open_offline(dirs[1].path()).unwrap();
    let mut edited = y.post(id).unwrap().post.content;
    edited.body.push_str(" and a later thought");
    y.edit_post(id, agora_crdt::Base::Latest, edited.clone())
        .await
        .unwrap();
    edited.body.push_str(", and another");
    y.edit_post(id, agora_crdt::Base::Latest, edited)
        .await
        .unwrap();
    y.shutdown().await;
    drop(y);
    assert!(holds_secret(&exported(&x, subwiki, dirs[2].path())));
    x.retract(id, "").await.unwrap();

    let y = start_with(dirs[1].path(), vec![x_addr.clone()], counting).await;
    until(&y, "the retraction at Y", |n| retracted(n, id)).await;
    until(&x, "X and Y hold the same entries", |n| {
        entries(n, subwiki) == entries(&y, subwiki)
    })
    .await;
    assert!(!holds_secret(&exported(&y, subwiki, dirs[2].path())));
    assert!(!holds_secret(&exported(&x, subwiki, dirs[2].path())));

    // Two more reconciliations each way: nothing is fetched again, a few round trips each.
    let status = |n: &Node| n.sync_status().get(&subwiki).cloned().unwrap_or_default();
    let (x0, y0) = (status(&x), status(&y));
    until_polled("two more reconciliations each way", || {
        status(&x).syncs >= x0.syncs + 2 && status(&y).syncs >= y0.syncs + 2
    })
    .await;
    let (x1, y1) = (status(&x), status(&y));
    eprintln!(
        "after convergence: X {} syncs, {} round trips, {} entries received; Y {} syncs, {} \
         round trips, {} entries received",
        x1.syncs - x0.syncs,
        x1.round_trips - x0.round_trips,
        x1.received - x0.received,
        y1.syncs - y0.syncs,
        y1.round_trips - y0.round_trips,
        y1.received - y0.received
    );
    assert_eq!(x1.received, x0.received, "X fetched something again");
    assert_eq!(y1.received, y0.received, "Y fetched something again");
    // One reconciliation of equal sets is one round trip; allow a second.
    assert!(x1.round_trips - x0.round_trips <= 2 * (x1.syncs - x0.syncs));
    assert!(y1.round_trips - y0.round_trips <= 2 * (y1.syncs - y0.syncs));
    x.shutdown().await;
    y.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creator_retracts_and_moderators_redact_where_they_count() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_with(dirs[0].path(), vec![], counting).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("town", "", Policy::default())
        .await
        .unwrap();
    let b = start_with(dirs[1].path(), vec![a_addr.clone()], counting).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    let c = start_with(dirs[2].path(), vec![a_addr.clone()], counting).await;
    c.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    until(&c, "C has the subwiki", |n| {
        n.subwikis()
            .unwrap()
            .iter()
            .any(|s| s.id == subwiki && s.genesis.is_some())
    })
    .await;
    let id = c
        .create_post(subwiki, post("Neighbour", &format!("lives at {SECRET}")))
        .await
        .unwrap();
    for node in [&a, &b] {
        until(node, "C's post", |n| n.post(id).is_ok()).await;
    }

    // B, a plain member, may not remove C's post: refused before anything is signed.
    assert!(matches!(
        b.retract(id, "").await,
        Err(NodeError::Local(LocalError::NotAllowedToRetract { .. }))
    ));
    // A retraction signed by someone else and sent anyway is kept as a statement and does
    // nothing.
    let stranger = AuthorKey::from_secret([7; 32], [1; 8]);
    let now = Timestamp(
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    );
    let forged = Entry::sign(
        &stranger,
        Some(subwiki),
        now,
        Payload::Retract(Retraction {
            doc: id,
            reason: "mine now".into(),
        }),
    )
    .unwrap();
    let accepted = a.accept_from_peer(subwiki, vec![forged.clone()]).unwrap();
    assert_eq!(accepted.new, vec![forged.id()]);
    assert!(!retracted(&a, id));
    assert!(a.post(id).unwrap().post.content.body.contains(SECRET));

    // The founder makes B a moderator; C ignores B's votes and redactions.
    a.state_role(subwiki, RoleAction::AppointModerator, b.author())
        .await
        .unwrap();
    c.set_override(b.author(), true).unwrap();
    until(&b, "B is a moderator", |n| {
        n.moderation(subwiki)
            .is_ok_and(|m| m.roles().moderators().contains(&n.author()))
    })
    .await;
    until(&c, "the appointment at C", |n| {
        n.moderation(subwiki)
            .is_ok_and(|m| m.roles().moderators().contains(&b.author()))
    })
    .await;
    let done = b.retract(id, "doxxing").await.unwrap();
    assert!(done.redaction);
    until(&a, "the redaction at A", |n| retracted(n, id)).await;
    let tombstone = a.post(id).unwrap().post.retracted.unwrap();
    assert_eq!(tombstone.signer, b.author());
    assert_eq!(tombstone.reason, "doxxing");
    assert!(tombstone.is_redaction());
    assert!(!holds_secret(&exported(&a, subwiki, dirs[0].path())));
    // C holds the redaction (it is in its moderation log, not counted) and keeps the post.
    let redaction = done.entry;
    until(&c, "the redaction reaches C", |n| {
        n.moderation(subwiki)
            .is_ok_and(|m| m.log_item(&redaction).is_some())
    })
    .await;
    assert!(!retracted(&c, id));
    assert!(c.post(id).unwrap().post.content.body.contains(SECRET));
    // C keeps what A deleted: A never fetches it from C again (the sets stay different, and
    // each reconciliation finds C's copy and leaves it).
    let status = |n: &Node| n.sync_status().get(&subwiki).cloned().unwrap_or_default();
    let before = status(&a);
    until_polled("two more reconciliations at A", || {
        status(&a).syncs >= before.syncs + 2
    })
    .await;
    assert_eq!(
        status(&a).received,
        before.received,
        "A fetched the redacted post back"
    );
    assert!(retracted(&a, id));
    // Counting B again, C purges it too.
    c.set_override(b.author(), false).unwrap();
    assert!(retracted(&c, id));
    for node in [&a, &b, &c] {
        node.shutdown().await;
    }
}
