//! The node's local API: typed operations over HTTP/1.1 and JSON on a loopback address, for the
//! `agora` command, scripts and the web UI.
//!
//! ```text
//! <home>/api.json    {"addr": "127.0.0.1:PORT", "pid": N}   written when the API listens
//! <home>/api.token   64 hex characters, file mode 0600      new at every start
//! ```
//!
//! Every operation is one request type and one answer type ([`Operation`], listed in [`ops`]),
//! posted as JSON to `/v1/<path>`; the answer is the answer type as JSON with status 200, or
//! an [`ApiError`] as `{"error": {"kind": ..., "message": ...}}` with a status that says what
//! kind of failure it is. `GET /v1/health` answers `{"ok": true}`. `docs/local-api.md` lists
//! every route with an example.
//!
//! The server is axum on hyper, and it defends a service that only the owner's own programs
//! should reach, the way Syncthing and Kubo learned to (see [`guard`]): it listens on loopback
//! only, refuses a `Host` that is not its own loopback name (421, against DNS rebinding), a
//! foreign `Origin` (403), a missing or wrong bearer token (401), a state change by anything
//! but a `POST` of JSON (405, 415), and a body over [`MAX_BODY`] (413, from `Content-Length`,
//! before anything is read). Only then does a request take one of [`MAX_CONCURRENT`] permits
//! and have its body read, so a client without the token holds nothing but its connection,
//! which is closed if its request head takes longer than [`HEADER_TIMEOUT`]. Nothing answers
//! with CORS headers.
//!
//! The same server serves the web UI ([`ui`]) on every path outside `/v1/`: the guard's
//! addressing checks apply to it too, and it takes a session cookie from a one-time login link
//! instead of the token.

pub mod client;
mod error;
mod files;
pub mod guard;
mod op;
pub mod ops;
mod server;
pub mod ui;

pub use self::client::{Client, ClientError};
pub use self::error::{ApiError, ErrorKind};
pub use self::files::{Endpoint, Files};
pub use self::op::Operation;
pub use self::server::{HEADER_TIMEOUT, MAX_BODY, MAX_CONCURRENT, router, serve, serve_until};
