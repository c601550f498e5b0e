//! A generated subwiki that looks like a real community's, for benchmarks: one genesis entry,
//! [`AUTHORS`] authors, posts with a title of about 40 characters and a body of about 600
//! characters of varied text, some comments (a quarter of the posts get one, some get a reply
//! too) and some edits (one post in ten is edited by its author or another member). The same
//! seed gives the same entries, byte for byte.
//!
//! Include it in a bench with `#[path = "support/realistic.rs"] mod realistic;`.
//!
//! Generating costs about a millisecond per post (an Automerge change, a signature and its
//! check), so [`cached`] keeps the entries in one file under `target/bench-data/` and reads
//! them back with [`agora_crdt::reopen`] (decoded, signatures batch-checked) on the next run.
//! The file is a build product like the target directory: never committed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use agora_crdt::{
    AuthorKey, Base, DocId, Entry, EntryId, Policy, PostContent, Replica, SubwikiId, Timestamp,
};

/// Authors of the generated subwiki; the first founds it.
pub const AUTHORS: usize = 8;
/// Genesis time (ms since the epoch).
pub const T0: u64 = 1_700_000_000_000;
/// Posts made with one replica before starting a fresh one, which keeps memory flat (the
/// entries are the same as with one replica: comments and edits only touch posts of their
/// chunk).
const CHUNK: usize = 500;
/// Bump when the generated data changes, so cached files are made again.
const VERSION: u32 = 1;

/// The generated subwiki.
#[derive(Debug)]
pub struct Subwiki {
    /// Its id.
    pub id: SubwikiId,
    /// Every entry, genesis first, then in the order made (time order within a chunk).
    pub entries: Vec<Entry>,
    /// Posts, comments and edits among `entries`.
    pub posts: usize,
    pub comments: usize,
    pub edits: usize,
}

impl Subwiki {
    /// The entries' own bytes.
    pub fn entry_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes().len()).sum()
    }
}

/// The authors' keys, deterministic.
pub fn authors() -> Vec<AuthorKey> {
    (0..AUTHORS)
        .map(|i| {
            let b = u8::try_from(0x40 + i).unwrap_or(0x40);
            AuthorKey::from_secret([b; 32], [b; 8])
        })
        .collect()
}

/// xorshift64*: small, deterministic, good enough for text.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "we",
    "this",
    "but",
    "not",
    "you",
    "they",
    "garden",
    "river",
    "bridge",
    "council",
    "market",
    "library",
    "station",
    "winter",
    "summer",
    "festival",
    "bicycle",
    "repair",
    "meeting",
    "schedule",
    "neighbourhood",
    "volunteers",
    "recipe",
    "bread",
    "harvest",
    "tomatoes",
    "rain",
    "forecast",
    "weekend",
    "children",
    "school",
    "teacher",
    "project",
    "photos",
    "camera",
    "mountain",
    "trail",
    "map",
    "question",
    "answer",
    "problem",
    "solution",
    "idea",
    "proposal",
    "vote",
    "budget",
    "street",
    "lights",
    "traffic",
    "bus",
    "route",
    "changes",
    "notice",
    "community",
    "history",
    "museum",
    "archive",
    "letter",
    "story",
    "grandmother",
    "kitchen",
    "workshop",
    "tools",
    "wood",
    "paint",
    "colour",
    "window",
    "roof",
    "leak",
    "plumber",
    "electricity",
    "solar",
    "panels",
    "energy",
    "prices",
    "shop",
    "opening",
    "hours",
    "closed",
    "holiday",
    "music",
    "concert",
    "choir",
    "band",
    "rehearsal",
    "tickets",
    "free",
    "everyone",
    "welcome",
    "please",
    "thanks",
    "really",
    "quite",
    "probably",
    "yesterday",
    "tomorrow",
    "morning",
    "evening",
    "quickly",
    "carefully",
    "together",
    "again",
    "already",
    "still",
    "found",
    "lost",
    "keys",
    "dog",
    "cat",
    "owner",
    "park",
    "playground",
    "benches",
    "trees",
    "planted",
    "cleaned",
    "organised",
    "cancelled",
    "moved",
    "started",
    "finished",
    "needs",
    "help",
    "someone",
    "anyone",
    "knows",
    "think",
    "believe",
    "agree",
    "disagree",
    "maybe",
    "definitely",
    "important",
    "small",
    "large",
    "old",
    "new",
    "local",
    "public",
    "private",
];

/// About `len` characters of sentences from [`WORDS`], varied by `rng`.
pub fn text(rng: &mut Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut sentence = 0;
    while out.len() < len {
        let word = WORDS[rng.below(WORDS.len())];
        if sentence == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(word);
        }
        sentence += 1;
        if sentence > 4 && rng.chance(15) {
            out.push_str(if rng.chance(20) { "? " } else { ". " });
            sentence = 0;
        } else if rng.chance(6) {
            out.push_str(", ");
        } else {
            out.push(' ');
        }
        // Now and then a number or a name, as real posts have.
        if rng.chance(3) {
            out.push_str(&format!("{} ", rng.below(2030)));
        }
    }
    out.truncate(out.trim_end().len());
    if !out.ends_with(['.', '?']) {
        out.push('.');
    }
    out
}

/// Generates `posts` posts (plus their comments and edits), deterministic from `seed`.
pub fn generate(seed: u64, posts: usize) -> Subwiki {
    let keys = authors();
    let (_, genesis) = Replica::found(
        &keys[0],
        Timestamp(T0),
        "Riverside neighbours",
        "Everything about our part of town: events, lost and found, repairs, questions.",
        Policy::default(),
    )
    .expect("genesis");
    let id: SubwikiId = genesis.id().into();
    let mut rng = Rng::new(seed);
    let mut out = Subwiki {
        id,
        entries: vec![genesis.clone()],
        posts: 0,
        comments: 0,
        edits: 0,
    };
    let mut time = T0;
    let mut made = 0;
    while made < posts {
        let mut replica = Replica::new(genesis.clone()).expect("replica");
        let mut later: Vec<(u64, usize, DocId, PostContent)> = Vec::new();
        for _ in 0..CHUNK.min(posts - made) {
            // A post every two minutes or so, on average.
            time += 30_000 + rng.below(180_000) as u64;
            let author = rng.below(AUTHORS);
            let title_len = 25 + rng.below(30);
            let body_len = 350 + rng.below(500);
            let content = PostContent {
                title: text(&mut rng, title_len)
                    .trim_end_matches(['.', '?'])
                    .to_owned(),
                body: text(&mut rng, body_len),
                ..PostContent::default()
            };
            let post = replica
                .create_post(&keys[author], Timestamp(time), content.clone())
                .expect("post");
            let doc: DocId = post.id().into();
            out.entries.push(post);
            out.posts += 1;
            made += 1;
            if rng.chance(25) {
                let who = rng.below(AUTHORS);
                let len = 60 + rng.below(240);
                let comment = replica
                    .comment(
                        &keys[who],
                        Timestamp(time + 1_000),
                        doc,
                        None,
                        &text(&mut rng, len),
                    )
                    .expect("comment");
                let reply_to: DocId = comment.id().into();
                out.entries.push(comment);
                out.comments += 1;
                if rng.chance(30) {
                    let len = 40 + rng.below(160);
                    let reply = replica
                        .comment(
                            &keys[author],
                            Timestamp(time + 2_000),
                            doc,
                            Some(reply_to),
                            &text(&mut rng, len),
                        )
                        .expect("reply");
                    out.entries.push(reply);
                    out.comments += 1;
                }
            }
            if rng.chance(10) {
                let editor = if rng.chance(60) {
                    author
                } else {
                    rng.below(AUTHORS)
                };
                let mut edited = content;
                let extra = 20 + rng.below(100);
                edited.body.push_str("\n\nEdit: ");
                edited.body.push_str(&text(&mut rng, extra));
                later.push((time + 5_000, editor, doc, edited));
            }
        }
        for (at, editor, doc, content) in later {
            if let Some(edit) = replica
                .edit_post(&keys[editor], Timestamp(at), doc, &Base::Latest, content)
                .expect("edit")
            {
                out.entries.push(edit);
                out.edits += 1;
            }
        }
    }
    out
}

/// `target/bench-data/` (under `$CARGO_TARGET_DIR` if that is set).
pub fn data_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench-data")
}

/// [`generate`], kept in `target/bench-data/realistic-<posts>-<seed>.entries` and read back
/// from there on later runs (with the signatures checked, [`agora_crdt::reopen`]).
pub fn cached(seed: u64, posts: usize) -> Subwiki {
    let path = data_dir().join(format!("realistic-v{VERSION}-{posts}-{seed}.entries"));
    if let Ok(bytes) = std::fs::read(&path)
        && let Some(subwiki) = read(&bytes)
    {
        return subwiki;
    }
    let started = std::time::Instant::now();
    let subwiki = generate(seed, posts);
    eprintln!(
        "generated {} entries ({} posts, {} comments, {} edits, {} bytes) in {:.1} s",
        subwiki.entries.len(),
        subwiki.posts,
        subwiki.comments,
        subwiki.edits,
        subwiki.entry_bytes(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::create_dir_all(data_dir());
    let mut file = Vec::with_capacity(subwiki.entry_bytes() + 4 * subwiki.entries.len() + 24);
    for n in [subwiki.posts, subwiki.comments, subwiki.edits] {
        file.extend_from_slice(&(n as u64).to_le_bytes());
    }
    for e in &subwiki.entries {
        file.extend_from_slice(&(e.bytes().len() as u32).to_le_bytes());
        file.extend_from_slice(e.bytes());
    }
    let tmp = path.with_extension("partial");
    if std::fs::write(&tmp, &file).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
    subwiki
}

/// Entries as stored: each id with its bytes.
pub type Stored<'a> = Vec<(EntryId, &'a [u8])>;

/// Splits a cached file into (id, bytes) pairs: the id is blake3 of the body (all but the
/// 64-byte signature).
pub fn split(file: &[u8]) -> Option<(Stored<'_>, [usize; 3])> {
    let mut counts = [0usize; 3];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = u64::from_le_bytes(file.get(i * 8..i * 8 + 8)?.try_into().ok()?) as usize;
    }
    let mut rest = file.get(24..)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + len)?;
        let body = bytes.get(..len.checked_sub(64)?)?;
        out.push((EntryId::from_bytes(*blake3::hash(body).as_bytes()), bytes));
        rest = rest.get(4 + len..)?;
    }
    Some((out, counts))
}

fn read(file: &[u8]) -> Option<Subwiki> {
    let (stored, [posts, comments, edits]) = split(file)?;
    let entries = agora_crdt::reopen(&stored)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let id = entries.first()?.subwiki();
    Some(Subwiki {
        id,
        entries,
        posts,
        comments,
        edits,
    })
}

/// Bytes the files of a directory tree take on the disk (allocated blocks, which is less than
/// their length for sparse files), and their lengths.
pub fn disk_bytes(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|d| {
                d.flatten()
                    .map(|e| disk_bytes(&e.path()))
                    .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
            })
            .unwrap_or((0, 0)),
        Ok(m) => (m.blocks() * 512, m.len()),
        Err(_) => (0, 0),
    }
}
