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

/// Damages alice's store in `how` while her node is stopped.
fn damage(home: &std::path::Path, how: &str) {
    let store = home.join("store");
    match how {
        "deleted" => std::fs::remove_dir_all(&store).unwrap(),
        // Without its page-table snapshots sled reads its log up to the damage and silently
        // drops the rest.
        "truncated" => {
            for item in std::fs::read_dir(&store).unwrap() {
                let path = item.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("snap.")
                {
                    std::fs::remove_file(path).unwrap();
                }
            }
            let db = std::fs::OpenOptions::new()
                .write(true)
                .open(store.join("db"))
                .unwrap();
            db.set_len(40_000).unwrap();
        }
        // 100 bytes flipped over what the data file holds (not its unused, zeroed room).
        "flipped" => {
            let path = store.join("db");
            let mut bytes = std::fs::read(&path).unwrap();
            let written: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
            let step = written.len() / 100;
            for i in 0..100 {
                bytes[written[i * step + step / 2]] ^= 0xff;
            }
            std::fs::write(&path, bytes).unwrap();
        }
        _ => unreachable!(),
    }
}

/// A damaged store is never silently lost: deleted, truncated or with flipped bytes, the node
/// says what is missing (or, when the database cannot be opened, says to run `agora repair`,
/// which keeps what can still be read), keeps the subwiki, and fetches the rest from a peer.
#[test]
fn a_damaged_store_is_said_repaired_and_refetched_from_a_peer() {
    let alice = tempfile::tempdir().unwrap();
    let bob = tempfile::tempdir().unwrap();
    let (a, b) = (alice.path(), bob.path());
    ok(a, &["init", "--name", "alice"]);
    let a_up = Up::start(a, &[]);
    let subwiki = ok(a, &["subwiki", "create", "Kept"]).trim().to_owned();
    const POSTS: usize = 30;
    for i in 0..POSTS {
        let title = format!("post {i}");
        ok(a, &["post", "new", &subwiki, "--title", &title]);
    }
    let invite = ok(a, &["subwiki", "invite", &subwiki]);
    ok(b, &["init", "--name", "bob"]);
    let b_up = Up::start(b, &[]);
    ok(b, &["subwiki", "join", invite.trim()]);
    until(b, &["feed", "--limit", "100"], "bob has every post", |f| {
        titles(f).len() == POSTS
    });
    assert_eq!(a_up.stop(), Some(0));

    for how in ["truncated", "flipped", "deleted"] {
        damage(a, how);
        let status = run(a, &["--json", "status"]);
        if !status.status.success() {
            // The database cannot be opened: said, with what to do.
            let said = String::from_utf8_lossy(&status.stderr);
            assert!(
                said.contains("damaged") && said.contains("agora repair"),
                "{how}: {said}"
            );
            let repaired = json(a, &["repair"]);
            assert!(repaired["moved_aside"].is_string(), "{how}: {repaired}");
        }
        let status = json(a, &["status"]);
        let damaged = status["damaged"].as_array().unwrap();
        assert_eq!(damaged.len(), 1, "{how}: the loss is said: {status}");
        assert_eq!(damaged[0]["subwiki"], subwiki.as_str());
        assert!(damaged[0]["held"].as_u64().unwrap() < damaged[0]["expected"].as_u64().unwrap());
        // The subwiki is still joined, whatever the database forgot.
        let listed = json(a, &["subwiki", "list"]);
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == subwiki.as_str()),
            "{how}: {listed}"
        );
        let human = ok(a, &["status"]);
        assert!(human.contains("STORE DAMAGED"), "{how}: {human}");

        // Back online, what was lost comes back from bob and the damage is gone.
        let a_up = Up::start(a, &["--bootstrap", &b_up.addrs[0]]);
        until(a, &["status"], "the store refilled from bob", |s| {
            s["damaged"].as_array().is_some_and(Vec::is_empty)
        });
        let feed = json(a, &["feed", "--limit", "100"]);
        assert_eq!(titles(&feed).len(), POSTS, "{how}");
        let refused = fails(a, &["repair"], 4);
        assert!(refused.contains("stop `agora up` first"), "{refused}");
        assert_eq!(a_up.stop(), Some(0));
        let repaired = json(a, &["repair"]);
        assert_eq!(
            repaired["missing"],
            serde_json::json!([]),
            "{how}: {repaired}"
        );
    }
}
/// Issue 16 with the real binaries: bob comments on alice's post and mentions her by her
/// author id; both are in `agora inbox` at alice's (with a running node and without), `agora
/// inbox read` marks them read. Alice follows bob: `agora feed --following` shows his posts
/// only, and none once she unfollows.
#[test]
fn the_inbox_and_follows_from_the_command_line() {
    let alice = tempfile::tempdir().unwrap();
    let bob = tempfile::tempdir().unwrap();
    let (a, b) = (alice.path(), bob.path());
    ok(a, &["init", "--name", "alice"]);
    ok(b, &["init", "--name", "bob"]);
    let alice_id = json(a, &["whoami"])["author"].as_str().unwrap().to_owned();
    let bob_id = json(b, &["whoami"])["author"].as_str().unwrap().to_owned();
    let a_up = Up::start(a, &[]);
    let subwiki = ok(a, &["subwiki", "create", "Town"]).trim().to_owned();
    let post = ok(
        a,
        &[
            "post",
            "new",
            &subwiki,
            "--title",
            "Market day",
            "--body",
            "Sat.",
        ],
    );
    let post = post.trim().to_owned();
    let invite = ok(a, &["subwiki", "invite", &subwiki]);
    let b_up = Up::start(b, &[]);
    json(b, &["subwiki", "join", invite.trim()]);

    ok(b, &["comment", &post, "I will bring apples"]);
    let mention = format!("@{alice_id} has the stall plan");
    let bobs = ok(
        b,
        &[
            "post", "new", &subwiki, "--title", "Stalls", "--body", &mention,
        ],
    );
    let bobs = bobs.trim().to_owned();
    let inbox = until(a, &["inbox"], "bob's comment and mention", |v| {
        let kinds: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["kind"].as_str())
            .collect();
        kinds.contains(&"comment") && kinds.contains(&"mention")
    });
    assert_eq!(inbox["unread"], 2, "{inbox}");
    assert_eq!(inbox["items"][0]["actor"]["id"], bob_id.as_str());
    let shown = ok(a, &["inbox"]);
    assert!(shown.starts_with("2 unread of 2\n"), "{shown}");
    assert!(shown.contains("bob ("), "{shown}");
    assert!(
        shown.contains("commented on your post \"Market day\""),
        "{shown}"
    );
    assert!(shown.contains("mentioned you \"Stalls\""), "{shown}");
    assert!(shown.contains("I will bring apples"), "{shown}");
    let first = inbox["items"][0]["id"].as_str().unwrap().to_owned();
    let marked = json(a, &["inbox", "read", &first]);
    assert_eq!(
        (marked["marked"].clone(), marked["unread"].clone()),
        (1.into(), 1.into())
    );
    fails(a, &["inbox", "read", "en_nothing"], 3);

    // Follows: local, by id.
    ok(a, &["follow", &bob_id]);
    assert!(ok(a, &["following"]).contains(&bob_id));
    let following = json(a, &["feed", "--following"]);
    assert_eq!(titles(&following), vec!["Stalls"]);
    assert_eq!(following[0]["id"], bobs.as_str());
    ok(a, &["unfollow", &bob_id]);
    assert_eq!(
        titles(&json(a, &["feed", "--following"])),
        Vec::<String>::new()
    );
    assert!(
        ok(b, &["following"]).contains("no one"),
        "nothing reached bob"
    );

    // Without a running node the inbox is the same, and all of it is marked read at once.
    assert_eq!(b_up.stop(), Some(0));
    assert_eq!(a_up.stop(), Some(0));
    let offline = json(a, &["inbox"]);
    assert_eq!(offline["total"], 2, "{offline}");
    assert_eq!(offline["unread"], 1);
    ok(a, &["inbox", "read", "--all"]);
    assert!(ok(a, &["inbox", "--unread"]).starts_with("0 unread of 2\n"));
}
