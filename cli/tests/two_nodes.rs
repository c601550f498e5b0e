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

/// Issue 17 with the real binaries: alice retracts her post through her running node and bob's
/// node shows the placeholder too, with bob's comment on it kept; bob, a plain member, cannot
/// retract or redact alice's post (exit 7) and nothing changes; alice, the founder, redacts bob's
/// post with a reason, which both moderation logs show; offline, a post is retracted as well,
/// and a second retraction or an edit of it is refused (exit 8); bob retracts everything he
/// wrote, then leaves with --purge: the subwiki and its posts are gone from his home.
#[test]
fn taking_things_back_from_the_command_line() {
    let alice = tempfile::tempdir().unwrap();
    let bob = tempfile::tempdir().unwrap();
    let (a, b) = (alice.path(), bob.path());
    ok(a, &["init", "--name", "alice"]);
    ok(b, &["init", "--name", "bob"]);
    let alice_fp = json(a, &["whoami"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_up = Up::start(a, &[]);
    let subwiki = ok(a, &["subwiki", "create", "Ferns"]).trim().to_owned();
    let new_post = |home, title: &str, body: &str| {
        ok(
            home,
            &["post", "new", &subwiki, "--title", title, "--body", body],
        )
        .trim()
        .to_owned()
    };
    let spores = new_post(a, "Spores", "A tiny secret about spores.");
    let fronds = new_post(a, "Fronds", "Fronds unfold slowly.");
    let invite = ok(a, &["subwiki", "invite", &subwiki]);
    let b_up = Up::start(b, &[]);
    json(b, &["subwiki", "join", invite.trim()]);
    let moss = new_post(b, "Moss", "Buy my moss pills.");
    let comment = ok(b, &["comment", &spores, "Bob says spores are neat."])
        .trim()
        .to_owned();
    until(
        a,
        &["post", "show", &spores],
        "bob's post and comment at A",
        |p| p["comments"] == 1,
    );
    until(a, &["feed"], "bob's post at A", |f| {
        titles(f).contains(&"Moss".to_owned())
    });

    // Alice retracts her post through her running node, with a reason.
    let done = json(a, &["post", "retract", &spores, "--reason", "wrong thread"]);
    assert_eq!(done["doc"], spores.as_str());
    assert_eq!(done["subwiki"], subwiki.as_str());
    assert_eq!(done["redaction"], false);
    assert!(done["entry"].as_str().unwrap().starts_with("en_"), "{done}");
    let feed = ok(a, &["feed"]);
    assert!(
        feed.contains(&format!(
            "{spores}  [retracted by alice ({alice_fp}) just now: wrong thread]"
        )),
        "{feed}"
    );
    assert!(!feed.contains("Spores"), "{feed}");
    let shown = ok(a, &["post", "show", &spores]);
    assert!(shown.starts_with("[retracted by alice ("), "{shown}");
    assert!(!shown.contains("tiny secret"), "{shown}");
    assert!(!shown.contains("Spores"), "{shown}");
    assert!(shown.contains("Bob says spores are neat."), "{shown}");
    // Bob's node receives the retraction: the same placeholder, no content, his comment kept.
    let at_b = until(b, &["post", "show", &spores], "the retraction at B", |p| {
        !p["retracted"].is_null()
    });
    assert_eq!(at_b["title"], "");
    assert_eq!(at_b["body"], "");
    assert_eq!(at_b["retracted"]["by"]["name"], "alice");
    assert_eq!(at_b["retracted"]["by"]["fingerprint"], alice_fp.as_str());
    assert_eq!(at_b["retracted"]["reason"], "wrong thread");
    assert_eq!(at_b["retracted"]["redaction"], false);
    assert_eq!(at_b["comment_list"][0]["id"], comment.as_str());
    assert_eq!(at_b["comment_list"][0]["text"], "Bob says spores are neat.");
    assert!(!ok(b, &["feed"]).contains("Spores"));

    // Bob, a plain member, may neither retract nor redact alice's post: exit 7, no change.
    until(b, &["feed"], "Fronds at B", |f| {
        titles(f).contains(&"Fronds".to_owned())
    });
    let before = (
        json(b, &["post", "show", &fronds]),
        json(b, &["modlog", &subwiki]),
    );
    let refused = fails(b, &["post", "retract", &fronds], 7);
    assert!(
        refused.contains("only its creator may retract"),
        "{refused}"
    );
    fails(b, &["redact", &fronds, "--reason", "I do not like it"], 7);
    fails(b, &["redact", &fronds, "--reason", "  "], 2);
    assert_eq!(run(b, &["redact", &fronds]).status.code(), Some(2));
    let after = (
        json(b, &["post", "show", &fronds]),
        json(b, &["modlog", &subwiki]),
    );
    assert_eq!(before, after, "a refused retraction changes nothing");
    assert_eq!(after.0["body"], "Fronds unfold slowly.");

    // Alice, the founder, redacts bob's post with a reason: both nodes show who, when and why,
    // and the moderation logs say so.
    let redacted = ok(a, &["redact", &moss, "--reason", "spam"]);
    assert!(
        redacted.starts_with(&format!("Redacted {moss}")),
        "{redacted}"
    );
    let feed = until(b, &["feed"], "the redaction at B", |f| {
        f.as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == moss.as_str() && !p["retracted"].is_null())
    });
    assert!(!titles(&feed).contains(&"Moss".to_owned()));
    let feed = ok(b, &["feed"]);
    assert!(
        feed.contains(&format!("{moss}  [redacted by alice ({alice_fp}) ")),
        "{feed}"
    );
    assert!(feed.contains(": spam]"), "{feed}");
    assert!(!feed.contains("moss pills"), "{feed}");
    for home in [a, b] {
        let log = json(home, &["modlog", &subwiki]);
        let lines: Vec<(String, String, String, bool)> = log["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "retraction")
            .map(|l| {
                (
                    l["what"].as_str().unwrap().to_owned(),
                    l["about"].as_str().unwrap().to_owned(),
                    l["reason"].as_str().unwrap().to_owned(),
                    l["counted"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                (
                    "retract".into(),
                    spores.clone(),
                    "wrong thread".into(),
                    true
                ),
                ("redact".into(), moss.clone(), "spam".into(), true),
            ]
        );
        let text = ok(home, &["modlog", &subwiki]);
        assert!(
            text.contains(&format!(
                "{alice_fp}  redact {moss} \"spam\"  (counted; redacted {moss})"
            )),
            "{text}"
        );
    }

    // Offline (alice's node stopped): a post written and retracted; a second retraction and an
    // edit of it are refused as gone (exit 8).
    assert_eq!(a_up.stop(), Some(0));
    let draft = new_post(a, "Draft", "Words I regret.");
    let done = ok(a, &["post", "retract", &draft]);
    assert!(
        done.starts_with(&format!("Retracted {draft} (statement en_")),
        "{done}"
    );
    let feed = ok(a, &["feed"]);
    assert!(
        feed.contains(&format!(
            "{draft}  [retracted by alice ({alice_fp}) just now]"
        )),
        "{feed}"
    );
    assert!(!feed.contains("Draft"), "{feed}");
    assert!(!ok(a, &["post", "show", &draft]).contains("regret"));
    fails(a, &["post", "retract", &draft], 8);
    fails(a, &["post", "edit", &draft, "--body", "again"], 8);
    fails(a, &["comment", &draft, "hello?"], 8);
    let _a_up = Up::start(a, &["--bootstrap", &b_up.addrs[0]]);

    // Bob takes back everything he wrote there (his comment on alice's post: his post is
    // redacted already; his profile), then leaves for good.
    let second = ok(b, &["comment", &fronds, "Bob was here."])
        .trim()
        .to_owned();
    assert_eq!(run(b, &["account", "retract"]).status.code(), Some(2));
    let all = json(b, &["account", "retract", "--subwiki", &subwiki]);
    let docs: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["doc"].as_str().unwrap())
        .collect();
    assert!(docs.contains(&comment.as_str()), "{all}");
    assert!(docs.contains(&second.as_str()), "{all}");
    assert!(!docs.contains(&moss.as_str()), "redacted already: {all}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|r| r["redaction"] == false)
    );
    until(
        a,
        &["post", "show", &fronds],
        "bob's retraction at A",
        |p| {
            p["comment_list"][0]["retracted"]["by"]["fingerprint"].is_string()
                && p["comment_list"][0]["text"] == ""
        },
    );
    let left = json(b, &["subwiki", "leave", &subwiki, "--purge"]);
    assert_eq!(left["purged"], true);
    assert_eq!(left["joined"], false);
    assert!(
        json(b, &["subwiki", "list"]).as_array().unwrap().is_empty(),
        "the subwiki is gone from bob's home"
    );
    assert_eq!(json(b, &["feed"]), serde_json::json!([]));
    fails(b, &["post", "show", &fronds], 3);
    // Alice's node keeps its copy of the subwiki.
    assert!(titles(&json(a, &["feed"])).contains(&"Fronds".to_owned()));
}
