//! The checks every request passes before anything runs or is read, cheapest first.
//!
//! 1. `Host` must name this server by a loopback name and its own port (`127.0.0.1:PORT`,
//!    `localhost:PORT`, `[::1]:PORT`): a web page that rebinds its own DNS name to 127.0.0.1
//!    sends its own name, and gets 421.
//! 2. An `Origin`, if sent, must be this server's own (`http://` and one of those names):
//!    browsers send it with every cross-origin request and every POST; a foreign one gets 403.
//!    A request a browser marks `Sec-Fetch-Site: cross-site` gets 403 too.
//! 3. The bearer token from `<home>/api.token` (compared in constant time), else 401.
//! 4. Operations change state, so they take only `POST` (405 otherwise) with a JSON content
//!    type (415 otherwise: an HTML form cannot send one, and a script on another origin cannot
//!    send one without a CORS preflight, which this server never approves).
//! 5. A declared `Content-Length` over the limit gets 413 before the body is read.
//!
//! No response carries `Access-Control-Allow-*` headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::{ApiError, ErrorKind, MAX_BODY};

/// What the guard knows: the server's port and the token.
#[derive(Debug, Clone)]
pub struct Guard {
    port: u16,
    token: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A `Host` that is not this server's loopback name and port.
    Host,
    /// A foreign `Origin`, or a cross-site fetch.
    Origin,
    /// No token, or the wrong one.
    Token,
    /// Not a `POST`.
    Method,
    /// Not JSON.
    ContentType,
    /// A body over the limit.
    TooLarge,
}

impl Refusal {
    /// Its HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Host => StatusCode::MISDIRECTED_REQUEST,
            Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::Token => StatusCode::UNAUTHORIZED,
            Refusal::Method => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Host => "this API answers only to its own loopback address",
            Refusal::Origin => "requests from other origins are refused",
            Refusal::Token => "missing or wrong API token",
            Refusal::Method => "operations take POST",
            Refusal::ContentType => "operations take a JSON body (Content-Type: application/json)",
            Refusal::TooLarge => "request body too large",
        }
    }

    /// The JSON response for it.
    pub fn response(self) -> Response {
        ApiError::new(ErrorKind::Refused, self.message()).respond(self.status())
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The loopback names this server answers to.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Guard {
    /// A guard for a server on `port` with `token`.
    pub fn new(port: u16, token: String) -> Self {
        Self { port, token }
    }

    /// Whether `host` (a `Host` header) names this server.
    pub fn is_own_host(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        port.parse() == Ok(self.port) && LOOPBACK_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Whether `origin` (an `Origin` header) is this server's own.
    pub fn is_own_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.is_own_host(host))
    }

    /// Checks 1 and 2: the request is addressed to this server and comes from no other origin.
    pub fn check_addressing(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if !header_text(headers, header::HOST).is_some_and(|h| self.is_own_host(h)) {
            return Err(Refusal::Host);
        }
        if let Some(origin) = headers.get(header::ORIGIN)
            && !origin.to_str().is_ok_and(|o| self.is_own_origin(o))
        {
            return Err(Refusal::Origin);
        }
        if headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
        {
            return Err(Refusal::Origin);
        }
        Ok(())
    }

    /// Check 3: the bearer token.
    pub fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let given = header_text(headers, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if same_secret(given.trim().as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::Token)
        }
    }

    /// Checks 4 and 5 for an operation: a POST of JSON, not declared larger than `limit`.
    pub fn check_operation(
        method: &Method,
        headers: &HeaderMap,
        limit: usize,
    ) -> Result<(), Refusal> {
        if method != Method::POST {
            return Err(Refusal::Method);
        }
        let json = header_text(headers, header::CONTENT_TYPE).is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(Refusal::ContentType);
        }
        let declared = header_text(headers, header::CONTENT_LENGTH)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if declared > limit as u64 {
            return Err(Refusal::TooLarge);
        }
        Ok(())
    }
}

/// The middleware in front of every route: checks 1 to 3 (and 4, 5 for `/v1/` operations other
/// than `GET /v1/health`). Paths outside `/v1/` are the web UI's: they pass checks 1 and 2
/// here, and the UI checks its session cookie and CSRF tokens itself (`http::ui`).
pub(crate) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let api = request.uri().path().starts_with("/v1/");
    let verdict = guard.check_addressing(headers).and_then(|()| {
        if !api {
            return Ok(());
        }
        guard.check_token(headers).and_then(|()| {
            if request.uri().path() == "/v1/health" && request.method() == Method::GET {
                Ok(())
            } else {
                Guard::check_operation(request.method(), headers, MAX_BODY)
            }
        })
    });
    match verdict {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(?refusal, path = %request.uri().path(), "API request refused");
            refusal.response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = value.parse() {
                map.insert(*name, v);
            }
        }
        map
    }

    #[test]
    fn only_own_loopback_names_and_origins_pass() {
        let g = Guard::new(8080, "t".into());
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert!(g.is_own_host(host), "{host}");
        }
        for host in [
            "127.0.0.1:8081",
            "evil.example:8080",
            "127.0.0.1",
            "127.0.0.1.evil.example:8080",
            "",
        ] {
            assert!(!g.is_own_host(host), "{host}");
        }
        assert!(g.is_own_origin("http://localhost:8080"));
        assert!(!g.is_own_origin("https://localhost:8080"));
        assert!(!g.is_own_origin("http://evil.example"));
        assert!(!g.is_own_origin("null"));

        let ok = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(g.check_addressing(&ok), Ok(()));
        let foreign = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(g.check_addressing(&foreign), Err(Refusal::Origin));
        let cross = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(g.check_addressing(&cross), Err(Refusal::Origin));
        assert_eq!(g.check_addressing(&HeaderMap::new()), Err(Refusal::Host));
    }

    #[test]
    fn tokens_and_operations_are_checked() {
        let g = Guard::new(1, "secret".into());
        assert_eq!(
            g.check_token(&headers(&[("authorization", "Bearer secret")])),
            Ok(())
        );
        for wrong in ["Bearer secreT", "Bearer secre", "secret", ""] {
            assert_eq!(
                g.check_token(&headers(&[("authorization", wrong)])),
                Err(Refusal::Token),
                "{wrong}"
            );
        }
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(Guard::check_operation(&Method::POST, &json, 10), Ok(()));
        assert_eq!(
            Guard::check_operation(&Method::GET, &json, 10),
            Err(Refusal::Method)
        );
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            Guard::check_operation(&Method::POST, &form, 10),
            Err(Refusal::ContentType)
        );
        let big = headers(&[
            ("content-type", "application/json"),
            ("content-length", "11"),
        ]);
        assert_eq!(
            Guard::check_operation(&Method::POST, &big, 10),
            Err(Refusal::TooLarge)
        );
    }
}
