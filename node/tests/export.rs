//! A subwiki exported to a file imports on another node; a damaged or forged file is refused
//! whole and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use agora_crdt::{Base, Policy, PostContent};
use agora_node::Node;

fn post(title: &str) -> PostContent {
    PostContent {
        title: title.into(),
        body: "body".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn export_then_import_carries_a_subwiki_and_bad_files_change_nothing() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let a = Node::open_offline(dir_a.path()).unwrap();
    let subwiki = a
        .create_subwiki("carried", "", Policy::default())
        .await
        .unwrap();
    let first = a.create_post(subwiki, post("one")).await.unwrap();
    a.edit_post(first, Base::Latest, post("one, edited"))
        .await
        .unwrap();
    a.comment(first, None, "nice").await.unwrap();
    let file = files.path().join("carried.agora");
    assert_eq!(a.export(subwiki, &file).unwrap(), 4);

    let b = Node::open_offline(dir_b.path()).unwrap();
    // Damaged copies first: each refused, nothing kept.
    let good = std::fs::read(&file).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("flipped bit", {
            let mut b = good.clone();
            b[100] ^= 1;
            b
        }),
        ("not an export", b"hello".to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let result = b.import(&path).await;
        assert!(result.is_err(), "{name} was accepted");
        assert!(
            b.subwikis().unwrap().is_empty(),
            "{name} left something behind"
        );
    }
    assert!(b.import(&files.path().join("missing")).await.is_err());

    let (imported, accepted) = b.import(&file).await.unwrap();
    assert_eq!(imported, subwiki);
    assert_eq!(accepted.new.len(), 4);
    let item = b.post(first).unwrap();
    assert_eq!(item.post.content.title, "one, edited");
    assert_eq!(b.comments(first).unwrap().len(), 1);
    // Importing again is harmless.
    let (_, again) = b.import(&file).await.unwrap();
    assert!(again.new.is_empty());
    assert_eq!(again.duplicates, 4);
}

/// An import goes in by chunks (so that reads are answered meanwhile); an entry refused in a
/// late chunk still leaves nothing of the file behind.
#[tokio::test]
async fn an_entry_refused_after_the_first_chunks_leaves_nothing_of_the_import() {
    use agora_crdt::{
        AuthorKey, CommentContent, Content, DocChange, DocId, Entry, Payload, Replica, Timestamp,
    };
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let alice = AuthorKey::from_secret([1; 32], [1; 8]);
    let bob = AuthorKey::from_secret([2; 32], [2; 8]);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 3_600_000;
    let (mut replica, genesis) =
        Replica::found(&alice, Timestamp(t0), "big", "", Default::default()).unwrap();
    let mut entries = vec![genesis];
    let posts = agora_node::IMPORT_CHUNK + 100;
    for i in 0..posts {
        entries.push(
            replica
                .create_post(&alice, Timestamp(t0 + 1 + i as u64), post(&format!("p{i}")))
                .unwrap(),
        );
    }
    let first: DocId = entries[1].id().into();
    let comment = replica
        .comment(&alice, Timestamp(t0 + 1_000_000), first, None, "mine")
        .unwrap();
    let comment_id: DocId = comment.id().into();
    entries.push(comment);
    // Bob rewrites Alice's comment: signed and well formed, refused (comments are their
    // author's alone) only once its document is checked.
    let saved = replica.save_document(&comment_id).unwrap();
    let mut am = automerge::Automerge::load(&saved)
        .unwrap()
        .with_actor(bob.actor());
    let mut tx = am.transaction();
    Content::Comment(CommentContent {
        text: "bob's words".into(),
    })
    .write(&mut tx)
    .unwrap();
    let t = Timestamp(t0 + 1_000_001);
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(t.as_secs()));
    let change = am.get_last_local_change().unwrap().raw_bytes().to_vec();
    let forged = Entry::sign(
        &bob,
        Some(replica.id()),
        t,
        Payload::Change(DocChange {
            doc: comment_id,
            change,
        }),
    )
    .unwrap();
    entries.push(forged);
    let file = files.path().join("big.agora");
    std::fs::write(&file, agora_node::export::encode(&entries)).unwrap();

    let node = Node::open_offline(dir.path()).unwrap();
    let err = node.import(&file).await.unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
    assert!(node.subwikis().unwrap().is_empty(), "something was kept");
    assert!(
        node.post(first).is_err(),
        "a post of the first chunk was kept"
    );

    // Without the forged entry the same file imports whole.
    entries.pop();
    std::fs::write(&file, agora_node::export::encode(&entries)).unwrap();
    let (_, accepted) = node.import(&file).await.unwrap();
    assert_eq!(accepted.new.len(), posts + 2);
    assert_eq!(node.post(first).unwrap().post.content.title, "p0");
}
