//! Link cards: when a post is written with a link, the writer's node fetches the page once and
//! stores what the page says about itself (title, description, site name) in the post, as a
//! normal signed edit ([`agora_crdt::LinkCard`]). Readers' nodes only show what the document
//! holds: they never contact the site.
//!
//! The fetch is a request to an address that someone else controls (the page may redirect
//! anywhere), made from the person's own machine, so it is fenced in (server-side request
//! forgery; see `docs/threat-model.md`):
//!
//! - `http` and `https` only, on every hop; at most [`MAX_REDIRECTS`] redirects, each checked
//!   again as a new request;
//! - the host is resolved here and *every* address it resolves to must pass [`check_ip`]
//!   (no loopback, private, link-local, unique-local, shared (CGNAT), multicast, unspecified,
//!   documentation or reserved address, nor an IPv6 form embedding one); the connection goes to
//!   an address that passed ([`Checked`]), never to the name, so nothing is resolved twice;
//! - [`TIMEOUT`] for the whole fetch, redirects included; at most [`MAX_PAGE_BYTES`] of the
//!   page are read (the head comes first; reading stops there); only `text/html` and
//!   `application/xhtml+xml` are read; nothing is decompressed (`Accept-Encoding: identity`);
//! - at most [`MAX_FETCHES`] fetches at a time; more are skipped, not queued.
//!
//! The page is tokenized by html5ever's tokenizer (the HTML standard's tokenizer, already built
//! for the sanitiser): entities are decoded and `<script>`, `<style>` and the like are skipped
//! as the standard says. The texts are then cleaned and bounded by [`agora_crdt::LinkCard::new`].
//!
//! The client is hyper's HTTP/1.1 connection (already built for the local API) over tokio's TCP,
//! with rustls (already built for QUIC, with the same aws-lc-rs provider) and Mozilla's roots
//! (`webpki-roots`) for https.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agora_crdt::{Base, DocId, EntryId, LinkCard, PostContent};
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, CharacterTokens, EndTag, StartTag, TagToken, Token, TokenSink, TokenSinkResult,
    Tokenizer, TokenizerOpts,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::rustls;
use url::{Host, Position, Url};

use crate::{Node, NodeError};

#[cfg(test)]
mod tests;

/// The most redirects followed for one card.
pub const MAX_REDIRECTS: usize = 3;
/// The longest a fetch may take, redirects included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of a page read; the rest is not read.
pub const MAX_PAGE_BYTES: usize = 512 * 1024;
/// The most fetches a node makes at a time; a post written while they run gets no card.
pub const MAX_FETCHES: usize = 4;
/// The most addresses of one host considered.
const MAX_ADDRS: usize = 16;
/// The most text gathered from a `<title>` before it is cleaned and cut.
const MAX_GATHERED: usize = 4 * LinkCard::MAX_TITLE;
/// The `User-Agent` sent.
const USER_AGENT: &str = concat!("Agora-link-card/", env!("CARGO_PKG_VERSION"));

/// Whether a node makes link cards for the posts its owner writes ([`crate::Config::link_cards`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkCards {
    /// Fetch the page of a post's link once when the post is written with it. On by default;
    /// `agora up --no-link-cards` turns it off.
    pub enabled: bool,
    /// For tests only: let fetches reach loopback addresses (127.0.0.0/8, `::1`), where a
    /// test's HTTP server listens. Every other refused range stays refused.
    pub allow_loopback: bool,
}

impl Default for LinkCards {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_loopback: false,
        }
    }
}

/// Why no card was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The link is not an absolute http(s) URL with a host.
    #[error("not a fetchable link: {0}")]
    Url(String),
    /// A scheme other than http and https.
    #[error("only http and https links are fetched, not {0}:")]
    Scheme(String),
    /// The host resolves to an address that is never fetched.
    #[error("{host} is at {ip}, a {range} address: not fetched")]
    Refused {
        /// The host.
        host: String,
        /// The address refused.
        ip: IpAddr,
        /// Its range.
        range: Range,
    },
    /// The host could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// No connection could be made, or TLS or HTTP failed.
    #[error("{0}")]
    Connection(String),
    /// An answer other than a page or a redirect.
    #[error("the site answered {0}")]
    Status(u16),
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// Not an HTML page.
    #[error("not an HTML page ({0})")]
    NotHtml(String),
    /// The page says nothing about itself (no title, description or site name).
    #[error("the page has no title or description")]
    Empty,
    /// [`TIMEOUT`] passed.
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    TimedOut,
}

// ---------------------------------------------------------------------------------------------
// Addresses.

/// A range of addresses that link cards never fetch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Range {
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
    Shared,
    /// 169.254.0.0/16 (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7` (RFC 4193).
    UniqueLocal,
    /// `fec0::/10`, deprecated but still routed by some networks.
    SiteLocal,
    /// 224.0.0.0/4, `ff00::/8`.
    Multicast,
    /// 0.0.0.0/8 (0.0.0.0 reaches the machine itself), `::`.
    Unspecified,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// 198.18.0.0/15, `2001:2::/48`.
    Benchmarking,
    /// Teredo (`2001::/32`) and local-use NAT64 (`64:ff9b:1::/48`): addresses that stand for
    /// others that cannot be checked.
    Translated,
    /// Everything else not in public use: 192.0.0.0/24, 192.88.99.0/24, 240.0.0.0/4 (with the
    /// broadcast address), and IPv6 outside `2000::/3` not listed above.
    Reserved,
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::Shared => "shared (carrier-grade NAT)",
            Range::LinkLocal => "link-local",
            Range::UniqueLocal => "unique-local",
            Range::SiteLocal => "site-local",
            Range::Multicast => "multicast",
            Range::Unspecified => "unspecified",
            Range::Documentation => "documentation",
            Range::Benchmarking => "benchmarking",
            Range::Translated => "translated",
            Range::Reserved => "reserved",
        })
    }
}

/// Whether a link card may be fetched from `ip`: `Err` with its range if not. Loopback passes
/// only with `allow_loopback` (tests). IPv6 forms that embed an IPv4 address (mapped
/// `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) are judged by it.
pub fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), Range> {
    let range = match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    };
    match range {
        None => Ok(()),
        Some(Range::Loopback) if allow_loopback => Ok(()),
        Some(range) => Err(range),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Range::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Range::Private,
        (100, 64..=127, _) => Range::Shared,
        (127, _, _) => Range::Loopback,
        (169, 254, _) => Range::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Range::Documentation,
        (198, 18..=19, _) => Range::Benchmarking,
        (192, 0, 0) | (192, 88, 99) | (240..=255, _, _) => Range::Reserved,
        (224..=239, _, _) => Range::Multicast,
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<Range> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_range(v4);
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    Some(match (s0, s1, s2) {
        _ if ip.is_unspecified() => Range::Unspecified,
        _ if ip.is_loopback() => Range::Loopback,
        (0x64, 0xff9b, 0) if [s3, s4, s5] == [0, 0, 0] => return v4_range(embedded(s6, s7)),
        (0x64, 0xff9b, 1) => Range::Translated,
        (0x2002, _, _) => return v4_range(embedded(s1, s2)),
        (0x2001, 0, _) => Range::Translated,
        (0x2001, 0xdb8, _) => Range::Documentation,
        (0x2001, 2, 0) => Range::Benchmarking,
        (0x3fff, 0..=0x0fff, _) => Range::Documentation,
        _ if s0 & 0xfe00 == 0xfc00 => Range::UniqueLocal,
        _ if s0 & 0xffc0 == 0xfe80 => Range::LinkLocal,
        _ if s0 & 0xffc0 == 0xfec0 => Range::SiteLocal,
        _ if s0 & 0xff00 == 0xff00 => Range::Multicast,
        _ if s0 & 0xe000 == 0x2000 => return None,
        _ => Range::Reserved,
    })
}

/// Addresses of a host that all passed [`check_ip`]: the only addresses a fetch connects to.
#[derive(Debug)]
struct Checked(Vec<SocketAddr>);

/// Resolves `host` (an IP literal is not resolved) and checks every address it has.
async fn resolve(host: &Host<&str>, port: u16, allow_loopback: bool) -> Result<Checked, CardError> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
        Host::Domain(name) => tokio::net::lookup_host((*name, port))
            .await
            .map_err(|e| CardError::Resolve {
                host: (*name).to_owned(),
                reason: e.to_string(),
            })?
            .take(MAX_ADDRS)
            .collect(),
    };
    if addrs.is_empty() {
        return Err(CardError::Resolve {
            host: host.to_string(),
            reason: "no address".into(),
        });
    }
    // One refused address refuses the host: a name that mixes public and private addresses is
    // not to be trusted with the choice.
    for addr in &addrs {
        check_ip(addr.ip(), allow_loopback).map_err(|range| CardError::Refused {
            host: host.to_string(),
            ip: addr.ip(),
            range,
        })?;
    }
    Ok(Checked(addrs))
}

async fn connect(addrs: &Checked) -> Result<TcpStream, CardError> {
    let mut last = String::from("no address");
    for addr in &addrs.0 {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(CardError::Connection(last))
}

// ---------------------------------------------------------------------------------------------
// Fetching.

/// Fetches `link` and makes its card, within [`TIMEOUT`], following at most [`MAX_REDIRECTS`]
/// redirects, each hop checked as the module documentation says. The card's URL is `link`.
pub async fn fetch(link: &str, settings: &LinkCards) -> Result<LinkCard, CardError> {
    tokio::time::timeout(TIMEOUT, fetch_page(link, settings.allow_loopback))
        .await
        .unwrap_or(Err(CardError::TimedOut))
}

async fn fetch_page(link: &str, allow_loopback: bool) -> Result<LinkCard, CardError> {
    if link.len() > LinkCard::MAX_URL {
        return Err(CardError::Url(format!(
            "longer than {} bytes",
            LinkCard::MAX_URL
        )));
    }
    let mut url = Url::parse(link).map_err(|e| CardError::Url(e.to_string()))?;
    for _ in 0..=MAX_REDIRECTS {
        match get(&url, allow_loopback).await? {
            Got::Redirect(location) => {
                url = url
                    .join(&location)
                    .map_err(|e| CardError::Url(format!("redirect to {location:?}: {e}")))?;
            }
            Got::Page { content_type, body } => {
                let page = extract(&decode(&body, &content_type));
                let card = LinkCard::new(link, &page.title, &page.description, &page.site_name);
                return if card.is_empty() {
                    Err(CardError::Empty)
                } else {
                    Ok(card)
                };
            }
        }
    }
    Err(CardError::TooManyRedirects)
}

/// What one request brought.
enum Got {
    /// A redirect to this location (relative to the URL asked for).
    Redirect(String),
    /// An HTML page: its content type and at most [`MAX_PAGE_BYTES`] of it.
    Page { content_type: String, body: Vec<u8> },
}

/// One GET of `url`, to a checked address.
async fn get(url: &Url, allow_loopback: bool) -> Result<Got, CardError> {
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(CardError::Scheme(other.to_owned())),
    };
    let host = url
        .host()
        .ok_or_else(|| CardError::Url(format!("{url}: no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| CardError::Url(format!("{url}: no port")))?;
    let addrs = resolve(&host, port, allow_loopback).await?;
    let stream = connect(&addrs).await?;
    // Origin form (path and query, never the user name or password of the URL); Host with the
    // port only when it is not the scheme's.
    let request = Request::get(&url[Position::BeforePath..Position::AfterQuery])
        .header(
            header::HOST,
            &url[Position::BeforeHost..Position::AfterPort],
        )
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .header(header::ACCEPT_ENCODING, "identity")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| CardError::Url(format!("{url}: {e}")))?;
    if https {
        let name = match host {
            Host::Domain(name) => rustls::pki_types::ServerName::try_from(name.to_owned())
                .map_err(|e| CardError::Url(format!("{name}: {e}")))?,
            Host::Ipv4(ip) => IpAddr::V4(ip).into(),
            Host::Ipv6(ip) => IpAddr::V6(ip).into(),
        };
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, stream)
            .await
            .map_err(|e| CardError::Connection(format!("TLS: {e}")))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(stream), request).await
    }
}

/// The TLS client configuration, made once: Mozilla's roots, rustls's safe defaults (TLS 1.3
/// and 1.2) with the aws-lc-rs provider libp2p's QUIC already uses, HTTP/1.1 by ALPN.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, CardError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|e| CardError::Connection(format!("TLS: {e}")))
}

/// Aborts a spawned task when dropped (the fetch's timeout drops everything at once).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `request` over `io` with HTTP/1.1 and reads the answer.
async fn exchange<T>(io: T, request: Request<Empty<Bytes>>) -> Result<Got, CardError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| CardError::Connection(format!("HTTP: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or(CardError::Status(status.as_u16()))?;
        return Ok(Got::Redirect(location.to_owned()));
    }
    if !status.is_success() {
        return Err(CardError::Status(status.as_u16()));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "text/html" && essence != "application/xhtml+xml" {
        let shown = if essence.is_empty() {
            "no content type".to_owned()
        } else {
            essence
        };
        return Err(CardError::NotHtml(shown));
    }
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_PAGE_BYTES {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            // A page cut short still has its head.
            Some(Err(_)) if !bytes.is_empty() => break,
            Some(Err(e)) => return Err(http(e)),
        };
        if let Ok(data) = frame.into_data() {
            let room = MAX_PAGE_BYTES.saturating_sub(bytes.len());
            bytes.extend_from_slice(data.get(..room).unwrap_or(&data));
        }
    }
    Ok(Got::Page {
        content_type,
        body: bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading the page.

/// What a page says about itself, before it is cleaned and cut.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageMeta {
    /// `og:title`, else `twitter:title`, else the first `<title>`.
    pub title: String,
    /// `og:description`, else `<meta name="description">`, else `twitter:description`.
    pub description: String,
    /// `og:site_name`.
    pub site_name: String,
}

/// The text of a page: decoded by the byte-order mark, else the `charset` of the content type,
/// else a `charset` in the page's first 1,024 bytes, else as UTF-8 (malformed bytes become
/// U+FFFD).
pub fn decode(bytes: &[u8], content_type: &str) -> String {
    let label = |text: &str| -> Option<&'static encoding_rs::Encoding> {
        let lower = text.to_ascii_lowercase();
        let rest = lower.split("charset").nth(1)?;
        let rest = rest.trim_start().strip_prefix('=')?.trim_start();
        let rest = rest.trim_start_matches(['"', '\'']);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.:".contains(c)))
            .unwrap_or(rest.len());
        encoding_rs::Encoding::for_label(rest.get(..end)?.as_bytes())
    };
    let head = bytes.get(..1024).unwrap_or(bytes);
    let encoding = label(content_type)
        .or_else(|| label(&String::from_utf8_lossy(head)))
        .unwrap_or(encoding_rs::UTF_8);
    // A page cannot declare itself UTF-16 from inside (the HTML standard reads that as UTF-8).
    let encoding = if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        encoding_rs::UTF_8
    } else {
        encoding
    };
    // `decode` lets a byte-order mark override the label.
    encoding.decode(bytes).0.into_owned()
}

/// Reads the title, description and site name of an HTML page.
pub fn extract(html: &str) -> PageMeta {
    let tokenizer = Tokenizer::new(Scan::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let found = tokenizer.sink.0.take();
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| found.meta.iter().find(|(key, _)| key == k))
            .map(|(_, v)| v.clone())
    };
    PageMeta {
        title: pick(&["og:title", "twitter:title"]).unwrap_or(found.title),
        description: pick(&["og:description", "description", "twitter:description"])
            .unwrap_or_default(),
        site_name: pick(&["og:site_name"]).unwrap_or_default(),
    }
}

/// The meta keys read.
const META_KEYS: [&str; 6] = [
    "og:title",
    "og:description",
    "og:site_name",
    "description",
    "twitter:title",
    "twitter:description",
];

#[derive(Default)]
struct Found {
    /// The text of the first `<title>`.
    title: String,
    in_title: bool,
    seen_title: bool,
    /// The first value of each of [`META_KEYS`] present.
    meta: Vec<(&'static str, String)>,
}

/// A token sink that keeps what [`extract`] needs and switches the tokenizer into the raw text
/// states as the HTML standard's tree builder does, so that the text of a script or style is
/// never read as tags.
#[derive(Default)]
struct Scan(RefCell<Found>);

impl TokenSink for Scan {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut found = self.0.borrow_mut();
        match token {
            TagToken(tag) if tag.kind == StartTag => match &*tag.name {
                "title" => {
                    found.in_title = !found.seen_title;
                    return TokenSinkResult::RawData(RawKind::Rcdata);
                }
                "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
                "script" => return TokenSinkResult::RawData(RawKind::ScriptData),
                "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => {
                    return TokenSinkResult::RawData(RawKind::Rawtext);
                }
                "plaintext" => return TokenSinkResult::Plaintext,
                "meta" => {
                    let attr = |name: &str| {
                        tag.attrs
                            .iter()
                            .find(|a| &*a.name.local == name)
                            .map(|a| &*a.value)
                    };
                    let key = attr("property")
                        .or_else(|| attr("name"))
                        .map(|k| k.trim().to_ascii_lowercase());
                    let known = key.and_then(|k| META_KEYS.into_iter().find(|m| *m == k));
                    if let (Some(key), Some(content)) = (known, attr("content"))
                        && !found.meta.iter().any(|(k, _)| *k == key)
                    {
                        found.meta.push((key, content.to_owned()));
                    }
                }
                _ => {}
            },
            TagToken(tag) if tag.kind == EndTag && &*tag.name == "title" && found.in_title => {
                found.in_title = false;
                found.seen_title = true;
            }
            CharacterTokens(text) if found.in_title && found.title.len() < MAX_GATHERED => {
                found.title.push_str(&text);
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

// ---------------------------------------------------------------------------------------------
// The node's side: when to fetch, and writing the card.

/// A node's link card fetches: its settings, the slots for concurrent fetches, and a count of
/// the fetches that ended (tests wait on it).
#[derive(Debug)]
pub(crate) struct Fetcher {
    settings: LinkCards,
    slots: Arc<Semaphore>,
    ended: watch::Sender<u64>,
}

impl Fetcher {
    /// The fetcher of a node run with `settings`; `None` when link cards are off.
    pub(crate) fn new(settings: LinkCards) -> Option<Arc<Self>> {
        settings.enabled.then(|| {
            Arc::new(Self {
                settings,
                slots: Arc::new(Semaphore::new(MAX_FETCHES)),
                ended: watch::Sender::new(0),
            })
        })
    }

    fn ended(&self) {
        self.ended.send_modify(|n| *n += 1);
    }
}

/// Prepares a post about to be written by its owner: drops a card that is not for the post's
/// link, and returns the link if it has no card yet (the one to fetch once written).
pub(crate) fn wanted(post: &mut PostContent) -> Option<String> {
    if post.card_for_link().is_none() {
        post.card = None;
    }
    match (&post.link, &post.card) {
        (Some(link), None) => Some(link.clone()),
        _ => None,
    }
}

impl Node {
    /// Fetches the card of `link` in the background, if this node makes link cards, and writes
    /// it into `post` as an edit based on `written` (the version that set the link), provided
    /// the post's link is still `link` and it has no card for it by then. Never waited on:
    /// failures are logged and leave no card.
    pub(crate) fn fetch_card_later(&self, post: DocId, written: EntryId, link: String) {
        let Some(fetcher) = self.cards.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(slot) = fetcher.slots.clone().try_acquire_owned() else {
            tracing::info!(%post, "no link card: {MAX_FETCHES} fetches already running");
            fetcher.ended();
            return;
        };
        let node = self.clone();
        runtime.spawn(async move {
            match fetch(&link, &fetcher.settings).await {
                Ok(card) => match node.store_card(post, written, card).await {
                    Ok(true) => tracing::debug!(%post, "link card stored"),
                    Ok(false) => tracing::debug!(%post, "link changed: card not stored"),
                    Err(e) => tracing::warn!(%post, "cannot store the link card: {e}"),
                },
                Err(e) => tracing::info!(%post, "no link card for {link}: {e}"),
            }
            drop(slot);
            fetcher.ended();
        });
    }

    async fn store_card(
        &self,
        post: DocId,
        written: EntryId,
        card: LinkCard,
    ) -> Result<bool, NodeError> {
        let now = self.post(post)?.post.content;
        if now.link.as_deref() != Some(card.url.as_str()) || now.card_for_link().is_some() {
            return Ok(false);
        }
        let mut content = self.post_at(post, written)?;
        if content.link != now.link {
            return Ok(false);
        }
        content.card = Some(card);
        self.edit_post(post, Base::At(written.into()), content)
            .await?;
        Ok(true)
    }

    /// A counter of this node's link card fetches that ended (with a card or without); `None`
    /// when it makes no link cards. For tests, which wait on it instead of sleeping.
    #[doc(hidden)]
    pub fn link_card_fetches(&self) -> Option<watch::Receiver<u64>> {
        self.cards.as_ref().map(|f| f.ended.subscribe())
    }
}
