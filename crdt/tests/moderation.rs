//! Moderation: roles, vote outcomes and the log are a function of the set of role statements
//! and votes, and the `trusted` edit policy makes document views follow the final roles, on
//! every replica, whatever order the entries came in. Also: Sybil keys count for nothing,
//! revocations take effect everywhere, quorums, personal overrides, muting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Instant;

use agora_crdt::{
    AuthorKey, Base, ChangeStatus, Contribution, DocId, EditPolicy, Entry, Exclusion, Hidden,
    LocalError, Moderation, NotCounted, Overrides, Payload, Policy, PostContent, Replica, Role,
    RoleAction, RoleStatement, Standing, Timestamp, Vote, VoteTarget, VoteValue,
};
use proptest::prelude::*;
use support::*;

/// People of the random histories: 0 is the founder.
const PEOPLE: usize = 8;

fn person(i: usize) -> AuthorKey {
    key(i as u8 + 1)
}

fn role(r: &Replica, k: &AuthorKey, t: u64, action: RoleAction, subject: &AuthorKey) -> Entry {
    sign(
        r,
        k,
        Timestamp(T0 + t),
        Payload::Role(RoleStatement {
            action,
            subject: subject.id(),
        }),
    )
}

fn vote(r: &Replica, k: &AuthorKey, t: u64, target: VoteTarget, value: VoteValue) -> Entry {
    sign(
        r,
        k,
        Timestamp(T0 + t),
        Payload::Vote(Vote {
            target,
            value,
            reason: String::new(),
        }),
    )
}

fn on(post: DocId) -> VoteTarget {
    VoteTarget::Post(post)
}

#[derive(Debug, Clone)]
enum Step {
    Role {
        signer: usize,
        action: RoleAction,
        subject: usize,
        jitter: u64,
    },
    Vote {
        signer: usize,
        target: usize,
        value: VoteValue,
        jitter: u64,
    },
    Edit {
        author: usize,
        post: usize,
        word: u8,
        jitter: u64,
    },
}

fn action() -> impl Strategy<Value = RoleAction> {
    prop_oneof![
        1 => Just(RoleAction::AppointModerator),
        1 => Just(RoleAction::RemoveModerator),
        3 => Just(RoleAction::Vouch),
        2 => Just(RoleAction::Revoke),
    ]
}

fn value() -> impl Strategy<Value = VoteValue> {
    prop_oneof![
        Just(VoteValue::Hide),
        Just(VoteValue::Keep),
        Just(VoteValue::Misleading),
        Just(VoteValue::Verified),
        Just(VoteValue::Withdraw),
        Just(VoteValue::Mute),
        Just(VoteValue::Unmute),
    ]
}

/// Signers lean towards the founder (index 0), so that roles actually form.
fn signer() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 3 => 0..PEOPLE]
}

fn step() -> impl Strategy<Value = Step> {
    // Small jitter: many statements claim the same time, so ties are broken by entry id.
    let jitter = 0..6u64;
    prop_oneof![
        4 => (signer(), action(), 0..PEOPLE, jitter.clone()).prop_map(
            |(signer, action, subject, jitter)| Step::Role { signer, action, subject, jitter }
        ),
        4 => (0..PEOPLE, any::<usize>(), value(), jitter.clone()).prop_map(
            |(signer, target, value, jitter)| Step::Vote { signer, target, value, jitter }
        ),
        2 => (0..PEOPLE, 0..3usize, any::<u8>(), jitter)
            .prop_map(|(author, post, word, jitter)| Step::Edit { author, post, word, jitter }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (any::<bool>(), 1..4u8, 1..4u16, 1..3u16).prop_map(|(trusted, vouch, hide, mark)| Policy {
        edit: if trusted {
            EditPolicy::Trusted
        } else {
            EditPolicy::Open
        },
        vouch_threshold: vouch,
        hide_quorum: hide,
        mark_quorum: mark,
    })
}

/// Plays the steps on one replica that everyone writes through (edits are made on its view at
/// the time, each by a fresh device so no edit ever equivocates) and returns every entry.
fn play(policy: Policy, steps: &[Step]) -> (Entry, Vec<Entry>) {
    let people: Vec<AuthorKey> = (0..PEOPLE).map(person).collect();
    let mut world = founded_with(&people[0], policy);
    let mut posts: Vec<DocId> = Vec::new();
    for (i, creator) in [0usize, 0, 1].into_iter().enumerate() {
        let entry = world
            .create_post(
                &people[creator],
                Timestamp(T0 + 1 + i as u64),
                post(&format!("post {i}"), "one\n\ntwo"),
            )
            .unwrap();
        posts.push(entry.id().into());
    }
    for (n, step) in steps.iter().enumerate() {
        let base = 1_000 * (2 + n as u64 / 4);
        let entry = match step {
            Step::Role {
                signer,
                action,
                subject,
                jitter,
            } => role(
                &world,
                &people[*signer],
                base + jitter * 1_000,
                *action,
                &people[*subject],
            ),
            Step::Vote {
                signer,
                target,
                value,
                jitter,
            } => {
                let target = if matches!(value, VoteValue::Mute | VoteValue::Unmute) {
                    VoteTarget::Author(people[target % PEOPLE].id())
                } else {
                    on(posts[target % posts.len()])
                };
                vote(
                    &world,
                    &people[*signer],
                    base + jitter * 1_000,
                    target,
                    *value,
                )
            }
            Step::Edit {
                author,
                post,
                word,
                jitter,
            } => {
                let id = posts[*post];
                let current = world.post(&id).unwrap().content;
                let edited = PostContent {
                    body: format!("{} w{word}", current.body),
                    ..current
                };
                let device = people[*author].for_device((n as u64).to_be_bytes());
                forge_edit(
                    &world,
                    &device,
                    Timestamp(T0 + base + jitter * 1_000),
                    id,
                    edited,
                )
            }
        };
        let report = world.ingest([entry]);
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
    let genesis = world.genesis_entry().clone();
    let mut all: Vec<Entry> = world.entries().cloned().collect();
    all.sort_by_key(Entry::id);
    (genesis, all)
}

/// Every author of an applied change to a post is its creator or counts, under `trusted`.
fn check_edit_policy(r: &Replica) -> Result<(), TestCaseError> {
    let trusted = r.genesis().policy.edit == EditPolicy::Trusted;
    for doc in r.doc_ids() {
        let meta = r.doc_meta(&doc).unwrap().clone();
        for item in r.history(&doc).unwrap() {
            let allowed = !trusted || item.author == meta.creator || r.roles().counts(&item.author);
            match item.status {
                ChangeStatus::Applied => prop_assert!(allowed, "{item:?} applied"),
                ChangeStatus::Excluded(Exclusion::Untrusted) => {
                    prop_assert!(!allowed, "{item:?} excluded")
                }
                _ => {}
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random role statements, votes and edits from the founder, would-be moderators, trusted
    /// members and strangers, under a random policy, delivered in shuffled orders with
    /// duplicates and in random batches: the same roles, outcomes, log (with and without a
    /// personal override) and documents on every replica.
    #[test]
    fn every_delivery_order_gives_the_same_moderation(
        policy in policy(),
        steps in proptest::collection::vec(step(), 1..60),
        seeds in proptest::collection::vec(any::<u64>(), 3),
        ignored in 0..PEOPLE,
    ) {
        let (genesis, entries) = play(policy, &steps);
        let mut reference = Replica::new(genesis.clone()).unwrap();
        let report = reference.ingest(entries.clone());
        prop_assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let mut overrides = Overrides::none();
        overrides.ignore(person(ignored).id());
        let expected = (
            reference.roles().clone(),
            reference.moderation(&Overrides::none()),
            reference.moderation(&overrides),
            snapshot(&reference),
        );
        check_edit_policy(&reference)?;
        // The moderation's roles are the replica's.
        prop_assert_eq!(expected.1.roles(), reference.roles());
        // Straight from the entries, reversed: the same.
        let reversed: Vec<Entry> = entries.iter().rev().cloned().collect();
        let direct = Moderation::compute(
            genesis.author(),
            &policy,
            &reversed,
            &Overrides::none(),
        );
        prop_assert_eq!(&direct, &expected.1);
        for seed in seeds {
            let replica = deliver_shuffled(&genesis, &entries, seed);
            let got = (
                replica.roles().clone(),
                replica.moderation(&Overrides::none()),
                replica.moderation(&overrides),
                snapshot(&replica),
            );
            prop_assert_eq!(&got, &expected);
        }
        // Every vote and role statement is in the log exactly once, and the counted votes of
        // each outcome are counted in the log.
        let m = &expected.1;
        let statements = entries
            .iter()
            .filter(|e| matches!(e.payload(), Payload::Vote(_) | Payload::Role(_)))
            .count();
        prop_assert_eq!(m.log().len(), statements);
        for (post, outcome) in m.posts() {
            for item in m.explain_post(post) {
                prop_assert_eq!(item.standing, Standing::Counted);
                prop_assert!(m.roles().counts(&item.signer));
            }
            let c = outcome.counted;
            prop_assert_eq!(
                outcome.hidden,
                c.hide >= u32::from(policy.hide_quorum) && c.hide > c.keep
            );
        }
    }
}

/// A subwiki with a founder, two members the founder vouched for (trusted), and a post.
struct World {
    founder: AuthorKey,
    a: AuthorKey,
    b: AuthorKey,
    replica: Replica,
    post: DocId,
}

fn world(policy: Policy) -> World {
    let founder = key(1);
    let (a, b) = (key(2), key(3));
    let mut replica = founded_with(&founder, policy);
    let post: DocId = replica
        .create_post(&founder, Timestamp(T0 + 1), post("t", "one\n\ntwo"))
        .unwrap()
        .id()
        .into();
    for k in [&a, &b] {
        replica
            .state_role(&founder, Timestamp(T0 + 2), RoleAction::Vouch, k.id())
            .unwrap();
    }
    World {
        founder,
        a,
        b,
        replica,
        post,
    }
}

/// A key nobody ever vouched for.
fn stranger(i: u32) -> AuthorKey {
    let mut secret = [0xA5; 32];
    secret[..4].copy_from_slice(&i.to_be_bytes());
    AuthorKey::from_secret(secret, [7; 8])
}

#[test]
fn a_thousand_unvouched_keys_change_no_outcome() {
    let w = world(Policy {
        vouch_threshold: 1,
        ..Policy::default()
    });
    let mut r = w.replica;
    let keep = r
        .vote(&w.a, Timestamp(T0 + 3), on(w.post), VoteValue::Keep, "fine")
        .unwrap();
    let before = r.moderation(&Overrides::none());
    let sybils: Vec<AuthorKey> = (0..1_000).map(stranger).collect();
    let mut entries = Vec::new();
    for (i, s) in sybils.iter().enumerate() {
        let t = 10 + i as u64;
        entries.push(vote(&r, s, t, on(w.post), VoteValue::Hide));
        entries.push(vote(
            &r,
            s,
            t,
            VoteTarget::Author(w.a.id()),
            VoteValue::Mute,
        ));
        // A ring of vouches among themselves: each vouches for the next two.
        for next in [1, 2] {
            let other = &sybils[(i + next) % sybils.len()];
            entries.push(role(&r, s, t, RoleAction::Vouch, other));
        }
        // And all of them appoint each other, which only the founder may do.
        entries.push(role(
            &r,
            s,
            t,
            RoleAction::AppointModerator,
            other_of(&sybils, i),
        ));
    }
    let started = Instant::now();
    r.ingest(entries);
    eprintln!("ingest of 5,000 sybil statements: {:?}", started.elapsed());
    let started = Instant::now();
    let after = r.moderation(&Overrides::none());
    eprintln!("moderation over 5,000 statements: {:?}", started.elapsed());

    assert_eq!(after.roles(), before.roles());
    assert!(after.roles().moderators().is_empty());
    assert_eq!(after.roles().trusted().len(), 2);
    let outcome = after.post(&w.post).unwrap();
    assert!(!outcome.hidden);
    assert_eq!(outcome.counted.keep, 1);
    assert_eq!(outcome.counted.hide, 0);
    assert_eq!(outcome.signals.hide, 1_000, "kept and shown as signals");
    assert_eq!(outcome.votes, vec![keep.id()]);
    assert!(!after.is_muted(&w.a.id()));
    assert_eq!(after.authors()[&w.a.id()].signals.mute, 1_000);
    for item in after.log().iter().filter(|i| i.signer != w.founder.id()) {
        if sybils.iter().any(|s| s.id() == item.signer) {
            assert!(matches!(item.standing, Standing::NotCounted(_)), "{item:?}");
            assert_eq!(item.contributed, None);
        }
    }
}

fn other_of(keys: &[AuthorKey], i: usize) -> &AuthorKey {
    &keys[(i + 1) % keys.len()]
}

#[test]
fn a_single_untrusted_vouch_grants_nothing() {
    for threshold in [1, 2] {
        let w = world(Policy {
            vouch_threshold: threshold,
            ..Policy::default()
        });
        let mut r = w.replica;
        let (u, v) = (stranger(1), stranger(2));
        r.ingest([role(&r, &u, 3, RoleAction::Vouch, &v)]);
        r.ingest([role(&r, &v, 3, RoleAction::Vouch, &u)]);
        assert_eq!(r.roles().role(&v.id()), Role::Member);
        assert_eq!(r.roles().role(&u.id()), Role::Member);
        let m = r.moderation(&Overrides::none());
        assert!(
            m.log()
                .iter()
                .filter(|i| i.signer == u.id() || i.signer == v.id())
                .all(|i| i.standing == Standing::NotCounted(NotCounted::SignerNotTrusted))
        );
        // One trusted member's vouch is enough only with a threshold of 1.
        r.state_role(&w.a, Timestamp(T0 + 4), RoleAction::Vouch, v.id())
            .unwrap();
        let expected = if threshold == 1 {
            Role::Trusted
        } else {
            Role::Member
        };
        assert_eq!(r.roles().role(&v.id()), expected);
        // With a threshold of 1, v's vouch for u now counts too: trust flows.
        assert_eq!(r.roles().role(&u.id()), expected);
    }
}

#[test]
fn revoked_trust_stops_counting_earlier_and_later_votes_everywhere() {
    let founder = key(1);
    let (moderator, x, y) = (key(2), key(3), key(4));
    let mut r = founded(&founder);
    let p: DocId = r
        .create_post(&founder, Timestamp(T0 + 1), post("p", "x"))
        .unwrap()
        .id()
        .into();
    let q: DocId = r
        .create_post(&founder, Timestamp(T0 + 2), post("q", "x"))
        .unwrap()
        .id()
        .into();
    let mut entries = vec![
        role(&r, &founder, 3, RoleAction::AppointModerator, &moderator),
        role(&r, &moderator, 4, RoleAction::Vouch, &x),
        role(&r, &founder, 4, RoleAction::Vouch, &y),
        vote(&r, &x, 10, on(p), VoteValue::Hide),
        vote(&r, &y, 11, on(p), VoteValue::Hide),
    ];
    r.ingest(entries.clone());
    assert!(r.moderation(&Overrides::none()).is_hidden(&p));

    let revoke = role(&r, &moderator, 20, RoleAction::Revoke, &x);
    let later = vote(&r, &x, 30, on(q), VoteValue::Hide);
    let support = vote(&r, &y, 31, on(q), VoteValue::Hide);
    entries.extend([revoke.clone(), later.clone(), support]);
    entries.extend(r.entries().cloned());
    let genesis = r.genesis_entry().clone();
    let mut views = Vec::new();
    for seed in 1..=4 {
        let replica = deliver_shuffled(&genesis, &entries, seed);
        let m = replica.moderation(&Overrides::none());
        assert_eq!(m.roles().role(&x.id()), Role::Member);
        assert!(m.roles().barred().contains(&x.id()));
        assert!(!m.is_hidden(&p), "x's earlier hide no longer counts");
        assert!(!m.is_hidden(&q), "nor x's later one");
        assert_eq!(m.post(&p).unwrap().signals.hide, 1);
        for vote in m.log().iter().filter(|i| i.signer == x.id()) {
            assert_eq!(
                vote.standing,
                Standing::NotCounted(NotCounted::SignerNotTrusted)
            );
        }
        assert_eq!(
            m.log_item(&revoke.id()).unwrap().contributed,
            Some(Contribution::Barred(x.id()))
        );
        views.push(m);
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn trust_resting_on_a_member_who_loses_it_falls_away() {
    let founder = key(1);
    let (a, b, x, z) = (key(2), key(3), key(4), key(5));
    let mut r = founded(&founder);
    for (k, t) in [(&a, 2), (&b, 2)] {
        r.ingest([role(&r, &founder, t, RoleAction::Vouch, k)]);
    }
    // x is trusted by a and b (threshold 2); z by x and b.
    r.ingest([
        role(&r, &a, 3, RoleAction::Vouch, &x),
        role(&r, &b, 3, RoleAction::Vouch, &x),
        role(&r, &x, 4, RoleAction::Vouch, &z),
        role(&r, &b, 4, RoleAction::Vouch, &z),
    ]);
    assert_eq!(r.roles().role(&x.id()), Role::Trusted);
    assert_eq!(r.roles().role(&z.id()), Role::Trusted);
    // a takes back their vouch: x falls below the threshold, and z with them.
    r.ingest([role(&r, &a, 5, RoleAction::Revoke, &x)]);
    assert_eq!(r.roles().role(&x.id()), Role::Member);
    assert_eq!(r.roles().role(&z.id()), Role::Member);
    // a's revoke is not a bar: a is no moderator. A third vouch restores both.
    assert!(r.roles().barred().is_empty());
    r.ingest([role(&r, &founder, 6, RoleAction::Vouch, &x)]);
    assert_eq!(r.roles().role(&z.id()), Role::Trusted);
    // An older vouch does not undo a later revoke, whatever the arrival order.
    r.ingest([role(&r, &a, 1, RoleAction::Vouch, &x)]);
    let m = r.moderation(&Overrides::none());
    let revoke = m
        .log()
        .iter()
        .find(|i| i.signer == a.id() && i.timestamp == Timestamp(T0 + 5))
        .unwrap();
    assert_eq!(revoke.standing, Standing::Counted);
    assert!(
        m.log()
            .iter()
            .filter(|i| i.signer == a.id() && i.timestamp < Timestamp(T0 + 5))
            .filter(
                |i| matches!(&i.statement, agora_crdt::Statement::Role(s) if s.subject == x.id())
            )
            .all(
                |i| i.standing == Standing::NotCounted(NotCounted::Superseded { by: revoke.entry })
            )
    );
}

#[test]
fn two_trusted_hides_hide_a_post_and_a_keep_majority_keeps_it() {
    let w = world(Policy::default());
    let mut r = w.replica;
    let (c, d, e) = (key(4), key(5), key(6));
    for k in [&c, &d, &e] {
        r.state_role(&w.founder, Timestamp(T0 + 2), RoleAction::Vouch, k.id())
            .unwrap();
    }
    let h1 = r
        .vote(&w.a, Timestamp(T0 + 3), on(w.post), VoteValue::Hide, "spam")
        .unwrap();
    assert!(
        !r.moderation(&Overrides::none()).is_hidden(&w.post),
        "one is below the quorum of 2"
    );
    let h2 = r
        .vote(&w.b, Timestamp(T0 + 4), on(w.post), VoteValue::Hide, "spam")
        .unwrap();
    let m = r.moderation(&Overrides::none());
    assert!(m.is_hidden(&w.post));
    let why: Vec<_> = m.explain_post(&w.post).iter().map(|i| i.entry).collect();
    assert_eq!(why, vec![h1.id(), h2.id()]);
    assert_eq!(
        m.log_item(&h1.id()).unwrap().contributed,
        Some(Contribution::Hidden(w.post))
    );
    let meta = r.doc_meta(&w.post).unwrap().clone();
    assert_eq!(m.hidden(&meta, None), Some(Hidden::ByVotes));

    // The appeal: three keep votes outnumber two hides.
    for k in [&c, &d, &e] {
        r.vote(k, Timestamp(T0 + 5), on(w.post), VoteValue::Keep, "")
            .unwrap();
    }
    let m = r.moderation(&Overrides::none());
    assert!(!m.is_hidden(&w.post));
    assert_eq!(m.post(&w.post).unwrap().counted.keep, 3);
    assert_eq!(m.hidden(&meta, None), None);
    // A tie does not hide either: one keep withdrawn leaves 2 against 2.
    r.vote(&e, Timestamp(T0 + 6), on(w.post), VoteValue::Withdraw, "")
        .unwrap();
    assert!(!r.moderation(&Overrides::none()).is_hidden(&w.post));
    r.vote(&d, Timestamp(T0 + 7), on(w.post), VoteValue::Withdraw, "")
        .unwrap();
    assert!(r.moderation(&Overrides::none()).is_hidden(&w.post));

    // Fact checks: two misleading mark it disputed, until two verified balance them.
    for k in [&c, &d] {
        r.vote(k, Timestamp(T0 + 8), on(w.post), VoteValue::Misleading, "")
            .unwrap();
    }
    let m = r.moderation(&Overrides::none());
    let o = m.post(&w.post).unwrap();
    assert!(o.disputed && !o.verified);
    for k in [&e, &w.founder] {
        r.vote(k, Timestamp(T0 + 9), on(w.post), VoteValue::Verified, "")
            .unwrap();
    }
    let m = r.moderation(&Overrides::none());
    let o = m.post(&w.post).unwrap();
    assert!(!o.disputed && !o.verified);
    // c changes their mind: their misleading is replaced by verified.
    r.vote(&c, Timestamp(T0 + 10), on(w.post), VoteValue::Verified, "")
        .unwrap();
    let m = r.moderation(&Overrides::none());
    let o = m.post(&w.post).unwrap();
    assert!(o.verified && !o.disputed);
    assert_eq!((o.counted.verified, o.counted.misleading), (3, 1));
}

#[test]
fn an_override_stops_counting_a_moderator_in_one_view_only() {
    let w = world(Policy::default());
    let mut r = w.replica;
    let moderator = key(9);
    r.state_role(
        &w.founder,
        Timestamp(T0 + 2),
        RoleAction::AppointModerator,
        moderator.id(),
    )
    .unwrap();
    let m_vote = r
        .vote(
            &moderator,
            Timestamp(T0 + 3),
            on(w.post),
            VoteValue::Hide,
            "",
        )
        .unwrap();
    r.vote(&w.a, Timestamp(T0 + 4), on(w.post), VoteValue::Hide, "")
        .unwrap();
    let mut other = fresh(&r);
    sync(&r, &mut other);

    let mut mine = Overrides::none();
    assert!(mine.ignore(moderator.id()));
    let shared = r.moderation(&Overrides::none());
    let personal = r.moderation(&mine);
    assert!(shared.is_hidden(&w.post));
    assert!(!personal.is_hidden(&w.post));
    assert_eq!(personal.roles(), shared.roles(), "roles are not overridden");
    assert_eq!(personal.post(&w.post).unwrap().signals.hide, 1);
    assert_eq!(
        personal.log_item(&m_vote.id()).unwrap().standing,
        Standing::NotCounted(NotCounted::Overridden)
    );
    // Nothing was published: the other replica, and this one without the override, agree.
    assert_eq!(other.moderation(&Overrides::none()), shared);
    assert_eq!(other.len(), r.len());
    assert!(mine.restore(&moderator.id()));
    assert_eq!(r.moderation(&mine), shared);
}

#[test]
fn a_muted_authors_posts_and_comments_are_hidden() {
    let w = world(Policy::default());
    let mut r = w.replica;
    let (author, other) = (key(7), key(8));
    let theirs = r
        .create_post(&author, Timestamp(T0 + 3), post("buy now", "spam"))
        .unwrap();
    let theirs: DocId = theirs.id().into();
    let comment = r
        .comment(&author, Timestamp(T0 + 4), w.post, None, "spam")
        .unwrap();
    let reply = r
        .comment(&other, Timestamp(T0 + 5), theirs, None, "stop")
        .unwrap();
    let target = VoteTarget::Author(author.id());
    r.vote(&w.a, Timestamp(T0 + 6), target, VoteValue::Mute, "")
        .unwrap();
    assert!(
        !r.moderation(&Overrides::none()).is_muted(&author.id()),
        "one mute is below the quorum"
    );
    r.vote(&w.b, Timestamp(T0 + 7), target, VoteValue::Mute, "")
        .unwrap();
    let m = r.moderation(&Overrides::none());
    assert_eq!(m.muted().collect::<Vec<_>>(), vec![author.id()]);
    let meta = |d: DocId| r.doc_meta(&d).unwrap().clone();
    assert_eq!(m.hidden(&meta(theirs), None), Some(Hidden::AuthorMuted));
    assert_eq!(
        m.hidden(&meta(comment.id().into()), Some(&w.founder.id())),
        Some(Hidden::AuthorMuted)
    );
    assert_eq!(
        m.hidden(&meta(reply.id().into()), Some(&author.id())),
        Some(Hidden::PostHidden)
    );
    assert_eq!(m.hidden(&meta(w.post), None), None);
    assert_eq!(m.explain_author(&author.id()).len(), 2);
    // Two unmute votes balance the mutes.
    r.vote(&w.founder, Timestamp(T0 + 8), target, VoteValue::Unmute, "")
        .unwrap();
    r.state_role(&w.founder, Timestamp(T0 + 8), RoleAction::Vouch, other.id())
        .unwrap();
    r.vote(&other, Timestamp(T0 + 9), target, VoteValue::Unmute, "")
        .unwrap();
    assert!(!r.moderation(&Overrides::none()).is_muted(&author.id()));
}

fn trusted_policy() -> Policy {
    Policy {
        edit: EditPolicy::Trusted,
        ..Policy::default()
    }
}

#[test]
fn a_vandals_edit_is_excluded_everywhere_and_an_honest_later_edit_shows() {
    let w = world(trusted_policy());
    let founder_replica = w.replica;
    let honest = w.a;
    let vandal = key(9);
    let mut vandal_replica = fresh(&founder_replica);
    sync(&founder_replica, &mut vandal_replica);

    // An honest client refuses the edit locally...
    let refused = vandal_replica.edit_post(
        &vandal,
        Timestamp(T0 + 10),
        w.post,
        &Base::Latest,
        post("t", "VANDALISED"),
    );
    assert!(matches!(refused, Err(LocalError::NotTrusted { .. })));
    assert!(!vandal_replica.may_edit(&vandal.id(), &w.post));
    // ...a modified one sends it anyway.
    let vandalism = forge_edit(
        &vandal_replica,
        &vandal,
        Timestamp(T0 + 10),
        w.post,
        post("t", "VANDALISED"),
    );

    // The honest member has received the vandal's change: it is not in their view, so their
    // edit, made afterwards, is made without it and does not depend on it.
    let mut honest_replica = fresh(&founder_replica);
    sync(&founder_replica, &mut honest_replica);
    honest_replica.ingest([vandalism.clone()]);
    assert_eq!(
        honest_replica.post(&w.post).unwrap().content.body,
        "one\n\ntwo"
    );
    assert!(honest_replica.may_edit(&honest.id(), &w.post));
    let fix = honest_replica
        .edit_post(
            &honest,
            Timestamp(T0 + 11),
            w.post,
            &Base::Latest,
            post("t", "one\n\ntwo, improved"),
        )
        .unwrap()
        .unwrap();

    let mut all: Vec<Entry> = founder_replica.entries().cloned().collect();
    all.extend(honest_replica.entries().cloned());
    all.push(vandalism.clone());
    let genesis = founder_replica.genesis_entry().clone();
    let mut snapshots = Vec::new();
    for seed in 1..=5 {
        let r = deliver_shuffled(&genesis, &all, seed);
        let view = r.post(&w.post).unwrap();
        assert_eq!(view.content.body, "one\n\ntwo, improved");
        assert!(!view.editors.contains(&vandal.id()));
        let history = r.history(&w.post).unwrap();
        let status = |id| history.iter().find(|h| h.version == id).unwrap().status;
        assert_eq!(
            status(vandalism.id()),
            ChangeStatus::Excluded(Exclusion::Untrusted),
            "kept as evidence"
        );
        assert_eq!(status(fix.id()), ChangeStatus::Applied);
        assert!(r.contains(&vandalism.id()));
        snapshots.push(snapshot(&r));
    }
    assert!(snapshots.windows(2).all(|s| s[0] == s[1]));

    // Roles change: once the founder vouches for the former vandal, their change is part of
    // every view (the final roles decide), merged with the honest edit.
    let vouch = role(&founder_replica, &w.founder, 20, RoleAction::Vouch, &vandal);
    all.push(vouch.clone());
    let mut late = deliver_shuffled(&genesis, &all, 9);
    assert_eq!(
        late.history(&w.post)
            .unwrap()
            .iter()
            .find(|h| h.version == vandalism.id())
            .unwrap()
            .status,
        ChangeStatus::Applied
    );
    let mut before_vouch = honest_replica;
    before_vouch.ingest([vouch]);
    assert_eq!(snapshot(&before_vouch), snapshot(&late));
    // And a revocation takes it out again, on a replica that had it applied.
    let revoke = role(
        &founder_replica,
        &w.founder,
        21,
        RoleAction::Revoke,
        &vandal,
    );
    late.ingest([revoke.clone()]);
    all.push(revoke);
    assert_eq!(
        late.post(&w.post).unwrap().content.body,
        "one\n\ntwo, improved"
    );
    assert_eq!(
        snapshot(&late),
        snapshot(&deliver_shuffled(&genesis, &all, 3))
    );
}

#[test]
fn in_an_open_subwiki_the_same_edit_shows() {
    let w = world(Policy::default());
    let vandal = key(9);
    let mut vandal_replica = fresh(&w.replica);
    sync(&w.replica, &mut vandal_replica);
    assert!(vandal_replica.may_edit(&vandal.id(), &w.post));
    let edit = vandal_replica
        .edit_post(
            &vandal,
            Timestamp(T0 + 10),
            w.post,
            &Base::Latest,
            post("t", "VANDALISED"),
        )
        .unwrap()
        .unwrap();
    let mut all: Vec<Entry> = w.replica.entries().cloned().collect();
    all.push(edit.clone());
    let r = deliver_shuffled(w.replica.genesis_entry(), &all, 1);
    assert_eq!(r.post(&w.post).unwrap().content.body, "VANDALISED");
    assert!(r.post(&w.post).unwrap().editors.contains(&vandal.id()));
}

#[test]
fn a_creator_edits_their_own_post_without_trust() {
    let w = world(trusted_policy());
    let mut r = w.replica;
    let newcomer = key(9);
    let mine: DocId = r
        .create_post(&newcomer, Timestamp(T0 + 3), post("mine", "draft"))
        .unwrap()
        .id()
        .into();
    r.edit_post(
        &newcomer,
        Timestamp(T0 + 4),
        mine,
        &Base::Latest,
        post("mine", "final"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.post(&mine).unwrap().content.body, "final");
    // Comments are the commenter's own documents: nothing changes for them.
    let c = r
        .comment(&newcomer, Timestamp(T0 + 5), w.post, None, "hi")
        .unwrap();
    assert_eq!(r.comments(&w.post)[0].meta.id, c.id().into());
}

/// Not a benchmark, a figure: `cargo test -p agora-crdt --release --test moderation -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn moderation_of_10k_votes() {
    let w = world(Policy {
        vouch_threshold: 1,
        ..Policy::default()
    });
    let mut r = w.replica;
    let voters: Vec<AuthorKey> = (0..500).map(stranger).collect();
    let mut entries = Vec::new();
    for (i, v) in voters.iter().enumerate() {
        // Half of them trusted, through a chain of vouches.
        if i % 2 == 0 {
            let voucher = if i == 0 { &w.founder } else { &voters[i - 2] };
            entries.push(role(&r, voucher, 2, RoleAction::Vouch, v));
        }
    }
    let posts: Vec<DocId> = (0..100u64)
        .map(|i| {
            r.create_post(&w.founder, Timestamp(T0 + 3 + i), post("p", "x"))
                .unwrap()
                .id()
                .into()
        })
        .collect();
    for n in 0..10_000usize {
        let value = [VoteValue::Hide, VoteValue::Keep, VoteValue::Misleading][n % 3];
        entries.push(vote(
            &r,
            &voters[n % voters.len()],
            200 + n as u64,
            on(posts[n % posts.len()]),
            value,
        ));
    }
    r.ingest(entries);
    let started = Instant::now();
    let m = r.moderation(&Overrides::none());
    eprintln!(
        "moderation over {} statements: {:?} ({} trusted)",
        m.log().len(),
        started.elapsed(),
        m.roles().trusted().len()
    );
}

#[test]
fn an_edit_after_losing_the_base_it_was_built_on_does_not_equivocate() {
    let w = world(trusted_policy());
    let (x, honest) = (w.b, w.a);
    let mut r = w.replica;
    // x (trusted) edits the post, the honest member edits on top of x's edit.
    r.edit_post(
        &x,
        Timestamp(T0 + 10),
        w.post,
        &Base::Latest,
        post("t", "one X\n\ntwo"),
    )
    .unwrap()
    .unwrap();
    let built_on_x = r
        .edit_post(
            &honest,
            Timestamp(T0 + 11),
            w.post,
            &Base::Latest,
            post("t", "one X\n\ntwo H"),
        )
        .unwrap()
        .unwrap();
    // The founder revokes x: x's edit leaves the post, and the honest edit with it.
    r.state_role(&w.founder, Timestamp(T0 + 12), RoleAction::Revoke, x.id())
        .unwrap();
    assert_eq!(r.post(&w.post).unwrap().content.body, "one\n\ntwo");
    let status = |r: &Replica, id| {
        r.history(&w.post)
            .unwrap()
            .iter()
            .find(|h| h.version == id)
            .unwrap()
            .status
    };
    assert_eq!(
        status(&r, built_on_x.id()),
        ChangeStatus::Excluded(Exclusion::DependsOnExcluded)
    );
    // The honest member edits again, twice: both show, and nothing looks like equivocation
    // (the device's actor has a left-out change, so the edit uses a derived actor).
    let again = r
        .edit_post(
            &honest,
            Timestamp(T0 + 13),
            w.post,
            &Base::Latest,
            post("t", "one\n\ntwo H"),
        )
        .unwrap()
        .unwrap();
    let third = r
        .edit_post(
            &honest,
            Timestamp(T0 + 14),
            w.post,
            &Base::Latest,
            post("t!", "one\n\ntwo H"),
        )
        .unwrap()
        .unwrap();
    assert_eq!(r.post(&w.post).unwrap().content.body, "one\n\ntwo H");
    assert_eq!(r.post(&w.post).unwrap().content.title, "t!");
    assert!(r.equivocations().is_empty());
    for id in [again.id(), third.id()] {
        assert_eq!(status(&r, id), ChangeStatus::Applied);
    }
    let all: Vec<Entry> = r.entries().cloned().collect();
    for seed in 1..=3 {
        assert_eq!(
            snapshot(&deliver_shuffled(r.genesis_entry(), &all, seed)),
            snapshot(&r)
        );
    }
}
