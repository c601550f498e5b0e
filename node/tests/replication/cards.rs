//! Link cards against a local HTTP server: the author's node fills the card from the page and
//! the card reaches a reader's node by replication, without that node contacting the site; a
//! redirect to a private address is not followed; hostile answers leave no card, or a bounded
//! one. The server is a plain tokio listener on 127.0.0.1 writing canned answers and logging
//! every request; the nodes allow loopback (and nothing else private) for it.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::support::*;
use agora_crdt::{Policy, PostContent};
use agora_node::Node;
use agora_node::cards::{self, CardError, LinkCards, Range};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PAGE: &str = r#"<!doctype html>
<html><head>
<meta charset="utf-8">
<title>Fallback title</title>
<meta property="og:title" content="Rivers &amp; lakes">
<meta property="og:description" content="How water moves &#8212; a primer.">
<meta property="og:site_name" content="The Water Site">
<script>document.title = "<b>not this</b>";</script>
</head><body><h1>Rivers</h1></body></html>"#;

/// The nodes' setting in these tests: cards on, the test server's loopback address allowed,
/// every other private range still refused.
const LOOPBACK_ONLY: LinkCards = LinkCards {
    enabled: true,
    allow_loopback: true,
};

fn html(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn redirect(to: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A local site: canned answers by path, and the path of every request it was sent.
struct Site {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Site {
    async fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let routes = routes.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                    log.lock().unwrap().push(path.clone());
                    let answer = routes
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_else(|| {
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()
                        });
                    // A client that stops reading (a page over the cap) ends this write early.
                    let _ = socket.write_all(&answer).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Site { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Waits until `node` has ended `n` link card fetches, with or without a card.
async fn fetches_ended(node: &Node, n: u64) {
    let mut ended = node.link_card_fetches().expect("link cards are on");
    tokio::time::timeout(GUARD, ended.wait_for(|v| *v >= n))
        .await
        .expect("the fetch ends in time")
        .expect("the node runs");
}

fn post_with_link(title: &str, link: String) -> PostContent {
    PostContent {
        title: title.into(),
        body: "See the link.".into(),
        link: Some(link),
        ..PostContent::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_is_filled_from_a_local_page_and_readers_never_contact_the_site() {
    let site = Site::serve(vec![
        ("/rivers", html(PAGE)),
        ("/lakes", html("<title>Lakes</title>")),
    ])
    .await;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_with(dirs[0].path(), vec![], |c| c.link_cards = LOOPBACK_ONLY).await;
    let subwiki = a
        .create_subwiki("water", "", Policy::default())
        .await
        .unwrap();
    let link = site.url("/rivers");
    let id = a
        .create_post(subwiki, post_with_link("Rivers", link.clone()))
        .await
        .unwrap();

    until(&a, "the card on A", |n| {
        n.post(id).unwrap().post.content.card_for_link().is_some()
    })
    .await;
    let content = a.post(id).unwrap().post.content;
    let card = content.card_for_link().unwrap();
    assert_eq!(card.url, link);
    assert_eq!(card.title, "Rivers & lakes");
    assert_eq!(card.description, "How water moves \u{2014} a primer.");
    assert_eq!(card.site_name, "The Water Site");
    assert_eq!(
        content.title, "Rivers",
        "the post's own fields are untouched"
    );
    assert_eq!(site.requests(), vec!["/rivers".to_owned()]);
    // The card is a signed edit in the post's history.
    let history = a.history(id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].fields, vec![agora_crdt::Field::Card]);

    // A reader's node, with cards on and loopback allowed too, gets the card from A only.
    let b = start_with(dirs[1].path(), vec![], |c| c.link_cards = LOOPBACK_ONLY).await;
    b.join(subwiki, vec![addr(&a).await]).await.unwrap();
    until(&b, "the card on B", |n| {
        n.post(id)
            .is_ok_and(|p| p.post.content.card_for_link() == Some(card))
    })
    .await;
    assert_eq!(*b.link_card_fetches().unwrap().borrow(), 0);
    assert_eq!(site.requests().len(), 1, "only the author's node fetched");

    // An edit that keeps the link keeps the card and fetches nothing; a new link drops the old
    // card with the edit and gets a new one.
    let read = a.post(id).unwrap().post;
    let retitled = PostContent {
        title: "Rivers, retitled".into(),
        ..read.content.clone()
    };
    a.edit_post(id, agora_crdt::Base::At(read.version), retitled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*a.link_card_fetches().unwrap().borrow(), 1);
    assert!(a.post(id).unwrap().post.content.card_for_link().is_some());
    assert_eq!(site.requests().len(), 1);
    let read = a.post(id).unwrap().post;
    let moved = PostContent {
        link: Some(site.url("/lakes")),
        ..read.content.clone()
    };
    a.edit_post(id, agora_crdt::Base::At(read.version), moved)
        .await
        .unwrap()
        .unwrap();
    // The old card went with the edit (the new one may already be there: the fetch is fast).
    let card = a.post(id).unwrap().post.content.card;
    assert!(
        card.as_ref().is_none_or(|c| c.url == site.url("/lakes")),
        "the old card went: {card:?}"
    );
    until(&a, "the new card on A", |n| {
        n.post(id).is_ok_and(|p| {
            p.post
                .content
                .card_for_link()
                .is_some_and(|c| c.title == "Lakes")
        })
    })
    .await;
    until(&b, "the new card on B", |n| {
        n.post(id).is_ok_and(|p| {
            p.post
                .content
                .card_for_link()
                .is_some_and(|c| c.title == "Lakes")
        })
    })
    .await;
    assert_eq!(
        site.requests(),
        vec!["/rivers".to_owned(), "/lakes".to_owned()]
    );
    assert_eq!(*b.link_card_fetches().unwrap().borrow(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_redirects_to_a_private_address_is_not_fetched() {
    // Each target is refused before any connection is tried: no packet leaves for it.
    let site = Site::serve(vec![
        (
            "/metadata",
            redirect("http://169.254.169.254/latest/meta-data/"),
        ),
        ("/intranet", redirect("http://10.0.0.1/admin")),
        ("/mapped", redirect("http://[::ffff:192.168.1.1]/")),
        ("/zero", redirect("http://0.0.0.0:80/")),
        ("/file", redirect("file:///etc/passwd")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_with(dir.path(), vec![], |c| c.link_cards = LOOPBACK_ONLY).await;
    let subwiki = a.create_subwiki("s", "", Policy::default()).await.unwrap();
    let id = a
        .create_post(subwiki, post_with_link("Trap", site.url("/metadata")))
        .await
        .unwrap();
    fetches_ended(&a, 1).await;
    let post = a.post(id).unwrap().post;
    assert_eq!(post.content.card, None);
    assert_eq!(post.edits, 0, "nothing was written");
    assert_eq!(site.requests(), vec!["/metadata".to_owned()]);

    // The same rule, hop by hop, from the fetch itself.
    for (path, range) in [
        ("/metadata", Range::LinkLocal),
        ("/intranet", Range::Private),
        ("/mapped", Range::Private),
        ("/zero", Range::Unspecified),
    ] {
        match cards::fetch(&site.url(path), &LOOPBACK_ONLY).await {
            Err(CardError::Refused { range: r, .. }) => assert_eq!(r, range, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(matches!(
        cards::fetch(&site.url("/file"), &LOOPBACK_ONLY).await,
        Err(CardError::Scheme(_))
    ));
    // Without the test's allowance the local site itself is refused, before any request.
    let before = site.requests().len();
    assert!(matches!(
        cards::fetch(&site.url("/metadata"), &LinkCards::default()).await,
        Err(CardError::Refused {
            range: Range::Loopback,
            ..
        })
    ));
    assert_eq!(site.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_answers_leave_no_card_or_a_bounded_one() {
    let huge = format!(
        "<title>{}</title><meta property=\"og:description\" content=\"big\">{}",
        "T".repeat(10_000),
        "<p>padding</p>".repeat(400_000)
    );
    let image =
        b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 8\r\n\r\n\x89PNG\r\n\x1a\n";
    let site = Site::serve(vec![
        ("/huge", html(&huge)),
        ("/image", image.to_vec()),
        (
            "/untyped",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec(),
        ),
        ("/empty", html("<p>no head at all</p>")),
        (
            "/gone",
            b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ),
        ("/loop1", redirect("/loop2")),
        ("/loop2", redirect("/loop3")),
        ("/loop3", redirect("/loop4")),
        ("/loop4", redirect("/loop1")),
        ("/hop", redirect("/rivers")),
        ("/rivers", html(PAGE)),
    ])
    .await;

    // 4 MB of page: at most 512 KiB is read, and the card is bounded.
    let card = cards::fetch(&site.url("/huge"), &LOOPBACK_ONLY)
        .await
        .unwrap();
    assert!(huge.len() > 8 * cards::MAX_PAGE_BYTES);
    assert_eq!(card.title.len(), agora_crdt::LinkCard::MAX_TITLE);
    assert_eq!(card.description, "big");

    for (path, expected) in [
        ("/image", "NotHtml"),
        ("/untyped", "NotHtml"),
        ("/empty", "Empty"),
        ("/gone", "Status"),
        ("/loop1", "TooManyRedirects"),
    ] {
        let got = cards::fetch(&site.url(path), &LOOPBACK_ONLY).await;
        let name = match &got {
            Err(CardError::NotHtml(_)) => "NotHtml",
            Err(CardError::Empty) => "Empty",
            Err(CardError::Status(500)) => "Status",
            Err(CardError::TooManyRedirects) => "TooManyRedirects",
            _ => "other",
        };
        assert_eq!(name, expected, "{path}: {got:?}");
    }
    // The redirect loop stopped after the limit: the first request and three redirects.
    let loops = site
        .requests()
        .iter()
        .filter(|p| p.starts_with("/loop"))
        .count();
    assert_eq!(loops, cards::MAX_REDIRECTS + 1);
    // A redirect within the limit is followed; the card is for the link posted.
    let card = cards::fetch(&site.url("/hop"), &LOOPBACK_ONLY)
        .await
        .unwrap();
    assert_eq!(card.url, site.url("/hop"));
    assert_eq!(card.site_name, "The Water Site");

    // Through a node: a non-HTML answer leaves the post as it was.
    let dir = tempfile::tempdir().unwrap();
    let a = start_with(dir.path(), vec![], |c| c.link_cards = LOOPBACK_ONLY).await;
    let subwiki = a.create_subwiki("s", "", Policy::default()).await.unwrap();
    let id = a
        .create_post(subwiki, post_with_link("Picture", site.url("/image")))
        .await
        .unwrap();
    fetches_ended(&a, 1).await;
    assert_eq!(a.post(id).unwrap().post.content.card, None);
    assert_eq!(a.post(id).unwrap().post.edits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_link_cards_off_fetches_nothing() {
    let site = Site::serve(vec![("/rivers", html(PAGE))]).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_with(dir.path(), vec![], |c| {
        c.link_cards = LinkCards {
            enabled: false,
            allow_loopback: true,
        }
    })
    .await;
    assert!(a.link_card_fetches().is_none());
    let subwiki = a.create_subwiki("s", "", Policy::default()).await.unwrap();
    let id = a
        .create_post(subwiki, post_with_link("Rivers", site.url("/rivers")))
        .await
        .unwrap();
    // Nothing was spawned (there is no fetch counter); the post stays as written.
    assert_eq!(a.post(id).unwrap().post.content.card, None);
    assert!(site.requests().is_empty());
}
