//! The search page (`GET /search?q=...`) and the search box every page's navigation holds. A
//! GET that changes nothing: it runs the API's own [`Search`] operation and shows its hits,
//! with the words found marked in each snippet.

use std::str::FromStr;

use agora_crdt::SubwikiId;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::pages::{Viewer, When, failed, render};
use crate::http::ops::{Found, Hit, Search, SubwikiList};
use crate::http::{ErrorKind, Operation};
use crate::{AuthorFilter, Node};

/// Hits per page.
const PAGE: usize = 20;

pub(super) fn routes(router: Router<Node>) -> Router<Node> {
    router.route("/search", get(page))
}

#[derive(Deserialize, Default)]
struct Params {
    q: Option<String>,
    subwiki: Option<String>,
    author: Option<String>,
    newest: Option<String>,
    hidden: Option<String>,
    offset: Option<String>,
}

/// A hit as the page shows it.
struct Card {
    id: String,
    title: String,
    subwiki: String,
    subwiki_name: String,
    author: String,
    author_id: String,
    fingerprint: String,
    when: When,
    comments: usize,
    hidden: bool,
    disputed: bool,
    verified: bool,
    /// The snippet in parts, each marked if it is a word found.
    snippet: Vec<(String, bool)>,
}

/// The snippet cut at its highlights.
fn parts(text: &str, highlights: &[[usize; 2]]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    for [start, end] in highlights {
        let (Some(before), Some(word)) = (text.get(at..*start), text.get(*start..*end)) else {
            continue;
        };
        if !before.is_empty() {
            out.push((before.to_owned(), false));
        }
        out.push((word.to_owned(), true));
        at = *end;
    }
    if let Some(rest) = text.get(at..).filter(|r| !r.is_empty()) {
        out.push((rest.to_owned(), false));
    }
    out
}

impl From<&Hit> for Card {
    fn from(h: &Hit) -> Self {
        Self {
            id: h.post.id.to_string(),
            title: h.post.title.clone(),
            subwiki: h.post.subwiki.to_string(),
            subwiki_name: h.subwiki_name.clone().unwrap_or_else(|| "?".into()),
            author: h
                .post
                .author_name
                .clone()
                .unwrap_or_else(|| "(no name)".into()),
            author_id: h.post.author.to_string(),
            fingerprint: h.post.author_fingerprint.clone(),
            when: When::of(h.post.created_at),
            comments: h.post.comments,
            hidden: h.status.hidden.is_some(),
            disputed: h.status.disputed,
            verified: h.status.verified,
            snippet: parts(&h.snippet, &h.highlights),
        }
    }
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    title: &'a str,
    q: String,
    subwiki: String,
    subwikis: Vec<(String, String)>,
    author: String,
    newest: bool,
    show_hidden: bool,
    searched: bool,
    error: Option<String>,
    indexing: bool,
    summary: String,
    cards: Vec<Card>,
    /// Links to the same search by this author (per card) are this plus the author's id.
    by_author: String,
    next: Option<String>,
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn on(flag: &Option<String>) -> bool {
    flag.as_deref().is_some_and(|v| v == "1" || v == "on")
}

async fn page(State(node): State<Node>, _viewer: Viewer, Query(p): Query<Params>) -> Response {
    let q = p.q.as_deref().unwrap_or_default().trim().to_owned();
    let subwiki = p
        .subwiki
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| SubwikiId::from_str(s).ok());
    let author_text = p.author.as_deref().unwrap_or_default().trim().to_owned();
    let newest = on(&p.newest);
    let show_hidden = on(&p.hidden);
    let offset = p
        .offset
        .as_deref()
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let subwikis = match (SubwikiList {}).run(&node).await {
        Ok(list) => list
            .into_iter()
            .filter(|s| s.joined)
            .map(|s| {
                (
                    s.about.id.to_string(),
                    s.about.name.unwrap_or_else(|| "?".into()),
                )
            })
            .collect(),
        Err(e) => return failed(e),
    };
    let mut page = SearchPage {
        title: "Search",
        q: q.clone(),
        subwiki: subwiki.map(|s| s.to_string()).unwrap_or_default(),
        subwikis,
        author: author_text.clone(),
        newest,
        show_hidden,
        searched: false,
        error: None,
        indexing: false,
        summary: String::new(),
        cards: Vec::new(),
        by_author: String::new(),
        next: None,
    };
    if q.is_empty() {
        return render(&page);
    }
    let author = match author_text.as_str() {
        "" => None,
        text => match AuthorFilter::from_str(text) {
            Ok(a) => Some(a),
            Err(e) => {
                page.error = Some(format!("Author {text:?}: {e}."));
                return render(&page);
            }
        },
    };
    let request = Search {
        query: q.clone(),
        subwiki,
        author,
        newest,
        show_hidden,
        limit: PAGE,
        offset: offset.min(crate::search::MAX_OFFSET),
    };
    let found: Found = match request.clone().run(&node).await {
        Ok(found) => found,
        Err(e) if e.kind == ErrorKind::Usage => {
            page.error = Some(e.message);
            return render(&page);
        }
        Err(e) => return failed(e),
    };
    let mut base = format!("/search?q={}", encode(&q));
    if let Some(s) = subwiki {
        base.push_str(&format!("&subwiki={s}"));
    }
    if newest {
        base.push_str("&newest=1");
    }
    if show_hidden {
        base.push_str("&hidden=1");
    }
    page.by_author = format!("{base}&author=");
    if !author_text.is_empty() {
        base.push_str(&format!("&author={}", encode(&author_text)));
    }
    let shown = found.hits.len();
    page.next = (shown == PAGE && request.offset + PAGE <= crate::search::MAX_OFFSET)
        .then(|| format!("{base}&offset={}", request.offset + PAGE));
    page.summary = match (shown, request.offset) {
        (0, 0) => "No posts found.".into(),
        (0, _) => "No more posts found.".into(),
        (n, 0) => format!("{n} post{} found.", if n == 1 { "" } else { "s" }),
        (n, o) => format!("Posts {} to {} found.", o + 1, o + n),
    };
    page.searched = true;
    page.indexing = found.indexing;
    page.cards = found.hits.iter().map(Card::from).collect();
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_cut_at_their_highlights_and_queries_encoded() {
        assert_eq!(
            parts("a big wolf", &[[2, 5], [99, 100]]),
            vec![
                ("a ".into(), false),
                ("big".into(), true),
                (" wolf".into(), false)
            ]
        );
        assert_eq!(parts("héllo", &[[1, 2]]), vec![("héllo".to_owned(), false)]);
        assert_eq!(encode("a \"b\"&c=d/é"), "a%20%22b%22%26c%3Dd%2F%C3%A9");
    }
}
