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
