//! Where a running node's API is, and its token: two files in the home.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a running node's API is, as written in `<home>/api.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    /// The process id of the node.
    pub pid: u32,
}

/// The API files of a home.
#[derive(Debug, Clone)]
pub struct Files {
    endpoint: PathBuf,
    token: PathBuf,
}

impl Files {
    /// The API files in `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            endpoint: home.join("api.json"),
            token: home.join("api.token"),
        }
    }

    /// Writes a new random token (mode 0600) and the endpoint; returns the token.
    pub fn publish(&self, endpoint: &Endpoint) -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = std::fs::remove_file(&self.token);
        write_private(&self.token, token.as_bytes())?;
        let json = serde_json::to_vec(endpoint).map_err(std::io::Error::other)?;
        std::fs::write(&self.endpoint, json)?;
        Ok(token)
    }

    /// Removes the files (at shutdown).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.endpoint);
        let _ = std::fs::remove_file(&self.token);
    }

    /// The endpoint and token of a node that may be running, if the files are there.
    pub fn read(&self) -> Option<(Endpoint, String)> {
        let endpoint = serde_json::from_slice(&std::fs::read(&self.endpoint).ok()?).ok()?;
        let token = std::fs::read_to_string(&self.token).ok()?;
        Some((endpoint, token.trim().to_owned()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}
