//! Shell completions and the man page come from the clap definitions, so they list every
//! command.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;

#[test]
fn completions_and_the_man_page_list_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(dir.path(), &["completions", shell]);
        for command in ["subwiki", "post", "feed", "import"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
    let man = ok(dir.path(), &["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH"), "roff");
    for command in ["subwiki", "post", "comment", "feed", "status", "key"] {
        assert!(man.contains(command), "man page lacks {command}");
    }
    assert!(!dir.path().join("author.key").exists(), "no identity made");
}
