//! Personal nodes and a bootstrap peer on loopback: discovery through it, reachability through
//! its relay, and seeding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use agora_bootstrap::{Bootstrap, Settings};
use agora_crdt::{Policy, PostContent};
use libp2p::multiaddr::Protocol;
use support::*;

/// An in-process bootstrap peer's settings: `home`, a free loopback port, seeding `seed`.
fn local(home: &std::path::Path, seed: Vec<agora_crdt::SubwikiId>) -> Settings {
    Settings {
        home: Some(home.to_owned()),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        seed,
        ..Settings::default()
    }
}

fn post(title: &str) -> PostContent {
    PostContent {
        title: title.into(),
        body: "hello".into(),
        ..Default::default()
    }
}

/// A and B know only the bootstrap peer (the real binary). B joins A's subwiki by id, with no
/// address: the bootstrap peer's DHT leads it to A, and they sync both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_know_only_the_bootstrap_peer_find_each_other() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let boot = spawn_bootstrap(dirs[0].path(), &[]).await;
    let a = start_node(dirs[1].path(), vec![boot.addr.clone()]).await;
    let subwiki = a
        .create_subwiki("met through bootstrap", "", Policy::default())
        .await
        .unwrap();
    a.create_post(subwiki, post("from A")).await.unwrap();

    let b = start_node(dirs[2].path(), vec![boot.addr.clone()]).await;
    b.join(subwiki, vec![]).await.unwrap();
    until(&b, "B has A's post", |n| titles(n) == ["from A"]).await;
    b.create_post(subwiki, post("from B")).await.unwrap();
    until(&a, "A has B's post", |n| titles(n).len() == 2).await;
    assert!(
        a.peers().await.iter().any(|p| p.peer == b.peer_id()),
        "A and B are connected directly"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// C listens only on its relay circuit at the bootstrap peer: it has no address of its own.
/// D joins C's subwiki by id, finds C's circuit address in the DHT, reaches C through the relay
/// and syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reachable_only_through_the_relay_is_reached() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let boot = spawn_bootstrap(dirs[0].path(), &[]).await;
    let c = start_node_with(dirs[1].path(), vec![boot.addr.clone()], |config| {
        config.listen = Vec::new();
        config.relay_via = vec![boot.addr.clone()];
        // C never looks for peers by itself in this test: whoever connects, came to it.
        config.resync_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    // Its only address is the circuit, once the reservation is made.
    let c_addrs = tokio::time::timeout(GUARD, c.listen_addrs()).await.unwrap();
    assert!(!c_addrs.is_empty());
    assert!(
        c_addrs
            .iter()
            .all(|a| a.iter().any(|p| p == Protocol::P2pCircuit)),
        "C listens only through the relay: {c_addrs:?}"
    );
    let subwiki = c
        .create_subwiki("behind NAT", "", Policy::default())
        .await
        .unwrap();
    c.create_post(subwiki, post("from C")).await.unwrap();

    let d = start_node(dirs[2].path(), vec![boot.addr.clone()]).await;
    d.join(subwiki, vec![]).await.unwrap();
    until(&d, "D has C's post", |n| titles(n) == ["from C"]).await;
    let to_c = d
        .peers()
        .await
        .into_iter()
        .find(|p| p.peer == c.peer_id())
        .expect("D is connected to C");
    assert!(
        to_c.addresses
            .iter()
            .any(|a| a.iter().any(|p| p == Protocol::P2pCircuit)),
        "D reached C through the relay: {:?}",
        to_c.addresses
    );
    c.shutdown().await;
    d.shutdown().await;
}

/// A bootstrap peer seeding A's subwiki keeps it available after A is gone: B, a newcomer,
/// gets all of it from the bootstrap peer alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_subwiki_stays_available_when_its_author_is_gone() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_node(dirs[1].path(), vec![]).await;
    let subwiki = a
        .create_subwiki("kept alive", "", Policy::default())
        .await
        .unwrap();
    for i in 0..20 {
        let id = a
            .create_post(subwiki, post(&format!("p{i}")))
            .await
            .unwrap();
        a.comment(id, None, "a comment").await.unwrap();
    }
    let total = entries(&a, subwiki);
    assert_eq!(total, 41);

    let settings = local(dirs[0].path(), vec![subwiki]);
    let boot = Bootstrap::start(settings).await.unwrap();
    let boot_addr = boot.addresses().await.remove(0);
    a.dial(boot_addr.clone()).await;
    until(boot.node(), "the bootstrap peer has everything", |n| {
        entries(n, subwiki) == total
    })
    .await;
    let expected = titles(&a);
    a.shutdown().await;
    drop(a);

    let b = start_node(dirs[2].path(), vec![boot_addr]).await;
    b.join(subwiki, vec![]).await.unwrap();
    until(&b, "B has the whole subwiki", |n| {
        entries(n, subwiki) == total
    })
    .await;
    assert_eq!(titles(&b), expected);
    let peers = b.peers().await;
    assert_eq!(peers.len(), 1, "B's only peer is the bootstrap peer");
    assert_eq!(peers[0].peer, boot.node().peer_id());
    b.shutdown().await;
    boot.shutdown().await;
}

/// Without `--seed` the bootstrap peer keeps nothing: it refuses to reconcile and writes no
/// store, even when a node that holds a subwiki connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_seeding_nothing_is_stored() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let settings = local(dirs[0].path(), vec![]);
    let boot = Bootstrap::start(settings).await.unwrap();
    let boot_addr = boot.addresses().await.remove(0);
    let a = start_node(dirs[1].path(), vec![boot_addr]).await;
    let subwiki = a.create_subwiki("s", "", Policy::default()).await.unwrap();
    a.create_post(subwiki, post("p")).await.unwrap();
    until_connected(&a, boot.node().peer_id()).await;
    // A's reconciliation with the bootstrap peer ends (refused) without storing anything.
    assert!(boot.node().subwikis().unwrap().is_empty());
    let files: Vec<_> = std::fs::read_dir(dirs[0].path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!files.contains(&"store".to_owned()), "{files:?}");
    a.shutdown().await;
    boot.shutdown().await;
}

/// A peer that makes more requests than `requests_per_minute` allows is refused (and not
/// penalised for it by its own node: it simply gets less), and the refusals are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_rate_limit_are_refused() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_node(dirs[1].path(), vec![]).await;
    let subwiki = a
        .create_subwiki("busy", "", Policy::default())
        .await
        .unwrap();
    a.create_post(subwiki, post("p")).await.unwrap();

    let mut settings = Settings {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..local(dirs[0].path(), vec![subwiki])
    };
    // Enough for the genesis fetch and one round, not for a whole catch-up.
    settings.limits.requests_per_minute = 2;
    let boot = Bootstrap::start(settings).await.unwrap();
    let boot_addr = boot.addresses().await.remove(0);
    a.dial(boot_addr.clone()).await;
    until(boot.node(), "the bootstrap peer has the subwiki", |n| {
        entries(n, subwiki) == 2
    })
    .await;
    a.shutdown().await;

    let b = start_node(dirs[2].path(), vec![boot_addr]).await;
    b.join(subwiki, vec![]).await.unwrap();
    let url = format!("http://{}/metrics", boot.metrics_addr().unwrap());
    scrape_until(&url, "a refused request", |t| {
        t.lines()
            .find_map(|l| l.strip_prefix("agora_requests_rate_limited_total "))
            .is_some_and(|v| v.trim() != "0")
    })
    .await;
    assert!(
        b.peers()
            .await
            .iter()
            .any(|p| p.peer == boot.node().peer_id()),
        "B is still connected: a refusal is not a fault"
    );
    b.shutdown().await;
    boot.shutdown().await;
}
