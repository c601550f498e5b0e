//! The responder's side: answers each request on its own, keeping no state between requests.
//!
//! The driver looks up the [`Snapshot`] of the subwiki named by the request (building it from
//! its store, or from a cache it refreshes when the subwiki changes), passes a function that
//! loads one entry's bytes by id, stores [`Reply::store`] *before* it sends back
//! [`Reply::response`] (for a push, `Accepted` with the count it really stored, or a refusal if
//! storing failed), and penalises the peer for a [`Reply::fault`].

use agora_crdt::limits::MAX_ENTRY_BYTES;
use agora_crdt::{Entry, EntryId, SubwikiId, Timestamp};
use negentropy::Negentropy;

use super::reconcile::{guarded, scan};
use super::{
    Config, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_FETCH_IDS, MAX_REASON_BYTES,
    MAX_RECONCILE_PAYLOAD, ProtoError, Rejection, Request, Response, Signed, Snapshot, Verify,
};

/// What a peer did wrong in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It broke the protocol.
    Protocol(ProtoError),
    /// It pushed entries that fail validation or belong elsewhere; none of its push was stored.
    Invalid {
        /// How many entries were refused.
        count: usize,
        /// The first reason.
        first_error: Rejection,
    },
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<E = Entry> {
    /// The response to send back.
    pub response: Response,
    /// Entries the peer pushed, validated and of the request's subwiki: store them.
    pub store: Vec<E>,
    /// Set if the peer misbehaved: penalise it.
    pub fault: Option<Fault>,
}

impl<E> Reply<E> {
    fn respond(response: Response) -> Self {
        Self {
            response,
            store: Vec::new(),
            fault: None,
        }
    }

    fn refuse(reason: &str, fault: Option<Fault>) -> Self {
        let mut end = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        Self {
            response: Response::Refused {
                reason: reason.get(..end).unwrap_or_default().to_owned(),
            },
            store: Vec::new(),
            fault,
        }
    }

    fn protocol(error: ProtoError) -> Self {
        Self::refuse(&error.to_string(), Some(Fault::Protocol(error)))
    }
}

/// Answers catch-up requests. Holds only its configuration: every request is served on its
/// own, so a responder can serve any number of peers at once.
#[derive(Debug, Clone)]
pub struct Responder<V: Verify = Signed> {
    config: Config,
    verifier: V,
}

impl Responder {
    /// A responder that checks pushed entries with [`agora_crdt::validate`].
    pub fn new(config: Config) -> Result<Self, ProtoError> {
        Self::with_verifier(config, Signed)
    }
}

impl<V: Verify> Responder<V> {
    /// A responder with another check of pushed entries.
    pub fn with_verifier(config: Config, verifier: V) -> Result<Self, ProtoError> {
        config.check()?;
        Ok(Self { config, verifier })
    }

    /// Answers `request`. `items` is the snapshot of the request's subwiki ([`Request::subwiki`]),
    /// or `None` if this node does not hold it. `load` returns an entry's bytes by id, if held
    /// (it is called for fetches only, one id at a time, and no more than fit one response).
    /// `now` is the local clock, for validating pushed entries.
    pub fn handle(
        &self,
        request: Request,
        items: Option<&Snapshot>,
        load: impl FnMut(&EntryId) -> Option<Vec<u8>>,
        now: Timestamp,
    ) -> Reply<V::Entry> {
        let Some(items) = items else {
            return Reply::refuse("subwiki not held", None);
        };
        match request {
            Request::Reconcile { round, payload, .. } => self.reconcile(round, &payload, items),
            Request::Fetch { ids, .. } => Self::fetch(&ids, load),
            Request::Push { subwiki, entries } => self.push(subwiki, entries, now),
        }
    }

    fn reconcile(&self, round: u32, payload: &[u8], items: &Snapshot) -> Reply<V::Entry> {
        if round >= self.config.max_rounds {
            return Reply::protocol(ProtoError::TooManyRounds {
                max: self.config.max_rounds,
            });
        }
        if payload.len() > MAX_RECONCILE_PAYLOAD {
            return Reply::protocol(ProtoError::FrameTooLarge {
                len: payload.len(),
                max: MAX_RECONCILE_PAYLOAD,
            });
        }
        if let Err(e) = scan(payload, |_, _| {}) {
            return Reply::protocol(e.into());
        }
        let limit = self.config.frame_size_limit as u64;
        let answer = guarded(|| Negentropy::borrowed(items, limit)?.reconcile(payload));
        match answer {
            // Only the version byte: every range matched, nothing more to say.
            Ok(message) if message.len() <= 1 => {
                Reply::respond(Response::Reconcile { payload: None })
            }
            Ok(message) => Reply::respond(Response::Reconcile {
                payload: Some(message),
            }),
            Err(e) => Reply::protocol(e),
        }
    }

    fn fetch(
        ids: &[EntryId],
        mut load: impl FnMut(&EntryId) -> Option<Vec<u8>>,
    ) -> Reply<V::Entry> {
        if ids.len() > MAX_FETCH_IDS {
            return Reply::protocol(ProtoError::BatchTooLarge {
                what: "ids",
                got: ids.len(),
                max: MAX_FETCH_IDS,
            });
        }
        let mut entries = Vec::new();
        let mut total = 0usize;
        for id in ids {
            if entries.len() >= MAX_BATCH_ENTRIES {
                break;
            }
            let Some(bytes) = load(id) else { continue };
            if bytes.is_empty() || bytes.len() > MAX_ENTRY_BYTES {
                continue;
            }
            let next = total.saturating_add(bytes.len());
            if next > MAX_BATCH_BYTES {
                break;
            }
            total = next;
            entries.push(bytes);
        }
        Reply::respond(Response::Entries { entries })
    }

    fn push(&self, subwiki: SubwikiId, entries: Vec<Vec<u8>>, now: Timestamp) -> Reply<V::Entry> {
        let total: usize = entries.iter().map(Vec::len).sum();
        if entries.len() > MAX_BATCH_ENTRIES || total > MAX_BATCH_BYTES {
            return Reply::protocol(ProtoError::BatchTooLarge {
                what: "push entries",
                got: entries.len(),
                max: MAX_BATCH_ENTRIES,
            });
        }
        let mut store = Vec::with_capacity(entries.len());
        let mut invalid = 0usize;
        let mut first_error = None;
        for bytes in &entries {
            match self.verifier.verify(bytes, now) {
                Ok(entry) => {
                    let actual = self.verifier.subwiki(&entry);
                    if actual == subwiki {
                        store.push(entry);
                    } else {
                        invalid += 1;
                        first_error.get_or_insert(Rejection::WrongSubwiki {
                            id: self.verifier.id(&entry),
                            expected: subwiki,
                            actual,
                        });
                    }
                }
                // Claimed time ahead of our clock: not acceptable yet; it will come again.
                Err(e) if e.is_retriable() => {}
                Err(e) => {
                    invalid += 1;
                    first_error.get_or_insert(Rejection::Entry(e));
                }
            }
        }
        if let Some(first_error) = first_error {
            return Reply::refuse(
                &format!("{invalid} invalid entries: {first_error}"),
                Some(Fault::Invalid {
                    count: invalid,
                    first_error,
                }),
            );
        }
        Reply {
            response: Response::Accepted {
                count: u32::try_from(store.len()).unwrap_or(u32::MAX),
            },
            store,
            fault: None,
        }
    }
}
