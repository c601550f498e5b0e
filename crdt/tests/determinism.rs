//! Determinism: a replica's state is a function of the set of entries it holds. Random
//! histories from several devices, under both edit policies, are delivered in random orders,
//! with duplicates, in random batches: every delivery gives the same documents, heads, feed,
//! history (with exclusions), evidence, held set, roles and moderation. Every workload has
//! posts, concurrent edits, an equivocation, role statements, votes and refused changes (a
//! rewrite of someone else's comment, a change naming a vote or a change as its document, and
//! under `trusted` edits by members nobody vouched for); random steps follow.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use agora_crdt::{
    AuthorKey, Base, DocChange, DocId, EditPolicy, Entry, Held, Overrides, Payload, Policy,
    PostContent, Replica, Retraction, RoleAction, Timestamp, VoteTarget, VoteValue,
};
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Step {
    Create {
        dev: usize,
        title: u8,
    },
    Edit {
        dev: usize,
        post: usize,
        para: usize,
        word: u8,
    },
    Comment {
        dev: usize,
        post: usize,
        word: u8,
    },
    Vote {
        dev: usize,
        post: usize,
        hide: bool,
    },
    Profile {
        dev: usize,
        word: u8,
    },
    Sync {
        from: usize,
        to: usize,
    },
    /// Device 0 and its twin edit the same post from the same state.
    Equivocate {
        post: usize,
        word: u8,
    },
    /// A role statement (any action, by anyone, about anyone).
    Role {
        dev: usize,
        action: u8,
        subject: usize,
    },
    /// A rewrite of a comment by someone who did not write it: refused.
    RewriteComment {
        dev: usize,
        comment: usize,
    },
    /// A change pointed at an entry that is not a document: a vote (0), a change held (1) or a
    /// change refused (2). Refused where that entry is held; waits where it is not.
    Misdirect {
        dev: usize,
        at: u8,
    },
    /// The device retracts one of the posts or comments it created.
    Retract {
        dev: usize,
        which: usize,
    },
    /// The device redacts a post or comment someone else created: it counts if the device is
    /// the founder or a moderator (in the final roles), and is signed anyway (as a modified
    /// client would) if it is not, to do nothing.
    Redact {
        dev: usize,
        which: usize,
    },
}

/// What every workload starts with, so that each case exercises every kind of entry: two
/// posts; concurrent edits of the first by two members; an equivocation; a vouch and a
/// moderator appointment; votes; comments; and refused changes.
fn prefix() -> Vec<Step> {
    vec![
        Step::Create { dev: 0, title: 1 },
        Step::Create { dev: 1, title: 2 },
        Step::Sync { from: 0, to: 1 },
        Step::Sync { from: 1, to: 2 },
        Step::Sync { from: 1, to: 0 },
        Step::Edit {
            dev: 1,
            post: 0,
            para: 0,
            word: 1,
        },
        Step::Edit {
            dev: 2,
            post: 0,
            para: 2,
            word: 2,
        },
        Step::Equivocate { post: 0, word: 3 },
        Step::Role {
            dev: 0,
            action: 2,
            subject: 1,
        },
        Step::Role {
            dev: 0,
            action: 0,
            subject: 2,
        },
        Step::Vote {
            dev: 1,
            post: 0,
            hide: true,
        },
        Step::Vote {
            dev: 2,
            post: 1,
            hide: false,
        },
        Step::Comment {
            dev: 0,
            post: 0,
            word: 4,
        },
        Step::Sync { from: 0, to: 1 },
        Step::RewriteComment { dev: 1, comment: 0 },
        Step::Misdirect { dev: 2, at: 0 },
        Step::Misdirect { dev: 1, at: 1 },
        Step::Misdirect { dev: 0, at: 2 },
        // Device 2 comments on the newest post and edits a third one, which device 1 then
        // retracts with everything on it that others wrote; device 0 retracts its comment;
        // device 2, a moderator, redacts device 0's fourth post, and device 1, a plain member,
        // tries to redact one of device 0's documents.
        Step::Comment {
            dev: 2,
            post: 0,
            word: 5,
        },
        Step::Create { dev: 1, title: 3 },
        Step::Sync { from: 1, to: 2 },
        Step::Edit {
            dev: 2,
            post: 0,
            para: 1,
            word: 6,
        },
        Step::Sync { from: 2, to: 1 },
        Step::Retract { dev: 1, which: 0 },
        Step::Retract { dev: 0, which: 0 },
        Step::Create { dev: 0, title: 4 },
        Step::Sync { from: 0, to: 2 },
        Step::Redact { dev: 2, which: 0 },
        Step::Redact { dev: 1, which: 0 },
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(EditPolicy::Open), Just(EditPolicy::Trusted)].prop_map(|edit| Policy {
        edit,
        ..Policy::default()
    })
}

const DEVICES: usize = 4;

fn step() -> impl Strategy<Value = Step> {
    let dev = 0..DEVICES;
    prop_oneof![
        1 => (dev.clone(), any::<u8>()).prop_map(|(dev, title)| Step::Create { dev, title }),
        4 => (dev.clone(), any::<usize>(), 0..3usize, any::<u8>())
            .prop_map(|(dev, post, para, word)| Step::Edit { dev, post, para, word }),
        1 => (dev.clone(), any::<usize>(), any::<u8>())
            .prop_map(|(dev, post, word)| Step::Comment { dev, post, word }),
        1 => (dev.clone(), any::<usize>(), any::<bool>())
            .prop_map(|(dev, post, hide)| Step::Vote { dev, post, hide }),
        1 => (dev.clone(), any::<u8>()).prop_map(|(dev, word)| Step::Profile { dev, word }),
        3 => (dev.clone(), dev.clone()).prop_map(|(from, to)| Step::Sync { from, to }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(post, word)| Step::Equivocate { post, word }),
        1 => (dev.clone(), 0..4u8, 0..DEVICES)
            .prop_map(|(dev, action, subject)| Step::Role { dev, action, subject }),
        1 => (dev.clone(), any::<usize>())
            .prop_map(|(dev, comment)| Step::RewriteComment { dev, comment }),
        1 => (dev.clone(), 0..3u8).prop_map(|(dev, at)| Step::Misdirect { dev, at }),
        1 => (dev.clone(), any::<usize>()).prop_map(|(dev, which)| Step::Retract { dev, which }),
        1 => (dev, any::<usize>()).prop_map(|(dev, which)| Step::Redact { dev, which }),
    ]
}

/// Devices 0..3 are three people; device 3 is a twin of device 0 (same key, same actor
/// suffix, its own replica), so it equivocates when both edit from the same state.
fn device_keys() -> Vec<AuthorKey> {
    vec![key(1), key(2), key(3), key(1)]
}

fn with_paragraph(body: &str, para: usize, word: u8) -> String {
    let mut paras: Vec<String> = body.split("\n\n").map(str::to_owned).collect();
    while paras.len() < 3 {
        paras.push(String::from("p"));
    }
    paras[para] = format!("{} w{word}", paras[para]);
    paras.join("\n\n")
}

/// Plays the steps on separate devices and returns the genesis and every entry any of them
/// holds; with [`play_all`], also the entries they made and refused.
fn play(policy: Policy, steps: &[Step]) -> (Entry, Vec<Entry>) {
    let (genesis, held, _) = play_all(policy, steps);
    (genesis, held)
}

fn play_all(policy: Policy, steps: &[Step]) -> (Entry, Vec<Entry>, Vec<Entry>) {
    let mut refused = Vec::new();
    let keys = device_keys();
    let mut devices: Vec<Replica> = vec![founded_with(&keys[0], policy)];
    for _ in 1..DEVICES {
        devices.push(fresh(&devices[0]));
    }
    let mut now = T0;
    for step in steps {
        now += 1_000;
        let t = Timestamp(now);
        match step {
            Step::Create { dev, title } => {
                let body = "one\n\ntwo\n\nthree";
                devices[*dev]
                    .create_post(&keys[*dev], t, post(&format!("post {title}"), body))
                    .unwrap();
            }
            Step::Edit { .. } => play_edit(&mut devices, &keys, t, step),
            Step::Comment { dev, post, word } => {
                let posts = post_ids(&devices[*dev]);
                if posts.is_empty() {
                    continue;
                }
                let id = posts[post % posts.len()];
                devices[*dev]
                    .comment(&keys[*dev], t, id, None, &format!("comment {word}"))
                    .unwrap();
            }
            Step::Vote { dev, post, hide } => {
                let posts = post_ids(&devices[*dev]);
                if posts.is_empty() {
                    continue;
                }
                let value = if *hide {
                    VoteValue::Hide
                } else {
                    VoteValue::Keep
                };
                let target = VoteTarget::Post(posts[post % posts.len()]);
                devices[*dev]
                    .vote(&keys[*dev], t, target, value, "")
                    .unwrap();
            }
            Step::Profile { dev, word } => {
                let profile = agora_crdt::ProfileContent {
                    name: format!("name {word}"),
                    bio: String::new(),
                };
                devices[*dev].set_profile(&keys[*dev], t, profile).unwrap();
            }
            Step::Equivocate { post, word } => {
                let (first, rest) = devices.split_at_mut(1);
                sync(&first[0], &mut rest[2]);
                let posts = post_ids(&devices[0]);
                if posts.is_empty() {
                    continue;
                }
                let id = posts[post % posts.len()];
                if devices[3].tombstone(&id).is_some() {
                    continue;
                }
                for (dev, para) in [(0, 0), (3, 2)] {
                    let current = devices[dev].post(&id).unwrap().content;
                    let edited = PostContent {
                        body: with_paragraph(&current.body, para, *word),
                        ..current
                    };
                    devices[dev]
                        .edit_post(&keys[dev], t, id, &Base::Latest, edited)
                        .unwrap();
                }
            }
            Step::Role {
                dev,
                action,
                subject,
            } => {
                let action = match action % 4 {
                    0 => RoleAction::AppointModerator,
                    1 => RoleAction::RemoveModerator,
                    2 => RoleAction::Vouch,
                    _ => RoleAction::Revoke,
                };
                devices[*dev]
                    .state_role(&keys[*dev], t, action, keys[*subject].id())
                    .unwrap();
            }
            Step::RewriteComment { dev, comment } => {
                let comments: Vec<DocId> = post_ids(&devices[*dev])
                    .iter()
                    .flat_map(|p| devices[*dev].comments(p))
                    .filter(|c| c.meta.creator != keys[*dev].id() && c.retracted.is_none())
                    .map(|c| c.meta.id)
                    .collect();
                if comments.is_empty() {
                    continue;
                }
                let id = comments[comment % comments.len()];
                let entry = forge_change(
                    &devices[*dev],
                    &keys[*dev],
                    t,
                    id,
                    &agora_crdt::Content::Comment(agora_crdt::CommentContent {
                        text: "not yours".into(),
                    }),
                );
                let report = devices[*dev].ingest([entry.clone()]);
                assert_eq!(report.rejected.len(), 1, "a rewrite of another's comment");
                refused.push(entry);
            }
            Step::Misdirect { dev, at } => {
                // One of this device's own changes, pointed at a vote or at another change.
                let replica = &devices[*dev];
                let own_change = replica.entries().find_map(|e| match e.payload() {
                    Payload::Change(c) if e.author() == keys[*dev].id() => Some(c.change.clone()),
                    _ => None,
                });
                let target = match at {
                    0 => replica
                        .entries()
                        .find(|e| matches!(e.payload(), Payload::Vote(_)))
                        .cloned(),
                    1 => replica
                        .entries()
                        .find(|e| matches!(e.payload(), Payload::Change(_)))
                        .cloned(),
                    _ => refused.first().cloned(),
                };
                let (Some(change), Some(target)) = (own_change, target) else {
                    continue;
                };
                let doc: DocId = target.id().into();
                let entry = sign(
                    replica,
                    &keys[*dev],
                    t,
                    Payload::Change(DocChange { doc, change }),
                );
                devices[*dev].ingest([entry.clone()]);
                refused.push(entry);
            }
            Step::Retract { dev, which } | Step::Redact { dev, which } => {
                let own = matches!(step, Step::Retract { .. });
                let me = keys[*dev].id();
                let replica = &devices[*dev];
                let docs: Vec<DocId> = post_ids(replica)
                    .iter()
                    .flat_map(|p| {
                        std::iter::once(*p)
                            .chain(replica.comments(p).into_iter().map(|c| c.meta.id))
                    })
                    .filter(|d| {
                        replica.tombstone(d).is_none()
                            && replica
                                .doc_meta(d)
                                .is_some_and(|m| (m.creator == me) == own)
                    })
                    .collect();
                if docs.is_empty() {
                    continue;
                }
                let doc = docs[which % docs.len()];
                if devices[*dev].retract(&keys[*dev], t, doc, "gone").is_err() {
                    let entry = sign(
                        &devices[*dev],
                        &keys[*dev],
                        t,
                        Payload::Retract(Retraction {
                            doc,
                            reason: "not mine to remove".into(),
                        }),
                    );
                    let report = devices[*dev].ingest([entry]);
                    assert!(report.purged.is_empty(), "a redaction by a plain member");
                }
            }
            Step::Sync { from, to } => {
                if from != to {
                    let (a, b) = if from < to {
                        let (l, r) = devices.split_at_mut(*to);
                        (&l[*from], &mut r[0])
                    } else {
                        let (l, r) = devices.split_at_mut(*from);
                        (&r[0], &mut l[*to])
                    };
                    sync(a, b);
                }
            }
        }
    }
    let genesis = devices[0].genesis_entry().clone();
    let mut all: Vec<Entry> = devices.iter().flat_map(|d| d.entries().cloned()).collect();
    all.sort_by_key(Entry::id);
    all.dedup_by_key(|e| e.id());
    (genesis, all, refused)
}

/// The posts that are not retracted.
fn post_ids(replica: &Replica) -> Vec<DocId> {
    replica
        .feed(None, 1000)
        .items
        .iter()
        .filter(|p| p.retracted.is_none())
        .map(|p| p.meta.id)
        .collect()
}

fn play_edit(devices: &mut [Replica], keys: &[AuthorKey], t: Timestamp, step: &Step) {
    let Step::Edit {
        dev,
        post,
        para,
        word,
    } = step
    else {
        return;
    };
    let posts = post_ids(&devices[*dev]);
    if posts.is_empty() {
        return;
    }
    let id = posts[post % posts.len()];
    let current = devices[*dev].post(&id).unwrap().content;
    let edited = PostContent {
        body: with_paragraph(&current.body, *para, *word),
        ..current
    };
    if devices[*dev]
        .edit_post(&keys[*dev], t, id, &Base::Latest, edited.clone())
        .is_err()
    {
        // Refused locally (`trusted`, and nobody vouched for this member): made anyway, as a
        // modified client would, and left out of the view wherever it arrives.
        let entry = forge_edit(&devices[*dev], &keys[*dev], t, id, edited);
        devices[*dev].ingest([entry]);
    }
}

/// Everything observable, with roles, moderation and the equivocators the index flags.
type State = (
    Snapshot,
    agora_crdt::Roles,
    agora_crdt::Moderation,
    std::collections::BTreeSet<(DocId, agora_crdt::AuthorId)>,
);

fn state(r: &Replica) -> State {
    // Nothing of a purged document is held: not its creation, not a change by anyone.
    for t in r.tombstones() {
        let doc = t.meta.id;
        assert!(
            r.entries().all(|e| e.id() != doc.into()
                && !matches!(e.payload(), Payload::Change(c) if c.doc == doc)),
            "an entry of the purged {doc} is held"
        );
        assert!(r.content(&doc).is_none(), "the purged {doc} still reads");
    }
    let flagged = r.equivocators().clone();
    // The index flags exactly the authors the built documents prove equivocated.
    let proven: std::collections::BTreeSet<(DocId, agora_crdt::AuthorId)> = r
        .equivocations()
        .iter()
        .map(|e| (e.doc, e.author))
        .collect();
    assert_eq!(
        flagged, proven,
        "the index's equivocators are the documents'"
    );
    (
        snapshot(r),
        r.roles().clone(),
        r.moderation(&Overrides::none()),
        flagged,
    )
}

/// A workload: a policy, and the prefix followed by random steps.
fn workload() -> impl Strategy<Value = (Policy, Vec<Step>)> {
    (policy(), proptest::collection::vec(step(), 0..30)).prop_map(|(policy, steps)| {
        let mut all = prefix();
        all.extend(steps);
        (policy, all)
    })
}

/// Delivers `entries` in a shuffled order, with about a third duplicated, in random batches.
fn deliver(genesis: &Entry, entries: &[Entry], seed: u64) -> Replica {
    let mut rng = Rng(seed);
    let mut order: Vec<Entry> = entries.to_vec();
    for e in entries {
        if rng.below(3) == 0 {
            order.push(e.clone());
        }
    }
    rng.shuffle(&mut order);
    let mut replica = Replica::new(genesis.clone()).unwrap();
    let mut rest = order.as_slice();
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(8));
        let (batch, tail) = rest.split_at(n);
        replica.ingest(batch.to_vec());
        rest = tail;
    }
    // What catch-up does: everything offered once more. Only a purge that the final roles
    // undo (a moderator's redaction, then that moderator removed) needs it: the entries it
    // dropped come back.
    replica.ingest(entries.to_vec());
    replica
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_delivery_order_gives_the_same_state(
        (policy, steps) in workload(),
        seeds in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let (genesis, mut entries, refused) = play_all(policy, &steps);
        prop_assert!(refused.len() >= 4, "the prefix's refused changes were made");
        entries.extend(refused);
        let mut reference = Replica::new(genesis.clone()).unwrap();
        let report = reference.ingest(entries.clone());
        // The change naming a vote is always refused; the others may wait instead, when
        // what they name was purged on every device.
        prop_assert!(!report.rejected.is_empty(), "{:?}", report.rejected);
        let expected = state(&reference);
        prop_assert!(!expected.0.feed.is_empty(), "posts");
        // The prefix's two retractions, a redaction and a forged one (a purged document
        // leaves no tombstone where no node kept it).
        let statements = reference.retractions().count();
        prop_assert!(statements >= 4, "retractions");
        // The equivocated post is gone only if a later step retracted it.
        prop_assert!(
            !expected.0.equivocations.is_empty() || statements > 4,
            "an equivocation"
        );
        for seed in seeds {
            let replica = deliver(&genesis, &entries, seed);
            prop_assert_eq!(&state(&replica), &expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// A node reopens a subwiki from document snapshots saved when it held only part of the
    /// entries (some of which may later turn out to be excluded, by an equivocation that
    /// arrives afterwards), plus a damaged snapshot and one of another document: the state is
    /// the same as ingesting every entry from scratch.
    #[test]
    fn snapshots_saved_at_any_point_give_the_same_state(
        (policy, steps) in workload(),
        seed in any::<u64>(),
        cut in 0.0f64..1.0,
    ) {
        let (genesis, entries) = play(policy, &steps);
        let mut reference = Replica::new(genesis.clone()).unwrap();
        reference.ingest(entries.clone());
        let expected = snapshot(&reference);

        let mut order = entries.clone();
        Rng(seed).shuffle(&mut order);
        let held = (order.len() as f64 * cut) as usize;
        let mut earlier = Replica::new(genesis.clone()).unwrap();
        earlier.ingest(order[..held].to_vec());
        let docs = earlier.doc_ids();
        let mut saved: std::collections::HashMap<DocId, Vec<u8>> = docs
            .iter()
            .map(|d| (*d, earlier.save_document(d).unwrap()))
            .collect();
        // Damage one snapshot and give another document's snapshot to a second one.
        if let Some(first) = docs.first() {
            let bytes = saved.get_mut(first).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
        }
        if let [_, a, b, ..] = docs.as_slice() {
            let other = saved[b].clone();
            saved.insert(*a, other);
        }

        let source = std::sync::Arc::new(MemorySource::default());
        *source.snapshots.lock().unwrap() = saved;
        let mut reopened = Replica::with_source(genesis.clone(), source.clone()).unwrap();
        ingest_and_release(&mut reopened, &source, order);
        prop_assert_eq!(&snapshot(&reopened), &expected);
    }

    /// Documents built on demand, from entries the replica let go of and read back from its
    /// source, in a cache that keeps none, a few or all of them, with reads between deliveries
    /// (so that some entries arrive for documents that are built and some for documents that
    /// are not): the same state as every document built from every entry at once.
    #[test]
    fn documents_built_on_demand_equal_the_eagerly_built_ones(
        (policy, steps) in workload(),
        seed in any::<u64>(),
        budget in prop_oneof![Just(0usize), 0usize..40_000, Just(usize::MAX)],
    ) {
        let (genesis, entries) = play(policy, &steps);
        let mut reference = Replica::new(genesis.clone()).unwrap();
        reference.ingest(entries.clone());
        let expected = snapshot(&reference);

        let mut rng = Rng(seed);
        let mut order = entries.clone();
        rng.shuffle(&mut order);
        let source = std::sync::Arc::new(MemorySource::default());
        let mut lazy = Replica::with_source(genesis.clone(), source.clone()).unwrap();
        lazy.set_cache_budget(budget);
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(6));
            let (batch, tail) = rest.split_at(n);
            ingest_and_release(&mut lazy, &source, batch.to_vec());
            // Read a few documents, which builds and caches them.
            let docs = lazy.doc_ids();
            for _ in 0..rng.below(3) {
                if !docs.is_empty() {
                    let doc = docs[rng.below(docs.len())];
                    let _ = lazy.content(&doc);
                    let _ = lazy.post(&doc);
                }
            }
            rest = tail;
        }
        // Everything offered once more, as catch-up does (see `deliver`).
        ingest_and_release(&mut lazy, &source, order.clone());
        prop_assert_eq!(&snapshot(&lazy), &expected);
        prop_assert!(lazy.entries().all(|e| !matches!(e.payload(), agora_crdt::Payload::CreateDocument(_) | agora_crdt::Payload::Change(_))),
            "documents' entries were released");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// A replica restored from its entries' records (as a store keeps them), in any order,
    /// with only the votes and role statements as entries, is the replica that ingested the
    /// entries; every record reads back from its bytes, and a cut one does not.
    #[test]
    fn a_replica_restored_from_records_equals_the_one_that_ingested_the_entries(
        (policy, steps) in workload(),
        seed in any::<u64>(),
    ) {
        let (genesis, entries) = play(policy, &steps);
        let mut reference = Replica::new(genesis.clone()).unwrap();
        reference.ingest(entries.clone());
        let expected = snapshot(&reference);

        let mut order = entries.clone();
        Rng(seed).shuffle(&mut order);
        let records: Vec<Held> = order.iter().map(Held::of).collect();
        for (entry, held) in order.iter().zip(&records) {
            let bytes = held.encode();
            prop_assert_eq!(Held::decode(entry.id(), entry.timestamp(), &bytes), Some(*held));
            prop_assert_eq!(Held::decode(entry.id(), entry.timestamp(), &bytes[..bytes.len() - 1]), None);
        }
        let statements: Vec<Entry> = order
            .iter()
            .filter(|e| Held::of(e).is_statement())
            .cloned()
            .collect();
        let source = std::sync::Arc::new(MemorySource::default());
        source.hold(&entries);
        let (mut restored, report) =
            Replica::restore(genesis.clone(), source, records, statements).unwrap();
        prop_assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        restored.restore_tombstones(Vec::new());
        prop_assert_eq!(&snapshot(&restored), &expected);
        prop_assert_eq!(restored.equivocators(), reference.equivocators());
    }
}

#[test]
fn a_snapshot_is_used_when_it_matches() {
    let alice = key(1);
    let mut a = founded(&alice);
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", "one\n\ntwo"))
        .unwrap()
        .id()
        .into();
    for i in 0..20u64 {
        let current = a.post(&id).unwrap().content;
        let edited = PostContent {
            body: format!("{} {i}", current.body),
            ..current
        };
        a.edit_post(&alice, Timestamp(T0 + 2 + i), id, &Base::Latest, edited)
            .unwrap();
    }
    let saved = a.save_document(&id).unwrap();
    let entries: Vec<Entry> = a.entries().cloned().collect();
    let source = std::sync::Arc::new(MemorySource::default());
    source.snapshots.lock().unwrap().insert(id, saved);
    let mut b = Replica::with_source(a.genesis_entry().clone(), source.clone()).unwrap();
    ingest_and_release(&mut b, &source, entries);
    assert_eq!(
        b.cached_documents(),
        0,
        "nothing is built before it is read"
    );
    assert_eq!(b.post(&id), a.post(&id));
    use std::sync::atomic::Ordering;
    assert_eq!(
        source.snapshot_reads.load(Ordering::Relaxed),
        1,
        "asked once, for the one document"
    );
    assert_eq!(
        source.snapshot_saves.load(Ordering::Relaxed),
        0,
        "the snapshot was taken as it is, not replaced"
    );
    assert_eq!(snapshot(&b), snapshot(&a));
}

#[test]
fn twin_devices_equivocate_and_are_excluded_the_same_way_everywhere() {
    let alice = key(1);
    let twin = key(1);
    let bob = key(2);
    let mut a = founded(&alice);
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", "one\n\ntwo"))
        .unwrap()
        .id()
        .into();
    let mut t = fresh(&a);
    sync(&a, &mut t);
    // Both devices sign seq 2 for the same actor, from the same state.
    a.edit_post(
        &alice,
        Timestamp(T0 + 2),
        id,
        &Base::Latest,
        post("t", "one A\n\ntwo"),
    )
    .unwrap();
    t.edit_post(
        &twin,
        Timestamp(T0 + 3),
        id,
        &Base::Latest,
        post("t", "one\n\ntwo T"),
    )
    .unwrap();
    // Bob builds on top of device A's edit.
    let mut b = fresh(&a);
    sync(&a, &mut b);
    b.edit_post(
        &bob,
        Timestamp(T0 + 4),
        id,
        &Base::Latest,
        post("t B", "one A\n\ntwo"),
    )
    .unwrap();

    let mut all: Vec<Entry> = Vec::new();
    for r in [&a, &t, &b] {
        all.extend(r.entries().cloned());
    }
    let genesis = a.genesis_entry().clone();
    let first = deliver(&genesis, &all, 1);
    let second = deliver(&genesis, &all, 2);
    assert_eq!(snapshot(&first), snapshot(&second));
    let evidence = first.equivocations();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].seq, 2);
    assert_eq!(evidence[0].author, alice.id());
    assert_eq!(evidence[0].entries.len(), 2);
    // Both conflicting changes and Bob's change that depends on one are left out: the post
    // reads as it was created.
    let view = first.post(&id).unwrap();
    assert_eq!(view.content.body, "one\n\ntwo");
    assert_eq!(view.content.title, "t");
    assert_eq!(applied(&first.history(&id).unwrap()), 1);
}

#[test]
fn changes_wait_for_their_document_and_dependencies() {
    let alice = key(1);
    let mut a = founded(&alice);
    let create = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", "x"))
        .unwrap();
    let id: DocId = create.id().into();
    let e1 = a
        .edit_post(
            &alice,
            Timestamp(T0 + 2),
            id,
            &Base::Latest,
            post("t", "xy"),
        )
        .unwrap()
        .unwrap();
    let e2 = a
        .edit_post(
            &alice,
            Timestamp(T0 + 3),
            id,
            &Base::Latest,
            post("t", "xyz"),
        )
        .unwrap()
        .unwrap();
    let mut b = fresh(&a);
    b.ingest([e2.clone()]);
    assert_eq!(b.pending(), vec![e2.id()]);
    assert!(b.post(&id).is_none());
    b.ingest([create]);
    assert_eq!(b.post(&id).unwrap().content.body, "x");
    assert_eq!(b.pending(), vec![e2.id()]);
    b.ingest([e1]);
    assert!(b.pending().is_empty());
    assert_eq!(b.post(&id).unwrap().content.body, "xyz");
}

/// A retraction commutes with everything else in one pass: every order of a post, an edit by
/// someone else, a comment on it, a vote, the creator's retraction and a non-creator's forged
/// one gives the same state, with the post and the edit gone, the comment and the vote kept,
/// and the forged retraction held and doing nothing.
#[test]
fn a_retraction_commutes_with_every_other_entry_in_one_pass() {
    let (alice, bob) = (key(1), key(2));
    let mut a = founded(&alice);
    let mut b = fresh(&a);
    let t = |n: u64| Timestamp(T0 + n * 1000);
    let p = a
        .create_post(&alice, t(1), post("Mine", "words I take back"))
        .unwrap();
    let doc: DocId = p.id().into();
    sync(&a, &mut b);
    let edited = PostContent {
        body: "words I take back, and Bob's".into(),
        ..b.post(&doc).unwrap().content
    };
    let edit = b
        .edit_post(&bob, t(2), doc, &Base::Latest, edited)
        .unwrap()
        .unwrap();
    let comment = b.comment(&bob, t(3), doc, None, "a reply").unwrap();
    let vote = b
        .vote(&bob, t(4), VoteTarget::Post(doc), VoteValue::Keep, "")
        .unwrap();
    let forged = sign(
        &b,
        &bob,
        t(5),
        Payload::Retract(Retraction {
            doc,
            reason: "not mine".into(),
        }),
    );
    sync(&b, &mut a);
    let (retraction, report) = a.retract(&alice, t(6), doc, "changed my mind").unwrap();
    assert_eq!(report.purged.len(), 1);
    let mut purged = report.purged[0].ids.clone();
    purged.sort();
    let mut expected_ids = vec![p.id(), edit.id()];
    expected_ids.sort();
    assert_eq!(
        purged, expected_ids,
        "the post's entries, the edit by Bob with them"
    );

    let entries = [
        p.clone(),
        edit.clone(),
        comment.clone(),
        vote.clone(),
        forged.clone(),
        retraction.clone(),
    ];
    let mut expected = None;
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let mut permutations = 0;
    loop {
        let mut r = Replica::new(a.genesis_entry().clone()).unwrap();
        for i in &order {
            r.ingest([entries[*i].clone()]);
        }
        let state = state(&r);
        assert!(!r.contains(&p.id()) && !r.contains(&edit.id()));
        assert!(r.contains(&comment.id()) && r.contains(&vote.id()) && r.contains(&forged.id()));
        let view = r.post(&doc).unwrap();
        assert_eq!(view.retracted.as_ref().map(|t| t.by), Some(retraction.id()));
        assert_eq!(view.content, PostContent::default());
        assert_eq!(r.comments(&doc).len(), 1, "Bob's comment stays");
        match &expected {
            None => expected = Some(state),
            Some(e) => assert_eq!(&state, e, "order {order:?}"),
        }
        permutations += 1;
        if !next_permutation(&mut order) {
            break;
        }
    }
    assert_eq!(permutations, 720);
}

/// A moderator's redaction purges where the moderator counts, not where the reader ignores
/// them; ignoring them later drops the tombstone (the content may be fetched again), and a
/// forged redaction by a plain member does nothing.
#[test]
fn a_redaction_counts_for_moderators_and_not_for_a_reader_who_ignores_them() {
    let (founder, moderator, member) = (key(1), key(2), key(3));
    let mut a = founded(&founder);
    a.state_role(
        &founder,
        Timestamp(T0 + 1),
        RoleAction::AppointModerator,
        moderator.id(),
    )
    .unwrap();
    let mut m = fresh(&a);
    sync(&a, &mut m);
    let mut c = fresh(&a);
    let p = c
        .create_post(
            &member,
            Timestamp(T0 + 2),
            post("Address", "a private address"),
        )
        .unwrap();
    let doc: DocId = p.id().into();
    sync(&c, &mut m);
    let (redaction, report) = m
        .retract(&moderator, Timestamp(T0 + 4), doc, "doxxing")
        .unwrap();
    assert_eq!(report.purged.len(), 1);
    assert!(report.purged[0].tombstone.is_redaction());

    let mut plain = fresh(&a);
    sync(&a, &mut plain);
    plain.ingest([p.clone(), redaction.clone()]);
    assert!(plain.tombstone(&doc).is_some());
    assert!(!plain.contains(&p.id()));

    let mut overriding = fresh(&a);
    sync(&a, &mut overriding);
    overriding.set_ignored([moderator.id()].into_iter().collect());
    let report = overriding.ingest([p.clone(), redaction.clone()]);
    assert!(report.purged.is_empty());
    assert!(overriding.tombstone(&doc).is_none());
    assert_eq!(overriding.post(&doc).unwrap().content.title, "Address");

    // Ignoring the moderator later: the tombstone goes and the post may come back.
    let report = plain.set_ignored([moderator.id()].into_iter().collect());
    assert_eq!(report.restored, vec![doc]);
    plain.ingest([p.clone()]);
    assert_eq!(plain.post(&doc).unwrap().content.title, "Address");
    // And counting them again purges it again.
    let report = plain.set_ignored(Default::default());
    assert_eq!(report.purged.len(), 1);

    // A plain member's redaction is refused locally and does nothing if signed anyway.
    let mut x = fresh(&a);
    x.ingest([p.clone()]);
    let other = key(4);
    assert!(
        x.retract(&other, Timestamp(T0 + 5), doc, "mine now")
            .is_err()
    );
    let forged = sign(
        &x,
        &other,
        Timestamp(T0 + 5),
        Payload::Retract(Retraction {
            doc,
            reason: String::new(),
        }),
    );
    let report = x.ingest([forged]);
    assert!(report.purged.is_empty() && report.rejected.is_empty());
    assert_eq!(x.post(&doc).unwrap().content.title, "Address");
}

/// The next permutation in lexicographic order; false after the last.
fn next_permutation(v: &mut [usize]) -> bool {
    let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] < v[i]) else {
        return false;
    };
    let j = (i..v.len()).rev().find(|&j| v[j] > v[i - 1]).unwrap();
    v.swap(i - 1, j);
    v[i..].reverse();
    true
}
