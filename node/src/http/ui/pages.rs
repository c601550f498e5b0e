//! The UI's pages and form handlers. Each handler gathers typed data (mostly by running the
//! API's own [`Operation`]s), and a template shows it.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use agora_crdt::{
    Base, BlobHash, DocId, EntryId, FeedCursor, PostContent, ProfileContent, SubwikiId, Timestamp,
    Version,
};
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Multipart, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::markdown;
use super::session::{COOKIE, same_secret};

mod inbox;
use crate::Node;
use crate::core::now;
use crate::http::ops::{
    Comment, Feed, FeedPost, ModeratorAdd, ModeratorRemove, Modlog, Mute, OverrideIgnore,
    OverrideList, OverrideRestore, Peers, PostHistory, PostPage, PostRetract, PostShow, PostVote,
    Redact, Revoke, Status, SubwikiCreate, SubwikiInvite, SubwikiJoin, SubwikiLeave, SubwikiList,
    SubwikiShow, Tombstone, Unmute, Vote, Vouch, check_link, check_title,
};
use crate::http::{ApiError, Operation};
use crate::node::image_type;
use crate::store::MAX_BLOB_BYTES;

/// Posts per feed page.
const PAGE: usize = 20;

pub(super) fn routes(router: Router<Node>) -> Router<Node> {
    inbox::routes(router)
        .route("/", get(home))
        .route("/login", get(login))
        .route("/feed", get(feed))
        .route("/new", get(new_form).post(new_save))
        .route("/post/{id}", get(post_page))
        .route("/post/{id}/comment", post(comment))
        .route("/post/{id}/vote", post(vote))
        .route("/post/{id}/edit", get(edit_form).post(edit_save))
        .route("/post/{id}/history", get(history))
        .route("/post/{id}/revert", post(revert))
        .route(
            "/post/{id}/retract",
            get(retract_post_form).post(retract_post),
        )
        .route(
            "/post/{id}/comment/{comment}/retract",
            get(retract_comment_form).post(retract_comment),
        )
        .route("/subwikis", get(subwikis))
        .route("/subwikis/create", post(create_subwiki))
        .route("/subwikis/join", post(join_subwiki))
        .route("/subwiki/{id}", get(subwiki_page))
        .route("/subwiki/{id}/leave", post(leave))
        .route(
            "/subwiki/{id}/moderation",
            get(moderation_page).post(moderate),
        )
        .route("/profile", post(profile))
        .route("/node", get(node_page))
        .route("/blob/{hash}", get(blob))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
}

pub(super) fn live_routes(router: Router<Node>) -> Router<Node> {
    router.route("/events", get(events))
}

/// Live streams open now, at most [`super::MAX_LIVE`].
static LIVE: std::sync::LazyLock<Arc<Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(Semaphore::new(super::MAX_LIVE)));

// ---------------------------------------------------------------------------------------------
// Sessions and errors.

/// The person signed in: their session's CSRF token.
pub(super) struct Viewer {
    csrf: String,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<Node> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &Node) -> Result<Self, Response> {
        cookie(&parts.headers, COOKIE)
            .and_then(|secret| node.sessions().csrf(&secret))
            .map(|csrf| Viewer { csrf })
            .ok_or_else(|| {
                message(
                    StatusCode::UNAUTHORIZED,
                    "Sign in",
                    "This page needs a sign-in link from your node. Run `agora open` (or use the \
                     link `agora up` printed); each link works once.",
                )
            })
    }
}

impl Viewer {
    /// Checks a form's CSRF token against the session's.
    fn check(&self, token: &str) -> Result<(), Box<Response>> {
        if same_secret(token, &self.csrf) {
            Ok(())
        } else {
            Err(Box::new(message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form did not come from this page of your node (its security token is \
                 missing or old). Go back, reload the page and try again.",
            )))
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage { title, text };
    (status, render(&page)).into_response()
}

pub(super) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {e}"),
        )
            .into_response(),
    }
}

/// An API error as a page.
pub(super) fn failed(e: impl Into<ApiError>) -> Response {
    let e: ApiError = e.into();
    message(e.kind.status(), "Something went wrong", &e.message)
}

fn see(path: String) -> Response {
    Redirect::to(&path).into_response()
}

// ---------------------------------------------------------------------------------------------
// What templates show.

/// A time as the page shows it: relative, with the exact time for the script to localise.
pub(super) struct When {
    /// `2026-12-03T10:00:00Z`.
    pub(super) iso: String,
    /// `5 min ago`.
    pub(super) ago: String,
}

impl When {
    pub(super) fn of(t: Timestamp) -> Self {
        Self {
            iso: iso(t),
            ago: ago(t, now()),
        }
    }
}

fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = now.0.saturating_sub(t.0) / 1000;
    match s {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A millisecond timestamp as an ISO 8601 UTC time (proleptic Gregorian calendar).
fn iso(t: Timestamp) -> String {
    let secs = t.0 / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A post in a list.
pub(super) struct Card {
    id: String,
    title: String,
    subwiki: String,
    subwiki_name: String,
    author: String,
    fingerprint: String,
    when: When,
    comments: usize,
    edits: usize,
    link: Option<String>,
    hidden: bool,
    disputed: bool,
    verified: bool,
    /// Set when the post was retracted or redacted: it shows only who took it back.
    gone: Option<Gone>,
}

/// What stands in place of a retracted or redacted post or comment: who took it back, when,
/// why.
pub(super) struct Gone {
    redaction: bool,
    by: String,
    fingerprint: String,
    when: When,
    reason: String,
}

impl Gone {
    fn of(t: &Tombstone) -> Self {
        Self {
            redaction: t.redaction,
            by: t.by.name.clone().unwrap_or_else(|| "(no name)".into()),
            fingerprint: t.by.fingerprint.clone(),
            when: When::of(t.at),
            reason: t.reason.clone(),
        }
    }

    /// "Retracted" or "Redacted".
    fn verb(&self) -> &'static str {
        if self.redaction {
            "Redacted"
        } else {
            "Retracted"
        }
    }
}

impl From<&FeedPost> for Card {
    fn from(f: &FeedPost) -> Self {
        Self {
            id: f.post.id.to_string(),
            title: f.post.title.clone(),
            subwiki: f.post.subwiki.to_string(),
            subwiki_name: f.subwiki_name.clone().unwrap_or_else(|| "?".into()),
            author: f
                .post
                .author_name
                .clone()
                .unwrap_or_else(|| "(no name)".into()),
            fingerprint: f.post.author_fingerprint.clone(),
            when: When::of(f.post.created_at),
            comments: f.post.comments,
            edits: f.post.edits,
            link: f.post.link.clone(),
            hidden: f.status.hidden.is_some(),
            disputed: f.status.disputed,
            verified: f.status.verified,
            gone: f.post.retracted.as_ref().map(Gone::of),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sign in, home, feed.

#[derive(Deserialize)]
struct LoginQuery {
    t: String,
}

async fn login(State(node): State<Node>, Query(q): Query<LoginQuery>) -> Response {
    let Some(session) = node.sessions().log_in(&q.t) else {
        return message(
            StatusCode::UNAUTHORIZED,
            "This link has been used",
            "A sign-in link works once and for ten minutes. Run `agora open` for a new one.",
        );
    };
    let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Template)]
#[template(path = "onboarding.html")]
struct Onboarding<'a> {
    title: &'a str,
    csrf: &'a str,
    author: String,
    fingerprint: String,
}

async fn home(State(node): State<Node>, viewer: Viewer) -> Response {
    let joined = match (SubwikiList {}).run(&node).await {
        Ok(list) => list.into_iter().filter(|s| s.joined).count(),
        Err(e) => return failed(e),
    };
    if joined == 0 {
        let author = node.author();
        return render(&Onboarding {
            title: "Welcome",
            csrf: &viewer.csrf,
            author: author.to_string(),
            fingerprint: author.fingerprint(),
        });
    }
    feed(State(node), viewer, Query(FeedQuery::default())).await
}

#[derive(Deserialize, Default)]
struct FeedQuery {
    subwiki: Option<String>,
    hidden: Option<String>,
    before: Option<String>,
    following: Option<String>,
}

#[derive(Template)]
#[template(path = "feed.html")]
struct FeedPage<'a> {
    title: &'a str,
    cards: Vec<Card>,
    show_hidden: bool,
    subwiki: String,
    subwikis: Vec<(String, String)>,
    next: Option<String>,
    /// The "following" tab: posts of the authors followed.
    following: bool,
}

async fn feed(State(node): State<Node>, _viewer: Viewer, Query(q): Query<FeedQuery>) -> Response {
    let subwiki = q
        .subwiki
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| SubwikiId::from_str(s).ok());
    let before = q
        .before
        .as_deref()
        .and_then(|b| FeedCursor::from_str(b).ok());
    let show_hidden = q.hidden.is_some_and(|h| h == "1" || h == "on");
    let following = q.following.is_some_and(|f| f == "1" || f == "on");
    let request = Feed {
        subwiki,
        show_hidden,
        limit: PAGE,
        before,
        following,
    };
    let posts = match request.run(&node).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
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
    let next = (posts.len() == PAGE)
        .then(|| posts.last().map(|p| p.cursor.to_string()))
        .flatten();
    render(&FeedPage {
        title: "Feed",
        cards: posts.iter().map(Card::from).collect(),
        show_hidden,
        subwiki: subwiki.map(|s| s.to_string()).unwrap_or_default(),
        subwikis,
        next,
        following,
    })
}

// ---------------------------------------------------------------------------------------------
// Posts.

#[derive(Template)]
#[template(path = "post.html")]
struct PostView<'a> {
    title: &'a str,
    csrf: &'a str,
    page: PostPage,
    body: String,
    card_author: String,
    when: When,
    comments: Vec<CommentLine>,
    why: Vec<String>,
    merged: bool,
    images: Vec<String>,
    /// Whether the owner follows the post's author; `None` for the owner's own post.
    following: Option<bool>,
    /// Set when the post was retracted or redacted.
    gone: Option<Gone>,
    /// The owner wrote it: they may retract it.
    mine: bool,
    /// The owner is the subwiki's founder or a moderator: they may redact others' posts and
    /// comments.
    moderator: bool,
}

/// A comment on the post page.
struct CommentLine {
    id: String,
    author: String,
    fingerprint: String,
    when: When,
    text: String,
    /// The owner wrote it.
    mine: bool,
    /// Set when it was retracted or redacted.
    gone: Option<Gone>,
}

/// Whether the owner is the founder or a moderator of the subwiki, as their node counts roles.
fn moderates(node: &Node, subwiki: SubwikiId) -> bool {
    let me = node.author();
    node.moderation(subwiki).is_ok_and(|m| {
        let roles = m.roles();
        roles.founder() == me || roles.moderators().contains(&me)
    })
}

#[derive(Deserialize, Default)]
struct PostQuery {
    merged: Option<String>,
}

fn parse<T: FromStr>(s: &str, what: &str) -> Result<T, Box<Response>> {
    T::from_str(s).map_err(|_| {
        Box::new(message(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("That is not a {what} id."),
        ))
    })
}

async fn post_page(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<PostQuery>,
) -> Response {
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let page = match (PostShow { post: id, at: None }).run(&node).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let body = markdown::render(&page.post.body);
    let me = node.author();
    let comments = page
        .comment_list
        .iter()
        .map(|c| CommentLine {
            id: c.id.to_string(),
            author: c.author.name.clone().unwrap_or_else(|| "(no name)".into()),
            fingerprint: c.author.fingerprint.clone(),
            when: When::of(c.created_at),
            text: c.text.clone(),
            mine: c.author.id == me,
            gone: c.retracted.as_ref().map(Gone::of),
        })
        .collect();
    let why = page
        .votes
        .behind
        .iter()
        .map(|l| {
            let counted = if l.counted {
                "counted".to_owned()
            } else {
                format!(
                    "not counted: {}",
                    l.not_counted_because.clone().unwrap_or_default()
                )
            };
            format!(
                "{} ({}): {} — {counted}",
                l.signer_fingerprint, l.what, l.reason
            )
        })
        .collect();
    let images = page.post.images.iter().map(ToString::to_string).collect();
    let card_author = page
        .post
        .author_name
        .clone()
        .unwrap_or_else(|| "(no name)".into());
    let when = When::of(page.post.created_at);
    let gone = page.post.retracted.as_ref().map(Gone::of);
    let title = match &gone {
        Some(g) => format!("{} post", g.verb()),
        None => page.post.title.clone(),
    };
    let following = (page.post.author != me).then(|| node.is_following(&page.post.author));
    render(&PostView {
        title: &title,
        csrf: &viewer.csrf,
        body,
        card_author,
        when,
        comments,
        why,
        merged: q.merged.is_some(),
        images,
        following,
        gone,
        mine: page.post.author == me,
        moderator: moderates(&node, page.post.subwiki),
        page,
    })
}

#[derive(Deserialize)]
struct CommentForm {
    csrf: String,
    text: String,
}

async fn comment(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CommentForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if form.text.trim().is_empty() {
        return see(format!("/post/{id}"));
    }
    match (Comment {
        post: id,
        text: form.text,
    })
    .run(&node)
    .await
    {
        Ok(_) => see(format!("/post/{id}#comments")),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct VoteForm {
    csrf: String,
    value: String,
    #[serde(default)]
    reason: String,
}

async fn vote(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let value = match form.value.as_str() {
        "hide" => PostVote::Hide,
        "keep" => PostVote::Keep,
        "misleading" => PostVote::Misleading,
        "verified" => PostVote::Verified,
        "withdraw" => PostVote::Withdraw,
        _ => return message(StatusCode::BAD_REQUEST, "Unknown vote", "No such vote."),
    };
    match (Vote {
        post: id,
        value,
        reason: form.reason,
    })
    .run(&node)
    .await
    {
        Ok(_) => see(format!("/post/{id}")),
        Err(e) => failed(e),
    }
}

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage<'a> {
    title: &'a str,
    csrf: &'a str,
    /// The post edited; empty for a new one.
    post: String,
    base: String,
    subwikis: Vec<(String, String)>,
    subwiki: String,
    content: PostContent,
    tags: String,
}

async fn edit_form(State(node): State<Node>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let item = match node.post(id) {
        Ok(item) => item,
        Err(e) => return failed(e),
    };
    if item.post.retracted.is_some() {
        // Nothing left to edit: the post page says who took it back.
        return see(format!("/post/{id}"));
    }
    let content = item.post.content.clone();
    render(&EditPage {
        title: "Edit post",
        csrf: &viewer.csrf,
        post: id.to_string(),
        base: item.post.version.to_string(),
        subwikis: Vec::new(),
        subwiki: item.subwiki.to_string(),
        tags: content.tags.join(", "),
        content,
    })
}

fn tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn link(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|l| !l.is_empty())
}

async fn edit_save(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let form = match read_new_form(multipart).await {
        Ok(form) => form,
        Err(r) => return r,
    };
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let base: Version = match parse(&form.base, "version") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let now = match node.post(id) {
        Ok(item) => item.post,
        Err(e) => return failed(e),
    };
    // Images (and the link card) are those of the version the editor showed, with the image
    // added, if any.
    let (images, card) = match node.post_at(id, base.clone()) {
        Ok(content) => (content.images, content.card),
        Err(e) => return failed(e),
    };
    let link = match checked(&form.title, &form.link) {
        Ok(link) => link,
        Err(r) => return *r,
    };
    let merged = base != now.version;
    let content = PostContent {
        title: form.title,
        body: form.body,
        link,
        images,
        tags: tags(&form.tags),
        card,
    };
    let new_images = new_image(&form.image);
    match node
        .edit_post_with_images(id, Base::At(base), content, &new_images)
        .await
    {
        Ok(_) if merged => see(format!("/post/{id}?merged=1")),
        Ok(_) => see(format!("/post/{id}")),
        Err(e) => failed(e),
    }
}

/// The uploaded image, if there is one (the node checks it is a PNG, JPEG, GIF or WebP, and
/// keeps it only with the post).
fn new_image(bytes: &[u8]) -> Vec<&[u8]> {
    Some(bytes).filter(|b| !b.is_empty()).into_iter().collect()
}

/// Checks a post's title and link as the API does ([`check_title`], [`check_link`]); returns
/// the link to keep.
fn checked(title: &str, text: &str) -> Result<Option<String>, Box<Response>> {
    let refuse = |e: ApiError| Box::new(message(StatusCode::BAD_REQUEST, "Not saved", &e.message));
    check_title(title).map_err(refuse)?;
    link(text)
        .map(|l| check_link(&l))
        .transpose()
        .map_err(refuse)
}

#[derive(Deserialize, Default)]
struct NewQuery {
    subwiki: Option<String>,
}

async fn new_form(State(node): State<Node>, viewer: Viewer, Query(q): Query<NewQuery>) -> Response {
    let subwikis: Vec<(String, String)> = match (SubwikiList {}).run(&node).await {
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
    render(&EditPage {
        title: "New post",
        csrf: &viewer.csrf,
        post: String::new(),
        base: String::new(),
        subwiki: q.subwiki.unwrap_or_default(),
        subwikis,
        content: PostContent::default(),
        tags: String::new(),
    })
}

/// The fields of the new-post form (multipart, for the image).
#[derive(Default)]
struct NewForm {
    csrf: String,
    /// For an edit: the version the editor showed.
    base: String,
    subwiki: String,
    title: String,
    body: String,
    link: String,
    tags: String,
    image: Vec<u8>,
}

async fn read_new_form(mut multipart: Multipart) -> Result<NewForm, Response> {
    let bad = |e: &dyn std::fmt::Display| {
        message(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            &e.to_string(),
        )
    };
    let mut form = NewForm::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| bad(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "image" {
            let bytes = field.bytes().await.map_err(|e| bad(&e))?;
            if bytes.len() > MAX_BLOB_BYTES {
                return Err(message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Image too large",
                    &format!("An image may have at most {MAX_BLOB_BYTES} bytes."),
                ));
            }
            form.image = bytes.to_vec();
            continue;
        }
        let text = field.text().await.map_err(|e| bad(&e))?;
        match name.as_str() {
            "csrf" => form.csrf = text,
            "base" => form.base = text,
            "subwiki" => form.subwiki = text,
            "title" => form.title = text,
            "body" => form.body = text.replace("\r\n", "\n"),
            "link" => form.link = text,
            "tags" => form.tags = text,
            _ => {}
        }
    }
    Ok(form)
}

async fn new_save(State(node): State<Node>, viewer: Viewer, multipart: Multipart) -> Response {
    let form = match read_new_form(multipart).await {
        Ok(form) => form,
        Err(r) => return r,
    };
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let subwiki: SubwikiId = match parse(&form.subwiki, "subwiki") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let link = match checked(&form.title, &form.link) {
        Ok(link) => link,
        Err(r) => return *r,
    };
    let content = PostContent {
        title: form.title,
        body: form.body,
        link,
        tags: tags(&form.tags),
        ..PostContent::default()
    };
    let new_images = new_image(&form.image);
    match node
        .create_post_with_images(subwiki, content, &new_images)
        .await
    {
        Ok(id) => see(format!("/post/{id}")),
        Err(e) => failed(e),
    }
}

// ---------------------------------------------------------------------------------------------
// History.

/// One version in the history page.
pub(super) struct VersionRow {
    version: String,
    author: String,
    when: When,
    fields: String,
    status: String,
    /// Lines removed and added against the version before, for the diff.
    diff: Vec<(char, String)>,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage<'a> {
    title: &'a str,
    csrf: &'a str,
    post: String,
    post_title: String,
    rows: Vec<VersionRow>,
}

/// A line diff of two texts: `-`, `+` and ` ` lines, unchanged runs left out.
fn line_diff(before: &str, after: &str) -> Vec<(char, String)> {
    let diff = similar::TextDiff::from_lines(before, after);
    diff.iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| {
            let sign = match c.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            (sign, c.value().trim_end_matches('\n').to_owned())
        })
        .collect()
}

fn describe(content: &PostContent) -> String {
    let mut text = format!("# {}\n", content.title);
    if let Some(link) = &content.link {
        text.push_str(&format!("link: {link}\n"));
    }
    if !content.tags.is_empty() {
        text.push_str(&format!("tags: {}\n", content.tags.join(", ")));
    }
    text.push('\n');
    text.push_str(&content.body);
    text
}

async fn history(State(node): State<Node>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let changes = match (PostHistory { post: id }).run(&node).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let post_title = node
        .post(id)
        .map(|p| p.post.content.title)
        .unwrap_or_default();
    // Each change is shown against the merged state of the changes listed before it, so a
    // change made on a concurrent branch shows only what it changed.
    let mut rows = Vec::with_capacity(changes.len());
    let mut before = String::new();
    let mut so_far: Vec<EntryId> = Vec::with_capacity(changes.len());
    for change in &changes {
        so_far.push(change.version);
        let after = node
            .post_at(id, Version::new(so_far.iter().copied()))
            .map(|c| describe(&c))
            .unwrap_or_else(|_| before.clone());
        let status = serde_json::to_value(change.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let fields = change
            .fields
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(VersionRow {
            version: change.version.to_string(),
            author: change.author_fingerprint.clone(),
            when: When::of(change.timestamp),
            fields,
            status,
            diff: line_diff(&before, &after),
        });
        before = after;
    }
    rows.reverse();
    render(&HistoryPage {
        title: "History",
        csrf: &viewer.csrf,
        post: id.to_string(),
        post_title,
        rows,
    })
}

#[derive(Deserialize)]
struct RevertForm {
    csrf: String,
    version: String,
}

async fn revert(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RevertForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let id: DocId = match parse(&id, "post") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let version: EntryId = match parse(&form.version, "version") {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match node.revert(id, version).await {
        Ok(_) => see(format!("/post/{id}")),
        Err(e) => failed(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Retraction and redaction.

#[derive(Template)]
#[template(path = "retract.html")]
struct RetractPage<'a> {
    title: &'a str,
    csrf: &'a str,
    /// Where the form posts.
    action: String,
    /// The post page, to go back to.
    back: String,
    /// "post" or "comment".
    what: &'static str,
    /// A redaction (someone else's, by the founder or a moderator) rather than a retraction.
    redaction: bool,
    /// The post's title, or the comment's first words.
    excerpt: String,
}

/// What a retraction form is about: the post, and the comment if it is one.
struct Target {
    post: DocId,
    comment: Option<DocId>,
}

impl Target {
    fn read(post: &str, comment: Option<&str>) -> Result<Self, Box<Response>> {
        Ok(Self {
            post: parse(post, "post")?,
            comment: comment.map(|c| parse(c, "comment")).transpose()?,
        })
    }

    fn action(&self) -> String {
        match self.comment {
            Some(c) => format!("/post/{}/comment/{c}/retract", self.post),
            None => format!("/post/{}/retract", self.post),
        }
    }

    fn back(&self) -> String {
        match self.comment {
            Some(_) => format!("/post/{}#comments", self.post),
            None => format!("/post/{}", self.post),
        }
    }
}

async fn retract_post_form(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    retract_form(&node, &viewer, Target::read(&id, None)).await
}

async fn retract_comment_form(
    State(node): State<Node>,
    viewer: Viewer,
    Path((id, comment)): Path<(String, String)>,
) -> Response {
    retract_form(&node, &viewer, Target::read(&id, Some(&comment))).await
}

/// The confirmation step: what will be taken back, what that means, the reason.
async fn retract_form(
    node: &Node,
    viewer: &Viewer,
    target: Result<Target, Box<Response>>,
) -> Response {
    let target = match target {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let page = match (PostShow {
        post: target.post,
        at: None,
    })
    .run(node)
    .await
    {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let (what, author, excerpt, gone) = match target.comment {
        None => (
            "post",
            page.post.author,
            page.post.title.clone(),
            page.post.retracted.is_some(),
        ),
        Some(c) => match page.comment_list.iter().find(|x| x.id == c) {
            Some(x) => (
                "comment",
                x.author.id,
                first_words(&x.text),
                x.retracted.is_some(),
            ),
            None => {
                return message(
                    StatusCode::NOT_FOUND,
                    "Not found",
                    "That post has no such comment.",
                );
            }
        },
    };
    if gone {
        return see(target.back());
    }
    let redaction = author != node.author();
    if redaction && !moderates(node, page.post.subwiki) {
        return message(
            StatusCode::FORBIDDEN,
            "Not yours to take back",
            "Only its author may retract it, and only the subwiki's founder or a moderator may \
             redact it.",
        );
    }
    let title = match (redaction, what) {
        (false, "post") => "Retract your post?",
        (false, _) => "Retract your comment?",
        (true, "post") => "Redact this post?",
        (true, _) => "Redact this comment?",
    };
    render(&RetractPage {
        title,
        csrf: &viewer.csrf,
        action: target.action(),
        back: target.back(),
        what,
        redaction,
        excerpt,
    })
}

/// The first words of a comment, for the confirmation page.
fn first_words(text: &str) -> String {
    const WORDS: usize = 200;
    let mut out: String = text.chars().take(WORDS).collect();
    if text.chars().count() > WORDS {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
struct RetractForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    /// `redact` for a redaction, which needs a reason.
    #[serde(default)]
    kind: String,
}

async fn retract_post(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RetractForm>,
) -> Response {
    retract(&node, &viewer, Target::read(&id, None), form).await
}

async fn retract_comment(
    State(node): State<Node>,
    viewer: Viewer,
    Path((id, comment)): Path<(String, String)>,
    Form(form): Form<RetractForm>,
) -> Response {
    retract(&node, &viewer, Target::read(&id, Some(&comment)), form).await
}

async fn retract(
    node: &Node,
    viewer: &Viewer,
    target: Result<Target, Box<Response>>,
    form: RetractForm,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let target = match target {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let id = target.comment.unwrap_or(target.post);
    let done = if form.kind == "redact" {
        if form.reason.trim().is_empty() {
            return message(
                StatusCode::BAD_REQUEST,
                "Not redacted",
                "A redaction needs a reason: the moderation log shows it. Go back and give one.",
            );
        }
        Redact {
            id,
            reason: form.reason,
        }
        .run(node)
        .await
    } else {
        PostRetract {
            id,
            reason: form.reason,
        }
        .run(node)
        .await
    };
    match done {
        Ok(_) => see(target.back()),
        Err(e) => failed(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Subwikis.

#[derive(Template)]
#[template(path = "subwikis.html")]
struct SubwikisPage<'a> {
    title: &'a str,
    csrf: &'a str,
    joined: Vec<(String, String, String, usize)>,
    directory: Vec<(String, String, String)>,
}

async fn subwikis(State(node): State<Node>, viewer: Viewer) -> Response {
    let list = match (SubwikiList {}).run(&node).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let joined = list
        .iter()
        .filter(|s| s.joined)
        .map(|s| {
            (
                s.about.id.to_string(),
                s.about.name.clone().unwrap_or_else(|| "?".into()),
                s.about.description.clone().unwrap_or_default(),
                s.entries,
            )
        })
        .collect();
    let directory = node
        .discovered()
        .await
        .into_iter()
        .filter(|(id, _)| !list.iter().any(|s| s.joined && s.about.id == *id))
        .map(|(id, g)| (id.to_string(), g.name, g.description))
        .collect();
    render(&SubwikisPage {
        title: "Subwikis",
        csrf: &viewer.csrf,
        joined,
        directory,
    })
}

#[derive(Deserialize)]
struct CreateForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    display_name: String,
}

async fn create_subwiki(
    State(node): State<Node>,
    viewer: Viewer,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let edit_policy = match form.policy.as_str() {
        "trusted" => agora_crdt::EditPolicy::Trusted,
        _ => agora_crdt::EditPolicy::Open,
    };
    let policy = agora_crdt::Policy::default();
    let request = SubwikiCreate {
        name: form.name,
        description: form.description,
        edit_policy,
        quorum: policy.hide_quorum,
        vouch_threshold: policy.vouch_threshold,
        profile_name: link(&form.display_name),
    };
    match request.run(&node).await {
        Ok(s) => see(format!("/subwiki/{}", s.about.id)),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct JoinForm {
    csrf: String,
    invite: String,
    #[serde(default)]
    display_name: String,
}

async fn join_subwiki(
    State(node): State<Node>,
    viewer: Viewer,
    Form(form): Form<JoinForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let invite = match form.invite.trim().parse() {
        Ok(i) => i,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                "That invite does not read",
                &format!("Paste the whole invite, `agora:sw_…?peer=…` ({e})."),
            );
        }
    };
    let request = SubwikiJoin {
        id: invite,
        peers: Vec::new(),
        timeout_secs: 20,
        profile_name: link(&form.display_name),
    };
    match request.run(&node).await {
        Ok(joined) => see(format!("/feed?subwiki={}", joined.subwiki.about.id)),
        Err(e) => failed(e),
    }
}

#[derive(Template)]
#[template(path = "subwiki.html")]
struct SubwikiPage<'a> {
    title: &'a str,
    csrf: &'a str,
    id: String,
    name: String,
    description: String,
    policy: String,
    quorum: String,
    invite: String,
    members: Vec<MemberLine>,
    members_total: usize,
}

/// How many members the subwiki page lists.
const MEMBERS_SHOWN: usize = 200;

struct MemberLine {
    name: String,
    fingerprint: String,
    author: String,
    role: String,
    posts: usize,
    documents: usize,
    votes: usize,
}

async fn subwiki_page(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let id: SubwikiId = match parse(&id, "subwiki") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let about = match (SubwikiShow { id }).run(&node).await {
        Ok(s) => s.about,
        Err(e) => return failed(e),
    };
    let invite = match (SubwikiInvite { id }).run(&node).await {
        Ok(i) => i.invite.to_string(),
        Err(e) => return failed(e),
    };
    let listed = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || node.members(id, MEMBERS_SHOWN)).await
    };
    let (members_total, members) = match listed {
        Ok(Ok((total, members))) => (
            total,
            members
                .into_iter()
                .map(|m| MemberLine {
                    name: m.name.unwrap_or_default(),
                    fingerprint: m.member.author.fingerprint(),
                    author: m.member.author.to_string(),
                    role: format!("{:?}", m.role).to_lowercase(),
                    posts: m.member.posts,
                    documents: m.member.documents,
                    votes: m.member.votes,
                })
                .collect(),
        ),
        Ok(Err(e)) => return failed(e),
        Err(_) => {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "The node is shutting down.",
            );
        }
    };
    let name = about.name.clone().unwrap_or_else(|| "?".into());
    render(&SubwikiPage {
        title: &name.clone(),
        csrf: &viewer.csrf,
        id: id.to_string(),
        name,
        description: about.description.unwrap_or_default(),
        policy: about
            .edit_policy
            .map(|p| format!("{p:?}").to_lowercase())
            .unwrap_or_default(),
        quorum: about.quorum.map(|q| q.to_string()).unwrap_or_default(),
        invite,
        members,
        members_total,
    })
}

#[derive(Deserialize)]
struct LeaveForm {
    csrf: String,
    /// Also delete the subwiki from the home.
    #[serde(default)]
    purge: Option<String>,
    /// The box ticked to confirm the deletion.
    #[serde(default)]
    confirm: Option<String>,
}

async fn leave(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<LeaveForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let id: SubwikiId = match parse(&id, "subwiki") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let purge = form.purge.is_some();
    if purge && form.confirm.is_none() {
        return message(
            StatusCode::BAD_REQUEST,
            "Nothing deleted",
            "Tick the box that says you understand, then press the button again.",
        );
    }
    match (SubwikiLeave { id, purge }).run(&node).await {
        Ok(_) => see("/subwikis".into()),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct ProfileForm {
    csrf: String,
    subwiki: String,
    name: String,
}

async fn profile(
    State(node): State<Node>,
    viewer: Viewer,
    Form(form): Form<ProfileForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let id: SubwikiId = match parse(&form.subwiki, "subwiki") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let profile = ProfileContent {
        name: form.name,
        bio: String::new(),
    };
    match node.set_profile(id, profile).await {
        Ok(_) => see(format!("/subwiki/{id}")),
        Err(e) => failed(e),
    }
}

// ---------------------------------------------------------------------------------------------
// The node.

#[derive(Template)]
#[template(path = "node.html")]
struct NodePage<'a> {
    title: &'a str,
    author: String,
    fingerprint: String,
    peer_id: String,
    reachable: String,
    relays: Vec<String>,
    peers: Vec<(String, String, String)>,
    subwikis: Vec<(String, String, usize, String, String)>,
}

async fn node_page(State(node): State<Node>, _viewer: Viewer) -> Response {
    let status = match (Status {}).run(&node).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let peers = match (Peers {}).run(&node).await {
        Ok(p) => p
            .into_iter()
            .map(|p| {
                let addrs: Vec<String> = p.addresses.iter().map(ToString::to_string).collect();
                (p.peer_id.to_string(), p.path, addrs.join(" "))
            })
            .collect(),
        Err(e) => return failed(e),
    };
    let subwikis = status
        .subwikis
        .iter()
        .map(|s| {
            let last = s
                .last_sync
                .map(|t| ago(t, now()))
                .unwrap_or_else(|| "never".into());
            let catch_up = s.catch_up.map_or_else(
                || "up to date with the peers it met".to_owned(),
                |c| {
                    format!(
                        "catching up: {} fetched, {} to go{}, from {} peer(s)",
                        c.fetched,
                        c.remaining,
                        if c.reconciling {
                            " (still comparing)"
                        } else {
                            ""
                        },
                        c.peers
                    )
                },
            );
            (
                s.id.to_string(),
                s.name.clone().unwrap_or_else(|| "?".into()),
                s.entries,
                last,
                catch_up,
            )
        })
        .collect();
    let author = node.author();
    render(&NodePage {
        title: "Your node",
        author: author.to_string(),
        fingerprint: author.fingerprint(),
        peer_id: node.peer_id().to_string(),
        reachable: status.network.as_ref().map_or_else(
            || "not known (the network is not running)".to_owned(),
            |n| n.reachability.describe().to_owned(),
        ),
        relays: status.network.map(|n| n.relays).unwrap_or_default(),
        peers,
        subwikis,
    })
}

// ---------------------------------------------------------------------------------------------
// Live updates, blobs, assets.

/// Server-sent events: one `change` event each time the node's state changes (coalesced:
/// watchers see the latest generation), and a comment every 5 s, which also ends the stream
/// soon after the page is gone (the write fails). At most [`super::MAX_LIVE`] at once.
async fn events(State(node): State<Node>, _viewer: Viewer) -> Response {
    let Ok(permit) = LIVE.clone().try_acquire_owned() else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many open pages",
            "Live updates are off for this page; reload it to see what is new.",
        );
    };
    let changes = node.changes();
    let stream = futures::stream::unfold((changes, permit), |(mut changes, permit)| async move {
        changes.changed().await.ok()?;
        let generation = *changes.borrow_and_update();
        let event = Event::default()
            .event("change")
            .data(generation.to_string());
        Some((Ok::<_, Infallible>(event), (changes, permit)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

async fn blob(State(node): State<Node>, _viewer: Viewer, Path(hash): Path<String>) -> Response {
    let hash: BlobHash = match parse(&hash, "image") {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let bytes = match node.image(hash).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return message(StatusCode::NOT_FOUND, "Not found", "No such image here."),
        Err(e) => return failed(e),
    };
    // Written by anyone: served so that it cannot run in the UI's origin.
    let (content_type, disposition) = match image_type(&bytes) {
        Some(t) => (t, "inline"),
        None => ("application/octet-stream", "attachment"),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'",
            ),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Moderation.

#[derive(Template)]
#[template(path = "moderation.html")]
struct ModerationPage<'a> {
    title: &'a str,
    csrf: &'a str,
    id: String,
    name: String,
    founder: String,
    i_am_founder: bool,
    moderators: Vec<(String, String)>,
    trusted: Vec<(String, String)>,
    muted: Vec<(String, String)>,
    ignored: Vec<(String, String)>,
    log: Vec<(String, When, String, String, String, String)>,
    /// Fingerprint, author id, document, the entries that prove it.
    equivocations: Vec<(String, String, String, String)>,
}

/// An author as the page shows it: fingerprint, and the full id (for the forms).
fn who(author: &agora_crdt::AuthorId) -> (String, String) {
    (author.fingerprint(), author.to_string())
}

async fn moderation_page(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let id: SubwikiId = match parse(&id, "subwiki") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let log = match (Modlog { subwiki: id }).run(&node).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let ignored = match (OverrideList {}).run(&node).await {
        Ok(o) => o.ignored.iter().map(who).collect(),
        Err(e) => return failed(e),
    };
    let name = match (SubwikiShow { id }).run(&node).await {
        Ok(s) => s.about.name.unwrap_or_else(|| "?".into()),
        Err(e) => return failed(e),
    };
    let lines = log
        .log
        .iter()
        .rev()
        .map(|l| {
            let counted = if l.counted {
                "counted".to_owned()
            } else {
                format!(
                    "not counted: {}",
                    l.not_counted_because.clone().unwrap_or_default()
                )
            };
            (
                l.signer_fingerprint.clone(),
                When::of(l.timestamp),
                l.what.clone(),
                l.about.clone(),
                l.reason.clone(),
                counted,
            )
        })
        .collect();
    render(&ModerationPage {
        title: "Moderation",
        csrf: &viewer.csrf,
        id: id.to_string(),
        name,
        founder: log.founder.fingerprint(),
        i_am_founder: log.founder == node.author(),
        moderators: log.moderators.iter().map(who).collect(),
        trusted: log.trusted.iter().map(who).collect(),
        muted: log.muted.iter().map(who).collect(),
        ignored,
        log: lines,
        equivocations: log
            .equivocations
            .iter()
            .map(|e| {
                (
                    e.author_fingerprint.clone(),
                    e.author.to_string(),
                    e.doc.to_string(),
                    e.entries
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct RoleForm {
    csrf: String,
    action: String,
    author: String,
    #[serde(default)]
    reason: String,
}

async fn moderate(
    State(node): State<Node>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    if let Err(r) = viewer.check(&form.csrf) {
        return *r;
    }
    let subwiki: SubwikiId = match parse(&id, "subwiki") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let author: agora_crdt::AuthorId = match parse(form.author.trim(), "author") {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let done = match form.action.as_str() {
        "vouch" => Vouch { author, subwiki }.run(&node).await.map(drop),
        "revoke" => Revoke { author, subwiki }.run(&node).await.map(drop),
        "moderator-add" => ModeratorAdd { author, subwiki }.run(&node).await.map(drop),
        "moderator-remove" => ModeratorRemove { author, subwiki }
            .run(&node)
            .await
            .map(drop),
        "mute" => Mute {
            author,
            subwiki,
            reason: form.reason,
        }
        .run(&node)
        .await
        .map(drop),
        "unmute" => Unmute { author, subwiki }.run(&node).await.map(drop),
        "ignore" => OverrideIgnore { author }.run(&node).await.map(drop),
        "restore" => OverrideRestore { author }.run(&node).await.map(drop),
        _ => return message(StatusCode::BAD_REQUEST, "Unknown action", "No such action."),
    };
    match done {
        Ok(()) => see(format!(
            "/subwiki/{subwiki}/moderation?done={}",
            form.action
        )),
        Err(e) => failed(e),
    }
}
