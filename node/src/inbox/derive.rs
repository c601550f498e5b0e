//! Items from entries and from moderation outcomes. Entries are read outside the subwiki's
//! lock (the text of their changes); the lock is held only for look-ups in its index (whose is
//! a document) and for the few documents built when one of the owner's documents arrives.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use agora_crdt::{
    AuthorId, DocId, DocKind, Entry, EntryId, Hidden, Payload, Replica, RoleAction, SubwikiId,
    Timestamp, VoteTarget, VoteValue,
};

use super::mention::{inserted_text, may_mention, mentions};
use super::{Inbox, Item, Kind};
use crate::core::Core;
use crate::error::NodeError;

/// Characters of an entry's text kept in its item.
const EXCERPT_CHARS: usize = 280;

/// What an entry by someone else says, read without the subwiki's index.
#[derive(Debug)]
struct Facts {
    id: EntryId,
    subwiki: SubwikiId,
    author: AuthorId,
    time: Timestamp,
    what: What,
    /// A vote's reason, cut to [`EXCERPT_CHARS`]; the text of a change is read only for the
    /// entries that give an item ([`with_excerpt`]).
    excerpt: String,
    /// Whether that text mentions the owner.
    mention: bool,
}

#[derive(Debug)]
enum What {
    Create {
        doc: DocId,
        kind: DocKind,
        parent: Option<DocId>,
        reply_to: Option<DocId>,
    },
    Change {
        doc: DocId,
    },
    Vote {
        target: VoteTarget,
        value: VoteValue,
    },
    Role {
        action: RoleAction,
        subject: AuthorId,
    },
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// What an entry says, if it is by someone other than `me` and could concern them.
fn facts(entry: &Entry, me: &AuthorId) -> Option<Facts> {
    if entry.author() == *me {
        return None;
    }
    let (what, text) = match entry.payload() {
        // A retraction of the owner's post by a moderator shows as the post's status (its
        // view reads as redacted); no item of its own yet.
        Payload::Genesis(_) | Payload::Retract(_) => return None,
        Payload::CreateDocument(c) => (
            What::Create {
                doc: entry.id().into(),
                kind: c.kind,
                parent: c.parent,
                reply_to: c.reply_to,
            },
            None,
        ),
        Payload::Change(c) => (What::Change { doc: c.doc }, None),
        Payload::Vote(v) => (
            What::Vote {
                target: v.target,
                value: v.value,
            },
            Some(v.reason.clone()),
        ),
        Payload::Role(r) => (
            What::Role {
                action: r.action,
                subject: r.subject,
            },
            Some(String::new()),
        ),
    };
    let (text, mention) = match text {
        Some(text) => (text, false),
        // Most changes cannot mention the owner: their operations are read only when their
        // bytes hold the mention.
        None => {
            let mention = entry
                .payload()
                .change_bytes()
                .is_some_and(|b| may_mention(b, me))
                && entry
                    .change()
                    .is_some_and(|c| mentions(&inserted_text(c), me));
            (String::new(), mention)
        }
    };
    Some(Facts {
        id: entry.id(),
        subwiki: entry.subwiki(),
        author: entry.author(),
        time: entry.timestamp(),
        what,
        excerpt: excerpt(&text),
        mention,
    })
}

/// The item with the start of the text its entry inserts, for an entry carrying a change.
fn with_excerpt(mut item: Item, entry: Option<&Entry>) -> Item {
    if item.excerpt.is_empty()
        && let Some(change) = entry.and_then(Entry::change)
    {
        item.excerpt = excerpt(&inserted_text(change));
    }
    item
}

/// Whether `doc` is one of `me`'s documents of `kind`, by the subwiki's index.
fn owned(replica: &Replica, me: &AuthorId, doc: &DocId, kind: DocKind) -> bool {
    replica
        .doc_meta(doc)
        .is_some_and(|m| m.creator == *me && m.kind == kind)
}

/// The item an entry gives, if any. Depends on the entry and on which documents are `me`'s.
fn classify(replica: &Replica, me: &AuthorId, f: &Facts) -> Option<Item> {
    let mut post = None;
    let mut doc = None;
    let mut detail = String::new();
    let kind = match &f.what {
        What::Create {
            doc: created,
            kind,
            parent,
            reply_to,
        } => {
            doc = Some(*created);
            post = match kind {
                DocKind::Post => Some(*created),
                DocKind::Comment => *parent,
                _ => None,
            };
            let reply = *kind == DocKind::Comment
                && reply_to.is_some_and(|r| owned(replica, me, &r, DocKind::Comment));
            let comment = *kind == DocKind::Comment
                && parent.is_some_and(|p| owned(replica, me, &p, DocKind::Post));
            if reply {
                Kind::Reply
            } else if comment {
                Kind::Comment
            } else if f.mention {
                Kind::Mention
            } else {
                return None;
            }
        }
        What::Change { doc: changed } => {
            doc = Some(*changed);
            if owned(replica, me, changed, DocKind::Post) {
                post = Some(*changed);
                Kind::Edit
            } else if f.mention {
                Kind::Mention
            } else {
                return None;
            }
        }
        What::Vote { target, value } => {
            detail = value.name().to_owned();
            match target {
                VoteTarget::Post(p) if owned(replica, me, p, DocKind::Post) => {
                    post = Some(*p);
                    Kind::Vote
                }
                VoteTarget::Author(a) if a == me => Kind::Vote,
                _ => return None,
            }
        }
        What::Role { action, subject } => {
            if subject != me {
                return None;
            }
            detail = action.name().to_owned();
            Kind::Role
        }
    };
    Some(Item {
        key: f.id.to_string(),
        kind,
        subwiki: f.subwiki,
        time: f.time,
        actor: Some(f.author),
        post,
        doc,
        detail,
        excerpt: f.excerpt.clone(),
        mention: f.mention,
    })
}

/// The entries by others about documents of `me` among `created`: comments on them and
/// replies to them, changes to them, votes on them. Builds each of those posts (for its
/// history); the comments are found in the index without building them.
fn about(
    replica: &Replica,
    me: &AuthorId,
    created: &BTreeSet<DocId>,
) -> (Vec<EntryId>, Vec<Entry>) {
    let mut ids = Vec::new();
    for id in replica.doc_ids() {
        let Some(meta) = replica.doc_meta(&id) else {
            continue;
        };
        let names_one = meta.parent.is_some_and(|p| created.contains(&p))
            || meta.reply_to.is_some_and(|r| created.contains(&r));
        if meta.creator != *me && names_one {
            ids.push(id.into());
        }
    }
    for post in created {
        if replica
            .doc_meta(post)
            .is_some_and(|m| m.kind == DocKind::Post)
        {
            for change in replica.history(post).unwrap_or_default() {
                if change.author != *me && change.version != EntryId::from(*post) {
                    ids.push(change.version);
                }
            }
        }
    }
    let votes = replica
        .votes()
        .filter(|e| e.author() != *me)
        .filter(|e| {
            matches!(e.payload(), Payload::Vote(v)
                if matches!(v.target, VoteTarget::Post(p) if created.contains(&p)))
        })
        .cloned()
        .collect();
    (ids, votes)
}

/// Derives the items of entries just written to (or found in) a subwiki, adds them to the
/// inbox and records the entries as looked at. Returns whether an item changed.
pub(super) fn apply_entries(
    core: &Core,
    inbox: &Inbox,
    subwiki: SubwikiId,
    entries: &[Entry],
) -> Result<bool, NodeError> {
    let me = core.author_key().id();
    let read: Vec<Facts> = entries.iter().filter_map(|e| facts(e, &me)).collect();
    let mine: BTreeSet<DocId> = entries
        .iter()
        .filter(|e| e.author() == me)
        .filter(|e| matches!(e.payload(), Payload::CreateDocument(_)))
        .map(|e| e.id().into())
        .collect();
    let (mut items, about_mine) = core.with_replica(subwiki, |r| {
        let items: Vec<Item> = read.iter().filter_map(|f| classify(r, &me, f)).collect();
        let about_mine = (!mine.is_empty()).then(|| about(r, &me, &mine));
        Ok((items, about_mine))
    })?;
    let mut voted_on_mine = false;
    let mut read_again = Vec::new();
    if let Some((ids, votes)) = about_mine {
        // Entries about one of the owner's documents that arrived before it (from their other
        // device): looked at again now that it is known to be theirs.
        voted_on_mine = votes.iter().any(|e| e.author() != me);
        read_again.extend(votes);
        let seen: HashSet<EntryId> = read.iter().map(|f| f.id).collect();
        for id in ids.into_iter().filter(|id| !seen.contains(id)) {
            read_again.extend(core.store().entry(&id)?);
        }
        let again: Vec<Facts> = read_again.iter().filter_map(|e| facts(e, &me)).collect();
        if !again.is_empty() {
            items.extend(core.with_replica(subwiki, |r| {
                Ok(again
                    .iter()
                    .filter_map(|f| classify(r, &me, f))
                    .collect::<Vec<_>>())
            })?);
        }
    }
    let by_id: HashMap<EntryId, &Entry> = entries
        .iter()
        .chain(&read_again)
        .map(|e| (e.id(), e))
        .collect();
    let items = items
        .into_iter()
        .map(|item| {
            let entry = item.entry().and_then(|id| by_id.get(&id).copied());
            with_excerpt(item, entry)
        })
        .collect();
    let looked_at = entries.iter().map(|e| (subwiki, e.id())).collect();
    let mut changed = inbox.put(items, looked_at);
    if voted_on_mine {
        changed |= refresh_outcomes(core, inbox, subwiki)?;
    }
    Ok(changed)
}

/// Recomputes a subwiki's outcome items: the owner's posts hidden or marked, and their
/// standing, as their view of moderation (with their overrides) has it now.
pub(super) fn refresh_outcomes(
    core: &Core,
    inbox: &Inbox,
    subwiki: SubwikiId,
) -> Result<bool, NodeError> {
    let me = core.author_key().id();
    let overrides = core.overrides();
    let summary = core.moderation_summary(subwiki)?;
    let items = core.with_replica(subwiki, |r| {
        // The owner's posts with votes, and when the last vote on each was signed.
        let mut voted: BTreeMap<DocId, Timestamp> = BTreeMap::new();
        let mut about_me = None;
        for vote in r.votes() {
            let Payload::Vote(v) = vote.payload() else {
                continue;
            };
            match v.target {
                VoteTarget::Post(p) if owned(r, &me, &p, DocKind::Post) => {
                    let t = voted.entry(p).or_default();
                    *t = (*t).max(vote.timestamp());
                }
                VoteTarget::Author(a) if a == me => {
                    about_me = about_me.max(Some(vote.timestamp()));
                }
                _ => {}
            }
        }
        let roles_about_me = r
            .role_statements()
            .filter(|e| matches!(e.payload(), Payload::Role(s) if s.subject == me))
            .map(Entry::timestamp)
            .max();
        let genesis = r.genesis_entry().timestamp();
        // The owner's posts and comments a moderator redacted (their own retractions give
        // nothing): an outcome of the set of entries, like a hidden post.
        let redacted: Vec<Item> = r
            .tombstones()
            .filter(|t| t.meta.creator == me && t.is_redaction())
            .map(|t| Item {
                key: format!("status.{}.redacted", t.meta.id),
                kind: Kind::Status,
                subwiki,
                time: t.at,
                actor: Some(t.signer),
                post: match t.meta.kind {
                    DocKind::Post => Some(t.meta.id),
                    DocKind::Comment => t.meta.parent,
                    _ => None,
                },
                doc: Some(t.meta.id),
                detail: "redacted".to_owned(),
                excerpt: excerpt(&t.reason),
                mention: false,
            })
            .collect();
        let mut items = Vec::new();
        let mut outcome = |key: String, kind, time: Timestamp, post, detail: &str| {
            items.push(Item {
                key,
                kind,
                subwiki,
                time,
                actor: None,
                post,
                doc: post,
                detail: detail.to_owned(),
                excerpt: String::new(),
                mention: false,
            });
        };
        for (post, time) in voted {
            let Some(meta) = r.doc_meta(&post) else {
                continue;
            };
            let status = summary.status(meta);
            for (on, what) in [
                (status.hidden == Some(Hidden::ByVotes), "hidden"),
                (status.disputed, "misleading"),
                (status.verified, "verified"),
            ] {
                if on {
                    let key = format!("status.{post}.{what}");
                    outcome(key, Kind::Status, time, Some(post), what);
                }
            }
        }
        let roles = r.roles();
        let role = match roles.role(&me) {
            agora_crdt::Role::Moderator => Some("moderator"),
            agora_crdt::Role::Trusted => Some("trusted"),
            _ => None,
        };
        let barred = roles.barred().contains(&me).then_some("barred");
        for what in role.into_iter().chain(barred) {
            let time = roles_about_me.unwrap_or(genesis);
            outcome(
                format!("standing.{subwiki}.{what}"),
                Kind::Standing,
                time,
                None,
                what,
            );
        }
        if summary.is_muted(&me) {
            let time = about_me.unwrap_or(genesis);
            outcome(
                format!("standing.{subwiki}.muted"),
                Kind::Standing,
                time,
                None,
                "muted",
            );
        }
        items.extend(redacted);
        Ok(items)
    })?;
    Ok(inbox.set_outcomes(subwiki, items, &overrides.ignored))
}
