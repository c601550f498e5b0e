//! A client of a running node's API: the `agora` command's way in, one connection per call.

use std::path::Path;

use axum::http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::http::error::Envelope;
use crate::http::{ApiError, Endpoint, Files, Operation};

/// The largest answer read: 64 MiB.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a call to a running node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens there: the node is not running (stale files).
    #[error("the node is not running")]
    NotRunning,
    /// The node answered with an error.
    #[error(transparent)]
    Api(ApiError),
    /// The connection broke or the answer was not understood.
    #[error("{0}")]
    Broken(String),
}

/// A client of one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: String,
}

impl Client {
    /// A client of the API at `endpoint` with `token`.
    pub fn new(endpoint: Endpoint, token: String) -> Self {
        Self { endpoint, token }
    }

    /// A client of the node running for `home`, if its API files are there (the node may
    /// still have stopped without removing them: calls then fail with `NotRunning`).
    pub fn for_home(home: &Path) -> Option<Self> {
        Files::new(home).read().map(|(e, t)| Self::new(e, t))
    }

    /// Where it calls.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Runs an operation on the node.
    pub async fn call<O: Operation>(&self, request: &O) -> Result<O::Answer, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Broken(e.to_string()))?;
        let (status, bytes) = self
            .send("POST", &format!("/v1/{}", O::PATH), Some(body))
            .await?;
        if status == StatusCode::OK {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Broken(format!("malformed answer: {e}")));
        }
        match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(envelope) => Err(ClientError::Api(envelope.error)),
            Err(_) => Err(ClientError::Broken(format!("status {status}"))),
        }
    }

    /// Sends one request with the token and the proper `Host`; the status and the body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let broken = |e: &dyn std::fmt::Display| ClientError::Broken(e.to_string());
        let stream = match TcpStream::connect(self.endpoint.addr).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(ClientError::NotRunning);
            }
            Err(e) => return Err(broken(&e)),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| broken(&e))?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.endpoint.addr.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| broken(&e))?;
        let response = sender.send_request(request).await.map_err(|e| broken(&e))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| broken(&e))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}
