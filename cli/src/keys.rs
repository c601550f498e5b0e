//! The identity in the home: `agora init`, `whoami`, and moving the author key to another
//! device (`agora key export|import`). None of these needs a node.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use agora_crdt::AuthorId;
use agora_node::home::{Home, HomeError, Identity};
use agora_node::http::{ApiError, ErrorKind};
use serde::Serialize;

use crate::{Out, PROFILE_FILE, Profile, failed, keyfile, read_profile_name, usage};

/// What to do in a home whose author key is gone (every command, `init` included, says it).
fn lost_author_key(home: &Home) -> String {
    format!(
        "{} is missing: this home lost its author key (its node key and posts are still \
         there). Copy author.key back from a backup, or run `agora key import FILE` with a key \
         exported on another device; `agora init` would start a new author and refuses",
        home.author_key().display()
    )
}

/// The home's identity, or the error that says to run `agora init` (or, in a home that lost
/// its author key, how to restore it).
pub(crate) fn load_identity(home: &Path) -> Result<Identity, ApiError> {
    let h = Home::new(home);
    if h.lost_author_key() {
        return Err(ApiError::new(ErrorKind::NoIdentity, lost_author_key(&h)));
    }
    if !h.is_initialised() {
        return Err(ApiError::new(
            ErrorKind::NoIdentity,
            format!("no identity in {}: run `agora init` first", home.display()),
        ));
    }
    h.load().map_err(failed)
}

/// Who a home writes as.
#[derive(Debug, Serialize)]
pub struct Whoami {
    /// The author id.
    pub author: AuthorId,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The display name from the home's profile.
    pub name: Option<String>,
    /// The node's transport identity.
    pub peer_id: String,
}

impl Whoami {
    fn of(identity: &Identity, name: Option<String>) -> Self {
        let author = identity.author.id();
        Self {
            author,
            fingerprint: author.fingerprint(),
            name,
            peer_id: identity.node.public().to_peer_id().to_string(),
        }
    }
}

pub(crate) fn whoami(home: &Path, out: Out) -> Result<(), ApiError> {
    let answer = Whoami::of(&load_identity(home)?, read_profile_name(home));
    out.print(&answer, || crate::output::whoami(&answer))
}

/// An identity created or imported in a home.
#[derive(Debug, Serialize)]
pub struct Created {
    /// Who it writes as.
    #[serde(flatten)]
    pub who: Whoami,
    /// The home.
    pub home: PathBuf,
}

pub(crate) fn init(home: &Path, name: Option<String>, out: Out) -> Result<(), ApiError> {
    let identity = Home::new(home).init().map_err(|e| match e {
        HomeError::AuthorKeyMissing(_) => ApiError::failed(lost_author_key(&Home::new(home))),
        HomeError::Exists(_) => ApiError::failed(format!(
            "an identity already exists in {} (refusing to replace it)",
            home.display()
        )),
        e => failed(e),
    })?;
    if let Some(name) = &name {
        let profile = serde_json::to_vec(&Profile {
            name: Some(name.clone()),
        })
        .map_err(failed)?;
        std::fs::write(home.join(PROFILE_FILE), profile).map_err(failed)?;
    }
    let answer = Created {
        who: Whoami::of(&identity, name),
        home: home.to_owned(),
    };
    out.print(&answer, || {
        format!(
            "Created an identity in {}\nauthor   {}\npeer id  {}\n",
            home.display(),
            answer.who.author,
            answer.who.peer_id
        )
    })
}

fn passphrase(confirm: bool) -> Result<String, ApiError> {
    if let Ok(p) = std::env::var("AGORA_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "a passphrase is needed: run on a terminal, or set AGORA_PASSPHRASE",
        ));
    }
    let first = rpassword::prompt_password("Passphrase: ").map_err(failed)?;
    if confirm {
        let again = rpassword::prompt_password("Passphrase again: ").map_err(failed)?;
        if again != first {
            return Err(usage("the passphrases differ"));
        }
    }
    Ok(first)
}

/// An author key written to a file.
#[derive(Debug, Serialize)]
pub struct KeyExported {
    /// The author.
    pub author: AuthorId,
    /// The file.
    pub file: PathBuf,
}

pub(crate) fn export(home: &Path, file: &Path, out: Out) -> Result<(), ApiError> {
    let identity = load_identity(home)?;
    if file.exists() {
        return Err(usage(format!(
            "{}: exists already (refusing to overwrite)",
            file.display()
        )));
    }
    let text = keyfile::seal(&identity.author, &passphrase(true)?).map_err(usage)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| failed(format!("{}: {e}", file.display())))?;
    let answer = KeyExported {
        author: identity.author.id(),
        file: file.to_owned(),
    };
    out.print(&answer, || {
        format!(
            "Exported author {} to {}\nOn the other device: agora key import {}\n",
            answer.author,
            file.display(),
            file.display()
        )
    })
}

pub(crate) fn import(home: &Path, file: &Path, out: Out) -> Result<(), ApiError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    if Home::new(home).is_initialised() {
        return Err(ApiError::failed(format!(
            "an identity already exists in {} (import into a new home)",
            home.display()
        )));
    }
    let key = keyfile::open(&text, &passphrase(false)?).map_err(usage)?;
    let identity = Home::new(home).init_device(&key).map_err(failed)?;
    let answer = Created {
        who: Whoami::of(&identity, read_profile_name(home)),
        home: home.to_owned(),
    };
    out.print(&answer, || {
        format!(
            "This device now writes as {} (with its own device key)\npeer id  {}\n",
            answer.who.author, answer.who.peer_id
        )
    })
}
