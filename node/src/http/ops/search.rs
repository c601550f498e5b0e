//! Full-text search of the joined subwikis ([`crate::search`]).

use std::collections::HashMap;

use agora_crdt::SubwikiId;
use serde::{Deserialize, Serialize};

use super::{Post, PostState, Subwiki, check_within, parser, within};
use crate::http::{ApiError, Operation};
use crate::search::{MAX_OFFSET, MAX_RESULTS};
use crate::{AuthorFilter, Node, SearchQuery};

/// Search the joined subwikis: posts with the words in their title, body, comments, link, tags
/// or author's name, most relevant first. Words must all appear; "a phrase" keeps its order;
/// pref* matches words starting so; -word leaves posts with it out. Hidden posts are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Search {
    /// What to look for.
    pub query: String,
    /// Only this subwiki.
    #[arg(long, value_parser = parser::<SubwikiId>("subwiki id"))]
    #[serde(default)]
    pub subwiki: Option<SubwikiId>,
    /// Only posts by this author: an author id, or the 8-character key fingerprint shown next
    /// to names.
    #[arg(long, value_parser = parser::<AuthorFilter>("author"))]
    #[serde(default)]
    pub author: Option<AuthorFilter>,
    /// Newest first instead of most relevant first.
    #[arg(long)]
    #[serde(default)]
    pub newest: bool,
    /// Show hidden posts too, each with its status.
    #[arg(long)]
    #[serde(default)]
    pub show_hidden: bool,
    /// How many posts, 1 to 100.
    #[arg(long, default_value_t = 20, value_parser = within("--limit", 1..=MAX_RESULTS))]
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Skip this many posts first (the pages before), up to 1000.
    #[arg(long, default_value_t = 0, value_parser = within("--offset", 0..=MAX_OFFSET))]
    #[serde(default)]
    pub offset: usize,
}

fn default_limit() -> usize {
    20
}

/// A post found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The post as it reads now.
    #[serde(flatten)]
    pub post: Post,
    /// Its moderation status.
    pub status: PostState,
    /// Its subwiki's name.
    pub subwiki_name: Option<String>,
    /// Its relevance (higher is better); none when sorted newest first.
    pub score: Option<f32>,
    /// Where the words are in its body (its start if they are elsewhere).
    pub snippet: String,
    /// Byte ranges of `snippet` that matched, as `[start, end]`.
    pub highlights: Vec<[usize; 2]>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    /// The posts, best (or newest) first.
    pub hits: Vec<Hit>,
    /// The index is being brought up to date: some posts may not be found yet.
    pub indexing: bool,
}

impl Operation for Search {
    const PATH: &'static str = "search";
    type Answer = Found;

    async fn run(self, node: &Node) -> Result<Found, ApiError> {
        if let Some(id) = self.subwiki {
            Subwiki::of(node, id)?;
        }
        let query = SearchQuery {
            text: self.query,
            subwiki: self.subwiki,
            author: self.author,
            newest: self.newest,
            show_hidden: self.show_hidden,
            limit: check_within("limit", self.limit, &(1..=MAX_RESULTS))?,
            offset: check_within("offset", self.offset, &(0..=MAX_OFFSET))?,
        };
        // Searching reads the index, and on a node opened offline first brings it up to date:
        // off the runtime's threads.
        let searching = node.clone();
        let hits = tokio::task::spawn_blocking(move || searching.search(&query))
            .await
            .map_err(|e| ApiError::failed(format!("the search stopped: {e}")))??;
        let names: HashMap<SubwikiId, String> = node
            .subwikis()?
            .into_iter()
            .filter_map(|s| Some((s.id, s.genesis?.name)))
            .collect();
        Ok(Found {
            hits: hits
                .iter()
                .map(|h| Hit {
                    post: Post::from(&h.item),
                    status: PostState::from(&h.status),
                    subwiki_name: names.get(&h.item.subwiki).cloned(),
                    score: h.score,
                    snippet: h.snippet.text.clone(),
                    highlights: h
                        .snippet
                        .highlights
                        .iter()
                        .map(|r| [r.start, r.end])
                        .collect(),
                })
                .collect(),
            indexing: node.search_catching_up(),
        })
    }
}
