//! The server: an axum router of every operation behind the [`guard`](super::guard), served by
//! hyper on a loopback listener.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::Node;
use crate::http::guard::{self, Guard, Refusal};
use crate::http::{ApiError, Operation, ops, ui};

/// The largest request body: 1 MiB (images travel by path, not in the body).
pub const MAX_BODY: usize = 1024 * 1024;
/// The largest body of a UI form: an image and its post.
pub const MAX_UI_BODY: usize = crate::store::MAX_BLOB_BYTES + 256 * 1024;
/// Requests being served at once, after the guard; more wait for a permit.
pub const MAX_CONCURRENT: usize = 32;
/// How long a client may take to send its request head before the connection is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its body, once the guard let it in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; a connection over this is closed at once.
const MAX_CONNECTIONS: usize = 512;

/// Runs an operation: reads its JSON body (bounded), decodes the request type, runs it.
async fn handle<O: Operation>(State(node): State<Node>, body: Body) -> Response {
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            // The only errors a body read returns here are the limit and the timeout layers'.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            return if too_large {
                Refusal::TooLarge.response()
            } else {
                ApiError::usage(format!("cannot read the request body: {e}"))
                    .respond(StatusCode::REQUEST_TIMEOUT)
            };
        }
    };
    let request: O = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::usage(format!("malformed {} request: {e}", O::PATH)).into_response();
        }
    };
    match request.run(&node).await {
        Ok(answer) => match serde_json::to_vec(&answer) {
            Ok(json) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                json,
            )
                .into_response(),
            Err(e) => ApiError::failed(e).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Adds the route of one operation.
pub(crate) fn route<O: Operation>(router: Router<Node>) -> Router<Node> {
    router.route(&format!("/v1/{}", O::PATH), post(handle::<O>))
}

async fn health() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
        .into_response()
}

async fn no_route() -> Response {
    ApiError::new(crate::http::ErrorKind::NotFound, "no such route").into_response()
}

/// The API's router for a node whose server listens on `port` with `token`: every operation
/// of [`ops`], behind the guard, then the concurrency, body-size and body-time limits.
pub fn router(node: Node, port: u16, token: String) -> Router {
    // One limit for the API and the UI's pages (clones of the layer share its semaphore).
    // The UI's live stream stays open as long as a page is, so it does not take a permit; it
    // has its own cap (`ui::MAX_LIVE`).
    let limit = GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT);
    let api = ops::routes(Router::new())
        .route("/v1/health", get(health))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(limit.clone());
    // The UI takes image uploads: its bodies may be as large as an image, plus the form.
    let ui = ui::routes(Router::new())
        .layer(RequestBodyLimitLayer::new(MAX_UI_BODY))
        .layer(limit)
        .merge(ui::live_routes(Router::new()))
        .layer(axum::middleware::from_fn(ui::headers));
    api.merge(ui)
        .fallback(no_route)
        .with_state(node)
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(axum::middleware::from_fn_with_state(
            Guard::new(port, token),
            guard::check,
        ))
}

/// Serves `router` on `listener` (which must be on loopback) until the task is dropped.
/// Connections from anything but loopback are closed unanswered.
pub async fn serve(listener: TcpListener, router: Router) {
    serve_until(listener, router, true, std::future::pending()).await;
}

/// Serves `router` on `listener` until `stop` completes, each connection with hyper's HTTP/1.1
/// and a [`HEADER_TIMEOUT`] for its request head, at most 512 at once. With `loopback_only`,
/// connections from other addresses are closed unanswered. (`agora-bootstrap` serves its
/// metrics this way on an operator's address.)
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    loopback_only: bool,
    stop: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if loopback_only && !peer.ip().is_loopback() {
            continue;
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection refused: too many open");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
            drop(permit);
        });
    }
}
