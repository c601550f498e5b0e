//! A node's home directory: its keys and its store.
//!
//! ```text
//! <home>/author.key   the author key (crdt's key file format, mode 0600): signs entries
//! <home>/node.key     the libp2p node key (protobuf encoding, mode 0600): transport identity
//! <home>/store/       the sled database
//! ```
//!
//! The two keys are separate on purpose: a network address is not tied to a person.

use std::io::Write;
use std::path::{Path, PathBuf};

use agora_crdt::{AuthorKey, KeyFileError, key::DEVICE_SUFFIX_LEN};
use libp2p::identity::Keypair;
use thiserror::Error;

/// A home directory that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HomeError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The author key file is damaged or malformed.
    #[error("author key: {0}")]
    AuthorKey(#[from] KeyFileError),
    /// The node key file is damaged.
    #[error("node key {0}: not a valid libp2p key")]
    NodeKey(PathBuf),
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// An identity exists already and would be replaced.
    #[error("an identity already exists in {0}")]
    Exists(PathBuf),
    /// The author key file is gone from a home that has a node key: the home was used, and a
    /// new author key would be a different person.
    #[error(
        "{0} is missing, but the home has its node key: restore the author key from a backup, \
         or import one exported on another device"
    )]
    AuthorKeyMissing(PathBuf),
}

/// Paths inside a home directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

/// The keys of a node.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Signs this person's entries.
    pub author: AuthorKey,
    /// The libp2p transport identity.
    pub node: Keypair,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_owned(),
        source,
    }
}

fn random<const N: usize>() -> Result<[u8; N], HomeError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| HomeError::Random(e.to_string()))?;
    Ok(bytes)
}

impl Home {
    /// The home at `dir` (not created yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The author key file.
    pub fn author_key(&self) -> PathBuf {
        self.dir.join("author.key")
    }

    /// The node key file.
    pub fn node_key(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// The store directory.
    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Whether an identity exists.
    pub fn is_initialised(&self) -> bool {
        self.author_key().exists()
    }

    /// Whether the author key is gone from a home that was used (its node key is there).
    pub fn lost_author_key(&self) -> bool {
        !self.author_key().exists() && self.node_key().exists()
    }

    /// Creates the directory and a new identity; refuses to replace an existing one.
    pub fn init(&self) -> Result<Identity, HomeError> {
        let author = AuthorKey::from_secret(random::<32>()?, random::<DEVICE_SUFFIX_LEN>()?);
        self.init_with(author)
    }

    /// Creates the directory and an identity for an existing author key on a new device: the
    /// key gets this device's own random suffix (so its changes never collide with another
    /// device's) and a new node key is made. Refuses to replace an existing identity; in a home
    /// that lost its author key, restores it and keeps the node key.
    pub fn init_device(&self, author: &AuthorKey) -> Result<Identity, HomeError> {
        let author = author.for_device(random::<DEVICE_SUFFIX_LEN>()?);
        if self.lost_author_key() {
            author.save(&self.author_key())?;
            return self.load();
        }
        self.init_with(author)
    }

    fn init_with(&self, author: AuthorKey) -> Result<Identity, HomeError> {
        if self.lost_author_key() {
            return Err(HomeError::AuthorKeyMissing(self.author_key()));
        }
        if self.author_key().exists() || self.node_key().exists() {
            return Err(HomeError::Exists(self.dir.clone()));
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        author.save(&self.author_key())?;
        let node = Keypair::generate_ed25519();
        let encoded = node
            .to_protobuf_encoding()
            .map_err(|_| HomeError::NodeKey(self.node_key()))?;
        write_private(&self.node_key(), &encoded)?;
        Ok(Identity { author, node })
    }

    /// Loads the identity, creating one first if there is none.
    pub fn load_or_init(&self) -> Result<Identity, HomeError> {
        if self.is_initialised() {
            self.load()
        } else {
            self.init()
        }
    }

    /// Loads the identity.
    pub fn load(&self) -> Result<Identity, HomeError> {
        let author = AuthorKey::load(&self.author_key())?;
        let path = self.node_key();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let node = Keypair::from_protobuf_encoding(&bytes).map_err(|_| HomeError::NodeKey(path))?;
        Ok(Identity { author, node })
    }
}

/// Writes a new file readable by its owner only; refuses to replace one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    sync_dir_of(path).map_err(io(path))
}

/// Fsyncs the directory holding `path`, so that a file just created or renamed there keeps its
/// name after a power cut (the file's own fsync does not cover its directory entry).
pub(crate) fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => std::fs::File::open(".")?.sync_all(),
    }
}
