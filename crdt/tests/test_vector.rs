#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The test vectors of `docs/protocol.md`, section 15, checked against the implementation.
//!
//! The vectors are read out of the document itself (the fenced blocks whose info string ends in
//! `test-vector:<name>`), so editing or removing one of them makes these tests fail. The expected
//! ids are also pinned here, so the document cannot drift together with a changed format.
//!
//! To print fresh vectors: `cargo test -p agora-crdt --test test_vector -- --ignored --nocapture`.

use std::collections::BTreeMap;

use agora_crdt::{
    AuthorId, AuthorKey, Content, DocId, DocKind, EditPolicy, Entry, EntryError, EntryId, Payload,
    Policy, PostContent, Replica, SubwikiId, Timestamp, validate,
};

const SECRET: [u8; 32] = [7; 32];
const DEVICE: [u8; 8] = [1; 8];
const GENESIS_TIME: Timestamp = Timestamp(1_700_000_000_000);
const POST_TIME: Timestamp = Timestamp(1_700_000_060_000);
const NAME: &str = "rust";
const DESCRIPTION: &str = "All things Rust";
const TITLE: &str = "Hello";
const BODY: &str = "First post.";

/// The values the document must state; pinned so that a regenerated vector is a visible change.
const PINNED: &[(&str, &str)] = &[
    (
        "author",
        "au_t956oov2jh90lfnla1th6bm5v6aketlenqv7n4i23rl6i526q8m0",
    ),
    (
        "genesis-id",
        "en_26as8o0s5jdaflvpkalacs8alusk7rhrcjbq33soad5ijdc9hsog",
    ),
    (
        "post-id",
        "en_9887rlmmtmo25ktt8ub8na55p68ob38nl37dqtmsv1mim14ucudg",
    ),
];

fn key() -> AuthorKey {
    AuthorKey::from_secret(SECRET, DEVICE)
}

fn protocol_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The lines of the one fenced block whose info string ends with `test-vector:<name>`.
fn block(doc: &str, name: &str) -> Vec<String> {
    let marker = format!("test-vector:{name}");
    let mut found = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        if line.starts_with("```") && line.split_whitespace().last() == Some(marker.as_str()) {
            let mut body = Vec::new();
            loop {
                let Some(inner) = lines.next() else {
                    panic!("block {marker} is not closed");
                };
                if inner.trim_end() == "```" {
                    break;
                }
                body.push(inner.to_owned());
            }
            found.push(body);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "docs/protocol.md must hold exactly one block marked {marker}"
    );
    let body = found.pop().unwrap();
    assert!(!body.is_empty(), "block {marker} is empty");
    body
}

fn hex_decode(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => panic!("not a lower-case hex digit: {:?}", b as char),
        })
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `hex` block: all its hex digits, whitespace ignored.
fn hex_block(doc: &str, name: &str) -> Vec<u8> {
    hex_decode(&block(doc, name).join("\n"))
}

/// A field-by-field breakdown: the first column of every line, concatenated.
fn breakdown_block(doc: &str, name: &str) -> Vec<u8> {
    let first_columns: Vec<String> = block(doc, name)
        .iter()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    hex_decode(&first_columns.concat())
}

fn expected(doc: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in block(doc, "expected") {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            panic!("malformed expected line: {line:?}");
        };
        assert!(
            out.insert(name.to_owned(), value.to_owned()).is_none(),
            "{name} given twice"
        );
    }
    for (name, value) in PINNED {
        assert_eq!(
            out.get(*name).map(String::as_str),
            Some(*value),
            "expected value {name}"
        );
    }
    out
}

fn get<'a>(expected: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    expected
        .get(name)
        .unwrap_or_else(|| panic!("the expected block has no {name}"))
}

fn body_of(entry: &[u8]) -> &[u8] {
    &entry[..entry.len() - 64]
}

/// The genesis vector, validated.
fn genesis_entry(doc: &str) -> Entry {
    validate(&hex_block(doc, "genesis"), GENESIS_TIME).expect("the genesis vector is valid")
}

#[test]
fn author_matches_the_document() {
    let doc = protocol_doc();
    let exp = expected(&doc);
    let key = key();
    assert_eq!(key.id().to_string(), get(&exp, "author"));
    assert_eq!(hex_encode(key.id().as_bytes()), get(&exp, "author-hex"));
    assert_eq!(key.id().fingerprint(), get(&exp, "author-fingerprint"));
    assert_eq!(
        get(&exp, "author").parse::<AuthorId>().unwrap(),
        key.id(),
        "the printable author id parses back"
    );
}

#[test]
fn key_file_vector_parses_to_the_author() {
    let doc = protocol_doc();
    let exp = expected(&doc);
    let text = block(&doc, "keyfile").join("\n") + "\n";
    let parsed = AuthorKey::from_file_str(&text).expect("the key file vector parses");
    assert_eq!(parsed.id().to_string(), get(&exp, "author"));
    assert_eq!(parsed.device(), DEVICE);
    assert_eq!(
        key().to_file_string(),
        text,
        "the key file is written this way"
    );
}

#[test]
fn genesis_vector_validates_with_the_documented_id_and_fields() {
    let doc = protocol_doc();
    let exp = expected(&doc);
    let entry = genesis_entry(&doc);

    assert_eq!(entry.bytes().len(), 139);
    assert_eq!(entry.id().to_string(), get(&exp, "genesis-id"));
    assert_eq!(
        hex_encode(entry.id().as_bytes()),
        get(&exp, "genesis-id-hex")
    );
    assert_eq!(
        get(&exp, "genesis-id").parse::<EntryId>().unwrap(),
        entry.id()
    );
    assert_eq!(entry.subwiki().to_string(), get(&exp, "subwiki"));
    assert_eq!(entry.author().to_string(), get(&exp, "author"));
    assert_eq!(entry.author(), key().id());
    assert_eq!(entry.timestamp(), GENESIS_TIME);
    assert_eq!(entry.body().subwiki, None);

    let Payload::Genesis(genesis) = entry.payload() else {
        panic!("not a genesis entry: {entry:?}");
    };
    assert_eq!(genesis.name, NAME);
    assert_eq!(genesis.description, DESCRIPTION);
    assert_eq!(genesis.policy, Policy::default());
    assert_eq!(genesis.policy.edit, EditPolicy::Open);
    assert_eq!(
        (
            genesis.policy.vouch_threshold,
            genesis.policy.hide_quorum,
            genesis.policy.mark_quorum
        ),
        (2, 2, 2)
    );

    // The id is blake3 of the body; re-encoding the decoded body gives the signed bytes back.
    assert_eq!(entry.body().encode(), body_of(entry.bytes()));
    // The field-by-field breakdown is the body.
    assert_eq!(
        breakdown_block(&doc, "genesis-body"),
        body_of(entry.bytes()),
        "the genesis breakdown does not add up to the body"
    );
}

#[test]
fn signing_the_genesis_again_gives_the_same_bytes() {
    let doc = protocol_doc();
    let documented = hex_block(&doc, "genesis");
    let entry = genesis_entry(&doc);

    let resigned = Entry::sign(&key(), None, GENESIS_TIME, entry.payload().clone()).unwrap();
    assert_eq!(hex_encode(resigned.bytes()), hex_encode(&documented));

    let (replica, founded) =
        Replica::found(&key(), GENESIS_TIME, NAME, DESCRIPTION, Policy::default()).unwrap();
    assert_eq!(hex_encode(founded.bytes()), hex_encode(&documented));
    assert_eq!(replica.id(), SubwikiId::from(entry.id()));
}

#[test]
fn post_vector_validates_and_ingests() {
    let doc = protocol_doc();
    let exp = expected(&doc);
    let genesis = genesis_entry(&doc);
    let post = validate(&hex_block(&doc, "post"), POST_TIME).expect("the post vector is valid");

    assert_eq!(post.bytes().len(), 332);
    assert_eq!(post.id().to_string(), get(&exp, "post-id"));
    assert_eq!(hex_encode(post.id().as_bytes()), get(&exp, "post-id-hex"));
    assert_eq!(DocId::from(post.id()).to_string(), get(&exp, "post-doc"));
    assert_eq!(post.author(), key().id());
    assert_eq!(post.timestamp(), POST_TIME);
    assert_eq!(post.subwiki(), SubwikiId::from(genesis.id()));
    assert_eq!(post.subwiki().to_string(), get(&exp, "subwiki"));
    assert_eq!(post.body().encode(), body_of(post.bytes()));
    assert_eq!(
        breakdown_block(&doc, "post-body"),
        body_of(post.bytes()),
        "the post breakdown does not add up to the body"
    );

    let Payload::CreateDocument(create) = post.payload() else {
        panic!("not a create-document entry: {post:?}");
    };
    assert_eq!(create.kind, DocKind::Post);
    assert_eq!((create.parent, create.reply_to), (None, None));
    let change = post
        .change()
        .expect("a create-document entry carries a change");
    assert_eq!(change.raw_bytes(), create.change.as_slice());
    assert_eq!(change.hash().to_string(), get(&exp, "post-change-hash"));
    assert_eq!(change.seq(), 1);
    assert!(change.deps().is_empty());
    let mut actor = key().id().as_bytes().to_vec();
    actor.extend_from_slice(&DEVICE);
    assert_eq!(change.actor_id().to_bytes(), actor.as_slice());
    // The chunk is an uncompressed change whose checksum is the start of its hash.
    assert_eq!(create.change[8], 1);
    assert_eq!(&create.change[4..8], &change.hash().0[..4]);

    let mut replica = Replica::new(genesis).unwrap();
    let report = replica.ingest([post.clone()]);
    assert_eq!(report.accepted, vec![post.id()]);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let doc_id = DocId::from(post.id());
    let view = replica.post(&doc_id).expect("the post is held");
    assert_eq!(view.content.title, TITLE);
    assert_eq!(view.content.body, BODY);
    assert_eq!(view.content.link, None);
    assert_eq!(view.meta.creator, key().id());
    assert_eq!(view.meta.created_at, POST_TIME);
    assert_eq!(view.edits, 0);
    assert_eq!(
        replica.content(&doc_id),
        Some(Content::Post(PostContent {
            title: TITLE.into(),
            body: BODY.into(),
            ..Default::default()
        }))
    );
    let page = replica.feed(None, 10);
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].meta.id, doc_id);
}

#[test]
fn changing_a_byte_of_a_vector_makes_it_invalid() {
    let doc = protocol_doc();
    for (name, now) in [("genesis", GENESIS_TIME), ("post", POST_TIME)] {
        let bytes = hex_block(&doc, name);
        assert!(validate(&bytes, now).is_ok());
        // The last byte of the timestamp, a byte of the payload, a byte of R, a byte of S.
        for at in [41, bytes.len() - 70, bytes.len() - 40, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            let result = validate(&damaged, Timestamp(u64::MAX));
            assert!(
                result.is_err(),
                "{name} with byte {at} flipped still validates"
            );
        }
        let mut damaged = bytes.clone();
        *damaged.last_mut().unwrap() ^= 0x80;
        assert_eq!(
            validate(&damaged, now).map(|e| e.id()),
            Err(EntryError::BadSignature)
        );
    }
}

/// Prints the vectors as the implementation produces them now, for `docs/protocol.md`.
#[test]
#[ignore = "prints fresh vectors; run with --ignored --nocapture"]
fn print_vectors() {
    let key = key();
    let (mut replica, genesis) =
        Replica::found(&key, GENESIS_TIME, NAME, DESCRIPTION, Policy::default()).unwrap();
    let post = replica
        .create_post(
            &key,
            POST_TIME,
            PostContent {
                title: TITLE.into(),
                body: BODY.into(),
                ..Default::default()
            },
        )
        .unwrap();
    println!("{}", key.to_file_string());
    println!("author              {}", key.id());
    println!("author-hex          {}", hex_encode(key.id().as_bytes()));
    println!("author-fingerprint  {}", key.id().fingerprint());
    println!("genesis-id          {}", genesis.id());
    println!(
        "genesis-id-hex      {}",
        hex_encode(genesis.id().as_bytes())
    );
    println!("subwiki             {}", genesis.subwiki());
    println!("post-id             {}", post.id());
    println!("post-id-hex         {}", hex_encode(post.id().as_bytes()));
    println!("post-doc            {}", DocId::from(post.id()));
    if let Some(change) = post.change() {
        println!("post-change-hash    {}", change.hash());
    }
    for (name, entry) in [("genesis", &genesis), ("post", &post)] {
        println!("\n{name}, {} bytes:", entry.bytes().len());
        for line in entry.bytes().chunks(32) {
            println!("{}", hex_encode(line));
        }
    }
}
