//! Roles, votes and the moderation tally, computed from the *set* of signed statements.
//!
//! Nothing here is stored: every answer is recomputed from the role statements and votes a
//! replica holds, so two replicas holding the same entries compute the same roles, outcomes and
//! log, whatever order the entries came in. The rules are written for members in
//! `docs/moderation.md`; in short:
//!
//! 1. **Latest statement wins.** For each (signer, subject) a signer's latest role statement of
//!    one family (appoint/remove, or vouch/revoke) is the one that stands; for each (voter,
//!    target) the latest vote stands. "Latest" is the largest (claimed time, entry id).
//! 2. **Moderators** are computed from the founder's statements alone: a subject is a moderator
//!    when the founder's standing appoint/remove statement about them is an appointment.
//! 3. **Barred members.** A standing revoke by the founder or a moderator about someone who is
//!    neither bars them: they cannot become trusted, whoever vouches for them.
//! 4. **Trusted members** are the least fixed point that starts from the founder and the
//!    moderators and adds any non-barred subject with a standing vouch from the founder or a
//!    moderator, or with standing vouches from at least `policy.vouch_threshold` distinct
//!    members already in the set. It is computed from scratch every time, by a worklist over the
//!    standing vouches (each vouch is looked at once, so the cost is linear in the statements),
//!    so vouching cycles among untrusted keys grant nothing and a revocation takes away
//!    everything that rested on it.
//! 5. **Counted votes** are the standing votes of the founder, moderators and trusted members,
//!    less those of authors in the reader's personal [`Overrides`]. Everything else is kept and
//!    tallied as a *signal*.
//! 6. **Outcomes.** A post is hidden when counted hide votes reach `hide_quorum` and outnumber
//!    keep votes; disputed when misleading votes reach `mark_quorum` and outnumber verified
//!    votes; verified the other way round. An author is muted when counted mute votes reach
//!    `hide_quorum` and outnumber unmute votes.
//!
//! Statements about oneself (vouching for, appointing or revoking oneself) never count.
//!
//! ```
//! use agora_crdt::{AuthorKey, DocId, Overrides, Policy, PostContent, Replica, RoleAction};
//! use agora_crdt::{Timestamp, VoteTarget, VoteValue};
//!
//! let founder = AuthorKey::from_secret([1; 32], [1; 8]);
//! let alice = AuthorKey::from_secret([2; 32], [2; 8]);
//! let bob = AuthorKey::from_secret([3; 32], [3; 8]);
//! let (mut replica, _) =
//!     Replica::found(&founder, Timestamp(1_000), "rust", "", Policy::default())?;
//! let content = PostContent { title: "Buy now".into(), ..Default::default() };
//! let post: DocId = replica.create_post(&bob, Timestamp(2_000), content)?.id().into();
//! // The founder vouches for Alice: she is trusted. Bob is not.
//! replica.state_role(&founder, Timestamp(3_000), RoleAction::Vouch, alice.id())?;
//! for voter in [&founder, &alice, &bob] {
//!     let value = if voter.id() == bob.id() { VoteValue::Keep } else { VoteValue::Hide };
//!     replica.vote(voter, Timestamp(4_000), VoteTarget::Post(post), value, "")?;
//! }
//! let moderation = replica.moderation(&Overrides::none());
//! assert!(moderation.is_hidden(&post)); // two counted hides; Bob's keep is a signal
//! assert_eq!(moderation.post(&post).map(|o| o.signals.keep), Some(1));
//! assert_eq!(moderation.explain_post(&post).len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::doc::DocMeta;
use crate::entry::{
    DocKind, Entry, Payload, Policy, Retraction, RoleAction, RoleStatement, Timestamp, Vote,
    VoteTarget, VoteValue,
};
use crate::id::{AuthorId, DocId, EntryId};

/// What someone is in a subwiki, from the final set of role statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The author of the genesis entry.
    Founder,
    /// Appointed by the founder (and not removed since).
    Moderator,
    /// Vouched for by a moderator or the founder, or by enough trusted members.
    Trusted,
    /// Anyone else: may post, comment and vote, but their votes are only signals.
    Member,
}

impl Role {
    /// Whether this role's votes are counted (and, under the `trusted` edit policy, whether its
    /// holder may edit others' posts).
    pub fn counts(self) -> bool {
        !matches!(self, Role::Member)
    }
}

/// The roles of a subwiki: who is founder, moderator, trusted, barred. See the module docs for
/// the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    founder: AuthorId,
    moderators: BTreeSet<AuthorId>,
    trusted: BTreeSet<AuthorId>,
    barred: BTreeSet<AuthorId>,
}

impl Roles {
    /// Roles computed from a set of entries (only role statements are looked at; others are
    /// skipped), in any order, duplicates allowed.
    pub fn compute<'a>(
        founder: AuthorId,
        policy: &Policy,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Self {
        let statements = collect_roles(entries);
        analyse_roles(founder, policy, &statements).0
    }

    /// The roles of a subwiki with no role statements: the founder alone.
    pub fn founder_only(founder: AuthorId) -> Self {
        Self {
            founder,
            moderators: BTreeSet::new(),
            trusted: BTreeSet::new(),
            barred: BTreeSet::new(),
        }
    }

    /// The founder.
    pub fn founder(&self) -> AuthorId {
        self.founder
    }

    /// The moderators (never the founder).
    pub fn moderators(&self) -> &BTreeSet<AuthorId> {
        &self.moderators
    }

    /// Members trusted through vouches (neither the founder nor a moderator).
    pub fn trusted(&self) -> &BTreeSet<AuthorId> {
        &self.trusted
    }

    /// Members barred from trust by a moderator's or the founder's standing revoke.
    pub fn barred(&self) -> &BTreeSet<AuthorId> {
        &self.barred
    }

    /// Someone's role.
    pub fn role(&self, author: &AuthorId) -> Role {
        if *author == self.founder {
            Role::Founder
        } else if self.moderators.contains(author) {
            Role::Moderator
        } else if self.trusted.contains(author) {
            Role::Trusted
        } else {
            Role::Member
        }
    }

    /// Whether someone's votes count: the founder, moderators and trusted members.
    pub fn counts(&self, author: &AuthorId) -> bool {
        self.role(author).counts()
    }

    /// Everyone whose votes count, founder and moderators included, sorted.
    pub fn counted(&self) -> BTreeSet<AuthorId> {
        let mut all = self.trusted.clone();
        all.extend(self.moderators.iter().copied());
        all.insert(self.founder);
        all
    }

    fn is_moderator_or_founder(&self, author: &AuthorId) -> bool {
        *author == self.founder || self.moderators.contains(author)
    }
}

/// A reader's personal, local choice of authors whose votes they do not count. It is never
/// published; it changes only the [`Moderation`] computed with it, not roles, not documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Authors whose votes are not counted in this view.
    pub ignored: BTreeSet<AuthorId>,
}

impl Overrides {
    /// No overrides: the view every node shares.
    pub fn none() -> Self {
        Self::default()
    }

    /// Stops counting `author`'s votes; false if they were already ignored.
    pub fn ignore(&mut self, author: AuthorId) -> bool {
        self.ignored.insert(author)
    }

    /// Counts `author`'s votes again; false if they were not ignored.
    pub fn restore(&mut self, author: &AuthorId) -> bool {
        self.ignored.remove(author)
    }

    /// Whether `author`'s votes are ignored.
    pub fn ignores(&self, author: &AuthorId) -> bool {
        self.ignored.contains(author)
    }
}

/// Whether adding these entries to a subwiki can change an outcome (a post hidden or marked,
/// an author muted) for a reader with `overrides`, given the roles before and after they were
/// added. Outcomes are tallies of counted votes under the roles, so only a change of roles or a
/// vote that counts can change one: a vote from a member (a signal), a vote the reader
/// ignores, and a role statement that changes no role leave every outcome as it was, whatever
/// else is held. Costs the size of the roles plus the number of entries, so that a flood of
/// statements from keys nobody trusts costs each honest node a constant amount per statement.
pub fn changes_outcomes<'a>(
    before: &Roles,
    after: &Roles,
    overrides: &Overrides,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> bool {
    before != after
        || entries.into_iter().any(|e| {
            matches!(e.payload(), Payload::Vote(_))
                && after.counts(&e.author())
                && !overrides.ignores(&e.author())
        })
}

/// Standing votes on one target, by value. For a post only hide, keep, misleading and verified
/// are used; for an author only mute and unmute. Withdrawn votes are not in any tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tally {
    /// Hide votes.
    pub hide: u32,
    /// Keep votes.
    pub keep: u32,
    /// Misleading votes.
    pub misleading: u32,
    /// Verified votes.
    pub verified: u32,
    /// Mute votes.
    pub mute: u32,
    /// Unmute votes.
    pub unmute: u32,
}

impl Tally {
    fn add(&mut self, value: VoteValue) {
        let slot = match value {
            VoteValue::Hide => &mut self.hide,
            VoteValue::Keep => &mut self.keep,
            VoteValue::Misleading => &mut self.misleading,
            VoteValue::Verified => &mut self.verified,
            VoteValue::Mute => &mut self.mute,
            VoteValue::Unmute => &mut self.unmute,
            VoteValue::Withdraw => return,
        };
        *slot = slot.saturating_add(1);
    }

    /// No vote at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Where a post stands, and the votes behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostOutcome {
    /// Standing votes that count.
    pub counted: Tally,
    /// Standing votes that do not count (members not trusted, overridden voters): signals.
    pub signals: Tally,
    /// Counted hide votes reach the hide quorum and outnumber keep votes.
    pub hidden: bool,
    /// Counted misleading votes reach the mark quorum and outnumber verified votes.
    pub disputed: bool,
    /// Counted verified votes reach the mark quorum and outnumber misleading votes.
    pub verified: bool,
    /// The counted votes (withdrawals excluded), oldest first: why the post has its status.
    pub votes: Vec<EntryId>,
}

/// Where an author stands in the subwiki, and the votes behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorOutcome {
    /// Standing votes that count.
    pub counted: Tally,
    /// Standing votes that do not count: signals.
    pub signals: Tally,
    /// Counted mute votes reach the hide quorum and outnumber unmute votes: the author's posts
    /// and comments are hidden.
    pub muted: bool,
    /// The counted votes, oldest first.
    pub votes: Vec<EntryId>,
}

/// Why a document is hidden from the feed and the post page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hidden {
    /// The post's counted hide votes reached the quorum.
    ByVotes,
    /// Its author is muted in this subwiki.
    AuthorMuted,
    /// A comment on a post that is hidden (by votes or because its author is muted).
    PostHidden,
}

/// What a logged statement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// A role statement.
    Role(RoleStatement),
    /// A vote.
    Vote(Vote),
    /// A retraction (by the document's creator) or redaction (by the founder or a moderator).
    Retract(Retraction),
}

/// Why a statement does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotCounted {
    /// Appointing or removing a moderator is the founder's alone.
    NotFounder,
    /// The signer is neither the founder, a moderator nor trusted (in the final roles).
    SignerNotTrusted,
    /// The same signer made a later statement about the same subject or target.
    Superseded {
        /// The statement that replaced it.
        by: EntryId,
    },
    /// The reader's personal overrides ignore this voter.
    Overridden,
    /// A statement about oneself.
    AboutSelf,
    /// A retraction or redaction by someone who is neither the document's creator nor the
    /// founder or a moderator.
    NotCreatorOrModerator,
    /// A retraction or redaction of a document this node does not hold (yet): it counts, and
    /// the document is purged, if it arrives and the signer may remove it.
    DocumentNotHeld,
}

/// Whether a statement counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Standing {
    /// It counts.
    Counted,
    /// It does not, for this reason.
    NotCounted(NotCounted),
}

/// The outcome a counted statement helped bring about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contribution {
    /// An appointment that makes its subject a moderator.
    Moderator(AuthorId),
    /// A removal that keeps its subject from being a moderator.
    NotModerator(AuthorId),
    /// A vouch for a subject who is trusted (one of the vouches their trust rests on).
    Trusted(AuthorId),
    /// A moderator's or the founder's revoke that bars its subject from trust.
    Barred(AuthorId),
    /// A hide vote on a hidden post.
    Hidden(DocId),
    /// A keep vote on a post that has counted hide votes and is not hidden.
    KeptVisible(DocId),
    /// A misleading vote on a disputed post.
    Disputed(DocId),
    /// A verified vote on a verified post.
    Verified(DocId),
    /// A mute vote on a muted author.
    Muted(AuthorId),
    /// An unmute vote on an author who has counted mute votes and is not muted.
    KeptUnmuted(AuthorId),
    /// A retraction by its creator that removed this document.
    Retracted(DocId),
    /// A redaction by the founder or a moderator that removed this document.
    Redacted(DocId),
}

/// One role statement or vote in the moderation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogItem {
    /// The entry.
    pub entry: EntryId,
    /// Who signed it.
    pub signer: AuthorId,
    /// When, as they claim.
    pub timestamp: Timestamp,
    /// What it says.
    pub statement: Statement,
    /// Whether it counts, and if not why.
    pub standing: Standing,
    /// The outcome it helped bring about, if any.
    pub contributed: Option<Contribution>,
}

/// Moderation of one subwiki as one reader sees it: roles, the outcome of every post and
/// author that has votes, and the log of every statement. Computed by
/// [`Moderation::compute`] (or `Replica::moderation`); with empty [`Overrides`] it is the same
/// on every node holding the same entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moderation {
    roles: Roles,
    posts: BTreeMap<DocId, PostOutcome>,
    authors: BTreeMap<AuthorId, AuthorOutcome>,
    log: Vec<LogItem>,
    index: HashMap<EntryId, usize>,
}

/// A role statement, ready to be judged.
struct RoleItem {
    key: (Timestamp, EntryId),
    signer: AuthorId,
    statement: RoleStatement,
}

/// A vote, ready to be judged.
struct VoteItem {
    key: (Timestamp, EntryId),
    signer: AuthorId,
    vote: Vote,
}

fn collect_roles<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<RoleItem> {
    let mut out: Vec<RoleItem> = entries
        .into_iter()
        .filter_map(|e| match e.payload() {
            Payload::Role(statement) => Some(RoleItem {
                key: (e.timestamp(), e.id()),
                signer: e.author(),
                statement: *statement,
            }),
            _ => None,
        })
        .collect();
    out.sort_by_key(|s| s.key);
    out.dedup_by_key(|s| s.key);
    out
}

/// Appointments and vouches are separate families: a signer's latest statement of each family
/// about a subject stands.
fn is_appointment(action: RoleAction) -> bool {
    matches!(
        action,
        RoleAction::AppointModerator | RoleAction::RemoveModerator
    )
}

/// Roles, and for each statement (same order as `statements`) its standing and contribution.
fn analyse_roles(
    founder: AuthorId,
    policy: &Policy,
    statements: &[RoleItem],
) -> (Roles, Vec<(Standing, Option<Contribution>)>) {
    // The standing statement per (signer, family, subject): statements are sorted by key, so
    // the last one seen wins.
    let mut latest: HashMap<(AuthorId, bool, AuthorId), usize> = HashMap::new();
    for (i, s) in statements.iter().enumerate() {
        if s.signer == s.statement.subject {
            continue;
        }
        let family = is_appointment(s.statement.action);
        latest.insert((s.signer, family, s.statement.subject), i);
    }
    let standing = |i: usize| statements.get(i);

    let mut roles = Roles::founder_only(founder);
    for (&(signer, family, subject), &i) in &latest {
        if family
            && signer == founder
            && standing(i).is_some_and(|s| s.statement.action == RoleAction::AppointModerator)
        {
            roles.moderators.insert(subject);
        }
    }
    // Standing vouches, voucher -> subjects; standing revokes by the founder or a moderator bar.
    let mut vouches: BTreeMap<AuthorId, Vec<AuthorId>> = BTreeMap::new();
    for (&(signer, family, subject), &i) in &latest {
        if family {
            continue;
        }
        match standing(i).map(|s| s.statement.action) {
            Some(RoleAction::Vouch) => vouches.entry(signer).or_default().push(subject),
            Some(RoleAction::Revoke)
                if roles.is_moderator_or_founder(&signer)
                    && !roles.is_moderator_or_founder(&subject) =>
            {
                roles.barred.insert(subject);
            }
            _ => {}
        }
    }
    // Least fixed point by worklist: each trusted member's vouches are looked at once.
    let threshold = usize::from(policy.vouch_threshold.max(1));
    let mut queue: Vec<AuthorId> = roles.counted().into_iter().collect();
    let mut received: HashMap<AuthorId, usize> = HashMap::new();
    while let Some(voucher) = queue.pop() {
        let strong = roles.is_moderator_or_founder(&voucher);
        for subject in vouches.get(&voucher).into_iter().flatten() {
            if roles.counts(subject) || roles.barred.contains(subject) {
                continue;
            }
            let count = received.entry(*subject).or_insert(0);
            *count += 1;
            if strong || *count >= threshold {
                roles.trusted.insert(*subject);
                queue.push(*subject);
            }
        }
    }

    let verdicts = statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let subject = s.statement.subject;
            if s.signer == subject {
                return (Standing::NotCounted(NotCounted::AboutSelf), None);
            }
            let family = is_appointment(s.statement.action);
            if family && s.signer != founder {
                return (Standing::NotCounted(NotCounted::NotFounder), None);
            }
            match latest.get(&(s.signer, family, subject)) {
                Some(&last) if last != i => {
                    let by = standing(last).map_or(s.key.1, |l| l.key.1);
                    return (Standing::NotCounted(NotCounted::Superseded { by }), None);
                }
                _ => {}
            }
            if !roles.counts(&s.signer) {
                return (Standing::NotCounted(NotCounted::SignerNotTrusted), None);
            }
            let contributed = match s.statement.action {
                RoleAction::AppointModerator => Some(Contribution::Moderator(subject)),
                RoleAction::RemoveModerator => Some(Contribution::NotModerator(subject)),
                RoleAction::Vouch => roles
                    .trusted
                    .contains(&subject)
                    .then_some(Contribution::Trusted(subject)),
                RoleAction::Revoke => (roles.is_moderator_or_founder(&s.signer)
                    && roles.barred.contains(&subject))
                .then_some(Contribution::Barred(subject)),
            };
            // The founder appointing or removing themselves is AboutSelf above.
            (Standing::Counted, contributed)
        })
        .collect();
    (roles, verdicts)
}

impl Moderation {
    /// Computes roles, outcomes and the log from a set of entries (role statements and votes
    /// are looked at, others skipped; any order, duplicates allowed), counting votes as the
    /// reader's `overrides` say. Cost: O(n log n) in the number of statements.
    pub fn compute<'a>(
        founder: AuthorId,
        policy: &Policy,
        entries: impl IntoIterator<Item = &'a Entry>,
        overrides: &Overrides,
    ) -> Self {
        let mut role_entries = Vec::new();
        let mut votes: Vec<VoteItem> = Vec::new();
        for e in entries {
            match e.payload() {
                Payload::Role(_) => role_entries.push(e),
                Payload::Vote(vote) => votes.push(VoteItem {
                    key: (e.timestamp(), e.id()),
                    signer: e.author(),
                    vote: vote.clone(),
                }),
                _ => {}
            }
        }
        let statements = collect_roles(role_entries);
        let (roles, role_verdicts) = analyse_roles(founder, policy, &statements);
        votes.sort_by_key(|v| v.key);
        votes.dedup_by_key(|v| v.key);

        // The standing vote per (voter, target): the last one in key order.
        let mut latest: HashMap<(AuthorId, VoteTarget), usize> = HashMap::new();
        for (i, v) in votes.iter().enumerate() {
            latest.insert((v.signer, v.vote.target), i);
        }
        let mut posts: BTreeMap<DocId, PostOutcome> = BTreeMap::new();
        let mut authors: BTreeMap<AuthorId, AuthorOutcome> = BTreeMap::new();
        let mut standings: Vec<Standing> = Vec::with_capacity(votes.len());
        for (i, v) in votes.iter().enumerate() {
            let standing = match latest.get(&(v.signer, v.vote.target)) {
                Some(&last) if last != i => Standing::NotCounted(NotCounted::Superseded {
                    by: votes.get(last).map_or(v.key.1, |l| l.key.1),
                }),
                _ if !roles.counts(&v.signer) => Standing::NotCounted(NotCounted::SignerNotTrusted),
                _ if overrides.ignores(&v.signer) => Standing::NotCounted(NotCounted::Overridden),
                _ => Standing::Counted,
            };
            standings.push(standing);
            if matches!(
                standing,
                Standing::NotCounted(NotCounted::Superseded { .. })
            ) {
                continue;
            }
            let counted = standing == Standing::Counted;
            let (tally, list) = match v.vote.target {
                VoteTarget::Post(doc) => {
                    let o = posts.entry(doc).or_default();
                    (
                        if counted {
                            &mut o.counted
                        } else {
                            &mut o.signals
                        },
                        &mut o.votes,
                    )
                }
                VoteTarget::Author(author) => {
                    let o = authors.entry(author).or_default();
                    (
                        if counted {
                            &mut o.counted
                        } else {
                            &mut o.signals
                        },
                        &mut o.votes,
                    )
                }
            };
            tally.add(v.vote.value);
            if counted && v.vote.value != VoteValue::Withdraw {
                list.push(v.key.1);
            }
        }
        let hide_quorum = u32::from(policy.hide_quorum.max(1));
        let mark_quorum = u32::from(policy.mark_quorum.max(1));
        for o in posts.values_mut() {
            let t = o.counted;
            o.hidden = t.hide >= hide_quorum && t.hide > t.keep;
            o.disputed = t.misleading >= mark_quorum && t.misleading > t.verified;
            o.verified = t.verified >= mark_quorum && t.verified > t.misleading;
        }
        for o in authors.values_mut() {
            let t = o.counted;
            o.muted = t.mute >= hide_quorum && t.mute > t.unmute;
        }

        let mut log: Vec<LogItem> = Vec::with_capacity(statements.len() + votes.len());
        for (s, (standing, contributed)) in statements.iter().zip(role_verdicts) {
            log.push(LogItem {
                entry: s.key.1,
                signer: s.signer,
                timestamp: s.key.0,
                statement: Statement::Role(s.statement),
                standing,
                contributed,
            });
        }
        for (v, standing) in votes.into_iter().zip(standings) {
            let contributed = if standing == Standing::Counted {
                vote_contribution(&v.vote, &posts, &authors)
            } else {
                None
            };
            log.push(LogItem {
                entry: v.key.1,
                signer: v.signer,
                timestamp: v.key.0,
                statement: Statement::Vote(v.vote),
                standing,
                contributed,
            });
        }
        log.sort_by_key(|item| (item.timestamp, item.entry));
        let index = log
            .iter()
            .enumerate()
            .map(|(i, item)| (item.entry, i))
            .collect();
        Self {
            roles,
            posts,
            authors,
            log,
            index,
        }
    }

    /// Adds log items (the replica's retractions and redactions) in their place.
    pub(crate) fn extend_log(&mut self, items: impl IntoIterator<Item = LogItem>) {
        self.log.extend(items);
        self.log.sort_by_key(|item| (item.timestamp, item.entry));
        self.index = self
            .log
            .iter()
            .enumerate()
            .map(|(i, item)| (item.entry, i))
            .collect();
    }

    /// The roles (the same whatever the overrides).
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// Every post that has at least one standing vote, with its outcome.
    pub fn posts(&self) -> &BTreeMap<DocId, PostOutcome> {
        &self.posts
    }

    /// A post's outcome; `None` if nobody voted on it (it is shown, unmarked).
    pub fn post(&self, post: &DocId) -> Option<&PostOutcome> {
        self.posts.get(post)
    }

    /// Every author who has at least one standing mute or unmute vote, with their outcome.
    pub fn authors(&self) -> &BTreeMap<AuthorId, AuthorOutcome> {
        &self.authors
    }

    /// Whether an author is muted in this subwiki.
    pub fn is_muted(&self, author: &AuthorId) -> bool {
        self.authors.get(author).is_some_and(|o| o.muted)
    }

    /// Muted authors, sorted.
    pub fn muted(&self) -> impl Iterator<Item = AuthorId> + '_ {
        self.authors
            .iter()
            .filter(|(_, o)| o.muted)
            .map(|(a, _)| *a)
    }

    /// Whether a post is hidden by votes (ignoring its author's mute).
    pub fn is_hidden(&self, post: &DocId) -> bool {
        self.posts.get(post).is_some_and(|o| o.hidden)
    }

    /// Why a document is hidden, if it is. Posts are hidden by votes or their author's mute;
    /// comments by their author's mute or with their post. For a comment, `parent_creator` is
    /// the creator of its post, if known (a muted post author hides the comments too). Profiles
    /// and the information page are never hidden.
    pub fn hidden(&self, meta: &DocMeta, parent_creator: Option<&AuthorId>) -> Option<Hidden> {
        match meta.kind {
            DocKind::Post => {
                if self.is_hidden(&meta.id) {
                    Some(Hidden::ByVotes)
                } else if self.is_muted(&meta.creator) {
                    Some(Hidden::AuthorMuted)
                } else {
                    None
                }
            }
            DocKind::Comment => {
                if self.is_muted(&meta.creator) {
                    Some(Hidden::AuthorMuted)
                } else if meta.parent.is_some_and(|p| self.is_hidden(&p))
                    || parent_creator.is_some_and(|c| self.is_muted(c))
                {
                    Some(Hidden::PostHidden)
                } else {
                    None
                }
            }
            DocKind::Profile | DocKind::Info => None,
        }
    }

    /// The moderation log: every role statement and vote, oldest first (claimed time, then
    /// entry id), with whether it counts and what it contributed to.
    pub fn log(&self) -> &[LogItem] {
        &self.log
    }

    /// The log item of one entry.
    pub fn log_item(&self, entry: &EntryId) -> Option<&LogItem> {
        self.log.get(*self.index.get(entry)?)
    }

    /// Why a post has its status: its counted votes, oldest first (empty if none).
    pub fn explain_post(&self, post: &DocId) -> Vec<&LogItem> {
        self.posts
            .get(post)
            .into_iter()
            .flat_map(|o| o.votes.iter())
            .filter_map(|id| self.log_item(id))
            .collect()
    }

    /// Why an author is muted or not: their counted mute and unmute votes, oldest first.
    pub fn explain_author(&self, author: &AuthorId) -> Vec<&LogItem> {
        self.authors
            .get(author)
            .into_iter()
            .flat_map(|o| o.votes.iter())
            .filter_map(|id| self.log_item(id))
            .collect()
    }

    /// Every statement about a member (role statements with them as subject), oldest first:
    /// why they hold their role.
    pub fn explain_role(&self, member: &AuthorId) -> Vec<&LogItem> {
        self.log
            .iter()
            .filter(|i| matches!(&i.statement, Statement::Role(r) if r.subject == *member))
            .collect()
    }
}

fn vote_contribution(
    vote: &Vote,
    posts: &BTreeMap<DocId, PostOutcome>,
    authors: &BTreeMap<AuthorId, AuthorOutcome>,
) -> Option<Contribution> {
    match vote.target {
        VoteTarget::Post(doc) => {
            let o = posts.get(&doc)?;
            match vote.value {
                VoteValue::Hide if o.hidden => Some(Contribution::Hidden(doc)),
                VoteValue::Keep if !o.hidden && o.counted.hide > 0 => {
                    Some(Contribution::KeptVisible(doc))
                }
                VoteValue::Misleading if o.disputed => Some(Contribution::Disputed(doc)),
                VoteValue::Verified if o.verified => Some(Contribution::Verified(doc)),
                _ => None,
            }
        }
        VoteTarget::Author(author) => {
            let o = authors.get(&author)?;
            match vote.value {
                VoteValue::Mute if o.muted => Some(Contribution::Muted(author)),
                VoteValue::Unmute if !o.muted && o.counted.mute > 0 => {
                    Some(Contribution::KeptUnmuted(author))
                }
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::key::AuthorKey;
    use crate::{Entry, SubwikiId};

    fn key(n: u8) -> AuthorKey {
        AuthorKey::from_secret([n; 32], [n; 8])
    }

    fn role(k: &AuthorKey, t: u64, action: RoleAction, subject: &AuthorKey) -> Entry {
        Entry::sign(
            k,
            Some(SubwikiId::from_bytes([7; 32])),
            crate::Timestamp(t),
            Payload::Role(RoleStatement {
                action,
                subject: subject.id(),
            }),
        )
        .unwrap()
    }

    #[test]
    fn cycles_among_untrusted_keys_grant_nothing() {
        let (f, a, b, c) = (key(1), key(2), key(3), key(4));
        let entries = [
            role(&a, 1, RoleAction::Vouch, &b),
            role(&b, 2, RoleAction::Vouch, &a),
            role(&c, 3, RoleAction::Vouch, &a),
            role(&c, 4, RoleAction::Vouch, &b),
            role(&a, 5, RoleAction::Vouch, &c),
            role(&b, 6, RoleAction::Vouch, &c),
        ];
        let roles = Roles::compute(f.id(), &Policy::default(), &entries);
        assert!(roles.trusted().is_empty());
        // One moderator vouch for `a` is enough for a; a alone is not enough for b (threshold 2)
        // until c is trusted too; the whole cycle becomes trusted.
        let mut more = entries.to_vec();
        more.push(role(&f, 7, RoleAction::AppointModerator, &c));
        let roles = Roles::compute(f.id(), &Policy::default(), &more);
        assert_eq!(roles.role(&c.id()), Role::Moderator);
        assert_eq!(roles.role(&a.id()), Role::Trusted);
        assert_eq!(roles.role(&b.id()), Role::Trusted);
        // The founder removes c later: everything resting on c falls away.
        more.push(role(&f, 8, RoleAction::RemoveModerator, &c));
        let roles = Roles::compute(f.id(), &Policy::default(), &more);
        assert!(roles.moderators().is_empty());
        assert!(roles.trusted().is_empty());
    }

    #[test]
    fn a_moderator_revoke_bars_and_a_later_vouch_lifts_it() {
        let (f, m, x, y, z) = (key(1), key(2), key(3), key(4), key(5));
        let mut entries = vec![
            role(&f, 1, RoleAction::AppointModerator, &m),
            role(&f, 2, RoleAction::Vouch, &y),
            role(&f, 2, RoleAction::Vouch, &z),
            role(&y, 3, RoleAction::Vouch, &x),
            role(&z, 3, RoleAction::Vouch, &x),
        ];
        let roles = Roles::compute(f.id(), &Policy::default(), &entries);
        assert_eq!(roles.role(&x.id()), Role::Trusted);
        entries.push(role(&m, 4, RoleAction::Revoke, &x));
        let roles = Roles::compute(f.id(), &Policy::default(), &entries);
        assert_eq!(roles.role(&x.id()), Role::Member);
        assert!(roles.barred().contains(&x.id()));
        entries.push(role(&m, 5, RoleAction::Vouch, &x));
        let roles = Roles::compute(f.id(), &Policy::default(), &entries);
        assert_eq!(roles.role(&x.id()), Role::Trusted);
    }
}
