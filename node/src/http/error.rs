//! The error every operation answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::store::StoreError;

/// What went wrong, sorted by what the caller can do about it. The `agora` command maps each
/// kind to its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Something else: the store, the disk, a bug.
    Failed,
    /// A malformed id, address or argument.
    Usage,
    /// An id this node does not know.
    NotFound,
    /// The home is in use by another process.
    Locked,
    /// No peer could be reached.
    Unreachable,
    /// The home has no identity yet.
    NoIdentity,
    /// The API refused the request itself (host, origin, token, method, content type or
    /// size); the HTTP status says which. Nothing ran.
    Refused,
    /// The owner may not do this: retract what someone else wrote without being the founder
    /// or a moderator, edit others' posts without being trusted where only trusted members
    /// may.
    NotAllowed,
    /// The post or comment was retracted or redacted: its content is gone.
    Gone,
}

impl ErrorKind {
    /// The HTTP status an operation's error of this kind is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Usage => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Locked => StatusCode::CONFLICT,
            ErrorKind::Unreachable => StatusCode::BAD_GATEWAY,
            ErrorKind::Refused | ErrorKind::NotAllowed => StatusCode::FORBIDDEN,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::Failed | ErrorKind::NoIdentity => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed operation: a kind and one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What to tell the user.
    pub message: String,
}

impl ApiError {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A malformed argument.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// Any other failure.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Failed, message.to_string())
    }

    /// The response for this error with an explicit status (the guard's refusals).
    pub(crate) fn respond(&self, status: StatusCode) -> Response {
        let body = serde_json::to_vec(&Envelope {
            error: self.clone(),
        })
        .unwrap_or_default();
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// How an error travels: `{"error": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) error: ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(self.kind.status())
    }
}

/// What a node's refusal means to its caller: what was asked cannot be (over a size limit, not
/// an image: usage, exit 2), names what is not here (exit 3), is not the owner's to do (a
/// retraction of someone else's post by a member, an edit by an untrusted one: exit 7), is
/// about a post or comment already retracted or redacted (exit 8), or failed.
impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        use agora_crdt::{DecodeError, EntryError, IngestError, LocalError};
        let too_large = |e: &EntryError| {
            matches!(
                e,
                EntryError::TooLarge { .. } | EntryError::Decode(DecodeError::TooLong { .. })
            )
        };
        let kind = match &e {
            NodeError::UnknownSubwiki(_)
            | NodeError::UnknownDocument(_)
            | NodeError::Local(LocalError::UnknownVersion(_) | LocalError::UnknownDocument(_)) => {
                ErrorKind::NotFound
            }
            NodeError::Store(StoreError::Locked(_)) => ErrorKind::Locked,
            NodeError::Entry(entry) | NodeError::Local(LocalError::Entry(entry))
                if too_large(entry) =>
            {
                ErrorKind::Usage
            }
            NodeError::Local(LocalError::TooLarge { .. } | LocalError::EmptyVersion)
            | NodeError::Store(StoreError::BlobTooLarge { .. })
            | NodeError::NotAnImage
            | NodeError::Search(crate::search::SearchError::Query(_)) => ErrorKind::Usage,
            NodeError::Local(
                LocalError::NotAllowedToRetract { .. } | LocalError::NotTrusted { .. },
            ) => ErrorKind::NotAllowed,
            NodeError::Local(
                LocalError::AlreadyRetracted(_) | LocalError::Ingest(IngestError::Retracted(_)),
            ) => ErrorKind::Gone,
            _ => ErrorKind::Failed,
        };
        ApiError::new(kind, e.to_string())
    }
}
