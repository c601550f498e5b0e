//! The web UI: pages served by the node itself on its local API address, for people who do not
//! live in a terminal.
//!
//! Every page is rendered on the server from a compile-time checked template (askama; one
//! template per page under `node/templates/`, sharing `layout.html`). A handler gathers typed
//! data by running the same [`Operation`]s the CLI sends, and the template only shows it. Every
//! page works as plain HTML forms; one small first-party script (`assets/app.js`) localises
//! times and refreshes the page's live part when the node says something changed (server-sent
//! events from [`Node::changes`], `/events`).
//!
//! # Defences
//!
//! The UI shares the API's address and its guard's first checks (loopback `Host` against DNS
//! rebinding, no foreign `Origin`, no cross-site fetch). Instead of the API's bearer token it
//! takes a session cookie (HttpOnly, SameSite=Strict) made from a one-time login link
//! ([`session`]), and every state change is a POST of a form carrying the session's CSRF token.
//! Pages are sent with a Content-Security-Policy that allows scripts, styles, images and
//! connections from the node's own origin only (no inline script), forbids framing, and sends
//! no referrer. Post bodies are Markdown rendered then sanitised ([`markdown`]). Images (blobs,
//! written by anyone) are served with `X-Content-Type-Options: nosniff`, a content type from an
//! allow-list of image formats read from their first bytes (anything else is an attachment of
//! type `application/octet-stream`) and `Content-Security-Policy: sandbox`, so a crafted
//! "image" cannot run script in the UI's origin. Nothing is loaded from any other origin.

pub mod markdown;
mod pages;
mod search;
pub mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::Node;

pub use self::session::Sessions;

/// The Content-Security-Policy of every page.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Live streams (`/events`) open at once; past that a page gets 503 and stays a plain page.
pub const MAX_LIVE: usize = 64;

/// The UI's routes (paths outside `/v1/`) but its live stream, for the API's router.
pub(crate) fn routes(router: Router<Node>) -> Router<Node> {
    search::routes(pages::routes(router))
}

/// The UI's live stream, which stays open as long as a page does.
pub(crate) fn live_routes(router: Router<Node>) -> Router<Node> {
    pages::live_routes(router)
}

/// Adds the security headers of every UI response that has not set its own.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(PAGE_CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
