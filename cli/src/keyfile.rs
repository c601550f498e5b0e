//! Author keys moved between devices: the key file encrypted with a passphrase.
//!
//! ```text
//! agora-author-key-export v1
//! kdf argon2id m=19456 t=2 p=1
//! salt <32 hex>
//! nonce <24 hex>
//! data <hex of ChaCha20-Poly1305(key, nonce, author key file text, aad = the four lines above)>
//! ```
//!
//! The key is Argon2id(passphrase, salt) with the parameters on the `kdf` line (OWASP's
//! minimum, about 20 MiB and a few tens of milliseconds here). A wrong passphrase or any
//! change to the file fails authentication: nothing is written.

use agora_crdt::AuthorKey;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use data_encoding::HEXLOWER;

const MAGIC: &str = "agora-author-key-export v1";
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// The most memory a file may ask the KDF for, in KiB (a hostile file must not exhaust it).
const MAX_M_COST: u32 = 1 << 20;
/// The shortest passphrase accepted when exporting.
pub const MIN_PASSPHRASE: usize = 8;

/// Why an exported key cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyExportError {
    /// Not an export file, or a damaged one.
    #[error("not an exported agora key: {0}")]
    Format(&'static str),
    /// Wrong passphrase, or the file was changed.
    #[error("wrong passphrase, or the file was changed")]
    Decrypt,
    /// The passphrase is too short.
    #[error("the passphrase must be at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    /// The decrypted key is not a valid key file.
    #[error("the exported key is damaged: {0}")]
    Key(#[from] agora_crdt::KeyFileError),
    /// No randomness.
    #[error("no randomness: {0}")]
    Random(String),
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<[u8; 32], KeyExportError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|_| KeyExportError::Format("kdf"))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|_| KeyExportError::Format("kdf"))?;
    Ok(key)
}

fn random<const N: usize>() -> Result<[u8; N], KeyExportError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeyExportError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Encrypts an author key with a passphrase, as the text of an export file.
pub fn seal(key: &AuthorKey, passphrase: &str) -> Result<String, KeyExportError> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(KeyExportError::WeakPassphrase);
    }
    let salt = random::<16>()?;
    let nonce = random::<12>()?;
    let header = format!(
        "{MAGIC}\nkdf argon2id m={M_COST} t={T_COST} p={P_COST}\nsalt {}\nnonce {}\n",
        HEXLOWER.encode(&salt),
        HEXLOWER.encode(&nonce)
    );
    let k = derive(passphrase, &salt, M_COST, T_COST, P_COST)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&k));
    let plain = key.to_file_string();
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: header.as_bytes(),
            },
        )
        .map_err(|_| KeyExportError::Format("encryption failed"))?;
    Ok(format!("{header}data {}\n", HEXLOWER.encode(&sealed)))
}

fn field<'a>(line: Option<&'a str>, name: &str) -> Result<&'a str, KeyExportError> {
    line.and_then(|l| l.strip_prefix(name))
        .and_then(|l| l.strip_prefix(' '))
        .ok_or(KeyExportError::Format("missing line"))
}

fn hex(text: &str) -> Result<Vec<u8>, KeyExportError> {
    HEXLOWER
        .decode(text.trim().as_bytes())
        .map_err(|_| KeyExportError::Format("bad hex"))
}

/// Decrypts an export file with its passphrase; returns the author key as exported (the
/// caller gives it this device's suffix).
pub fn open(text: &str, passphrase: &str) -> Result<AuthorKey, KeyExportError> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(KeyExportError::Format("unknown first line"));
    }
    let kdf = field(lines.next(), "kdf")?;
    let salt_hex = field(lines.next(), "salt")?;
    let nonce_hex = field(lines.next(), "nonce")?;
    let data = field(lines.next(), "data")?;
    let mut m = 0;
    let mut t = 0;
    let mut p = 0;
    let mut parts = kdf.split(' ');
    if parts.next() != Some("argon2id") {
        return Err(KeyExportError::Format("unknown kdf"));
    }
    for part in parts {
        let (name, value) = part.split_once('=').ok_or(KeyExportError::Format("kdf"))?;
        let value: u32 = value.parse().map_err(|_| KeyExportError::Format("kdf"))?;
        match name {
            "m" => m = value,
            "t" => t = value,
            "p" => p = value,
            _ => return Err(KeyExportError::Format("kdf")),
        }
    }
    if m > MAX_M_COST || t > 16 || p > 16 {
        return Err(KeyExportError::Format("kdf parameters out of range"));
    }
    let salt = hex(salt_hex)?;
    let nonce = hex(nonce_hex)?;
    if nonce.len() != 12 {
        return Err(KeyExportError::Format("nonce"));
    }
    let header = format!("{MAGIC}\nkdf {kdf}\nsalt {salt_hex}\nnonce {nonce_hex}\n");
    let k = derive(passphrase, &salt, m, t, p)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&k));
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &hex(data)?,
                aad: header.as_bytes(),
            },
        )
        .map_err(|_| KeyExportError::Decrypt)?;
    let plain = String::from_utf8(plain).map_err(|_| KeyExportError::Format("not text"))?;
    Ok(AuthorKey::from_file_str(&plain)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_passphrase() {
        let key = AuthorKey::from_secret([7; 32], [1; 8]);
        let text = seal(&key, "correct horse").unwrap();
        let opened = open(&text, "correct horse").unwrap();
        assert_eq!(opened.id(), key.id());
        assert!(matches!(
            open(&text, "wrong horse!"),
            Err(KeyExportError::Decrypt)
        ));
        // Any change to the header is caught by the authentication tag.
        let tampered = text.replace("t=2", "t=3");
        assert!(open(&tampered, "correct horse").is_err());
        assert!(matches!(
            seal(&key, "short"),
            Err(KeyExportError::WeakPassphrase)
        ));
        assert!(matches!(
            open("hello", "correct horse"),
            Err(KeyExportError::Format(_))
        ));
    }
}
