//! What a browser tab or a local program sends to the node's local API and UI: a request built
//! from the input (an operation or page, a JSON or form body, with or without the token, a right
//! or wrong Host and Origin) goes through the node's real router, on a node with a subwiki and a
//! post; it must never panic, and every answer has a status. `export` and `import` are left out:
//! they name files on this machine. So are `subwiki/join` and `subwiki/discover`: they wait for
//! peers, up to a time the request names (60 s by default), and this node is offline (the first
//! run stopped on such a wait, which libFuzzer reported as a timeout).
#![no_main]

use std::sync::OnceLock;

use agora_node::Node;
use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tower::Service;

const TOKEN: &str = "fuzz-token";
const PORT: u16 = 7130;

const OPERATIONS: &[&str] = &[
    "subwiki/create",
    "subwiki/leave",
    "subwiki/list",
    "subwiki/show",
    "subwiki/invite",
    "post/new",
    "post/edit",
    "post/show",
    "post/history",
    "post/revert",
    "post/export",
    "comment",
    "feed",
    "vote",
    "mute",
    "unmute",
    "vouch",
    "revoke",
    "moderator/add",
    "moderator/remove",
    "modlog",
    "override/ignore",
    "override/restore",
    "override/list",
    "peers",
    "status",
    "ui/login",
    "health",
];
const PAGES: &[&str] = &[
    "/",
    "/feed",
    "/feed?hidden=1&before=",
    "/subwikis",
    "/new",
    "/node",
    "/events",
    "/login?t=",
    "/assets/app.css",
    "/assets/app.js",
    "/blob/",
    "/post/",
    "/subwiki/",
];

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// A real subwiki and post ids, for the fuzzer to splice into bodies.
    ids: Vec<String>,
    _home: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let node = Node::open_offline(home.path()).unwrap();
        let (subwiki, post) = runtime.block_on(async {
            let subwiki = node
                .create_subwiki("fuzz", "", Default::default())
                .await
                .unwrap();
            let post = node
                .create_post(subwiki, agora_crdt::PostContent::default())
                .await
                .unwrap();
            (subwiki, post)
        });
        let router = agora_node::http::router(node, PORT, TOKEN.into());
        World {
            runtime,
            router,
            ids: vec![subwiki.to_string(), post.to_string()],
            _home: home,
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let [choice, flags, rest @ ..] = bytes else {
        return;
    };
    let world = world();
    let mut body = rest.to_vec();
    // Bytes 0xF0 and 0xF1 in the body stand for the real subwiki and post ids.
    for (marker, id) in [(0xF0u8, &world.ids[0]), (0xF1u8, &world.ids[1])] {
        if let Some(at) = body.iter().position(|b| *b == marker) {
            body.splice(at..=at, id.bytes());
        }
    }
    let api = flags & 1 == 0;
    let (method, uri) = if api {
        let op = OPERATIONS[usize::from(*choice) % OPERATIONS.len()];
        ("POST", format!("/v1/{op}"))
    } else {
        // A page, with the first bytes of the body (what parses as UTF-8) after it.
        let page = PAGES[usize::from(*choice) % PAGES.len()];
        let tail: String = String::from_utf8_lossy(&body[..body.len().min(80)])
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .collect();
        let method = if flags & 8 == 0 { "GET" } else { "POST" };
        (method, format!("{page}{tail}"))
    };
    let mut request = Request::builder().method(method).uri(&uri);
    let host = if flags & 2 == 0 {
        "127.0.0.1:7130"
    } else {
        "evil.example"
    };
    request = request.header("host", host);
    if flags & 4 == 0 {
        request = request.header("authorization", format!("Bearer {TOKEN}"));
    }
    if flags & 16 != 0 {
        request = request.header("origin", "http://evil.example");
    }
    let content_type = if flags & 32 == 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let Ok(request) = request
        .header("content-type", content_type)
        .body(Body::from(body))
    else {
        return;
    };
    let mut router = world.router.clone();
    world.runtime.block_on(async move {
        let response = router.call(request).await.unwrap();
        assert!(response.status().as_u16() >= 200);
        // Read at most a little of the body (the live stream never ends).
        let mut body = response.into_body();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(5),
            http_body_util::BodyExt::frame(&mut body),
        )
        .await;
    });
});
