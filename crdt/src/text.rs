//! The model's names as text: the edit policy, votes and role actions as the lower-case words
//! people type (`trusted`, `misleading`, `appoint_moderator`), and, with the feature `serde`,
//! serde for them and for the identifiers in their printable form (`sw_…`, `post_…`), times
//! as milliseconds. Local front ends (the node's HTTP API) use it; entries themselves never go
//! through serde (they are signed canonical bytes).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::entry::{EditPolicy, RoleAction, VoteValue};
use crate::version::{Base, VersionError};

/// A word that names none of the values of its kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {kind} {word:?} (one of: {choices})")]
pub struct UnknownName {
    kind: &'static str,
    word: String,
    choices: &'static str,
}

macro_rules! names {
    ($kind:literal, $name:ty { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $name {
            /// The word for this value.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $word),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(word: &str) -> Result<Self, UnknownName> {
                match word {
                    $($word => Ok(Self::$variant),)*
                    _ => Err(UnknownName {
                        kind: $kind,
                        word: word.to_owned(),
                        choices: concat!($($word, " "),*).trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

names!("edit policy", EditPolicy { Open => "open", Trusted => "trusted" });
names!("vote", VoteValue {
    Hide => "hide",
    Keep => "keep",
    Misleading => "misleading",
    Verified => "verified",
    Withdraw => "withdraw",
    Mute => "mute",
    Unmute => "unmute",
});
names!("role action", RoleAction {
    AppointModerator => "appoint_moderator",
    RemoveModerator => "remove_moderator",
    Vouch => "vouch",
    Revoke => "revoke",
});

/// An edit's base as text: `latest`, or a version.
impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::Latest => f.write_str("latest"),
            Base::At(v) => v.fmt(f),
        }
    }
}

impl FromStr for Base {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, VersionError> {
        if text == "latest" {
            Ok(Base::Latest)
        } else {
            text.parse().map(Base::At)
        }
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use std::fmt;
    use std::str::FromStr;

    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    use crate::entry::{EditPolicy, RoleAction, Timestamp, VoteValue};
    use crate::id::{AuthorId, BlobHash, DocId, EntryId, SubwikiId};
    use crate::replica::FeedCursor;
    use crate::version::{Base, Version};

    /// Deserialises any `FromStr` type from a string, with the parse error as the message.
    struct FromText<T>(std::marker::PhantomData<T>);

    impl<T> Visitor<'_> for FromText<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(E::custom)
        }
    }

    macro_rules! as_text {
    ($($name:ty),* $(,)?) => {$(
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(FromText(std::marker::PhantomData))
            }
        }
    )*};
}

    as_text!(
        SubwikiId, DocId, EntryId, AuthorId, BlobHash, FeedCursor, EditPolicy, VoteValue,
        RoleAction, Version, Base,
    );

    impl Serialize for Timestamp {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_u64(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Timestamp {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            u64::deserialize(deserializer).map(Timestamp)
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;

        fn round_trip<T>(value: T, text: &str)
        where
            T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
        {
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, text);
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
        }

        #[test]
        fn names_and_ids_read_as_people_write_them() {
            round_trip(EditPolicy::Trusted, "\"trusted\"");
            round_trip(VoteValue::Misleading, "\"misleading\"");
            round_trip(RoleAction::AppointModerator, "\"appoint_moderator\"");
            round_trip(Timestamp(42), "42");
            let doc = DocId::from_bytes([7; 32]);
            round_trip(doc, &format!("\"{doc}\""));
            let err = serde_json::from_str::<DocId>("\"sw_nope\"").unwrap_err();
            assert!(err.to_string().contains("expected an id"), "{err}");
            assert!(serde_json::from_str::<VoteValue>("\"frown\"").is_err());
            round_trip(Base::Latest, "\"latest\"");
            let v = Version::new([EntryId::from_bytes([1; 32]), EntryId::from_bytes([2; 32])]);
            round_trip(Base::At(v.clone()), &format!("\"{v}\""));
            assert!(v.to_string().contains('+'));
        }
    }
}
