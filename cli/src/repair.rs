//! `agora repair`: checks the store entry by entry, against its manifest, and repairs what it
//! can (see `agora_node::store::repair`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use agora_node::home::Home;
use agora_node::http::{ApiError, ErrorKind};
use agora_node::store::{self, Damage, StoreError};
use serde::Serialize;

use crate::Out;

/// What `agora repair` found and did.
#[derive(Debug, Serialize)]
pub struct Repair {
    /// The store.
    pub store: PathBuf,
    /// Where the damaged files were moved, if the database could not be opened.
    pub moved_aside: Option<PathBuf>,
    /// Entries read back from the damaged files.
    pub salvaged: usize,
    /// Valid entries in the store now.
    pub entries: usize,
    /// Damaged entries found and removed.
    pub corrupt: usize,
    /// Subwikis the store had forgotten, recorded again.
    pub restored: Vec<String>,
    /// What is still missing, per subwiki.
    pub missing: Vec<Damage>,
}

pub(crate) fn run(home: &Path, out: Out) -> Result<(), ApiError> {
    let dir = Home::new(home).store();
    let repaired = store::repair(&dir).map_err(|e| match e {
        StoreError::Locked(_) => ApiError::new(
            ErrorKind::Locked,
            "the node is running: stop `agora up` first, then repair",
        ),
        e => ApiError::failed(e.to_string()),
    })?;
    let answer = Repair {
        store: dir,
        moved_aside: repaired.moved_aside,
        salvaged: repaired.salvaged,
        entries: repaired.entries,
        corrupt: repaired.corrupt,
        restored: repaired.restored.iter().map(|r| r.id.to_string()).collect(),
        missing: repaired.damage,
    };
    out.print(&answer, || render(&answer))
}

fn render(r: &Repair) -> String {
    let mut text = format!("Checked the store in {}\n", r.store.display());
    if let Some(aside) = &r.moved_aside {
        let _ = writeln!(
            text,
            "  the database could not be opened: its files are kept in {}; {} entries read back from them",
            aside.display(),
            r.salvaged
        );
    }
    let _ = writeln!(
        text,
        "  {} valid entries; {} damaged entries removed",
        r.entries, r.corrupt
    );
    for id in &r.restored {
        let _ = writeln!(text, "  subwiki {id} had been forgotten: recorded again");
    }
    if r.missing.is_empty() {
        text.push_str("  nothing is missing\n");
    }
    for d in &r.missing {
        let then = if d.joined {
            "`agora up` fetches them again from peers"
        } else {
            "join the subwiki again to fetch them"
        };
        let _ = writeln!(
            text,
            "  MISSING: subwiki {}: {} of {} entries; {then}",
            d.subwiki,
            d.missing(),
            d.expected
        );
    }
    text
}
