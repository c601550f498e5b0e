//! Documents: offline edits merge, history lists who changed what, old versions can be read and
//! restored, the feed pages newest first.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use agora_crdt::{
    ChangeStatus, Content, DocId, FeedCursor, Field, PostContent, ProfileContent, Timestamp,
};
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
    a.edit_post(&alice, Timestamp(T0 + 2), id, post("Rust", &mine))
        .unwrap();
    let theirs = ARTICLE.replace("People like it.", "People like it a lot.");
    b.edit_post(&bob, Timestamp(T0 + 3), id, post("Rust", &theirs))
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
        .edit_post(&bob, Timestamp(T0 + 2), id, post("Spam", "Buy now."))
        .unwrap()
        .unwrap();
    let tagged = PostContent {
        tags: vec!["spam".into()],
        link: Some("https://example.org".into()),
        ..r.post(&id).unwrap().content
    };
    r.edit_post(&bob, Timestamp(T0 + 3), id, tagged).unwrap();

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
    let Content::Post(first) = r.content_at(&id, created.id()).unwrap() else {
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
    assert!(r.content_at(&id, r.genesis_entry().id()).is_err());
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
    r.edit_post(&alice, Timestamp(T0 + 100), oldest, post("bumped?", "no"))
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
        r.edit(&bob, Timestamp(T0 + 6), first, &edited)
            .unwrap()
            .is_some()
    );
    assert!(r.edit(&alice, Timestamp(T0 + 7), first, &edited).is_err());
    assert_eq!(r.comments(&id)[0].text, "first!");
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
    a.edit_post(&alice, Timestamp(T0 + 2), id, with("b"))
        .unwrap();
    b.edit_post(&bob, Timestamp(T0 + 3), id, with("c")).unwrap();
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
    a.edit_post(&alice, Timestamp(T0 + 4), id, fewer).unwrap();
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
