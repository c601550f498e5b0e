//! A Sybil flood: what statements from keys nobody trusts cost an honest node.
//!
//! ```sh
//! cargo bench -p agora-node --bench flood
//! AGORA_BENCH_FLOOD=20000 cargo bench -p agora-node --bench flood
//! ```
//!
//! A `trusted` subwiki with 200 posts, five members the founder vouched for and their votes is
//! stored in a fresh home; the node is opened offline (as `agora` opens it) and then takes
//! `AGORA_BENCH_FLOOD` statements (10,000 by default) from as many fresh keys, one entry per
//! call as gossip delivers them, through the path gossip and catch-up take
//! ([`Node::accept_from_peer`]: validation, the replica's checks, a durable write, the
//! moderation summary). Each key hides a post or mutes the founder; every tenth also vouches
//! for another fresh key. None of it changes an outcome.
//!
//! Printed, as a Markdown table for `docs/performance.md`: the time per statement in the first
//! and in the last thousand (their ratio is 1 when the cost per statement is constant, and
//! grows with the flood when it is not), and two baselines from the same run: one honest post
//! accepted the same way (a durable write of one entry), and a full computation of the
//! subwiki's moderation from everything held at the end (what each statement cost before
//! statements that change no outcome were told apart).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agora_crdt::{
    AuthorKey, EditPolicy, Entry, Overrides, Policy, PostContent, Replica, RoleAction, Timestamp,
    VoteTarget, VoteValue,
};
use agora_node::Node;
use agora_node::home::Home;
use agora_node::store::{SledStore, Store, SubwikiRecord};

const BLOCK: usize = 1_000;

fn now() -> Timestamp {
    Timestamp(
        u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    )
}

fn key(i: u32) -> AuthorKey {
    let mut secret = [0u8; 32];
    secret[..4].copy_from_slice(&i.to_le_bytes());
    secret[31] = 0xa5;
    AuthorKey::from_secret(secret, [1; 8])
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours means another bench.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"flood".contains(a.as_str()))
    {
        return;
    }
    let flood: usize = std::env::var("AGORA_BENCH_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("agora-bench-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // The subwiki as it was before the flood.
    let founder = key(0);
    let policy = Policy {
        edit: EditPolicy::Trusted,
        ..Policy::default()
    };
    let (mut source, genesis) = Replica::found(&founder, now(), "flooded", "", policy).unwrap();
    let subwiki = source.id();
    let mut before: Vec<Entry> = vec![genesis];
    let mut posts = Vec::new();
    for i in 0..200 {
        let post = PostContent {
            title: format!("post {i}"),
            body: "A paragraph of text, as a post has. ".repeat(16),
            ..PostContent::default()
        };
        let entry = source.create_post(&founder, now(), post).unwrap();
        posts.push(VoteTarget::Post(entry.id().into()));
        before.push(entry);
    }
    for m in 1..=5 {
        let member = key(m);
        before.push(
            source
                .state_role(&founder, now(), RoleAction::Vouch, member.id())
                .unwrap(),
        );
        before.push(
            source
                .vote(&member, now(), posts[m as usize], VoteValue::Keep, "")
                .unwrap(),
        );
    }
    let home = dir.join("home");
    let store = SledStore::open(&Home::new(&home).store()).unwrap();
    store.put_entries(&before).unwrap();
    store
        .set_subwiki(SubwikiRecord {
            id: subwiki,
            joined: true,
        })
        .unwrap();
    drop(store);

    // The flood, signed in advance.
    let mut statements = Vec::with_capacity(flood + flood / 10);
    for i in 0..flood {
        let sybil = key(1_000 + u32::try_from(i).unwrap());
        let target = if i % 2 == 0 {
            posts[i % posts.len()]
        } else {
            VoteTarget::Author(founder.id())
        };
        let value = match target {
            VoteTarget::Post(_) => VoteValue::Hide,
            VoteTarget::Author(_) => VoteValue::Mute,
        };
        statements.push(source.vote(&sybil, now(), target, value, "").unwrap());
        if i % 10 == 0 {
            let other = key(1_000 + u32::try_from((i + 1) % flood).unwrap());
            statements.push(
                source
                    .state_role(&sybil, now(), RoleAction::Vouch, other.id())
                    .unwrap(),
            );
        }
    }
    let honest: Vec<Entry> = (0..BLOCK)
        .map(|i| {
            let post = PostContent {
                title: format!("honest {i}"),
                ..PostContent::default()
            };
            source.create_post(&key(1), now(), post).unwrap()
        })
        .collect();

    let node = Node::open_offline(&home).unwrap();
    assert_eq!(node.feed(None, None, 20).unwrap().len(), 20);
    let mut blocks: Vec<Duration> = Vec::new();
    for block in statements.chunks(BLOCK) {
        let start = Instant::now();
        for entry in block {
            let accepted = node.accept_from_peer(subwiki, vec![entry.clone()]).unwrap();
            assert_eq!(accepted.new.len(), 1, "{:?}", accepted.refused);
        }
        blocks.push(start.elapsed() / u32::try_from(block.len()).unwrap());
    }
    let start = Instant::now();
    for entry in &honest {
        node.accept_from_peer(subwiki, vec![entry.clone()]).unwrap();
    }
    let honest_post = start.elapsed() / u32::try_from(honest.len()).unwrap();
    let moderation = node.moderation(subwiki).unwrap();
    assert!(
        moderation.posts().values().all(|o| !o.hidden) && !moderation.is_muted(&founder.id()),
        "the flood changed no outcome"
    );
    let start = Instant::now();
    let held = source.votes().count() + source.role_statements().count();
    let _ = source.moderation(&Overrides::none());
    let recompute = start.elapsed();

    let first = blocks.first().copied().unwrap_or_default();
    let last = blocks.last().copied().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "| flood of {} statements from fresh keys, one per call | per statement | ratio |",
        statements.len()
    );
    println!("|---|---:|---:|");
    println!(
        "| baseline: an honest post accepted the same way | {:.2} ms | 1.00× |",
        ms(honest_post)
    );
    println!(
        "| the first {BLOCK} statements | {:.2} ms | {:.2}× |",
        ms(first),
        ms(first) / ms(honest_post)
    );
    println!(
        "| the last {BLOCK} statements | {:.2} ms | {:.2}× |",
        ms(last),
        ms(last) / ms(honest_post)
    );
    println!(
        "| last thousand / first thousand | | {:.2}× |",
        ms(last) / ms(first)
    );
    println!(
        "| baseline: the whole moderation computed from the {held} statements held | {:.2} ms | {:.2}× |",
        ms(recompute),
        ms(recompute) / ms(honest_post)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
