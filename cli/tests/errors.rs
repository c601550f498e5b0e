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
