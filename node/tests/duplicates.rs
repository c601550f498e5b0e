//! A newcomer that joins a subwiki held by several peers downloads its history about once, not
//! once per peer: concurrent catch-up sessions must not fetch the same entries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use agora_crdt::{Policy, PostContent, SubwikiId};
use agora_node::Node;
use support::*;

const POSTS: usize = 300;
/// Entries received over entries needed that the newcomer may not exceed. One copy of each,
/// plus what gossip or a racing session may bring twice; before one session per subwiki at a
/// time, three peers meant about three copies.
const MAX_RATIO: f64 = 1.3;

fn entries(node: &Node, subwiki: SubwikiId) -> usize {
    node.subwikis()
        .unwrap()
        .iter()
        .find(|s| s.id == subwiki)
        .map_or(0, |s| s.entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_fetches_each_entry_about_once_from_three_peers() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("crowded", "", Policy::default())
        .await
        .unwrap();
    for i in 0..POSTS {
        let content = PostContent {
            title: format!("post {i}"),
            body: "x".repeat(200),
            ..Default::default()
        };
        a.create_post(subwiki, content).await.unwrap();
    }
    let total = POSTS + 1;
    let b = start(dirs[1].path(), vec![]).await;
    let c = start(dirs[2].path(), vec![]).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    c.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    until(&b, "B holds the subwiki", |n| entries(n, subwiki) == total).await;
    until(&c, "C holds the subwiki", |n| entries(n, subwiki) == total).await;
    let peers = vec![a_addr, addr(&b).await, addr(&c).await];

    let d = start(dirs[3].path(), vec![]).await;
    d.join(subwiki, peers).await.unwrap();
    until(&d, "D holds the subwiki", |n| entries(n, subwiki) == total).await;
    // Every peer's session has ended (queued or concurrent, each one counts when done).
    until(&d, "D reconciled with all three peers", |n| {
        n.sync_status().get(&subwiki).is_some_and(|s| s.syncs >= 3)
    })
    .await;
    // The catch-up is over and says so.
    until(&d, "D's catch-up is over", |n| {
        n.sync_status()
            .get(&subwiki)
            .is_some_and(|s| s.catch_up.is_none())
    })
    .await;
    let s = d.sync_status().get(&subwiki).cloned().unwrap_or_default();
    let ratio = s.received as f64 / (total - 1) as f64;
    eprintln!(
        "newcomer: {} entries received for {} needed ({ratio:.2}x), {} duplicates, {} entry \
         bytes, {} reconciliation bytes in {} round trips, {} syncs",
        s.received,
        total - 1,
        s.duplicates,
        s.entry_bytes,
        s.bytes_received,
        s.round_trips,
        s.syncs
    );
    assert!(
        ratio < MAX_RATIO,
        "the newcomer received {ratio:.2}x the entries it needed: {s:?}"
    );
    assert!(s.received as usize >= total - 1);
    for node in [&a, &b, &c, &d] {
        node.shutdown().await;
    }
}
