//! Documents: offline edits merge, an edit based on an old version keeps what came since,
//! history lists who changed what, old versions can be read and restored, the feed pages newest
//! first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "documents/link_card.rs"]
mod link_card;
mod support;

use agora_crdt::{
    Base, ChangeStatus, Content, DocId, Entry, EntryId, FeedCursor, Field, LocalError, PostContent,
    ProfileContent, Replica, Timestamp, Version,
};
use proptest::prelude::*;
use support::*;

const ARTICLE: &str = "Rust is a language.\n\nIt has a borrow checker.\n\nPeople like it.";

#[test]
fn offline_edits_of_different_paragraphs_both_survive() {
    let alice = key(1);
    let bob = key(2);
    let mut a = founded(&alice);
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), post("Rust", ARTICLE))
        .unwrap()
        .id()
        .into();
    let mut b = fresh(&a);
    sync(&a, &mut b);

    // Both offline: Alice fixes the first paragraph, Bob the last.
    let mine = ARTICLE.replace("a language", "a systems language");
    a.edit_post(
        &alice,
        Timestamp(T0 + 2),
        id,
        &Base::Latest,
        post("Rust", &mine),
    )
    .unwrap();
    let theirs = ARTICLE.replace("People like it.", "People like it a lot.");
    b.edit_post(
        &bob,
        Timestamp(T0 + 3),
        id,
        &Base::Latest,
        post("Rust", &theirs),
    )
    .unwrap();
    assert_ne!(a.post(&id).unwrap().content, b.post(&id).unwrap().content);

    // Back online.
    sync(&a, &mut b);
    sync(&b, &mut a);
    let merged = "Rust is a systems language.\n\nIt has a borrow checker.\n\nPeople like it a lot.";
    assert_eq!(a.post(&id).unwrap().content.body, merged);
    assert_eq!(b.post(&id).unwrap().content.body, merged);
    assert_eq!(a.heads(&id), b.heads(&id));
    assert_eq!(a.heads(&id).unwrap().len(), 2, "two concurrent heads");
    let view = a.post(&id).unwrap();
    assert_eq!(view.edits, 2);
    assert_eq!(view.editors.len(), 2);
}

#[test]
fn history_lists_who_changed_what_and_old_versions_can_be_read_and_restored() {
    let alice = key(1);
    let bob = key(2);
    let mut r = founded(&alice);
    let created = r
        .create_post(&alice, Timestamp(T0 + 1), post("Title", "Good text."))
        .unwrap();
    let id: DocId = created.id().into();
    let vandal = r
        .edit_post(
            &bob,
            Timestamp(T0 + 2),
            id,
            &Base::Latest,
            post("Spam", "Buy now."),
        )
        .unwrap()
        .unwrap();
    let tagged = PostContent {
        tags: vec!["spam".into()],
        link: Some("https://example.org".into()),
        ..r.post(&id).unwrap().content
    };
    r.edit_post(&bob, Timestamp(T0 + 3), id, &Base::Latest, tagged)
        .unwrap();

    let history = r.history(&id).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].version, created.id());
    assert_eq!(history[0].author, alice.id());
    assert_eq!(history[0].fields, vec![Field::Title, Field::Body]);
    assert_eq!(history[1].version, vandal.id());
    assert_eq!(history[1].author, bob.id());
    assert_eq!(history[1].fields, vec![Field::Title, Field::Body]);
    assert_eq!(history[2].fields, vec![Field::Link, Field::Tags]);
    assert!(history.iter().all(|h| h.status == ChangeStatus::Applied));

    // Read the first version.
    let Content::Post(first) = r.content_at(&id, &created.id().into()).unwrap() else {
        panic!("not a post")
    };
    assert_eq!(
        (first.title.as_str(), first.body.as_str()),
        ("Title", "Good text.")
    );

    // Alice restores it: a new signed change, nothing erased.
    let revert = r
        .revert(&alice, Timestamp(T0 + 4), id, created.id())
        .unwrap()
        .unwrap();
    let now = r.post(&id).unwrap().content;
    assert_eq!(now.title, "Title");
    assert_eq!(now.body, "Good text.");
    assert!(now.tags.is_empty());
    assert_eq!(now.link, None);
    let history = r.history(&id).unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[3].version, revert.id());
    assert_eq!(history[3].author, alice.id());
    // Restoring the version it already has changes nothing.
    assert!(
        r.revert(&alice, Timestamp(T0 + 5), id, revert.id())
            .unwrap()
            .is_none()
    );
    // A version that is not this document's is refused.
    assert!(r.content_at(&id, &r.genesis_entry().id().into()).is_err());
}

#[test]
fn the_feed_is_newest_first_and_pages_by_cursor() {
    let alice = key(1);
    let mut r = founded(&alice);
    let mut ids = Vec::new();
    // Two posts share a creation time: the id breaks the tie.
    for (i, t) in [1, 2, 2, 3, 4, 5, 6].iter().enumerate() {
        let e = r
            .create_post(&alice, Timestamp(T0 + t), post(&format!("p{i}"), "x"))
            .unwrap();
        ids.push((Timestamp(T0 + t), DocId::from(e.id())));
    }
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<FeedCursor> = None;
    let mut pages = 0;
    loop {
        let page = r.feed(cursor, 3);
        pages += 1;
        seen.extend(page.items.iter().map(|p| (p.meta.created_at, p.meta.id)));
        match page.next {
            Some(next) => {
                // A cursor survives being printed and parsed, as a front end passes it on.
                let printed = next.to_string();
                cursor = Some(printed.parse().unwrap());
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // Edits and comments never move a post.
    let oldest = ids.last().unwrap().1;
    r.edit_post(
        &alice,
        Timestamp(T0 + 100),
        oldest,
        &Base::Latest,
        post("bumped?", "no"),
    )
    .unwrap();
    r.comment(&alice, Timestamp(T0 + 101), oldest, None, "still no")
        .unwrap();
    let all = r.feed(None, 100);
    assert_eq!(all.items.last().unwrap().meta.id, oldest);
    assert_eq!(all.items.last().unwrap().comments, 1);
    assert!("123.doc_x".parse::<FeedCursor>().is_err());
    assert!("nonsense".parse::<FeedCursor>().is_err());
}

#[test]
fn comments_thread_under_their_post_and_names_come_from_profiles() {
    let alice = key(1);
    let bob = key(2);
    let mut r = founded(&alice);
    let id: DocId = r
        .create_post(&alice, Timestamp(T0 + 1), post("Q", "?"))
        .unwrap()
        .id()
        .into();
    let first: DocId = r
        .comment(&bob, Timestamp(T0 + 2), id, None, "first")
        .unwrap()
        .id()
        .into();
    r.comment(&alice, Timestamp(T0 + 3), id, Some(first), "reply")
        .unwrap();
    r.set_profile(
        &bob,
        Timestamp(T0 + 4),
        ProfileContent {
            name: "Bob".into(),
            bio: String::new(),
        },
    )
    .unwrap();
    r.set_profile(
        &bob,
        Timestamp(T0 + 5),
        ProfileContent {
            name: "Robert".into(),
            bio: "hi".into(),
        },
    )
    .unwrap();
    let comments = r.comments(&id);
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0].text, "first");
    assert_eq!(comments[0].author_name.as_deref(), Some("Robert"));
    assert_eq!(comments[1].meta.reply_to, Some(first));
    assert_eq!(comments[1].author_name, None);
    // Bob edits his own comment; Alice cannot.
    let edited = Content::Comment(agora_crdt::CommentContent {
        text: "first!".into(),
    });
    assert!(
        r.edit(&bob, Timestamp(T0 + 6), first, &Base::Latest, &edited)
            .unwrap()
            .is_some()
    );
    assert!(
        r.edit(&alice, Timestamp(T0 + 7), first, &Base::Latest, &edited)
            .is_err()
    );
    assert_eq!(r.comments(&id)[0].text, "first!");
}

#[test]
fn members_are_everyone_who_signed_something_with_what_they_did() {
    let alice = key(1);
    let bob = key(2);
    let carol = key(3);
    let mut r = founded(&alice);
    let id: DocId = r
        .create_post(&alice, Timestamp(T0 + 1), post("Q", "?"))
        .unwrap()
        .id()
        .into();
    r.create_post(&alice, Timestamp(T0 + 2), post("R", "!"))
        .unwrap();
    let edited = Content::Post(post("Q", "?!"));
    r.edit(&bob, Timestamp(T0 + 3), id, &Base::Latest, &edited)
        .unwrap();
    r.comment(&bob, Timestamp(T0 + 4), id, None, "first")
        .unwrap();
    let members = r.members();
    let find = |k: &agora_crdt::AuthorKey| members.iter().find(|m| m.author == k.id());
    let a = find(&alice).expect("the founder is a member");
    assert_eq!((a.posts, a.documents), (2, 2));
    let b = find(&bob).expect("an editor and commenter is a member");
    assert_eq!((b.posts, b.documents, b.votes), (0, 2, 0));
    assert!(find(&carol).is_none(), "carol signed nothing");
    // Another replica holding the same entries, delivered in another order, agrees.
    let mut other = fresh(&r);
    sync(&r, &mut other);
    assert_eq!(other.members(), members);
}

#[test]
fn a_saved_post_opens_in_plain_automerge() {
    let alice = key(1);
    let mut r = founded(&alice);
    let id: DocId = r
        .create_post(&alice, Timestamp(T0 + 1), post("Portable", "No lock-in."))
        .unwrap()
        .id()
        .into();
    let bytes = r.save_document(&id).unwrap();
    let doc = automerge::Automerge::load(&bytes).unwrap();
    let Content::Post(p) = Content::read(agora_crdt::DocKind::Post, &doc, None) else {
        panic!("not a post")
    };
    assert_eq!(p.title, "Portable");
    assert_eq!(p.body, "No lock-in.");
}

#[test]
fn concurrent_tag_additions_both_survive() {
    let alice = key(1);
    let bob = key(2);
    let mut a = founded(&alice);
    let tagged = PostContent {
        tags: vec!["a".into()],
        ..post("t", "b")
    };
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), tagged.clone())
        .unwrap()
        .id()
        .into();
    let mut b = fresh(&a);
    sync(&a, &mut b);
    let with = |tag: &str| PostContent {
        tags: vec!["a".into(), tag.into()],
        ..tagged.clone()
    };
    a.edit_post(&alice, Timestamp(T0 + 2), id, &Base::Latest, with("b"))
        .unwrap();
    b.edit_post(&bob, Timestamp(T0 + 3), id, &Base::Latest, with("c"))
        .unwrap();
    sync(&a, &mut b);
    sync(&b, &mut a);
    let mut tags = a.post(&id).unwrap().content.tags;
    assert_eq!(tags.len(), 3, "{tags:?}");
    tags.sort();
    assert_eq!(tags, vec!["a", "b", "c"]);
    assert_eq!(a.post(&id).unwrap().content, b.post(&id).unwrap().content);
    // Removing one keeps the others.
    let mut fewer = a.post(&id).unwrap().content;
    fewer.tags.retain(|t| t != "b");
    a.edit_post(&alice, Timestamp(T0 + 4), id, &Base::Latest, fewer)
        .unwrap();
    assert_eq!(a.post(&id).unwrap().content.tags.len(), 2);
}

#[test]
fn a_change_naming_a_non_document_is_refused_in_either_order() {
    let alice = key(1);
    let mut a = founded(&alice);
    let vote = a
        .vote(
            &alice,
            Timestamp(T0 + 1),
            agora_crdt::VoteTarget::Author(alice.id()),
            agora_crdt::VoteValue::Mute,
            "",
        )
        .unwrap();
    let post_entry = a
        .create_post(&alice, Timestamp(T0 + 2), post("t", "x"))
        .unwrap();
    let edit = a
        .edit_post(
            &alice,
            Timestamp(T0 + 3),
            post_entry.id().into(),
            &Base::Latest,
            post("t", "xy"),
        )
        .unwrap()
        .unwrap();
    // The same change bytes, pointed at the vote instead of the post.
    let agora_crdt::Payload::Change(change) = edit.payload().clone() else {
        panic!("not a change")
    };
    let misdirected = agora_crdt::Entry::sign(
        &alice,
        Some(a.id()),
        Timestamp(T0 + 4),
        agora_crdt::Payload::Change(agora_crdt::DocChange {
            doc: vote.id().into(),
            change: change.change,
        }),
    )
    .unwrap();
    let mut first = fresh(&a);
    first.ingest([vote.clone()]);
    let report = first.ingest([misdirected.clone()]);
    assert_eq!(report.rejected.len(), 1);
    let mut second = fresh(&a);
    second.ingest([misdirected.clone()]);
    let report = second.ingest([vote]);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, misdirected.id());
    assert_eq!(snapshot(&first), snapshot(&second));
}

/// A change that names another change X as its document waits while X is not known to be
/// held; whether X is refused (here: Bob rewriting Alice's comment) or still waiting for its own
/// document, every order of delivery ends with the same entries held.
#[test]
fn a_change_naming_a_refused_change_is_held_the_same_in_every_order() {
    let alice = key(1);
    let bob = key(2);
    let carol = key(3);
    let mut a = founded(&alice);
    let post_entry = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", "x"))
        .unwrap();
    let post_id: DocId = post_entry.id().into();
    let comment = a
        .comment(&alice, Timestamp(T0 + 2), post_id, None, "mine")
        .unwrap();
    let comment_id: DocId = comment.id().into();
    // Bob rewrites Alice's comment: refused once the comment is known (comments are their
    // author's alone).
    let rewrite = forge_change(
        &a,
        &bob,
        Timestamp(T0 + 3),
        comment_id,
        &Content::Comment(agora_crdt::CommentContent {
            text: "bob's".into(),
        }),
    );
    // Carol's change, pointed at Bob's refused change as if it were a document.
    let carol_edit = a
        .edit_post(
            &carol,
            Timestamp(T0 + 4),
            post_id,
            &Base::Latest,
            post("t", "carol"),
        )
        .unwrap()
        .unwrap();
    let agora_crdt::Payload::Change(change) = carol_edit.payload().clone() else {
        panic!("not a change")
    };
    let misdirected = agora_crdt::Entry::sign(
        &carol,
        Some(a.id()),
        Timestamp(T0 + 5),
        agora_crdt::Payload::Change(agora_crdt::DocChange {
            doc: rewrite.id().into(),
            change: change.change,
        }),
    )
    .unwrap();
    let items = [post_entry, comment, rewrite, misdirected];
    let mut held = Vec::new();
    // Every order of the four, one entry at a time.
    for order in permutations(items.len()) {
        let mut r = fresh(&a);
        for i in order {
            r.ingest([items[i].clone()]);
        }
        held.push(snapshot(&r));
    }
    for other in &held[1..] {
        assert_eq!(other, &held[0], "the same entries give the same state");
    }
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

/// `ARTICLE`-like text of `n` paragraphs, paragraph `k` reading `p{k}`, with the given ones
/// replaced.
fn paragraphs(n: usize, replaced: &[(usize, &str)]) -> String {
    (0..n)
        .map(|k| {
            replaced.iter().find(|(i, _)| *i == k).map_or_else(
                || format!("p{k} stays as it was."),
                |(_, t)| (*t).to_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Alice reads a post of `n` paragraphs (version v1); Bob's edit of paragraph `theirs` reaches
/// her; she saves her edit of paragraph `mine`, based on v1. Returns her replica's genesis,
/// every entry, and the post.
fn lost_update(n: usize, mine: (usize, &str), theirs: (usize, &str)) -> (Entry, Vec<Entry>, DocId) {
    let alice = key(1);
    let bob = key(2);
    let mut a = founded(&alice);
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", &paragraphs(n, &[])))
        .unwrap()
        .id()
        .into();
    let v1 = a.post(&id).unwrap().version;
    let mut b = fresh(&a);
    sync(&a, &mut b);
    let bobs = b
        .edit_post(
            &bob,
            Timestamp(T0 + 2),
            id,
            &Base::Latest,
            post("t", &paragraphs(n, &[theirs])),
        )
        .unwrap()
        .unwrap();
    a.ingest([bobs]);
    assert_ne!(a.post(&id).unwrap().version, v1);
    // Her editor still shows v1's text: only her paragraph differs from it.
    a.edit_post(
        &alice,
        Timestamp(T0 + 3),
        id,
        &Base::At(v1),
        post("t", &paragraphs(n, &[mine])),
    )
    .unwrap()
    .expect("the edit changes v1");
    let entries: Vec<Entry> = a.entries().cloned().collect();
    (a.genesis_entry().clone(), entries, id)
}

#[test]
fn an_edit_based_on_an_old_version_keeps_the_edits_made_since() {
    let (genesis, entries, id) = lost_update(3, (0, "p0, by Alice."), (2, "p2, by Bob."));
    let r = deliver_shuffled(&genesis, &entries, 7);
    assert_eq!(
        r.post(&id).unwrap().content.body,
        paragraphs(3, &[(0, "p0, by Alice."), (2, "p2, by Bob.")])
    );
    // The two edits are concurrent: both are heads, and the version names both.
    assert_eq!(r.heads(&id).unwrap().len(), 2);
    let version = r.post(&id).unwrap().version;
    assert_eq!(version.entries().len(), 2);
    assert_eq!(version.to_string().parse::<Version>(), Ok(version.clone()));
    assert_eq!(r.version(&id), Some(version.clone()));
    let Content::Post(read) = r.content_at(&id, &version).unwrap() else {
        panic!("a post");
    };
    assert_eq!(read, r.post(&id).unwrap().content);
}

#[test]
fn the_same_save_based_on_the_latest_version_undoes_what_came_since() {
    // What the base is for: the text Alice's editor showed, diffed against the document as it
    // reads now, reverts Bob's paragraph.
    let alice = key(1);
    let bob = key(2);
    let mut a = founded(&alice);
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", &paragraphs(2, &[])))
        .unwrap()
        .id()
        .into();
    let mut b = fresh(&a);
    sync(&a, &mut b);
    b.edit_post(
        &bob,
        Timestamp(T0 + 2),
        id,
        &Base::Latest,
        post("t", &paragraphs(2, &[(1, "Bob's.")])),
    )
    .unwrap();
    sync(&b, &mut a);
    let mine = post("t", &paragraphs(2, &[(0, "Alice's.")]));
    a.edit_post(&alice, Timestamp(T0 + 3), id, &Base::Latest, mine)
        .unwrap();
    assert_eq!(
        a.post(&id).unwrap().content.body,
        paragraphs(2, &[(0, "Alice's.")])
    );
}

#[test]
fn an_edit_based_on_an_old_version_of_ones_own_needs_no_second_history() {
    // Alice edits paragraph 2, then saves paragraph 1 from an editor opened before that edit:
    // her device's next sequence number is taken by a change the base does not hold, so the
    // edit must not reuse it (that would be an equivocation, excluding both).
    let alice = key(1);
    let mut a = founded(&alice);
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", &paragraphs(2, &[])))
        .unwrap()
        .id()
        .into();
    let v1 = a.post(&id).unwrap().version;
    a.edit_post(
        &alice,
        Timestamp(T0 + 2),
        id,
        &Base::Latest,
        post("t", &paragraphs(2, &[(1, "two.")])),
    )
    .unwrap()
    .unwrap();
    a.edit_post(
        &alice,
        Timestamp(T0 + 3),
        id,
        &Base::At(v1),
        post("t", &paragraphs(2, &[(0, "one.")])),
    )
    .unwrap()
    .unwrap();
    assert!(a.equivocations().is_empty());
    assert_eq!(applied(&a.history(&id).unwrap()), 3);
    assert_eq!(
        a.post(&id).unwrap().content.body,
        paragraphs(2, &[(0, "one."), (1, "two.")])
    );
}

#[test]
fn an_edit_based_on_what_is_not_an_applied_version_is_refused_and_an_unchanged_base_writes_nothing()
{
    let alice = key(1);
    let mut a = founded(&alice);
    let text = post("t", &paragraphs(2, &[]));
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 1), text.clone())
        .unwrap()
        .id()
        .into();
    let v1 = a.post(&id).unwrap().version;
    a.edit_post(
        &alice,
        Timestamp(T0 + 2),
        id,
        &Base::Latest,
        post("t", "changed"),
    )
    .unwrap()
    .unwrap();
    // The base already reads so: nothing to write, though the document now reads otherwise.
    assert!(
        a.edit_post(
            &alice,
            Timestamp(T0 + 3),
            id,
            &Base::At(v1.clone()),
            text.clone()
        )
        .unwrap()
        .is_none()
    );
    assert_eq!(a.post(&id).unwrap().content.body, "changed");
    assert!(matches!(
        a.edit_post(
            &alice,
            Timestamp(T0 + 4),
            id,
            &Base::At(Version::new([])),
            text.clone()
        ),
        Err(LocalError::EmptyVersion)
    ));
    // The genesis entry, an unknown entry, or one version too many: not versions of the post.
    for bad in [
        Version::from(a.genesis_entry().id()),
        Version::from(EntryId::from_bytes([9; 32])),
        Version::new(
            v1.entries()
                .iter()
                .copied()
                .chain([EntryId::from_bytes([9; 32])]),
        ),
    ] {
        assert!(matches!(
            a.edit_post(&alice, Timestamp(T0 + 4), id, &Base::At(bad), text.clone()),
            Err(LocalError::UnknownVersion(_))
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Two edits of different paragraphs, one based on the version before the other, both
    /// survive, and every delivery order of the entries (with duplicates) reads the same.
    #[test]
    fn an_edit_based_on_an_old_version_merges_like_an_offline_one(
        n in 2usize..6,
        picks in (0usize..6, 0usize..6),
        words in ("[a-z]{1,8}", "[a-z]{1,8}"),
        seeds in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let mine = picks.0 % n;
        // Any other paragraph.
        let theirs = (mine + 1 + picks.1 % (n - 1)) % n;
        let (mine_text, theirs_text) = (format!("A {}.", words.0), format!("B {}.", words.1));
        let (genesis, entries, id) =
            lost_update(n, (mine, &mine_text), (theirs, &theirs_text));
        let expected = paragraphs(n, &[(mine, &mine_text), (theirs, &theirs_text)]);
        let mut reference = Replica::new(genesis.clone()).unwrap();
        reference.ingest(entries.clone());
        prop_assert_eq!(&reference.post(&id).unwrap().content.body, &expected);
        for seed in seeds {
            let r = deliver_shuffled(&genesis, &entries, seed);
            prop_assert_eq!(&r.post(&id).unwrap().content.body, &expected);
            prop_assert_eq!(r.version(&id), reference.version(&id));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// An equivocation costs only the equivocator.

/// The post's body on a replica.
fn body(r: &Replica, id: DocId) -> String {
    r.post(&id).unwrap().content.body
}

/// Paragraph `k` of a four-paragraph body replaced.
fn with_para(body: &str, k: usize, text: &str) -> String {
    let mut paras: Vec<&str> = body.split("\n\n").collect();
    paras[k] = text;
    paras.join("\n\n")
}

fn edit_para(
    r: &mut Replica,
    key: &agora_crdt::AuthorKey,
    t: u64,
    id: DocId,
    k: usize,
    text: &str,
) {
    let current = r.post(&id).unwrap().content;
    let edited = PostContent {
        body: with_para(&current.body, k, text),
        ..current
    };
    r.edit_post(key, Timestamp(T0 + t), id, &Base::Latest, edited)
        .unwrap()
        .unwrap();
}

/// Alice posts; Bob and Carol edit on top of each other; then Bob's device signs a second
/// first edit (an equivocation). With `concurrent`, Dave has built on that second branch.
/// Every replica excludes both of Bob's first edits and everything built on them; the honest
/// authors' nodes rescue their work, and once that has spread every replica shows Carol's and
/// Dave's words, none of Bob's, the same view, and the evidence against Bob.
fn an_equivocation_costs_only_the_equivocator(policy: agora_crdt::Policy, concurrent: bool) {
    let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4));
    let mut a = founded_with(&alice, policy);
    for helper in [&bob, &carol, &dave] {
        a.state_role(
            &alice,
            Timestamp(T0 + 1),
            agora_crdt::RoleAction::Vouch,
            helper.id(),
        )
        .unwrap();
    }
    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 2), post("t", "p0\n\np1\n\np2\n\np3"))
        .unwrap()
        .id()
        .into();
    let mut b = fresh(&a);
    sync(&a, &mut b);
    // Bob's twin device: the same key and actor, the state before Bob's first edit.
    let mut twin = fresh(&a);
    sync(&a, &mut twin);
    edit_para(&mut b, &bob, 10, id, 1, "p1 bob");
    let mut c = fresh(&a);
    sync(&b, &mut c);
    edit_para(&mut c, &carol, 11, id, 2, "p2 carol");
    sync(&c, &mut b);
    edit_para(&mut b, &bob, 12, id, 3, "p3 bob");
    sync(&b, &mut c);
    edit_para(&mut c, &carol, 13, id, 0, "p0 carol");
    edit_para(&mut twin, &bob, 14, id, 1, "p1 evil");
    let mut d = fresh(&a);
    sync(&twin, &mut d);
    if concurrent {
        edit_para(&mut d, &dave, 15, id, 3, "p3 dave");
    }

    // Every replica gets every entry.
    let mut all: Vec<Entry> = Vec::new();
    for r in [&a, &b, &c, &d, &twin] {
        all.extend(r.entries().cloned());
    }
    let mut replicas = vec![a, b, c, d, fresh(&twin)];
    for r in &mut replicas {
        r.ingest(all.clone());
    }
    assert!(
        !body(&replicas[4], id).contains("carol"),
        "before any rescue, Carol's words are left out with Bob's first edits"
    );

    // The honest authors' nodes (Alice's, Carol's, Dave's) rescue what they lost, until
    // nothing is left to rescue; what they make reaches every replica.
    let honest = [(0, &alice), (2, &carol), (3, &dave)];
    for round in 0.. {
        assert!(round < 5, "rescues settle");
        let mut made = Vec::new();
        for (at, who) in honest {
            if let Some(entry) = replicas[at]
                .rescue(who, Timestamp(T0 + 100 + round), id)
                .unwrap()
            {
                made.push(entry);
            }
        }
        if made.is_empty() {
            break;
        }
        for r in &mut replicas {
            r.ingest(made.clone());
        }
    }

    let expected = snapshot(&replicas[0]);
    for r in &replicas {
        let text = body(r, id);
        assert!(
            text.contains("p2 carol") && text.contains("p0 carol"),
            "{text}"
        );
        assert!(!text.contains("bob") && !text.contains("evil"), "{text}");
        if concurrent {
            assert!(text.contains("p3 dave"), "{text}");
        }
        assert_eq!(snapshot(r), expected, "the same view everywhere");
        let evidence = r.equivocations();
        assert_eq!(evidence.len(), 1);
        assert_eq!(evidence[0].author, bob.id());
        assert_eq!(
            evidence[0].entries.len(),
            2,
            "both entries kept as evidence"
        );
    }
    // Nothing is carried twice: a second rescue has nothing to do.
    for (at, who) in honest {
        assert!(
            replicas[at]
                .rescue(who, Timestamp(T0 + 200), id)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn an_equivocation_costs_only_the_equivocator_open() {
    an_equivocation_costs_only_the_equivocator(agora_crdt::Policy::default(), false);
}

#[test]
fn an_equivocation_costs_only_the_equivocator_trusted() {
    let policy = agora_crdt::Policy {
        edit: agora_crdt::EditPolicy::Trusted,
        ..agora_crdt::Policy::default()
    };
    an_equivocation_costs_only_the_equivocator(policy, false);
}

#[test]
fn an_equivocation_costs_only_the_equivocator_with_concurrent_branches() {
    an_equivocation_costs_only_the_equivocator(agora_crdt::Policy::default(), true);
}

/// A change that uses another change's operations without naming it as a dependency (only a
/// modified client makes one) is refused by Automerge where that change is not held yet, and
/// applied where it is. Two replicas that disagreed that way agree again as soon as they hold
/// the same entries, in whatever order those came (protocol section 11.3).
#[test]
fn a_change_refused_for_an_undeclared_dependency_is_applied_once_that_dependency_arrives() {
    let alice = key(1);
    let bob = key(2);
    let carol = key(3);
    let mut a = founded(&alice);
    let created = a
        .create_post(&alice, Timestamp(T0 + 1), post("t", "one two three"))
        .unwrap();
    let id: DocId = created.id().into();
    let first_change = a.heads(&id).unwrap();
    let bobs = a
        .edit_post(
            &bob,
            Timestamp(T0 + 2),
            id,
            &Base::Latest,
            post("t", "one two three four five"),
        )
        .unwrap()
        .unwrap();
    // Carol edits the words Bob wrote, then her client drops Bob's change from the change's
    // dependencies and names Alice's instead.
    let honest = forge_edit(
        &a,
        &carol,
        Timestamp(T0 + 3),
        id,
        post("t", "one two three four FIVE"),
    );
    let agora_crdt::Payload::Change(change) = honest.payload().clone() else {
        panic!("not a change")
    };
    let mut expanded = automerge::Change::from_bytes(change.change)
        .unwrap()
        .decode();
    expanded.deps = first_change;
    let rewired = automerge::Change::from(expanded).raw_bytes().to_vec();
    let carols = sign(
        &a,
        &carol,
        Timestamp(T0 + 3),
        agora_crdt::Payload::Change(agora_crdt::DocChange {
            doc: id,
            change: rewired,
        }),
    );

    // One replica took Bob's edit before Carol's, the other has not seen Bob's edit yet.
    let mut early = fresh(&a);
    for e in [&created, &bobs, &carols] {
        early.ingest([e.clone()]);
    }
    let mut late = fresh(&a);
    for e in [&created, &carols] {
        late.ingest([e.clone()]);
    }
    assert_eq!(body(&early, id), "one two three four FIVE");
    assert_eq!(
        body(&late, id),
        "one two three",
        "refused without Bob's edit"
    );
    let refused = late
        .history(&id)
        .unwrap()
        .into_iter()
        .find(|h| h.version == carols.id())
        .unwrap();
    assert!(
        matches!(refused.status, ChangeStatus::Excluded(_)),
        "{:?}",
        refused.status
    );

    // Bob's edit reaches the second replica: they agree again.
    late.ingest([bobs.clone()]);
    assert_eq!(body(&late, id), "one two three four FIVE");
    assert_eq!(snapshot(&late), snapshot(&early));

    // And so does every other order, one entry at a time or all at once.
    let items = [created, bobs, carols];
    for order in permutations(items.len()) {
        let mut one_by_one = fresh(&a);
        for &i in &order {
            one_by_one.ingest([items[i].clone()]);
        }
        assert_eq!(snapshot(&one_by_one), snapshot(&early), "order {order:?}");
        let mut together = fresh(&a);
        together.ingest(order.iter().map(|&i| items[i].clone()).collect::<Vec<_>>());
        assert_eq!(snapshot(&together), snapshot(&early), "batch {order:?}");
    }
}

/// A change by `key` to `doc` holding the one operation `op`, on top of the document's current
/// heads: Automerge applies it, but it is not one that an honest client makes. Not ingested.
fn hostile_change(
    replica: &Replica,
    key: &agora_crdt::AuthorKey,
    t: Timestamp,
    doc: DocId,
    op: automerge::legacy::Op,
) -> Entry {
    let heads = replica.heads(&doc).unwrap();
    let saved = replica.save_document(&doc).unwrap();
    let max_op = automerge::Automerge::load(&saved)
        .unwrap()
        .get_changes(&[])
        .iter()
        .map(automerge::Change::max_op)
        .max()
        .unwrap();
    let change = automerge::ExpandedChange {
        operations: vec![op],
        actor_id: key.actor(),
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::new(max_op + 1).unwrap(),
        time: t.as_secs(),
        message: None,
        deps: heads,
        extra_bytes: Vec::new(),
        author: None,
    };
    let change = automerge::Change::from(change).raw_bytes().to_vec();
    sign(
        replica,
        key,
        t,
        agora_crdt::Payload::Change(agora_crdt::DocChange { doc, change }),
    )
}

/// A one-operation change that Automerge applies and then cannot edit on: a string of several
/// characters inserted as one element at the head of the post's title text (Agora inserts one
/// character per element; found by a random search of one-operation changes within what
/// validation accepts, which cannot tell a text from a list by the change alone). Validation
/// accepts it, Automerge applies it, and then an edit that rewrites the title fails inside
/// Automerge (`InvalidIndex`: its text diff counts the element as one character). An honest
/// edit and an edit at the version read fail with that error, nothing is signed, the post still
/// reads as before, the view is the same in every order, and a replica that reads from a source
/// (as a node's does) behaves the same. The changes known to make edits panic instead are
/// refused at validation: a mark outside any text
/// (`tests/fuzz-crashers/signed_changes-mark-outside-text`) and an increment inserted into a
/// text (`validate.rs::a_change_with_an_operation_agora_does_not_write_is_refused`). That such a
/// panic is contained (`LocalError::Unprocessable`) is tested by the replica's unit tests, on a
/// document given the increment directly.
#[test]
fn a_change_automerge_applies_but_cannot_edit_on_makes_edits_fail_cleanly() {
    use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType};
    use automerge::{AutomergeError, ScalarValue};
    let alice = key(1);
    let mallory = key(3);
    let mut a = founded(&alice);
    let created = a
        .create_post(&alice, Timestamp(T0 + 1), post("Rust", ARTICLE))
        .unwrap();
    let id: DocId = created.id().into();
    let bob = key(2);
    let edited = with_para(ARTICLE, 2, "Some people like it.");
    let bobs = a
        .edit_post(
            &bob,
            Timestamp(T0 + 2),
            id,
            &Base::Latest,
            post("Title", &edited),
        )
        .unwrap()
        .unwrap();
    // The title's text object: the operation of the first change that made it.
    let first = created.change().unwrap().decode();
    let title = first
        .operations
        .iter()
        .zip(u64::from(first.start_op)..)
        .find(|(op, _)| matches!(op.action, OpType::Make(_)) && op.key == Key::Map("title".into()))
        .map(|(_, counter)| OpId(counter, first.actor_id.clone()))
        .unwrap();
    let insert = Op {
        action: OpType::Put(ScalarValue::Str("xyzw".into())),
        obj: ObjectId::Id(title),
        key: Key::Seq(ElementId::Head),
        pred: Vec::new().into(),
        insert: true,
    };
    let hostile = hostile_change(&a, &mallory, Timestamp(T0 + 3), id, insert);
    let report = a.ingest([hostile.clone()]);
    assert_eq!(report.accepted, vec![hostile.id()], "validation accepts it");
    let history = a.history(&id).unwrap();
    assert_eq!(applied(&history), 3, "Automerge applies it: {history:?}");
    let before = a.post(&id).unwrap();
    assert_eq!(before.content, post("xyzwTitle", &edited));

    let fails = |edit: &Result<Option<Entry>, LocalError>| {
        matches!(
            edit,
            Err(LocalError::Automerge(AutomergeError::InvalidIndex(_)))
        )
    };
    let edit = a.edit_post(
        &bob,
        Timestamp(T0 + 4),
        id,
        &Base::Latest,
        post("Edited.", "Edited."),
    );
    assert!(fails(&edit), "{edit:?}");
    let at_version = a.edit_post(
        &bob,
        Timestamp(T0 + 5),
        id,
        &Base::At(before.version.clone()),
        post("Edited.", "Edited."),
    );
    assert!(fails(&at_version), "{at_version:?}");
    assert_eq!(a.post(&id).unwrap(), before, "the post reads as before");
    assert_eq!(a.len(), 4, "a failed edit signs nothing");
    // Reading the version before the hostile change, and saving, still work.
    assert_eq!(
        a.content_at(&id, &created.id().into()).unwrap(),
        Content::Post(post("Rust", ARTICLE))
    );
    assert!(a.save_document(&id).is_some());

    // The same view in every order, one at a time or all at once.
    let items = [created.clone(), bobs, hostile.clone()];
    let expected = snapshot(&a);
    for order in permutations(items.len()) {
        let mut one_by_one = fresh(&a);
        for &i in &order {
            one_by_one.ingest([items[i].clone()]);
        }
        assert_eq!(snapshot(&one_by_one), expected, "order {order:?}");
        let mut together = fresh(&a);
        together.ingest(order.iter().map(|&i| items[i].clone()).collect::<Vec<_>>());
        assert_eq!(snapshot(&together), expected, "batch {order:?}");
    }

    // A replica that reads its entries and snapshots from a source, as a node's does.
    let source = std::sync::Arc::new(MemorySource::default());
    let mut node = Replica::with_source(a.genesis_entry().clone(), source.clone()).unwrap();
    ingest_and_release(&mut node, &source, items.to_vec());
    node.set_cache_budget(0);
    assert_eq!(node.post(&id).unwrap().content, before.content);
    let edit = node.edit_post(
        &bob,
        Timestamp(T0 + 4),
        id,
        &Base::Latest,
        post("Edited.", "Edited."),
    );
    assert!(fails(&edit), "{edit:?}");
    assert_eq!(node.post(&id).unwrap().content, before.content);
}

/// A one-operation change whose operation names a predecessor that is in no change it depends
/// on (found by fuzzing; replayed from
/// `tests/fuzz-crashers/signed_changes-valid-pred-outside-dependencies`). Automerge applies it,
/// but cannot rebuild the change from its operations afterwards: `Automerge::fork_at` at any
/// version that includes it panicked (`MissingDep` unwrapped in its op collector), so an edit
/// based on the version read crashed. The replica builds such a base from the changes' own
/// bytes instead, so the edit works, and merges like any other.
#[test]
fn an_edit_based_on_a_version_with_a_hostile_change_is_made_from_the_changes_themselves() {
    use automerge::ScalarValue;
    use automerge::legacy::{Key, ObjectId, Op, OpId, OpType};
    let alice = key(1);
    let mallory = key(3);
    let mut a = founded(&alice);
    let created = a
        .create_post(&alice, Timestamp(T0 + 1), post("Title", ARTICLE))
        .unwrap();
    let id: DocId = created.id().into();
    let put = Op {
        action: OpType::Put(ScalarValue::Str("https://example.org/m".into())),
        obj: ObjectId::Root,
        key: Key::Map("link".into()),
        pred: vec![OpId(999, mallory.actor())].into(),
        insert: false,
    };
    let hostile = hostile_change(&a, &mallory, Timestamp(T0 + 2), id, put);
    assert_eq!(a.ingest([hostile.clone()]).accepted, vec![hostile.id()]);
    assert_eq!(applied(&a.history(&id).unwrap()), 2);
    let read = a.post(&id).unwrap();
    assert_eq!(read.content.link.as_deref(), Some("https://example.org/m"));

    // Someone edits meanwhile; the edit based on the version read keeps their edit.
    let bob = key(2);
    let carol = key(4);
    let edited = with_para(ARTICLE, 0, "Rust is a systems language.");
    a.edit_post(
        &bob,
        Timestamp(T0 + 3),
        id,
        &Base::Latest,
        PostContent {
            body: edited.clone(),
            ..read.content.clone()
        },
    )
    .unwrap()
    .unwrap();
    let mine = PostContent {
        title: "A better title".into(),
        ..read.content.clone()
    };
    let entry = a
        .edit_post(&carol, Timestamp(T0 + 4), id, &Base::At(read.version), mine)
        .unwrap();
    assert!(entry.is_some());
    let now = a.post(&id).unwrap().content;
    assert_eq!(now.title, "A better title");
    assert_eq!(now.body, edited, "the edit made since the base is kept");
    // And a revert to the version before the hostile change.
    a.revert(&carol, Timestamp(T0 + 5), id, created.id())
        .unwrap()
        .unwrap();
    assert_eq!(
        a.post(&id).unwrap().content,
        post("Title", ARTICLE),
        "reverted"
    );
}

/// A post, an edit or a comment over the size limit is refused before any Automerge work (a
/// 1 MB body used to cost 7 s of diffing, and 10 MB an 838 MB allocation, before the change was
/// refused as too large); nothing is signed and the replica is unchanged.
#[test]
fn content_over_the_limit_is_refused_before_any_work() {
    let alice = key(1);
    let mut a = founded(&alice);
    let big = "x".repeat(agora_crdt::MAX_CONTENT_BYTES + 1);
    let before = a.len();
    let refused = a.create_post(&alice, Timestamp(T0 + 1), post("Big", &big));
    assert!(
        matches!(refused, Err(agora_crdt::LocalError::TooLarge { max, .. }) if max == agora_crdt::MAX_CONTENT_BYTES),
        "{refused:?}"
    );
    assert_eq!(a.len(), before);

    let id: DocId = a
        .create_post(&alice, Timestamp(T0 + 2), post("Small", "fits"))
        .unwrap()
        .id()
        .into();
    let ten_mb = "y".repeat(10 * 1024 * 1024);
    let refused = a.edit_post(
        &alice,
        Timestamp(T0 + 3),
        id,
        &Base::Latest,
        post("Small", &ten_mb),
    );
    assert!(
        matches!(refused, Err(agora_crdt::LocalError::TooLarge { .. })),
        "{refused:?}"
    );
    let refused = a.comment(&alice, Timestamp(T0 + 3), id, None, &big);
    assert!(
        matches!(refused, Err(agora_crdt::LocalError::TooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(
        a.content(&id).unwrap(),
        Content::Post(post("Small", "fits"))
    );
    // Up to the limit is taken.
    let fits = "z".repeat(agora_crdt::MAX_CONTENT_BYTES - "Full".len());
    a.create_post(&alice, Timestamp(T0 + 4), post("Full", &fits))
        .unwrap();
}
