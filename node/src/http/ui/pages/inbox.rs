//! The inbox page, its count for the navigation's badge, marking read, and following authors.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Viewer, When, failed, parse, render, see};
use crate::Node;
use crate::http::Operation;
use crate::http::ops::{Follow, Inbox, InboxItem, InboxRead, Unfollow};
use crate::inbox::Kind;

/// Items on the inbox page.
const PAGE: usize = 200;

pub(super) fn routes(router: Router<Node>) -> Router<Node> {
    router
        .route("/inbox", get(inbox))
        .route("/inbox/count", get(count))
        .route("/inbox/read", post(read))
        .route("/follow", post(follow))
        .route("/unfollow", post(unfollow))
}

/// An item as the page shows it.
struct Line {
    id: String,
    read: bool,
    /// Name and fingerprint.
    actor: Option<(String, String)>,
    what: String,
    /// Post id and title.
    post: Option<(String, String)>,
    subwiki: String,
    when: When,
    excerpt: String,
}

impl From<InboxItem> for Line {
    fn from(i: InboxItem) -> Self {
        let mut what = i.what();
        if i.mention && i.kind != Kind::Mention {
            what.push_str(", mentioning you");
        }
        Self {
            read: i.read,
            actor: i
                .actor
                .map(|a| (a.name.unwrap_or_else(|| "(no name)".into()), a.fingerprint)),
            what,
            post: i.post.map(|p| {
                (
                    p.to_string(),
                    i.post_title.unwrap_or_else(|| "a post".into()),
                )
            }),
            subwiki: i.subwiki_name.unwrap_or_else(|| "?".into()),
            when: When::of(i.time),
            excerpt: i.excerpt,
            id: i.id,
        }
    }
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage<'a> {
    title: &'a str,
    csrf: &'a str,
    items: Vec<Line>,
    unread: usize,
    total: usize,
    unread_only: bool,
    /// Where the forms come back to.
    back: &'a str,
    /// How others mention the owner.
    mention: String,
}

#[derive(Deserialize, Default)]
struct InboxQuery {
    unread: Option<String>,
}

async fn inbox(State(node): State<Node>, viewer: Viewer, Query(q): Query<InboxQuery>) -> Response {
    let unread_only = q.unread.is_some_and(|u| u == "1" || u == "on");
    let page = match (Inbox {
        unread: unread_only,
        limit: PAGE,
    })
    .run(&node)
    .await
    {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    render(&InboxPage {
        title: "Inbox",
        csrf: &viewer.csrf,
        unread: page.unread,
        total: page.total,
        items: page.items.into_iter().map(Line::from).collect(),
        unread_only,
        back: if unread_only {
            "/inbox?unread=1"
        } else {
            "/inbox"
        },
        mention: crate::inbox::mention(&node.author()),
    })
}

/// The number of unread items, as text: what the script shows in the navigation's badge,
/// fetched when the page loads and when the node says something changed.
async fn count(State(node): State<Node>, _viewer: Viewer) -> Response {
    match node.inbox_unread() {
        Ok(n) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            n.to_string(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Where a form goes back to: a path of this site, never another site.
fn back(to: &str, otherwise: &str) -> String {
    if to.starts_with('/') && !to.starts_with("//") && !to.contains('\\') {
        to.to_owned()
    } else {
        otherwise.to_owned()
    }
}

#[derive(Deserialize)]
struct ReadForm {
    csrf: String,
    #[serde(default)]
    item: Option<String>,
    #[serde(default)]
    all: Option<String>,
    #[serde(default)]
    back: String,
}

async fn read(State(node): State<Node>, viewer: Viewer, Form(form): Form<ReadForm>) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let request = InboxRead {
        all: form.all.is_some(),
        item: form.item.filter(|_| form.all.is_none()),
    };
    match request.run(&node).await {
        Ok(_) => see(back(&form.back, "/inbox")),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct FollowForm {
    csrf: String,
    author: String,
    #[serde(default)]
    back: String,
}

async fn follow(
    State(node): State<Node>,
    viewer: Viewer,
    Form(form): Form<FollowForm>,
) -> Response {
    set_follow(node, viewer, form, true).await
}

async fn unfollow(
    State(node): State<Node>,
    viewer: Viewer,
    Form(form): Form<FollowForm>,
) -> Response {
    set_follow(node, viewer, form, false).await
}

async fn set_follow(node: Node, viewer: Viewer, form: FollowForm, on: bool) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let author = match parse(&form.author, "author") {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let done = if on {
        Follow { author }.run(&node).await
    } else {
        Unfollow { author }.run(&node).await
    };
    match done {
        Ok(_) => see(back(&form.back, "/feed?following=1")),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::back;

    #[test]
    fn forms_only_go_back_to_this_site() {
        assert_eq!(back("/post/doc_x", "/inbox"), "/post/doc_x");
        for away in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "",
        ] {
            assert_eq!(back(away, "/inbox"), "/inbox");
        }
    }
}
