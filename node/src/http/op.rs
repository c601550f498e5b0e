//! What an operation of the API is.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Node;
use crate::http::ApiError;

/// One operation of the local API: a request type that says everything the operation needs,
/// with its answer type and the code that runs it on a [`Node`]. The server routes
/// `POST /v1/{PATH}` to [`Operation::run`]; the [`crate::http::Client`] sends the same type;
/// the `agora` command parses it from its arguments and, with no node running, runs it on a
/// node it opens itself. Adding an operation is adding one such type.
pub trait Operation: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its route under `/v1/`, e.g. `post/new`.
    const PATH: &'static str;
    /// Whether it needs peers: run without a running node, it gets a temporary network node.
    const NEEDS_NETWORK: bool = false;
    /// What it answers.
    type Answer: Serialize + DeserializeOwned + Send + 'static;

    /// Runs it.
    fn run(self, node: &Node) -> impl Future<Output = Result<Self::Answer, ApiError>> + Send;
}
