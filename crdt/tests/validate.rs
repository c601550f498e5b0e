//! Bad input is rejected with its own error and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use agora_crdt::{
    AuthorKey, Base, Body, DocChange, DocId, Entry, EntryError, EntryId, IngestError, Payload,
    REOPEN_BATCH, Replica, Timestamp, VoteTarget, VoteValue, limits, reopen, validate,
};
use proptest::prelude::*;
use support::*;

const NOW: Timestamp = Timestamp(T0 + 1_000_000);

/// A subwiki with one post by Alice and one comment by Alice, plus one edit entry by Bob.
struct World {
    alice: AuthorKey,
    bob: AuthorKey,
    replica: Replica,
    post: DocId,
    comment: DocId,
    edit: Entry,
}

fn world() -> World {
    let alice = key(1);
    let bob = key(2);
    let mut replica = founded(&alice);
    let post: DocId = replica
        .create_post(&alice, Timestamp(T0 + 1), support::post("title", "body"))
        .unwrap()
        .id()
        .into();
    let comment: DocId = replica
        .comment(&alice, Timestamp(T0 + 2), post, None, "a comment")
        .unwrap()
        .id()
        .into();
    let mut other = fresh(&replica);
    sync(&replica, &mut other);
    let edit = other
        .edit_post(
            &bob,
            Timestamp(T0 + 3),
            post,
            &Base::Latest,
            support::post("title", "body, improved"),
        )
        .unwrap()
        .unwrap();
    World {
        alice,
        bob,
        replica,
        post,
        comment,
        edit,
    }
}

/// Offers raw bytes to the replica the way a node does: validate, then ingest. Asserts that the
/// replica is unchanged and returns the error.
fn offer(replica: &mut Replica, bytes: &[u8]) -> String {
    let before = snapshot(replica);
    let error = match validate(bytes, NOW) {
        Err(e) => format!("entry: {e:?}"),
        Ok(entry) => {
            let report = replica.ingest([entry]);
            assert_eq!(report.rejected.len(), 1, "expected a rejection: {report:?}");
            format!("ingest: {:?}", report.rejected[0].1)
        }
    };
    assert_eq!(
        snapshot(replica),
        before,
        "a rejected entry changed the replica"
    );
    error
}

fn flip(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

fn body_len(entry: &Entry) -> usize {
    entry.bytes().len() - 64
}

/// Where the change bytes start inside a change entry's body: version, kind, author, time,
/// subwiki, document, length prefix.
const CHANGE_OFFSET: usize = 1 + 1 + 32 + 8 + 32 + 32 + 4;

#[test]
fn the_honest_edit_is_accepted() {
    let mut w = world();
    let report = w.replica.ingest([w.edit.clone()]);
    assert_eq!(report.accepted, vec![w.edit.id()]);
    assert_eq!(
        w.replica.post(&w.post).unwrap().content.body,
        "body, improved"
    );
}

#[test]
fn a_flipped_bit_in_the_body_is_refused() {
    let mut w = world();
    // The timestamp's lowest byte: still decodes, so the signature catches it.
    let bytes = flip(w.edit.bytes(), 1 + 1 + 32 + 7);
    assert_eq!(offer(&mut w.replica, &bytes), "entry: BadSignature");
}

#[test]
fn stored_bytes_reopen_only_whole_and_under_their_own_id() {
    let w = world();
    let good: Vec<Entry> = w.replica.entries().cloned().collect();
    let reopen_one = |bytes: &[u8], id: EntryId| reopen(&[(id, bytes)]).pop().unwrap();
    let id = w.edit.id();
    assert_eq!(reopen_one(w.edit.bytes(), id).unwrap(), w.edit);
    // Damage anywhere: the id no longer matches, the body no longer decodes, or the
    // signature no longer verifies.
    let last = w.edit.bytes().len() - 1;
    for index in [
        1 + 1 + 32 + 7,
        CHANGE_OFFSET + 20,
        body_len(&w.edit) - 1,
        last - 10,
    ] {
        let damaged = flip(w.edit.bytes(), index);
        assert!(reopen_one(&damaged, id).is_err(), "byte {index}");
    }
    assert_eq!(
        reopen_one(w.edit.bytes(), w.post.into()),
        Err(EntryError::IdMismatch)
    );
    assert!(matches!(reopen_one(&[], id), Err(EntryError::TooShort(0))));

    // Many at once, over several signature batches: exactly the damaged ones fail.
    let mut stored: Vec<(EntryId, Vec<u8>)> = Vec::new();
    for i in 0..(2 * REOPEN_BATCH + 7) {
        let e = &good[i % good.len()];
        let mut bytes = e.bytes().to_vec();
        if i % 97 == 5 {
            let n = bytes.len() - 3;
            bytes[n] ^= 0x10;
        }
        stored.push((e.id(), bytes));
    }
    let refs: Vec<(EntryId, &[u8])> = stored.iter().map(|(id, b)| (*id, b.as_slice())).collect();
    for (i, result) in reopen(&refs).into_iter().enumerate() {
        if i % 97 == 5 {
            assert_eq!(result, Err(EntryError::BadSignature), "{i}");
        } else {
            assert_eq!(result.unwrap().id(), stored[i].0);
        }
    }
}

#[test]
fn a_flipped_bit_in_the_signature_is_refused() {
    let mut w = world();
    let last = w.edit.bytes().len() - 1;
    let bytes = flip(w.edit.bytes(), last - 10);
    assert_eq!(offer(&mut w.replica, &bytes), "entry: BadSignature");
}

#[test]
fn a_flipped_bit_in_the_change_bytes_is_refused() {
    let mut w = world();
    let end = body_len(&w.edit);
    for index in CHANGE_OFFSET..end {
        let bytes = flip(w.edit.bytes(), index);
        let error = offer(&mut w.replica, &bytes);
        // A flip is caught by Automerge's chunk checksum or the change's own structure, before
        // the signature is even checked.
        assert!(
            error.starts_with("entry: MalformedChange") || error == "entry: ChangeChecksum",
            "byte {index}: {error}"
        );
    }
}

#[test]
fn a_change_whose_actor_is_not_the_signer_is_refused() {
    let mut w = world();
    // Bob signs the change that Alice's device made.
    let alice_change = w
        .replica
        .edit_post(
            &w.alice,
            Timestamp(T0 + 4),
            w.post,
            &Base::Latest,
            support::post("title", "alice"),
        )
        .unwrap()
        .unwrap();
    let Payload::Change(change) = alice_change.payload().clone() else {
        panic!("not a change")
    };
    let forged = Entry::sign(
        &w.bob,
        Some(w.replica.id()),
        Timestamp(T0 + 5),
        Payload::Change(change),
    );
    assert_eq!(forged.err(), Some(EntryError::ActorMismatch));
    // And the raw bytes of such an entry, signed by hand, are refused by validate too.
    let body = Body {
        subwiki: Some(w.replica.id()),
        author: w.bob.id(),
        timestamp: Timestamp(T0 + 5),
        payload: alice_change.payload().clone(),
    };
    let forged = sign_raw(&w.bob, &body.encode());
    assert_eq!(offer(&mut w.replica, &forged), "entry: ActorMismatch");
}

/// Signs body bytes the way the format says, without validating them.
fn sign_raw(key: &AuthorKey, body: &[u8]) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let secret: [u8; 32] = {
        // Keys in these tests are made from a repeated byte: recover it from the key file.
        let text = key.to_file_string();
        let hex = text.lines().nth(1).unwrap().trim_start_matches("secret ");
        let byte = u8::from_str_radix(&hex[..2], 16).unwrap();
        [byte; 32]
    };
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let id = blake3::hash(body);
    let mut message = agora_crdt::entry::SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(id.as_bytes());
    let mut out = body.to_vec();
    out.extend_from_slice(&signing.sign(&message).to_bytes());
    out
}

#[test]
fn a_change_to_someone_elses_owner_document_is_refused() {
    use automerge::transaction::Transactable;
    let mut w = world();
    // Bob edits Alice's comment on his own device; the entry is valid on its own...
    let mut bobs = fresh(&w.replica);
    sync(&w.replica, &mut bobs);
    let refused = bobs.edit(
        &w.bob,
        Timestamp(T0 + 6),
        w.comment,
        &Base::Latest,
        &agora_crdt::Content::Comment(agora_crdt::CommentContent {
            text: "vandalised".into(),
        }),
    );
    assert!(matches!(
        refused,
        Err(agora_crdt::LocalError::Ingest(IngestError::NotOwner { .. }))
    ));
    // ...so build it by hand, as a hostile node would, and offer it.
    let mut doc = automerge::Automerge::new().with_actor(w.bob.actor());
    let mut tx = doc.transaction();
    let text = tx
        .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
        .unwrap();
    tx.splice_text(&text, 0, 0, "vandalised").unwrap();
    tx.commit();
    let change = doc.get_last_local_change().unwrap();
    let entry = Entry::sign(
        &w.bob,
        Some(w.replica.id()),
        Timestamp(T0 + 6),
        Payload::Change(DocChange {
            doc: w.comment,
            change: change.raw_bytes().to_vec(),
        }),
    )
    .unwrap();
    let error = offer(&mut w.replica, entry.bytes());
    assert_eq!(
        error,
        format!("ingest: NotOwner {{ doc: {:?} }}", w.comment)
    );
    // The same entry arriving before the comment exists waits, then is refused and dropped.
    let mut late = fresh(&w.replica);
    let first = late.ingest([entry.clone()]);
    assert_eq!(first.accepted, vec![entry.id()]);
    let comment_entry = w.replica.entry(&w.comment.into()).unwrap().clone();
    let second = late.ingest([comment_entry]);
    assert_eq!(
        second.rejected,
        vec![(entry.id(), IngestError::NotOwner { doc: w.comment })]
    );
    assert!(!late.contains(&entry.id()));
    assert!(late.pending().is_empty());
}

#[test]
fn an_entry_over_the_size_limit_is_refused() {
    let mut w = world();
    let mut bytes = w.edit.bytes().to_vec();
    bytes.resize(limits::MAX_ENTRY_BYTES + 1, 0);
    assert_eq!(
        offer(&mut w.replica, &bytes),
        format!(
            "entry: TooLarge {{ len: {}, max: {} }}",
            limits::MAX_ENTRY_BYTES + 1,
            limits::MAX_ENTRY_BYTES
        )
    );
    // A field over its own limit: a vote reason of 1 KiB + 1.
    let reason = "x".repeat(limits::MAX_REASON_BYTES + 1);
    let vote = w.replica.vote(
        &w.alice,
        Timestamp(T0 + 7),
        VoteTarget::Post(w.post),
        VoteValue::Hide,
        &reason,
    );
    assert!(matches!(
        vote,
        Err(agora_crdt::LocalError::Entry(EntryError::Decode(
            agora_crdt::DecodeError::TooLong { what: "reason", .. }
        )))
    ));
}

/// A real first Automerge change by `key` of exactly `len` bytes: one string put (a post's
/// link) whose text is sized to make up the rest. Near the limits every length prefix in the
/// change keeps its width, so the size follows the text byte for byte.
fn change_of_len(key: &AuthorKey, len: usize) -> Vec<u8> {
    let make = |text_len: usize| {
        let mut doc = automerge::Automerge::new().with_actor(key.actor());
        let mut tx = doc.transaction();
        automerge::transaction::Transactable::put(
            &mut tx,
            automerge::ROOT,
            "link",
            "x".repeat(text_len),
        )
        .unwrap();
        tx.commit();
        doc.get_last_local_change().unwrap().raw_bytes().to_vec()
    };
    let mut text_len = len - 100;
    for _ in 0..4 {
        let change = make(text_len);
        if change.len() == len {
            return change;
        }
        text_len = (text_len + len).checked_sub(change.len()).unwrap();
    }
    panic!("no change of exactly {len} bytes");
}

/// The change carried by a create-document entry and by a change entry may be
/// `MAX_CHANGE_BYTES` long and not one byte more: a real, well-formed change one byte over is
/// refused from its length prefix (the whole entry is still under `MAX_ENTRY_BYTES`).
#[test]
fn a_change_over_the_size_limit_is_refused() {
    let mut w = world();
    let (subwiki, post, bob) = (w.replica.id(), w.post, w.bob.clone());
    let entry = |change: Vec<u8>, create: bool| {
        let payload = if create {
            Payload::CreateDocument(agora_crdt::CreateDocument {
                kind: agora_crdt::DocKind::Post,
                parent: None,
                reply_to: None,
                change,
            })
        } else {
            Payload::Change(DocChange { doc: post, change })
        };
        let body = Body {
            subwiki: Some(subwiki),
            author: bob.id(),
            timestamp: Timestamp(T0 + 10),
            payload,
        };
        sign_raw(&bob, &body.encode())
    };
    let at_limit = change_of_len(&w.bob, limits::MAX_CHANGE_BYTES);
    let over = change_of_len(&w.bob, limits::MAX_CHANGE_BYTES + 1);
    let refused = format!(
        "entry: {:?}",
        EntryError::Decode(agora_crdt::DecodeError::TooLong {
            what: "change",
            len: limits::MAX_CHANGE_BYTES + 1,
            max: limits::MAX_CHANGE_BYTES,
        })
    );
    for create in [true, false] {
        let accepted = entry(at_limit.clone(), create);
        assert!(accepted.len() < limits::MAX_ENTRY_BYTES);
        let valid = validate(&accepted, NOW).unwrap();
        assert_eq!(
            valid.payload().change_bytes().map(<[u8]>::len),
            Some(limits::MAX_CHANGE_BYTES)
        );
        let bytes = entry(over.clone(), create);
        assert!(bytes.len() < limits::MAX_ENTRY_BYTES);
        assert_eq!(offer(&mut w.replica, &bytes), refused, "create: {create}");
    }
}

/// A genesis entry's name may be 100 bytes and its description 4 KiB, counted in bytes, not
/// characters; one byte more of either is refused.
#[test]
fn a_genesis_name_or_description_over_its_limit_is_refused() {
    let mut w = world();
    let genesis = |name: String, description: String| {
        let body = Body {
            subwiki: None,
            author: w.alice.id(),
            timestamp: Timestamp(T0 + 10),
            payload: Payload::Genesis(agora_crdt::Genesis {
                name,
                description,
                policy: agora_crdt::Policy::default(),
            }),
        };
        sign_raw(&w.alice, &body.encode())
    };
    // Two bytes a character.
    let name = "é".repeat(limits::MAX_NAME_BYTES / 2);
    let description = "é".repeat(limits::MAX_DESCRIPTION_BYTES / 2);
    assert_eq!(name.len(), limits::MAX_NAME_BYTES);
    assert_eq!(description.len(), limits::MAX_DESCRIPTION_BYTES);
    let founded = validate(&genesis(name.clone(), description.clone()), NOW).unwrap();
    assert!(matches!(founded.payload(), Payload::Genesis(g) if g.name == name));

    let too_long = |what, max| {
        format!(
            "entry: {:?}",
            EntryError::Decode(agora_crdt::DecodeError::TooLong {
                what,
                len: max + 1,
                max,
            })
        )
    };
    assert_eq!(
        offer(
            &mut w.replica,
            &genesis(format!("{name}x"), description.clone())
        ),
        too_long("name", limits::MAX_NAME_BYTES)
    );
    assert_eq!(
        offer(&mut w.replica, &genesis(name, format!("{description}x"))),
        too_long("description", limits::MAX_DESCRIPTION_BYTES)
    );
}

#[test]
fn an_unknown_version_is_refused() {
    let mut w = world();
    let mut bytes = w.edit.bytes().to_vec();
    bytes[0] = 2;
    assert_eq!(offer(&mut w.replica, &bytes), "entry: UnknownVersion(2)");
}

#[test]
fn truncated_bytes_are_refused() {
    let mut w = world();
    let full = w.edit.bytes().to_vec();
    for len in [0, 1, 10, 64, 65, 100, full.len() / 2, full.len() - 1] {
        let error = offer(&mut w.replica, &full[..len]);
        assert!(
            error.starts_with("entry: TooShort")
                || error.starts_with("entry: Decode")
                || error == "entry: BadSignature"
                || error.starts_with("entry: MalformedChange"),
            "{len}: {error}"
        );
    }
}

#[test]
fn a_compressed_change_is_refused() {
    let mut w = world();
    let Payload::Change(change) = w.edit.payload().clone() else {
        panic!("not a change")
    };
    let mut bytes = change.change.clone();
    bytes[8] = 2;
    let entry = Entry::sign(
        &w.bob,
        Some(w.replica.id()),
        Timestamp(T0 + 8),
        Payload::Change(DocChange {
            doc: change.doc,
            change: bytes,
        }),
    );
    assert_eq!(entry.err(), Some(EntryError::CompressedChange));
    let _ = &mut w.replica;
}

#[test]
fn entries_from_the_future_wait_and_entries_before_genesis_are_refused() {
    let mut w = world();
    let ahead = Timestamp(NOW.0 + limits::MAX_CLOCK_SKEW_MS + 1);
    let vote = Entry::sign(
        &w.alice,
        Some(w.replica.id()),
        ahead,
        Payload::Vote(agora_crdt::Vote {
            target: VoteTarget::Post(w.post),
            value: VoteValue::Keep,
            reason: String::new(),
        }),
    )
    .unwrap();
    let error = validate(vote.bytes(), NOW).unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert!(validate(vote.bytes(), ahead).is_ok());

    let early = Entry::sign(
        &w.alice,
        Some(w.replica.id()),
        Timestamp(T0 - 1),
        Payload::Vote(agora_crdt::Vote {
            target: VoteTarget::Post(w.post),
            value: VoteValue::Keep,
            reason: String::new(),
        }),
    )
    .unwrap();
    assert_eq!(
        offer(&mut w.replica, early.bytes()),
        "ingest: BeforeGenesis"
    );
}

#[test]
fn entries_of_another_subwiki_are_refused() {
    let mut w = world();
    let mut other = Replica::found(&w.bob, Timestamp(T0), "other", "", Default::default())
        .unwrap()
        .0;
    let foreign = other
        .create_post(&w.bob, Timestamp(T0 + 1), support::post("x", "y"))
        .unwrap();
    assert!(offer(&mut w.replica, foreign.bytes()).starts_with("ingest: WrongSubwiki"));
    assert!(
        offer(&mut w.replica, other.genesis_entry().bytes()).starts_with("ingest: WrongSubwiki")
    );
}

#[test]
fn only_the_founder_creates_the_info_page() {
    let w = world();
    let mut bobs = fresh(&w.replica);
    let mut doc = automerge::Automerge::new().with_actor(w.bob.actor());
    let mut tx = doc.transaction();
    automerge::transaction::Transactable::put(&mut tx, automerge::ROOT, "kind", "info").unwrap();
    tx.commit();
    let change = doc.get_last_local_change().unwrap();
    let entry = Entry::sign(
        &w.bob,
        Some(bobs.id()),
        Timestamp(T0 + 9),
        Payload::CreateDocument(agora_crdt::CreateDocument {
            kind: agora_crdt::DocKind::Info,
            parent: None,
            reply_to: None,
            change: change.raw_bytes().to_vec(),
        }),
    )
    .unwrap();
    assert_eq!(offer(&mut bobs, entry.bytes()), "ingest: NotFounder");
}

proptest! {
    #[test]
    fn random_bytes_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(validate(&bytes, NOW).is_err());
    }

    #[test]
    fn mutated_entries_are_refused_without_panic(index in any::<usize>(), byte in any::<u8>()) {
        let w = world();
        let mut bytes = w.edit.bytes().to_vec();
        let i = index % bytes.len();
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        prop_assert!(validate(&bytes, NOW).is_err());
    }

    #[test]
    fn bodies_round_trip_through_the_codec(
        author in any::<[u8; 32]>(),
        subwiki in any::<[u8; 32]>(),
        target in any::<[u8; 32]>(),
        time in any::<u64>(),
        reason in "\\PC{0,40}",
        kind in 0..6u8,
    ) {
        use agora_crdt::*;
        // A name is at most 100 bytes: "n" and at most 24 characters of at most 4 bytes.
        let name = format!("n{}", reason.chars().take(24).collect::<String>());
        let payload = match kind {
            0 => Payload::Genesis(Genesis { name, description: reason.clone(), policy: Policy { edit: EditPolicy::Trusted, vouch_threshold: 3, hide_quorum: 4, mark_quorum: 5 } }),
            1 => Payload::CreateDocument(CreateDocument { kind: DocKind::Comment, parent: Some(DocId::from_bytes(target)), reply_to: Some(DocId::from_bytes(subwiki)), change: reason.as_bytes().to_vec() }),
            2 => Payload::Change(DocChange { doc: DocId::from_bytes(target), change: reason.as_bytes().to_vec() }),
            3 => Payload::Vote(Vote { target: VoteTarget::Post(DocId::from_bytes(target)), value: VoteValue::Misleading, reason: reason.clone() }),
            4 => Payload::Vote(Vote { target: VoteTarget::Author(AuthorId::from_bytes(target)), value: VoteValue::Mute, reason: reason.clone() }),
            _ => Payload::Role(RoleStatement { action: RoleAction::Revoke, subject: AuthorId::from_bytes(target) }),
        };
        let body = Body {
            subwiki: (kind != 0).then_some(SubwikiId::from_bytes(subwiki)),
            author: AuthorId::from_bytes(author),
            timestamp: Timestamp(time),
            payload,
        };
        let bytes = body.encode();
        prop_assert_eq!(Body::decode(&bytes), Ok(body));
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Body::decode(&longer).is_err());
        prop_assert!(Body::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}

/// Automerge's own "author" field is unsigned: a change that sets it is refused, whoever signs
/// the entry (identity comes from the signature alone).
#[test]
fn a_change_carrying_automerges_author_field_is_refused() {
    let mut w = world();
    let Payload::Change(edit) = w.edit.payload().clone() else {
        panic!("not a change")
    };
    let mut expanded = automerge::Change::from_bytes(edit.change).unwrap().decode();
    // The author footer: its tag (1), the length, the bytes.
    expanded.extra_bytes = [&[1u8, 5][..], b"alice"].concat();
    let with_author = automerge::Change::from(expanded);
    assert!(with_author.author().is_some());
    let payload = Payload::Change(agora_crdt::DocChange {
        doc: w.post,
        change: with_author.raw_bytes().to_vec(),
    });
    let signed = Entry::sign(
        &w.bob,
        Some(w.replica.id()),
        Timestamp(T0 + 5),
        payload.clone(),
    );
    assert_eq!(signed.err(), Some(EntryError::ChangeAuthorField));
    let body = Body {
        subwiki: Some(w.replica.id()),
        author: w.bob.id(),
        timestamp: Timestamp(T0 + 5),
        payload,
    };
    let forged = sign_raw(&w.bob, &body.encode());
    assert_eq!(offer(&mut w.replica, &forged), "entry: ChangeAuthorField");
}

/// A create-document entry must carry a first change (sequence number 1, no dependencies):
/// an edit presented as a new document is refused.
#[test]
fn a_document_whose_first_change_is_not_a_first_change_is_refused() {
    let mut w = world();
    let Payload::Change(edit) = w.edit.payload().clone() else {
        panic!("not a change")
    };
    let payload = Payload::CreateDocument(agora_crdt::CreateDocument {
        kind: agora_crdt::DocKind::Post,
        parent: None,
        reply_to: None,
        change: edit.change,
    });
    let signed = Entry::sign(
        &w.bob,
        Some(w.replica.id()),
        Timestamp(T0 + 5),
        payload.clone(),
    );
    assert_eq!(signed.err(), Some(EntryError::NotFirstChange));
    let body = Body {
        subwiki: Some(w.replica.id()),
        author: w.bob.id(),
        timestamp: Timestamp(T0 + 5),
        payload,
    };
    let forged = sign_raw(&w.bob, &body.encode());
    assert_eq!(offer(&mut w.replica, &forged), "entry: NotFirstChange");
}

/// A change holding an Automerge mark operation is refused, decided from the change alone:
/// one mark end in the root map, outside any text (found by fuzzing; once applied, it made
/// every later edit of the post fail), and an ordinary mark on the body text made through
/// Automerge's own API. Agora writes no marks.
#[test]
fn a_change_with_a_mark_operation_is_refused() {
    use automerge::legacy::{Key, ObjectId, Op, OpType};
    use automerge::marks::{ExpandMark, Mark};
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};
    let mut w = world();
    let Payload::Change(edit) = w.edit.payload().clone() else {
        panic!("not a change")
    };
    // Bob's honest edit with one more operation: a mark end outside any text.
    let mut expanded = automerge::Change::from_bytes(edit.change).unwrap().decode();
    expanded.operations.push(Op {
        action: OpType::MarkEnd(false),
        obj: ObjectId::Root,
        key: Key::Map("x".into()),
        pred: Vec::new().into(),
        insert: false,
    });
    expanded.hash = None;
    let outside_text = automerge::Change::from(expanded).raw_bytes().to_vec();

    // A bold mark on the first two characters of the body, as Automerge writes it.
    let saved = w.replica.save_document(&w.post).unwrap();
    let mut doc = automerge::Automerge::load(&saved)
        .unwrap()
        .with_actor(w.bob.actor());
    let mut tx = doc.transaction();
    let (_, body) = tx.get(ROOT, "body").unwrap().unwrap();
    tx.mark(
        &body,
        Mark::new("bold".into(), true, 0, 2),
        ExpandMark::None,
    )
    .unwrap();
    tx.commit();
    let on_text = doc.get_last_local_change().unwrap().raw_bytes().to_vec();

    for (case, change) in [("outside text", outside_text), ("on text", on_text)] {
        let payload = Payload::Change(DocChange {
            doc: w.post,
            change,
        });
        let signed = Entry::sign(
            &w.bob,
            Some(w.replica.id()),
            Timestamp(T0 + 5),
            payload.clone(),
        );
        assert_eq!(signed.err(), Some(EntryError::MarkOperation), "{case}");
        let body = Body {
            subwiki: Some(w.replica.id()),
            author: w.bob.id(),
            timestamp: Timestamp(T0 + 5),
            payload,
        };
        let forged = sign_raw(&w.bob, &body.encode());
        assert_eq!(
            offer(&mut w.replica, &forged),
            "entry: MarkOperation",
            "{case}"
        );
        let id = EntryId::from_bytes(*blake3::hash(&forged[..forged.len() - 64]).as_bytes());
        assert!(
            matches!(
                reopen(&[(id, &forged)]).pop(),
                Some(Err(EntryError::MarkOperation))
            ),
            "{case}: refused when read back from storage too"
        );
    }
}

/// The payload of a change by Bob to the post holding only `op`, on top of the post's current
/// heads (not signed, so not validated).
fn one_op_change(w: &World, op: automerge::legacy::Op) -> Payload {
    let saved = w.replica.save_document(&w.post).unwrap();
    let max_op = automerge::Automerge::load(&saved)
        .unwrap()
        .get_changes(&[])
        .iter()
        .map(automerge::Change::max_op)
        .max()
        .unwrap();
    let change = automerge::ExpandedChange {
        operations: vec![op],
        actor_id: w.bob.actor(),
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::new(max_op + 1).unwrap(),
        time: Timestamp(T0 + 5).as_secs(),
        message: None,
        deps: w.replica.heads(&w.post).unwrap(),
        extra_bytes: Vec::new(),
        author: None,
    };
    Payload::Change(DocChange {
        doc: w.post,
        change: automerge::Change::from(change).raw_bytes().to_vec(),
    })
}

/// A change holding an operation that Agora never writes is refused, decided from the change
/// alone, whether signed here, forged, or read back from storage: an increment inserted into
/// the title text (once applied, edits replacing the title's first characters panicked inside
/// Automerge), a counter, a string put over the title's text object (some title edits then
/// failed with `InvalidIndex`), a string put over a character of the title, and a list made
/// where the schema has text. Strings put under a key the schema does not have, or inserted
/// into the title, are what Agora writes and pass.
#[test]
fn a_change_with_an_operation_agora_does_not_write_is_refused() {
    use automerge::ScalarValue;
    use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType};
    let mut w = world();
    // The title's text object and its first character, from the post's first change.
    let created = w.replica.entry(&w.post.into()).unwrap().clone();
    let first = created.change().unwrap().decode();
    let op_id = |i: usize| OpId(u64::from(first.start_op) + i as u64, first.actor_id.clone());
    let made = first
        .operations
        .iter()
        .position(|op| matches!(op.action, OpType::Make(_)) && op.key == Key::Map("title".into()))
        .unwrap();
    let title = op_id(made);
    let first_char = first
        .operations
        .iter()
        .position(|op| op.insert && op.obj == ObjectId::Id(title.clone()))
        .map(op_id)
        .unwrap();
    let op = |action, obj, key, pred: Vec<OpId>, insert| Op {
        action,
        obj,
        key,
        pred: pred.into(),
        insert,
    };
    let refused = [
        (
            op(
                OpType::Increment(1),
                ObjectId::Id(title.clone()),
                Key::Seq(ElementId::Head),
                vec![],
                true,
            ),
            "an increment",
        ),
        (
            op(
                OpType::Put(ScalarValue::counter(0)),
                ObjectId::Root,
                Key::Map("votes".into()),
                vec![],
                false,
            ),
            "a put of a counter",
        ),
        (
            op(
                OpType::Put(ScalarValue::Str("🙂".into())),
                ObjectId::Root,
                Key::Map("title".into()),
                vec![title.clone()],
                false,
            ),
            "a string put under the root key `title`, which holds a text object",
        ),
        (
            op(
                OpType::Put(ScalarValue::Str("🙂".into())),
                ObjectId::Id(title.clone()),
                Key::Seq(ElementId::Id(first_char.clone())),
                vec![first_char],
                false,
            ),
            "a put over an element of a list or text",
        ),
        (
            op(
                OpType::Make(automerge::ObjType::List),
                ObjectId::Root,
                Key::Map("body".into()),
                vec![],
                false,
            ),
            "a list made under the root key `body`, which holds a text object",
        ),
    ];
    for (op, what) in refused {
        let error = EntryError::UnexpectedOperation { what: what.into() };
        let payload = one_op_change(&w, op);
        let signed = Entry::sign(
            &w.bob,
            Some(w.replica.id()),
            Timestamp(T0 + 5),
            payload.clone(),
        );
        assert_eq!(signed.err(), Some(error.clone()), "{what}");
        let body = Body {
            subwiki: Some(w.replica.id()),
            author: w.bob.id(),
            timestamp: Timestamp(T0 + 5),
            payload,
        };
        let forged = sign_raw(&w.bob, &body.encode());
        assert_eq!(offer(&mut w.replica, &forged), format!("entry: {error:?}"));
        let id = EntryId::from_bytes(*blake3::hash(&forged[..forged.len() - 64]).as_bytes());
        assert_eq!(
            reopen(&[(id, &forged)]).pop(),
            Some(Err(error)),
            "{what}: refused when read back from storage too"
        );
    }

    let accepted = [
        op(
            OpType::Put(ScalarValue::Str("🙂".into())),
            ObjectId::Root,
            Key::Map("a-field-agora-may-add".into()),
            vec![],
            false,
        ),
        op(
            OpType::Put(ScalarValue::Str("🙂".into())),
            ObjectId::Id(title),
            Key::Seq(ElementId::Head),
            vec![],
            true,
        ),
    ];
    for op in accepted {
        let signed = Entry::sign(
            &w.bob,
            Some(w.replica.id()),
            Timestamp(T0 + 5),
            one_op_change(&w, op),
        );
        assert!(signed.is_ok(), "{signed:?}");
    }
}
