//! Moderation over real nodes: three members of a subwiki with a quorum of 2, each running
//! `agora up`. Two trusted members hide a post and it disappears from the third member's
//! feed; a keep majority brings it back; the third member's moderation log explains both.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::Value;
use support::*;

fn author(home: &std::path::Path) -> String {
    json(home, &["whoami"])["author"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The log items of a `--json modlog` that are votes by `signer` with `what`.
fn votes<'a>(log: &'a Value, signer: &str, what: &str) -> Vec<&'a Value> {
    log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["signer"] == signer && i["what"] == what)
        .collect()
}

#[test]
fn two_trusted_hides_hide_a_post_everywhere_and_a_keep_majority_brings_it_back() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, c) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    for (home, name) in [(a, "ana"), (b, "ben"), (c, "cy")] {
        ok(home, &["init", "--name", name]);
    }
    let _a_up = Up::start(a, &[]);
    let subwiki = ok(a, &["subwiki", "create", "Town", "--quorum", "2"]);
    let subwiki = subwiki.trim();
    let invite = ok(a, &["subwiki", "invite", subwiki]);
    let _b_up = Up::start(b, &[]);
    let _c_up = Up::start(c, &[]);
    json(b, &["subwiki", "join", invite.trim()]);
    json(c, &["subwiki", "join", invite.trim()]);
    let (ana, ben, cy) = (author(a), author(b), author(c));

    // The founder vouches for ben and cy: both trusted.
    ok(a, &["vouch", &ben, "--subwiki", subwiki]);
    ok(a, &["vouch", &cy, "--subwiki", subwiki]);
    let post = ok(
        c,
        &[
            "post",
            "new",
            subwiki,
            "--title",
            "Buy pills",
            "--body",
            "cheap",
        ],
    );
    let post = post.trim();
    for home in [a, b, c] {
        until(home, &["modlog", subwiki], "both vouches counted", |m| {
            m["trusted"].as_array().is_some_and(|t| t.len() == 2)
        });
        until(home, &["feed"], "the post everywhere", |f| {
            titles(f) == vec!["Buy pills"]
        });
    }

    // Two trusted members vote hide: the third member's node hides it from the feed.
    ok(a, &["vote", post, "hide", "--reason", "spam"]);
    ok(b, &["vote", post, "hide"]);
    until(c, &["feed"], "the post hidden at cy's node", |f| {
        titles(f).is_empty()
    });
    let all = json(c, &["feed", "--show-hidden"]);
    assert_eq!(titles(&all), vec!["Buy pills"]);
    assert_eq!(all[0]["status"]["hidden"], "votes");
    let shown = json(c, &["post", "show", post]);
    assert_eq!(shown["status"]["hidden"], "votes");
    assert_eq!(shown["votes"]["counted"]["hide"], 2);
    let log = json(c, &["modlog", subwiki]);
    assert_eq!(log["hidden"], serde_json::json!([post]));
    for voter in [&ana, &ben] {
        let hides = votes(&log, voter, "hide");
        assert_eq!(hides.len(), 1);
        assert_eq!(hides[0]["counted"], true);
        assert_eq!(hides[0]["contributed"], format!("hid {post}"));
    }
    assert_eq!(votes(&log, &ana, "hide")[0]["reason"], "spam");

    // Ben changes his mind and cy votes keep: keep outnumbers hide, the post is back.
    ok(b, &["vote", post, "keep"]);
    ok(c, &["vote", post, "keep"]);
    until(c, &["feed"], "the post back at cy's node", |f| {
        titles(f) == vec!["Buy pills"]
    });
    until(a, &["feed"], "the post back at ana's node", |f| {
        titles(f) == vec!["Buy pills"]
    });
    let log = json(c, &["modlog", subwiki]);
    assert_eq!(log["hidden"], serde_json::json!([]));
    let ben_hide = votes(&log, &ben, "hide");
    assert_eq!(ben_hide[0]["counted"], false);
    assert!(
        ben_hide[0]["not_counted_because"]
            .as_str()
            .unwrap()
            .contains("replaced"),
        "{ben_hide:?}"
    );
    for voter in [&ben, &cy] {
        let keeps = votes(&log, voter, "keep");
        assert_eq!(keeps[0]["counted"], true);
        assert_eq!(keeps[0]["contributed"], format!("kept {post} visible"));
    }

    // Cy stops counting ben's votes, in cy's view only: hide 1, keep 1, still visible (a tie
    // hides nothing), and ana's view is unchanged.
    ok(c, &["override", "ignore", &ben]);
    let shown = json(c, &["post", "show", post]);
    assert_eq!(shown["votes"]["counted"]["keep"], 1);
    assert_eq!(
        json(a, &["post", "show", post])["votes"]["counted"]["keep"],
        2
    );
    ok(c, &["override", "restore", &ben]);
    assert_eq!(
        json(c, &["override", "list"])["ignored"],
        serde_json::json!([])
    );
}
