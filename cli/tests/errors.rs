//! Every error a user can run into: one clear line on stderr, its own exit code, and nothing
//! changed. Exit codes: 1 failed, 2 usage or malformed input, 3 unknown id, 4 store locked,
//! 5 unreachable peer, 6 no identity (`docs/user-guide.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;
use support::*;

/// Everything a user can see of a home, to compare before and after a failed command.
fn state(home: &Path) -> (Value, Value) {
    (
        json(home, &["subwiki", "list"]),
        json(home, &["feed", "--limit", "100"]),
    )
}

/// A home with one subwiki and one post; returns their ids.
fn seeded(home: &Path) -> (String, String) {
    ok(home, &["init", "--name", "carol"]);
    let subwiki = ok(home, &["subwiki", "create", "Birds"]).trim().to_owned();
    let post = ok(
        home,
        &[
            "post", "new", &subwiki, "--title", "Robins", "--body", "Early.",
        ],
    )
    .trim()
    .to_owned();
    (subwiki, post)
}

#[test]
fn unknown_and_malformed_ids_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (_subwiki, post) = seeded(home);
    let before = state(home);

    // A well-formed id that nobody has: exit 3.
    let unknown_post = agora_crdt::DocId::from_bytes([9; 32]).to_string();
    let err = fails(home, &["post", "show", &unknown_post], 3);
    assert!(err.contains("unknown post"), "{err}");
    fails(home, &["post", "edit", &unknown_post, "--body", "x"], 3);
    fails(home, &["comment", &unknown_post, "hello"], 3);
    let unknown_subwiki = agora_crdt::SubwikiId::from_bytes([9; 32]).to_string();
    fails(
        home,
        &[
            "post",
            "new",
            &unknown_subwiki,
            "--title",
            "t",
            "--body",
            "b",
        ],
        3,
    );
    fails(home, &["subwiki", "show", &unknown_subwiki], 3);
    fails(home, &["feed", "--subwiki", &unknown_subwiki], 3);

    // Malformed ids and arguments: exit 2.
    let err = fails(home, &["post", "show", "not-an-id"], 2);
    assert!(err.contains("malformed post id"), "{err}");
    fails(
        home,
        &["post", "new", "sw_nope", "--title", "t", "--body", "b"],
        2,
    );
    fails(home, &["post", "revert", &post, "not-a-version"], 2);
    fails(home, &["feed", "--before", "garbage"], 2);
    fails(
        home,
        &["subwiki", "join", "agora:sw_x?peer=/not/an/address"],
        2,
    );
    // clap's own usage errors exit 2 as well (their message spans lines; only the code is
    // checked).
    assert_eq!(run(home, &["post", "frobnicate"]).status.code(), Some(2));

    assert_eq!(state(home), before);
}

#[test]
fn missing_files_are_refused_and_a_bad_import_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (subwiki, _) = seeded(home);
    let before = state(home);
    let missing = home.join("no-such-file");
    let missing = missing.to_str().unwrap();

    let err = fails(home, &["import", missing], 2);
    assert!(err.contains("no such file"), "{err}");
    fails(
        home,
        &[
            "post",
            "new",
            &subwiki,
            "--title",
            "t",
            "--body-file",
            missing,
        ],
        2,
    );
    fails(
        home,
        &[
            "post", "new", &subwiki, "--title", "t", "--body", "b", "--image", missing,
        ],
        2,
    );
    assert_eq!(state(home), before);

    // What is not a regular file (a device that never ends, a directory) is refused at once,
    // without reading it.
    for not_a_file in ["/dev/zero", "/"] {
        let err = fails(home, &["import", not_a_file], 1);
        assert!(err.contains("not a regular file"), "{err}");
        let err = fails(
            home,
            &[
                "post", "new", &subwiki, "--title", "t", "--body", "b", "--image", not_a_file,
            ],
            2,
        );
        assert!(err.contains("not a regular file"), "{err}");
    }
    // A body is read with a cap: a file that never ends, or one over the limit, is refused
    // after reading just past the limit, before any work.
    let big = home.join("big.txt");
    std::fs::write(&big, "x".repeat(agora_crdt::MAX_CONTENT_BYTES + 1)).unwrap();
    for body in ["/dev/zero", big.to_str().unwrap()] {
        let err = fails(
            home,
            &["post", "new", &subwiki, "--title", "t", "--body-file", body],
            2,
        );
        assert!(err.contains("over the limit"), "{err}");
    }
    assert_eq!(state(home), before);

    // An export imported elsewhere works; the same file damaged is refused whole.
    let export = home.join("birds.agora");
    ok(home, &["export", &subwiki, export.to_str().unwrap()]);
    let other = tempfile::tempdir().unwrap();
    ok(other.path(), &["init"]);
    let mut bytes = std::fs::read(&export).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    let damaged = home.join("damaged.agora");
    std::fs::write(&damaged, &bytes).unwrap();
    let other_before = state(other.path());
    fails(other.path(), &["import", damaged.to_str().unwrap()], 1);
    assert_eq!(state(other.path()), other_before);
    let imported = json(other.path(), &["import", export.to_str().unwrap()]);
    assert_eq!(imported["id"], subwiki.as_str());
    assert_eq!(titles(&json(other.path(), &["feed"])), vec!["Robins"]);
}

#[test]
fn an_unreachable_peer_fails_the_join_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    seeded(home);
    let before = state(home);
    // A port nothing listens on (bound then released), with a made-up peer id.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
    );
    let other = agora_crdt::SubwikiId::from_bytes([8; 32]).to_string();
    let err = fails(home, &["subwiki", "join", &other, "--peer", &peer], 5);
    assert!(err.contains("cannot reach"), "{err}");
    assert_eq!(state(home), before);
}

#[test]
fn a_second_node_on_one_home_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    seeded(home);
    let up = Up::start(home, &[]);
    let err = fails(
        home,
        &["up", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
        4,
    );
    assert!(err.contains("already running"), "{err}");
    // Commands still work, through the running node.
    assert_eq!(titles(&json(home, &["feed"])), vec!["Robins"]);
    assert_eq!(up.stop(), Some(0));
    // And without it.
    assert_eq!(titles(&json(home, &["feed"])), vec!["Robins"]);
}

#[test]
fn no_identity_and_a_second_init_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("fresh");
    let err = fails(&home, &["feed"], 6);
    assert!(err.contains("agora init"), "{err}");
    assert!(!home.exists(), "a failed command creates nothing");
    ok(&home, &["init"]);
    let key = std::fs::read(home.join("author.key")).unwrap();
    fails(&home, &["init"], 1);
    assert_eq!(std::fs::read(home.join("author.key")).unwrap(), key);
}

#[test]
fn the_api_refuses_requests_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    seeded(home);
    let up = Up::start(home, &[]);
    let token_path = home.join("api.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(&token_path).unwrap();
    let ask = |auth: &str| {
        let body = r#"{"name":"Sneaky","description":"","edit_policy":"open"}"#;
        let mut s = std::net::TcpStream::connect(&up.api).unwrap();
        write!(
            s,
            "POST /v1/subwiki/create HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            up.api,
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(ask("").starts_with("HTTP/1.1 401"));
    assert!(ask("Authorization: Bearer 0000\r\n").starts_with("HTTP/1.1 401"));
    let list = json(home, &["subwiki", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing was created");
    let answer = ask(&format!("Authorization: Bearer {}\r\n", token.trim()));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        json(home, &["subwiki", "list"]).as_array().unwrap().len(),
        2
    );
}

#[test]
fn a_key_moves_to_a_second_device_with_its_own_suffix() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    ok(one.path(), &["init", "--name", "dana"]);
    let file = one.path().join("dana.key");
    let file = file.to_str().unwrap();
    let export = agora(one.path())
        .args(["key", "export", file])
        .env("AGORA_PASSPHRASE", "a long passphrase")
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let wrong = agora(two.path())
        .args(["key", "import", file])
        .env("AGORA_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(!two.path().join("author.key").exists());
    let import = agora(two.path())
        .args(["key", "import", file])
        .env("AGORA_PASSPHRASE", "a long passphrase")
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let a = json(one.path(), &["whoami"]);
    let b = json(two.path(), &["whoami"]);
    assert_eq!(a["author"], b["author"]);
    assert_ne!(a["peer_id"], b["peer_id"]);
    let key_one = agora_crdt::AuthorKey::load(&one.path().join("author.key")).unwrap();
    let key_two = agora_crdt::AuthorKey::load(&two.path().join("author.key")).unwrap();
    assert_eq!(key_one.id(), key_two.id());
    assert_ne!(
        key_one.device(),
        key_two.device(),
        "each device has its own actor suffix"
    );
}

/// Sends `body` to the running node's `route` with its token; returns the raw HTTP answer.
fn call_api(up: &Up, route: &str, body: &str) -> String {
    let token = std::fs::read_to_string(up.home.join("api.token")).unwrap();
    let mut s = std::net::TcpStream::connect(&up.api).unwrap();
    write!(
        s,
        "POST /v1/{route} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n{body}",
        up.api,
        token.trim(),
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Issue 15, item 6: what others wrote (names, titles, bodies, comments, descriptions) cannot
/// drive the terminal or forge a line of `feed`, `post show` or `subwiki show`; `--json` keeps
/// it exactly.
#[test]
fn terminal_output_escapes_what_others_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let name = "\x1b]0;pwned\x07x\nfingerprint: fake";
    let title = "\x1b[2J\x1b[Hclean\r\nversion en_forged\u{202e}";
    let body = "first line\r\nsecond \x1b[31mred\u{9b}\nfingerprint: fake\n\tindented";
    let description = "about birds\nid:          sw_forged\x07";
    let comment = "nice\nversion en_forged\x1b[0m";
    ok(home, &["init", "--name", name]);
    let subwiki = ok(
        home,
        &["subwiki", "create", "Birds", "--description", description],
    )
    .trim()
    .to_owned();
    let post = ok(
        home,
        &["post", "new", &subwiki, "--title", title, "--body", body],
    )
    .trim()
    .to_owned();
    ok(home, &["comment", &post, comment]);

    let forged = |out: &str| {
        out.lines().any(|l| {
            l.starts_with("fingerprint: fake")
                || l.starts_with("version en_forged")
                || l.starts_with("id:          sw_forged")
        })
    };
    for args in [
        vec!["feed"],
        vec!["post", "show", &post],
        vec!["subwiki", "show", &subwiki],
        vec!["whoami"],
    ] {
        let out = ok(home, &args);
        for raw in ['\x1b', '\x07', '\r', '\x7f', '\u{9b}', '\u{202e}'] {
            assert!(
                !out.contains(raw),
                "agora {args:?} printed {raw:?}: {out:?}"
            );
        }
        assert!(!forged(&out), "agora {args:?} let a line be forged: {out}");
    }
    // Newlines in a body stay readable: each line on its own, indented.
    let shown = ok(home, &["post", "show", &post]);
    assert!(shown.contains("\n  first line\n  second "), "{shown}");
    assert!(shown.contains("\n  \tindented\n"), "{shown}");
    // The title and the name stay on one line each.
    let feed = ok(home, &["feed"]);
    assert_eq!(feed.lines().count(), 2, "{feed}");

    // --json gives back exactly what was written.
    let posts = json(home, &["feed"]);
    assert_eq!(posts[0]["title"], title);
    assert_eq!(posts[0]["body"], body);
    assert_eq!(posts[0]["author_name"], name);
    let page = json(home, &["post", "show", &post]);
    assert_eq!(page["title"], title);
    assert_eq!(page["comment_list"][0]["text"], comment);
    assert_eq!(page["comment_list"][0]["author"]["name"], name);
    let about = json(home, &["subwiki", "show", &subwiki]);
    assert_eq!(about["description"], description);
}

/// Issue 15, item 5 (durations): a join timeout out of range is a usage error, on the command
/// line and through the API, and joins nothing.
#[test]
fn join_timeouts_are_checked_and_join_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    seeded(home);
    let before = state(home);
    let other = agora_crdt::SubwikiId::from_bytes([8; 32]).to_string();
    for timeout in ["18446744073709551615", "0", "601", "-1"] {
        let timeout = format!("--timeout={timeout}");
        let err = fails(home, &["subwiki", "join", &other, &timeout], 2);
        assert!(err.contains("--timeout"), "{err}");
    }
    assert_eq!(state(home), before);

    let up = Up::start(home, &[]);
    for timeout in ["18446744073709551615", "0"] {
        let answer = call_api(
            &up,
            "subwiki/join",
            &format!(r#"{{"id":"{other}","timeout_secs":{timeout}}}"#),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("timeout_secs"), "{answer}");
    }
    assert_eq!(state(home), before);
}

/// Issue 15, item 7: a join that receives nothing of the subwiki before its timeout fails and
/// leaves no phantom subwiki behind.
#[test]
fn a_join_that_receives_nothing_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    seeded(home);
    let before = state(home);
    let other = agora_crdt::SubwikiId::from_bytes([8; 32]).to_string();
    // -q: the node's start-up warm-up may warn that it cannot load the subwiki being joined
    // (node.rs `warm_up`, racing the join); the failure itself is the one error line.
    let err = fails(
        home,
        &["-q", "subwiki", "join", &other, "--timeout", "1"],
        5,
    );
    assert!(err.contains("nothing joined"), "{err}");
    assert_eq!(state(home), before);
    fails(home, &["subwiki", "show", &other], 3);
}

/// Issue 15, item 7: what a person types is checked when a post is written (a title, an
/// http(s) link, sizes: exit 2), unknown versions are unknown (exit 3), feed pages are 1 to
/// 1000 posts; the same through the API; nothing changes.
#[test]
fn what_users_type_is_checked_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (subwiki, post) = seeded(home);
    let before = state(home);
    let new = |extra: &[&'static str]| {
        let mut args = vec!["post", "new", subwiki.as_str(), "--body", "b"];
        args.extend_from_slice(extra);
        args
    };

    let err = fails(home, &new(&["--title", " \n "]), 2);
    assert!(err.contains("needs a title"), "{err}");
    for link in [
        "javascript:alert(1)",
        "ftp://example.org/x",
        "https://",
        "example.org",
    ] {
        let err = fails(home, &new(&["--title", "t", "--link", link]), 2);
        assert!(err.contains("http(s) URL"), "{err}");
    }
    fails(home, &["post", "edit", &post, "--title", ""], 2);

    let err = fails(home, &["feed", "--limit", "0"], 2);
    assert!(err.contains("--limit"), "{err}");
    let err = fails(home, &["feed", "--limit", "1001"], 2);
    assert!(err.contains("1000"), "{err}");
    assert_eq!(json(home, &["feed", "--limit", "1000"]), before.1);

    // Over a size limit: exit 2.
    let big = home.join("big.md");
    std::fs::write(&big, "a".repeat(300 * 1024)).unwrap();
    fails(
        home,
        &[
            "post",
            "new",
            &subwiki,
            "--title",
            "t",
            "--body-file",
            big.to_str().unwrap(),
        ],
        2,
    );
    fails(home, &["subwiki", "create", &"n".repeat(200)], 2);
    fails(
        home,
        &["vote", &post, "hide", "--reason", &"r".repeat(2000)],
        2,
    );

    // A version the post does not have: exit 3.
    let unknown = agora_crdt::EntryId::from_bytes([9; 32]).to_string();
    fails(home, &["post", "show", &post, "--at", &unknown], 3);
    fails(home, &["post", "revert", &post, &unknown], 3);
    fails(
        home,
        &["post", "edit", &post, "--base", &unknown, "--body", "x"],
        3,
    );
    assert_eq!(state(home), before);

    // The node checks them, not only the command line.
    let up = Up::start(home, &[]);
    let refused = [
        (
            "post/new",
            format!(r#"{{"subwiki":"{subwiki}","title":"  "}}"#),
        ),
        (
            "post/new",
            format!(r#"{{"subwiki":"{subwiki}","title":"t","link":"javascript:alert(1)"}}"#),
        ),
        ("feed", r#"{"limit":0}"#.to_owned()),
        ("feed", r#"{"limit":100000}"#.to_owned()),
    ];
    for (route, body) in &refused {
        let answer = call_api(&up, route, body);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{route} {body}: {answer}"
        );
    }
    assert_eq!(state(home), before);
}

/// Issue 15, item 7: a home whose `author.key` is gone says so, to `init` as to every other
/// command, and says how to restore it; importing the exported key restores it.
#[test]
fn a_home_that_lost_its_author_key_says_how_to_restore_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    seeded(&home);
    let file = dir.path().join("carol.key");
    let file = file.to_str().unwrap();
    let export = agora(&home)
        .args(["key", "export", file])
        .env("AGORA_PASSPHRASE", "a long passphrase")
        .output()
        .unwrap();
    assert!(export.status.success());
    let who = json(&home, &["whoami"]);
    let before = state(&home);
    std::fs::remove_file(home.join("author.key")).unwrap();

    for (args, code) in [(vec!["feed"], 6), (vec!["whoami"], 6), (vec!["init"], 1)] {
        let err = fails(&home, &args, code);
        assert!(err.contains("author.key is missing"), "{args:?}: {err}");
        assert!(err.contains("agora key import"), "{args:?}: {err}");
        assert!(!err.contains("already exists"), "{args:?}: {err}");
    }
    assert!(!home.join("author.key").exists(), "init made no new author");

    let import = agora(&home)
        .args(["key", "import", file])
        .env("AGORA_PASSPHRASE", "a long passphrase")
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let again = json(&home, &["whoami"]);
    assert_eq!(again["author"], who["author"]);
    assert_eq!(again["peer_id"], who["peer_id"], "the node key is kept");
    assert_eq!(state(&home), before);
}
