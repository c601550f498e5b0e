//! Author keys: the ed25519 key that signs a person's entries, plus this device's actor suffix.
//!
//! # File format
//!
//! An author key is kept in a small UTF-8 text file (mode 0600 on Unix), four lines, each
//! `name value`, in this order and nothing else:
//!
//! ```text
//! agora-author-key 1
//! secret <64 lower-case hex digits: the ed25519 secret key>
//! device <2 to 32 lower-case hex digits: this device's actor suffix, 1 to 16 bytes>
//! check <16 lower-case hex digits: the first 8 bytes of blake3(secret bytes || device bytes)>
//! ```
//!
//! The check line catches a truncated or damaged file before it signs anything. The same
//! secret with a different device suffix is the same person on another device.

use std::fmt;
use std::path::Path;

use data_encoding::HEXLOWER;
use ed25519_dalek::{Signer, SigningKey};
use thiserror::Error;

use crate::id::AuthorId;

/// Length of the device suffix this crate generates; others may use 1 to
/// [`MAX_DEVICE_SUFFIX`] bytes.
pub const DEVICE_SUFFIX_LEN: usize = 8;
/// The longest device suffix an actor id may carry.
pub const MAX_DEVICE_SUFFIX: usize = 16;

const FILE_MAGIC: &str = "agora-author-key 1";

/// A key file that cannot be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not in the documented format.
    #[error("key file is malformed: {0}")]
    Malformed(&'static str),
    /// The check line does not match: the file is damaged.
    #[error("key file is damaged: its check value does not match")]
    Checksum,
}

/// A person's signing key on one device. Never leaves the node.
#[derive(Clone)]
pub struct AuthorKey {
    signing: SigningKey,
    device: Vec<u8>,
}

impl fmt::Debug for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorKey")
            .field("author", &self.id())
            .field("device", &HEXLOWER.encode(&self.device))
            .finish_non_exhaustive()
    }
}

impl AuthorKey {
    /// A key from 32 secret bytes and a device suffix (use fresh OS randomness for both).
    pub fn from_secret(secret: [u8; 32], device: [u8; DEVICE_SUFFIX_LEN]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
            device: device.to_vec(),
        }
    }

    /// The same person on another device: same secret, a new device suffix.
    pub fn for_device(&self, device: [u8; DEVICE_SUFFIX_LEN]) -> Self {
        Self {
            signing: self.signing.clone(),
            device: device.to_vec(),
        }
    }

    /// The public id of this person.
    pub fn id(&self) -> AuthorId {
        AuthorId::from_bytes(self.signing.verifying_key().to_bytes())
    }

    /// This device's suffix.
    pub fn device(&self) -> &[u8] {
        &self.device
    }

    /// The Automerge actor id of this person on this device: author key then device suffix.
    pub fn actor(&self) -> automerge::ActorId {
        let mut bytes = self.signing.verifying_key().to_bytes().to_vec();
        bytes.extend_from_slice(&self.device);
        automerge::ActorId::from(bytes)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    fn check(secret: &[u8], device: &[u8]) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(secret);
        hasher.update(device);
        HEXLOWER.encode(hasher.finalize().as_bytes().get(..8).unwrap_or_default())
    }

    /// The key in the file format documented above.
    pub fn to_file_string(&self) -> String {
        let secret = self.signing.to_bytes();
        format!(
            "{FILE_MAGIC}\nsecret {}\ndevice {}\ncheck {}\n",
            HEXLOWER.encode(&secret),
            HEXLOWER.encode(&self.device),
            Self::check(&secret, &self.device)
        )
    }

    /// Parses the file format documented above, strictly.
    pub fn from_file_str(text: &str) -> Result<Self, KeyFileError> {
        let mut lines = text.lines();
        if lines.next() != Some(FILE_MAGIC) {
            return Err(KeyFileError::Malformed(
                "first line is not `agora-author-key 1`",
            ));
        }
        let mut field = |name: &'static str| -> Result<Vec<u8>, KeyFileError> {
            let line = lines
                .next()
                .ok_or(KeyFileError::Malformed("missing line"))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or(KeyFileError::Malformed("lines out of order"))?;
            HEXLOWER
                .decode(value.as_bytes())
                .map_err(|_| KeyFileError::Malformed("value is not lower-case hex"))
        };
        let secret: [u8; 32] = field("secret")?
            .try_into()
            .map_err(|_| KeyFileError::Malformed("secret is not 32 bytes"))?;
        let device = field("device")?;
        if device.is_empty() || device.len() > MAX_DEVICE_SUFFIX {
            return Err(KeyFileError::Malformed(
                "device suffix is not 1 to 16 bytes",
            ));
        }
        let check = field("check")?;
        if lines.next().is_some() {
            return Err(KeyFileError::Malformed("extra lines after check"));
        }
        if HEXLOWER.encode(&check) != Self::check(&secret, &device) {
            return Err(KeyFileError::Checksum);
        }
        Ok(Self {
            signing: SigningKey::from_bytes(&secret),
            device,
        })
    }

    /// Writes the key file, readable by its owner only. Refuses to replace an existing file.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        use std::io::Write;
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(self.to_file_string().as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        // The file's name is in its directory: fsync that too, or a power cut may lose it.
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    /// Reads a key file written by [`AuthorKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_file_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn file_format_round_trips(secret in any::<[u8; 32]>(), device in any::<[u8; 8]>()) {
            let key = AuthorKey::from_secret(secret, device);
            let back = AuthorKey::from_file_str(&key.to_file_string());
            prop_assert!(back.is_ok());
            let back = back.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.id(), key.id());
            prop_assert_eq!(back.device(), key.device());
        }
    }

    #[test]
    fn damaged_files_are_refused() {
        let key = AuthorKey::from_secret([1; 32], [2; 8]);
        let text = key.to_file_string();
        let flipped = text.replacen("secret 01", "secret 02", 1);
        assert!(matches!(
            AuthorKey::from_file_str(&flipped),
            Err(KeyFileError::Checksum)
        ));
        let truncated = &text[..text.len() / 2];
        assert!(matches!(
            AuthorKey::from_file_str(truncated),
            Err(KeyFileError::Malformed(_))
        ));
        assert!(AuthorKey::from_file_str("").is_err());
    }

    #[test]
    fn save_refuses_to_overwrite_and_load_reads_back() {
        let dir = std::env::temp_dir().join(format!("agora-key-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("author.key");
        let _ = std::fs::remove_file(&path);
        let key = AuthorKey::from_secret([3; 32], [4; 8]);
        assert!(key.save(&path).is_ok());
        assert!(matches!(key.save(&path), Err(KeyFileError::Io { .. })));
        let loaded = AuthorKey::load(&path).map(|k| k.id());
        assert_eq!(loaded.ok(), Some(key.id()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
