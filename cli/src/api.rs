//! The local API of a running node: HTTP/1.1 and JSON on a loopback address, authenticated by
//! a token that only the home's owner can read.
//!
//! ```text
//! <home>/api.json    {"addr": "127.0.0.1:PORT", "pid": N}   written when `agora up` listens
//! <home>/api.token   64 hex characters, file mode 0600      new at every start
//! ```
//!
//! Every request must carry `Authorization: Bearer <token>`; others get 401 and nothing runs.
//! The token also stops web pages in the user's browser from driving the node (they cannot read
//! the file). Routes:
//!
//! - `POST /v1/call` with a [`Call`] as JSON: 200 with the result, or an error status with
//!   `{"error": {"kind": ..., "message": ...}}` (400 usage, 404 not found, 409 locked, 502
//!   unreachable, 500 otherwise).
//! - `GET /v1/health`: `{"ok": true}`.
//!
//! One request per connection (`Connection: close`); the server is small on purpose, for one
//! user's commands and a local UI, not for the network.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_node::Node;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::call::{self, Call, CallError, Kind};

/// The largest request head (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// The largest request body.
const MAX_BODY: usize = 1024 * 1024;
/// The largest response body a client accepts.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// How long a client connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many requests are served at once.
const MAX_CONCURRENT: usize = 32;

/// Where a running node's API is, as written in `<home>/api.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    /// The process id of `agora up`.
    pub pid: u32,
}

/// The API files of a home.
#[derive(Debug, Clone)]
pub struct Files {
    endpoint: PathBuf,
    token: PathBuf,
}

impl Files {
    /// The API files in `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            endpoint: home.join("api.json"),
            token: home.join("api.token"),
        }
    }

    /// Writes a new token (mode 0600) and the endpoint; returns the token.
    pub fn publish(&self, endpoint: &Endpoint) -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let token = data_encoding::HEXLOWER.encode(&bytes);
        let _ = std::fs::remove_file(&self.token);
        write_private(&self.token, token.as_bytes())?;
        let json = serde_json::to_vec(endpoint).map_err(std::io::Error::other)?;
        std::fs::write(&self.endpoint, json)?;
        Ok(token)
    }

    /// Removes the files (at shutdown).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.endpoint);
        let _ = std::fs::remove_file(&self.token);
    }

    /// The endpoint and token of a node that may be running, if the files are there.
    pub fn read(&self) -> Option<(Endpoint, String)> {
        let endpoint = serde_json::from_slice(&std::fs::read(&self.endpoint).ok()?).ok()?;
        let token = std::fs::read_to_string(&self.token).ok()?;
        Some((endpoint, token.trim().to_owned()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A parsed request.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    token: Option<String>,
    body: Vec<u8>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    body: Value,
}

impl Response {
    fn error(status: u16, kind: Kind, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": CallError::new(kind, message) }),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        502 => "Bad Gateway",
        _ => "Internal Server Error",
    }
}

fn status_of(kind: Kind) -> u16 {
    match kind {
        Kind::Usage => 400,
        Kind::NotFound => 404,
        Kind::Locked => 409,
        Kind::Unreachable => 502,
        Kind::Failed | Kind::NoIdentity => 500,
    }
}

/// Reads one request; `Err` carries the response to send instead.
async fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(Response::error(413, Kind::Usage, "request head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| Response::error(400, Kind::Usage, e.to_string()))?;
        if n == 0 {
            return Err(Response::error(400, Kind::Usage, "incomplete request"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut token = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = value
                    .parse()
                    .map_err(|_| Response::error(400, Kind::Usage, "bad content-length"))?;
            }
            "authorization" => token = value.strip_prefix("Bearer ").map(str::to_owned),
            _ => {}
        }
    }
    if length > MAX_BODY {
        return Err(Response::error(413, Kind::Usage, "request body too large"));
    }
    let mut body = buf.get(head_end + 4..).unwrap_or_default().to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| Response::error(400, Kind::Usage, e.to_string()))?;
        if n == 0 {
            return Err(Response::error(400, Kind::Usage, "incomplete body"));
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    body.truncate(length);
    Ok(Request {
        method,
        path,
        token,
        body,
    })
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let body = serde_json::to_vec(&response.body).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

async fn answer(node: &Node, token: &str, request: Request) -> Response {
    if !request
        .token
        .as_deref()
        .is_some_and(|t| same_token(t, token))
    {
        return Response::error(401, Kind::Usage, "missing or wrong API token");
    }
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/v1/health") => Response {
            status: 200,
            body: json!({ "ok": true }),
        },
        ("POST", "/v1/call") => {
            let call: Call = match serde_json::from_slice(&request.body) {
                Ok(c) => c,
                Err(e) => return Response::error(400, Kind::Usage, format!("bad call: {e}")),
            };
            match call::execute(node, call).await {
                Ok(body) => Response { status: 200, body },
                Err(e) => Response {
                    status: status_of(e.kind),
                    body: json!({ "error": e }),
                },
            }
        }
        (_, "/v1/call" | "/v1/health") => Response::error(405, Kind::Usage, "method not allowed"),
        _ => Response::error(404, Kind::NotFound, "no such route"),
    }
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, node: Node, token: String) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else {
            continue;
        };
        if !peer.ip().is_loopback() {
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let node = node.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let response =
                match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
                    Ok(Ok(request)) => answer(&node, &token, request).await,
                    Ok(Err(response)) => response,
                    Err(_) => Response::error(400, Kind::Usage, "request timed out"),
                };
            if let Err(e) = write_response(&mut stream, &response).await {
                tracing::debug!(%peer, "API response not sent: {e}");
            }
            drop(permit);
        });
    }
}

/// Why a request to a running node failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens there: the node is not running (stale files).
    NotRunning,
    /// The node answered with an error.
    Call(CallError),
    /// The connection broke or the answer was not understood.
    Broken(String),
}

/// Sends one request to a running node.
pub async fn request(
    endpoint: &Endpoint,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ClientError> {
    let mut stream = match TcpStream::connect(endpoint.addr).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ClientError::NotRunning);
        }
        Err(e) => return Err(ClientError::Broken(e.to_string())),
    };
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap_or_default())
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.addr,
        body.len()
    );
    let broken = |e: std::io::Error| ClientError::Broken(e.to_string());
    stream.write_all(head.as_bytes()).await.map_err(broken)?;
    stream.write_all(&body).await.map_err(broken)?;
    let mut response = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut response)
        .await
        .map_err(broken)?;
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(ClientError::Broken("malformed response".into()));
    };
    let head = String::from_utf8_lossy(response.get(..split).unwrap_or_default()).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Broken("malformed status line".into()))?;
    let value: Value = serde_json::from_slice(response.get(split + 4..).unwrap_or_default())
        .map_err(|e| ClientError::Broken(format!("malformed response body: {e}")))?;
    if status == 200 {
        return Ok(value);
    }
    match serde_json::from_value::<CallError>(value.get("error").unwrap_or(&Value::Null).clone()) {
        Ok(e) => Err(ClientError::Call(e)),
        Err(_) => Err(ClientError::Broken(format!("status {status}"))),
    }
}
