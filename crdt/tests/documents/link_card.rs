//! The link card in a post's document: written as a normal edit, read back bounded whoever
//! wrote it, tied to the link it was made for, and listed in the history.
use super::support::*;
use agora_crdt::{Base, Content, DocKind, Field, LinkCard, PostContent, Timestamp};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};

fn read(r: &agora_crdt::Replica, id: &agora_crdt::DocId) -> PostContent {
    match r.content(id).unwrap() {
        Content::Post(p) => p,
        other => panic!("not a post: {other:?}"),
    }
}

#[test]
fn a_card_is_an_edit_that_replicates_and_shows_only_for_its_link() {
    let alice = key(1);
    let mut r = founded(&alice);
    let with_link = PostContent {
        link: Some("https://example.org/a".into()),
        ..post("Look", "at this")
    };
    let created = r
        .create_post(&alice, Timestamp(T0 + 1), with_link.clone())
        .unwrap();
    let id = created.id().into();
    let card = LinkCard::new("https://example.org/a", "A title", "About it", "Example");
    let with_card = PostContent {
        card: Some(card.clone()),
        ..with_link.clone()
    };
    r.edit_post(
        &alice,
        Timestamp(T0 + 2),
        id,
        &Base::At(created.id().into()),
        with_card.clone(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(read(&r, &id), with_card);
    assert_eq!(read(&r, &id).card_for_link(), Some(&card));
    let history = r.history(&id).unwrap();
    assert_eq!(history[1].fields, vec![Field::Card]);

    // Another replica reads the same card from the entries alone.
    let mut other = fresh(&r);
    sync(&r, &mut other);
    assert_eq!(read(&other, &id), with_card);

    // The link edited by someone else, who kept the card: the card is not shown for it.
    let bob = key(2);
    let moved = PostContent {
        link: Some("https://example.org/b".into()),
        ..with_card.clone()
    };
    r.edit_post(&bob, Timestamp(T0 + 3), id, &Base::Latest, moved)
        .unwrap()
        .unwrap();
    let now = read(&r, &id);
    assert_eq!(now.card.as_ref(), Some(&card));
    assert_eq!(now.card_for_link(), None);

    // Removing the card removes the key; a post without a card writes nothing for it.
    let without = PostContent { card: None, ..now };
    r.edit_post(&bob, Timestamp(T0 + 4), id, &Base::Latest, without.clone())
        .unwrap()
        .unwrap();
    assert_eq!(read(&r, &id), without);
    let saved = r.save_document(&id).unwrap();
    let doc = automerge::Automerge::load(&saved).unwrap();
    assert!(
        automerge::ReadDoc::get(&doc, ROOT, "card")
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_card_written_by_anyone_reads_bounded_and_cleaned() {
    // A hostile writer can put any operation in a document: a card far over the limits, with
    // control characters and extra keys.
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "link", "https://example.org/").unwrap();
    let card = doc.put_object(ROOT, "card", ObjType::Map).unwrap();
    doc.put(&card, "url", "https://example.org/").unwrap();
    doc.put(
        &card,
        "title",
        format!("\u{1b}[31mred\n{}", "t".repeat(100_000)),
    )
    .unwrap();
    doc.put(&card, "description", "d".repeat(100_000)).unwrap();
    doc.put(&card, "site_name", "\u{202e}emanetis").unwrap();
    doc.put(&card, "script", "<script>").unwrap();
    let Content::Post(p) = Content::read(DocKind::Post, &doc, None) else {
        panic!("not a post")
    };
    let card = p.card_for_link().expect("a card for the link");
    assert!(
        card.title.starts_with("[31mred t"),
        "{:?}",
        &card.title[..20]
    );
    assert_eq!(card.title.len(), LinkCard::MAX_TITLE);
    assert_eq!(card.description.len(), LinkCard::MAX_DESCRIPTION);
    assert_eq!(card.site_name, "emanetis");

    // Not a map, or no URL: no card.
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "card", "a string").unwrap();
    let Content::Post(p) = Content::read(DocKind::Post, &doc, None) else {
        panic!("not a post")
    };
    assert_eq!(p.card, None);
    let mut doc = AutoCommit::new();
    let card = doc.put_object(ROOT, "card", ObjType::Map).unwrap();
    doc.put(&card, "title", "no url").unwrap();
    let Content::Post(p) = Content::read(DocKind::Post, &doc, None) else {
        panic!("not a post")
    };
    assert_eq!(p.card, None);
}

#[test]
fn a_card_counts_toward_the_size_of_a_post() {
    let card = LinkCard::new("https://example.org/", "t", "d", "s");
    let post = Content::Post(PostContent {
        link: Some("https://example.org/".into()),
        card: Some(card),
        ..PostContent::default()
    });
    assert_eq!(post.text_bytes(), 2 * "https://example.org/".len() + 3);
}
