//! The search index on real nodes: what each kind of query finds, filters, hidden posts, the
//! index rebuilt from the store against the one kept up to date write by write, the journal of
//! a node opened offline, and the indexer of a running node.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agora_crdt::{Base, DocId, Policy, PostContent, ProfileContent, SubwikiId, VoteValue};

use super::*;
use crate::home::Home;
use crate::store::MemoryStore;
use crate::{Config, Node};

fn post(title: &str, body: &str) -> PostContent {
    PostContent {
        title: title.into(),
        body: body.into(),
        ..PostContent::default()
    }
}

fn ids(node: &Node, query: &SearchQuery) -> Vec<DocId> {
    node.search(query)
        .unwrap()
        .into_iter()
        .map(|h| h.item.post.meta.id)
        .collect()
}

fn find(node: &Node, text: &str) -> Vec<DocId> {
    ids(node, &SearchQuery::new(text))
}

fn sorted(mut v: Vec<DocId>) -> Vec<DocId> {
    v.sort();
    v
}

/// A node opened offline with two subwikis and a few posts, comments and a profile.
struct World {
    _dir: tempfile::TempDir,
    node: Node,
    rust: SubwikiId,
    birds: SubwikiId,
    borrow: DocId,
    async_post: DocId,
    heron: DocId,
    linked: DocId,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open_offline(dir.path()).unwrap();
    let rust = node
        .create_subwiki("rust", "", Policy::default())
        .await
        .unwrap();
    let birds = node
        .create_subwiki("birds", "", Policy::default())
        .await
        .unwrap();
    node.set_profile(
        rust,
        ProfileContent {
            name: "Zoë Quillfeather".into(),
            bio: String::new(),
        },
    )
    .await
    .unwrap();
    let borrow = node
        .create_post(
            rust,
            post(
                "The borrow checker",
                "Lifetimes tell the quick brown compiler how long references live.",
            ),
        )
        .await
        .unwrap();
    let async_post = node
        .create_post(
            rust,
            PostContent {
                tags: vec!["concurrency".into()],
                ..post(
                    "Async in practice",
                    "Futures are lazy; a brown bear is not.",
                )
            },
        )
        .await
        .unwrap();
    node.comment(async_post, None, "Cancellation safety matters")
        .await
        .unwrap();
    let heron = node
        .create_post(birds, post("Grey heron", "Seen at the Café by the river."))
        .await
        .unwrap();
    let linked = node
        .create_post(
            birds,
            PostContent {
                link: Some("https://birding.example.org/owls".into()),
                ..post("A link", "Have a look.")
            },
        )
        .await
        .unwrap();
    World {
        _dir: dir,
        node,
        rust,
        birds,
        borrow,
        async_post,
        heron,
        linked,
    }
}

#[tokio::test]
async fn words_phrases_prefixes_and_filters_find_the_right_posts() {
    let w = world().await;
    let n = &w.node;
    // A word of a body, a title, a comment, a tag, the author's name, a link; case and
    // accents do not matter.
    assert_eq!(find(n, "lifetimes"), vec![w.borrow]);
    assert_eq!(find(n, "HERON"), vec![w.heron]);
    assert_eq!(find(n, "cancellation"), vec![w.async_post]);
    assert_eq!(find(n, "concurrency"), vec![w.async_post]);
    assert_eq!(
        sorted(find(n, "quillfeather")),
        sorted(vec![w.borrow, w.async_post])
    );
    assert_eq!(sorted(find(n, "zoe")), sorted(vec![w.borrow, w.async_post]));
    assert_eq!(find(n, "birding"), vec![w.linked]);
    assert_eq!(find(n, "cafe"), vec![w.heron]);
    // Every word must be there.
    assert_eq!(find(n, "brown lifetimes"), vec![w.borrow]);
    assert_eq!(
        sorted(find(n, "brown")),
        sorted(vec![w.borrow, w.async_post])
    );
    assert!(find(n, "brown heron").is_empty());
    // Phrases keep their order; a split word is a phrase.
    assert_eq!(find(n, "\"quick brown\""), vec![w.borrow]);
    assert!(find(n, "\"brown quick\"").is_empty());
    assert_eq!(find(n, "example.org"), vec![w.linked]);
    // Prefixes, of a word and of a phrase's last word.
    assert_eq!(find(n, "lifet*"), vec![w.borrow]);
    assert_eq!(find(n, "\"quick bro\"*"), vec![w.borrow]);
    assert!(find(n, "lifex*").is_empty());
    // Exclusions.
    assert_eq!(find(n, "brown -bear"), vec![w.borrow]);
    // Filters: subwiki, author by id and by fingerprint.
    let mut q = SearchQuery::new("brown");
    q.subwiki = Some(w.birds);
    assert!(ids(n, &q).is_empty());
    q.subwiki = Some(w.rust);
    assert_eq!(ids(n, &q).len(), 2);
    let mut q = SearchQuery::new("heron");
    q.author = Some(AuthorFilter::Id(n.author()));
    assert_eq!(ids(n, &q), vec![w.heron]);
    q.author = Some(n.author().fingerprint().parse().unwrap());
    assert_eq!(ids(n, &q), vec![w.heron]);
    q.author = Some(AuthorFilter::Id(agora_crdt::AuthorId::from_bytes([9; 32])));
    assert!(ids(n, &q).is_empty());
    // A title match ranks above a body match; newest first is by creation.
    let title_first = n
        .create_post(w.rust, post("Brown", "nothing else"))
        .await
        .unwrap();
    let hits = n.search(&SearchQuery::new("brown")).unwrap();
    assert_eq!(hits[0].item.post.meta.id, title_first);
    assert!(hits[0].score.unwrap() > hits[1].score.unwrap());
    let mut q = SearchQuery::new("brown");
    q.newest = true;
    assert_eq!(ids(n, &q), vec![title_first, w.async_post, w.borrow]);
    // Paging.
    q.limit = 1;
    q.offset = 1;
    assert_eq!(ids(n, &q), vec![w.async_post]);
    // The snippet holds the words found.
    let hit = &n.search(&SearchQuery::new("lifetimes")).unwrap()[0];
    let first = hit.snippet.highlights[0].clone();
    assert_eq!(&hit.snippet.text[first], "Lifetimes");
}

#[tokio::test]
async fn bad_queries_are_refused_as_usage_errors() {
    let w = world().await;
    let mut q = SearchQuery::new("x".repeat(MAX_QUERY_BYTES + 1));
    let usage = |r: Result<Vec<SearchHit>, NodeError>| {
        matches!(r, Err(NodeError::Search(SearchError::Query(_))))
    };
    assert!(usage(w.node.search(&q)));
    q.text = "-only".into();
    assert!(usage(w.node.search(&q)));
    q.text = "ok".into();
    q.limit = 0;
    assert!(usage(w.node.search(&q)));
    q.limit = MAX_RESULTS + 1;
    assert!(usage(w.node.search(&q)));
    q.limit = 1;
    q.offset = MAX_OFFSET + 1;
    assert!(usage(w.node.search(&q)));
}

#[tokio::test]
async fn hidden_posts_are_found_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open_offline(dir.path()).unwrap();
    let policy = Policy {
        hide_quorum: 1,
        ..Policy::default()
    };
    let s = node.create_subwiki("s", "", policy).await.unwrap();
    let spam = node
        .create_post(s, post("Offer", "cheap pills today"))
        .await
        .unwrap();
    let fine = node
        .create_post(s, post("Pills", "cheap advice on pills"))
        .await
        .unwrap();
    assert_eq!(sorted(find(&node, "cheap")), sorted(vec![spam, fine]));
    // The founder's hide vote counts: the post is left out, with no reindexing.
    node.vote_post(spam, VoteValue::Hide, "spam").await.unwrap();
    assert_eq!(find(&node, "cheap"), vec![fine]);
    let mut q = SearchQuery::new("cheap");
    q.show_hidden = true;
    let hits = node.search(&q).unwrap();
    assert_eq!(hits.len(), 2);
    let hidden = hits.iter().find(|h| h.item.post.meta.id == spam).unwrap();
    assert!(hidden.status.hidden.is_some());
    // A page is filled past hidden posts.
    let mut q = SearchQuery::new("cheap");
    q.limit = 1;
    assert_eq!(ids(&node, &q), vec![fine]);
}

/// Queries whose results must not depend on how the index was built.
fn results(node: &Node, subwiki: SubwikiId) -> Vec<Vec<DocId>> {
    let mut out = Vec::new();
    for text in [
        "brown",
        "lifetimes",
        "cancellation",
        "zoe",
        "quillfeather",
        "heron",
        "renamed",
        "\"quick brown\"",
        "lif*",
        "edited",
        "brown -bear",
        "cafe",
        "later",
        "comment",
    ] {
        let mut q = SearchQuery::new(text);
        q.limit = MAX_RESULTS;
        // Scores may differ a little (deleted documents weigh until segments merge): compare
        // relevance results as sets, newest-first results in order.
        out.push(sorted(ids(node, &q)));
        q.newest = true;
        out.push(ids(node, &q));
        q.subwiki = Some(subwiki);
        out.push(ids(node, &q));
        q.show_hidden = true;
        out.push(ids(node, &q));
    }
    out
}

#[tokio::test]
async fn the_index_rebuilt_from_the_store_gives_the_same_results() {
    let w = world().await;
    let n = &w.node;
    // Built write by write: searches in between index what was written since.
    assert_eq!(find(n, "lifetimes"), vec![w.borrow]);
    n.edit_post(
        w.borrow,
        Base::Latest,
        post(
            "The borrow checker, edited",
            "References: lifetimes, edited.",
        ),
    )
    .await
    .unwrap();
    assert!(find(n, "quick").is_empty(), "the old text is gone");
    n.comment(w.heron, None, "A later comment").await.unwrap();
    n.set_profile(
        w.rust,
        ProfileContent {
            name: "Renamed".into(),
            bio: String::new(),
        },
    )
    .await
    .unwrap();
    n.vote_post(w.heron, VoteValue::Hide, "").await.unwrap();
    for i in 0..30 {
        n.create_post(w.rust, post(&format!("Brown {i}"), "later posts"))
            .await
            .unwrap();
    }
    let incremental = results(n, w.rust);
    assert!(incremental.iter().any(|r| !r.is_empty()));
    let mut renamed = SearchQuery::new("renamed");
    renamed.limit = MAX_RESULTS;
    assert_eq!(
        ids(n, &renamed).len(),
        32,
        "the new name is on every post of the author"
    );

    let held = n.rebuild_search().unwrap();
    assert_eq!(held, 34);
    assert_eq!(results(n, w.rust), incremental);
}

#[tokio::test]
async fn a_node_opened_offline_notes_its_posts_for_the_next_search() {
    let dir = tempfile::tempdir().unwrap();
    let (s, first) = {
        let node = Node::open_offline(dir.path()).unwrap();
        let s = node
            .create_subwiki("s", "", Policy::default())
            .await
            .unwrap();
        let first = node.create_post(s, post("First", "alpha")).await.unwrap();
        // A new index of a store whose every write this node saw: nothing to index again.
        assert_eq!(find(&node, "alpha"), vec![first]);
        assert_eq!(node.search_index().full.load(Ordering::Relaxed), 0);
        node.shutdown().await;
        (s, first)
    };
    // A command that writes and never searches: its posts go to the journal.
    let second = {
        let node = Node::open_offline(dir.path()).unwrap();
        let id = node
            .create_post(s, post("Second", "alpha beta"))
            .await
            .unwrap();
        node.comment(first, None, "gamma").await.unwrap();
        node.shutdown().await;
        id
    };
    let journal = dir.path().join("search").join(JOURNAL);
    assert!(journal.is_file());
    let node = Node::open_offline(dir.path()).unwrap();
    assert_eq!(sorted(find(&node, "alpha")), sorted(vec![first, second]));
    assert_eq!(find(&node, "gamma"), vec![first]);
    assert_eq!(
        node.search_index().full.load(Ordering::Relaxed),
        0,
        "the journal's posts were indexed, not the whole subwiki"
    );
    assert!(!journal.exists(), "the journal is gone once indexed");

    // Without the journal (a command killed before it shut down), the count tells: the
    // subwiki is indexed again.
    let third = node.create_post(s, post("Third", "delta")).await.unwrap();
    drop(node);
    let node = Node::open_offline(dir.path()).unwrap();
    assert_eq!(find(&node, "delta"), vec![third]);
    assert_eq!(node.search_index().full.load(Ordering::Relaxed), 1);

    // An index that is damaged or gone is built again.
    drop(node);
    std::fs::write(dir.path().join("search").join("meta.json"), b"junk").unwrap();
    let node = Node::open_offline(dir.path()).unwrap();
    assert_eq!(find(&node, "delta"), vec![third]);
    drop(node);
    std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    let node = Node::open_offline(dir.path()).unwrap();
    assert_eq!(sorted(find(&node, "alpha")), sorted(vec![first, second]));
}

/// Waits until `check` holds, re-checking after each commit of the index.
async fn until_indexed(node: &Node, what: &str, mut check: impl FnMut(&Node) -> bool) {
    let mut commits = node.search_commits();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check(node) {
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_indexes_in_the_background_and_commits_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Home::new(dir.path()).load_or_init().unwrap();
    let mut config = Config::new(dir.path());
    config.listen = Vec::new();
    config.mdns = false;
    let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::default());
    let node = Node::start_with(store.clone(), identity.clone(), &config)
        .await
        .unwrap();
    let s = node
        .create_subwiki("s", "", Policy::default())
        .await
        .unwrap();
    let p = node
        .create_post(s, post("Background", "indexed later"))
        .await
        .unwrap();
    until_indexed(&node, "the post", |n| find(n, "background") == vec![p]).await;
    assert!(!node.search_catching_up());
    // Written just before a stop: committed by the stop.
    let q = node.create_post(s, post("Last", "words")).await.unwrap();
    node.shutdown().await;
    drop(node);
    let node = Node::start_with(store, identity, &config).await.unwrap();
    assert_eq!(find(&node, "words"), vec![q]);
    until_indexed(&node, "the start's check", |n| !n.search_catching_up()).await;
    assert_eq!(
        node.search_index().full.load(Ordering::Relaxed),
        0,
        "nothing was indexed again at the start"
    );
    node.shutdown().await;
}

/// A running node in `home` on a store in memory, no network, its index on or off.
async fn running(home: &std::path::Path, search: bool) -> Node {
    let identity = Home::new(home).load_or_init().unwrap();
    let mut config = Config::new(home);
    config.listen = Vec::new();
    config.mdns = false;
    config.search = search;
    let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::default());
    Node::start_with(store, identity, &config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_search_off_keeps_no_index_and_follows_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let node = running(dir.path(), false).await;
    let s = node
        .create_subwiki("s", "", Policy::default())
        .await
        .unwrap();
    node.create_post(s, post("Quiet", "nobody searches here"))
        .await
        .unwrap();
    assert!(matches!(
        node.search(&SearchQuery::new("quiet")),
        Err(NodeError::Search(SearchError::Index(_)))
    ));
    node.shutdown().await;
    assert!(!dir.path().join("search").exists(), "no index, no journal");
}

/// Whether any segment of the index, deleted documents included, still has `word` in its
/// bodies' term dictionary.
fn index_has_word(node: &Node, word: &str) -> bool {
    let opened = node.search_index().opened().unwrap();
    opened.reader.reload().unwrap();
    let searcher = opened.reader.searcher();
    let term = tantivy::Term::from_field_text(opened.fields.body, word);
    searcher.segment_readers().iter().any(|segment| {
        segment
            .inverted_index(opened.fields.body)
            .unwrap()
            .get_term_info(&term)
            .unwrap()
            .is_some()
    })
}

/// A retracted post leaves the index's files, not only its results: the segments that held
/// it are merged without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retracted_post_leaves_the_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let node = running(dir.path(), true).await;
    let s = node
        .create_subwiki("s", "", Policy::default())
        .await
        .unwrap();
    let gone = node
        .create_post(s, post("Address", "at zyzzyvaplace"))
        .await
        .unwrap();
    let kept = node
        .create_post(s, post("Kept", "stays findable"))
        .await
        .unwrap();
    until_indexed(&node, "both posts", |n| {
        find(n, "zyzzyvaplace") == vec![gone] && find(n, "findable") == vec![kept]
    })
    .await;
    assert!(index_has_word(&node, "zyzzyvaplace"));
    node.retract(gone, "").await.unwrap();
    until_indexed(&node, "the retraction", |n| {
        find(n, "zyzzyvaplace").is_empty() && !index_has_word(n, "zyzzyvaplace")
    })
    .await;
    assert_eq!(find(&node, "findable"), vec![kept]);
    node.shutdown().await;
}
