//! Two people, two homes, two `agora up` on loopback: the README's quick start step by step,
//! then an edit made while one node is stopped, merged when it comes back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::*;

#[test]
fn the_quick_start_then_offline_edits_merge() {
    let alice = tempfile::tempdir().unwrap();
    let bob = tempfile::tempdir().unwrap();
    let a = alice.path();
    let b = bob.path();

    // Quick start, part 1: an identity, a running node, a subwiki, a post, the feed.
    ok(a, &["init", "--name", "alice"]);
    let a_up = Up::start(a, &[]);
    let subwiki = ok(
        a,
        &[
            "subwiki",
            "create",
            "Gardening",
            "--description",
            "Growing things",
        ],
    );
    let subwiki = subwiki.trim();
    assert!(subwiki.starts_with("sw_"), "{subwiki}");
    let post = ok(
        a,
        &[
            "post",
            "new",
            subwiki,
            "--title",
            "Tomatoes in pots",
            "--body",
            "They need sun.\n\nWater them every day.",
        ],
    );
    let post = post.trim().to_owned();
    assert!(post.starts_with("doc_"), "{post}");
    let feed = ok(a, &["feed"]);
    assert!(feed.contains("Tomatoes in pots"), "{feed}");
    assert!(feed.contains("alice"), "{feed}");

    // Part 2: an invite, a friend who joins with it and sees the post.
    let invite = ok(a, &["subwiki", "invite", subwiki]);
    let invite = invite.trim();
    assert!(
        invite.starts_with(&format!("agora:{subwiki}?peer=")),
        "{invite}"
    );
    ok(b, &["init", "--name", "bob"]);
    let b_up = Up::start(b, &[]);
    let joined = json(b, &["subwiki", "join", invite]);
    assert_eq!(joined["id"], subwiki);
    assert_eq!(joined["name"], "Gardening");
    assert_eq!(joined["caught_up"], true);
    let feed = json(b, &["feed"]);
    assert_eq!(titles(&feed), vec!["Tomatoes in pots"]);
    assert_eq!(feed[0]["author_name"], "alice");
    assert_eq!(feed[0]["subwiki"], subwiki);

    // A post of bob's reaches alice by gossip while both run.
    let from_bob = ok(
        b,
        &[
            "post",
            "new",
            subwiki,
            "--title",
            "Slugs",
            "--body",
            "Beer traps work.",
        ],
    );
    until(a, &["feed"], "bob's post at alice", |f| {
        titles(f).contains(&"Slugs".to_owned())
    });
    assert!(from_bob.trim().starts_with("doc_"));

    // Bob stops; while stopped he edits the first paragraph, alice the second.
    assert_eq!(b_up.stop(), Some(0));
    ok(
        b,
        &[
            "post",
            "edit",
            &post,
            "--body",
            "They need sun, six hours a day.\n\nWater them every day.",
        ],
    );
    ok(
        a,
        &[
            "post",
            "edit",
            &post,
            "--body",
            "They need sun.\n\nWater them every day, at the roots.",
        ],
    );
    let merged = "They need sun, six hours a day.\n\nWater them every day, at the roots.";

    // Bob comes back (his node knows alice's address only through the bootstrap option); both
    // end with both edits.
    let _b_up = Up::start(b, &["--bootstrap", &a_up.addrs[0]]);
    for home in [a, b] {
        let shown = until(home, &["post", "show", &post], "the merged text", |p| {
            p["body"] == merged
        });
        assert_eq!(shown["title"], "Tomatoes in pots");
        assert_eq!(shown["edits"], 2);
    }
    let history = json(b, &["post", "history", &post]);
    assert_eq!(history.as_array().unwrap().len(), 3);
}

/// The lost update, through the real binaries: alice opens a post (its version v1), bob's edit
/// of paragraph 2 reaches her node, then she saves her edit of paragraph 1 based on v1. Both
/// edits stay, on both nodes; a save based on the latest text would have undone bob's.
#[test]
fn a_save_based_on_what_the_editor_showed_keeps_what_came_since() {
    let alice = tempfile::tempdir().unwrap();
    let bob = tempfile::tempdir().unwrap();
    let (a, b) = (alice.path(), bob.path());
    ok(a, &["init", "--name", "alice"]);
    ok(b, &["init", "--name", "bob"]);
    let a_up = Up::start(a, &[]);
    let subwiki = ok(a, &["subwiki", "create", "Orchard"]).trim().to_owned();
    let post = ok(
        a,
        &[
            "post",
            "new",
            &subwiki,
            "--title",
            "Pruning",
            "--body",
            "Cut in winter.\n\nNot too much.",
        ],
    )
    .trim()
    .to_owned();
    let _b_up = Up::start(b, &[]);
    let invite = ok(a, &["subwiki", "invite", &subwiki]);
    assert_eq!(
        json(b, &["subwiki", "join", invite.trim()])["caught_up"],
        true
    );

    // Alice's editor opens on v1.
    let v1 = json(a, &["post", "show", &post])["version"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob changes paragraph 2; it reaches alice.
    ok(
        b,
        &[
            "post",
            "edit",
            &post,
            "--body",
            "Cut in winter.\n\nNot too much: a third at most.",
        ],
    );
    until(a, &["post", "show", &post], "bob's edit at alice", |p| {
        p["body"].as_str().unwrap().contains("a third")
    });
    // Alice saves paragraph 1, written from v1.
    let saved = json(
        a,
        &[
            "post",
            "edit",
            &post,
            "--base",
            &v1,
            "--body",
            "Cut in late winter.\n\nNot too much.",
        ],
    );
    assert_eq!(
        saved["merged"], true,
        "her save says others changed the post"
    );
    let both = "Cut in late winter.\n\nNot too much: a third at most.";
    assert_eq!(saved["body"], both);
    for home in [a, b] {
        until(home, &["post", "show", &post], "both edits", |p| {
            p["body"] == both
        });
    }
    drop(a_up);
}
