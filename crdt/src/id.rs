//! Identifiers: 32-byte values with a short, typed, printable form.
//!
//! The printable form is a type prefix, an underscore and the 32 bytes in lower-case base32
//! (the "extended hex" alphabet `0-9a-v`, no padding): `sw_…` for a subwiki, `doc_…` for a
//! document, `en_…` for an entry, `au_…` for an author, `blob_…` for an image. The prefix keeps
//! a post id from being pasted where an author id is wanted. Parsing accepts what `Display`
//! prints; the base32 part may also be in upper or mixed case, the prefix may not.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_DNSSEC;
use thiserror::Error;

/// A printable id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The text does not start with the prefix of the expected kind of id.
    #[error("expected an id starting with `{expected}_`, got `{got}`")]
    WrongPrefix {
        /// The prefix wanted.
        expected: &'static str,
        /// What was given (cut to a few characters).
        got: String,
    },
    /// The part after the prefix is not 32 bytes of base32.
    #[error("malformed {0} id: not 52 base32 characters")]
    Malformed(&'static str),
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The prefix of the printable form.
            pub const PREFIX: &'static str = $prefix;

            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first eight base32 characters: enough to tell ids apart on screen, never
            /// enough to identify one. Show it next to names, which are not unique.
            pub fn fingerprint(&self) -> String {
                let mut full = BASE32_DNSSEC.encode(&self.0);
                full.truncate(8);
                full
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, BASE32_DNSSEC.encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.fingerprint())
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_id($prefix, s).map(Self)
            }
        }
    };
}

fn parse_id(prefix: &'static str, s: &str) -> Result<[u8; 32], IdError> {
    let body = s
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or_else(|| IdError::WrongPrefix {
            expected: prefix,
            got: s.chars().take(12).collect(),
        })?;
    if body.len() != 52 {
        return Err(IdError::Malformed(prefix));
    }
    let lower = body.to_ascii_lowercase();
    let bytes = BASE32_DNSSEC
        .decode(lower.as_bytes())
        .map_err(|_| IdError::Malformed(prefix))?;
    bytes.try_into().map_err(|_| IdError::Malformed(prefix))
}

id_type!(
    /// A person: the 32 bytes of their ed25519 author public key.
    AuthorId,
    "au"
);
id_type!(
    /// An entry: the blake3 hash of its body bytes.
    EntryId,
    "en"
);
id_type!(
    /// A document (post, comment, profile, subwiki info): the id of its create-document entry.
    DocId,
    "doc"
);
id_type!(
    /// A subwiki: the id of its genesis entry.
    SubwikiId,
    "sw"
);
id_type!(
    /// An image or other blob: the blake3 hash of its bytes.
    BlobHash,
    "blob"
);

impl From<EntryId> for DocId {
    fn from(id: EntryId) -> Self {
        Self(id.0)
    }
}

impl From<DocId> for EntryId {
    fn from(id: DocId) -> Self {
        Self(id.0)
    }
}

impl From<EntryId> for SubwikiId {
    fn from(id: EntryId) -> Self {
        Self(id.0)
    }
}

impl From<SubwikiId> for EntryId {
    fn from(id: SubwikiId) -> Self {
        Self(id.0)
    }
}

impl BlobHash {
    /// The hash of a blob's bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn printable_forms_round_trip(bytes in any::<[u8; 32]>()) {
            let a = AuthorId::from_bytes(bytes);
            prop_assert_eq!(a.to_string().parse::<AuthorId>(), Ok(a));
            let d = DocId::from_bytes(bytes);
            prop_assert_eq!(d.to_string().to_uppercase().replace("DOC_", "doc_").parse::<DocId>(), Ok(d));
            let s = SubwikiId::from_bytes(bytes);
            prop_assert_eq!(s.to_string().parse::<SubwikiId>(), Ok(s));
            let e = EntryId::from_bytes(bytes);
            prop_assert_eq!(e.to_string().parse::<EntryId>(), Ok(e));
            let b = BlobHash::from_bytes(bytes);
            prop_assert_eq!(b.to_string().parse::<BlobHash>(), Ok(b));
        }

        #[test]
        fn garbage_never_parses_or_panics(s in "\\PC{0,80}") {
            // Random text is rejected unless it happens to be a valid id, which it cannot be
            // without the prefix.
            prop_assert!(s.parse::<SubwikiId>().is_err() || s.starts_with("sw_"));
        }
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let a = AuthorId::from_bytes([7; 32]);
        assert!(matches!(
            a.to_string().parse::<DocId>(),
            Err(IdError::WrongPrefix { .. })
        ));
        assert_eq!("sw_abc".parse::<SubwikiId>(), Err(IdError::Malformed("sw")));
        // A non-canonical final character (trailing bits set) is refused.
        let good = SubwikiId::from_bytes([0; 32]).to_string();
        let mut bad = good.clone();
        bad.pop();
        bad.push('v');
        assert!(bad.parse::<SubwikiId>().is_err());
    }
}
