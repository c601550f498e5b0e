//! The catch-up messages and their binary encoding.
//!
//! One request, one response, carried by a request-response protocol whose protocol name
//! carries the version. Every message is a kind byte followed by its fields:
//!
//! ```text
//! varint  = unsigned LEB128, canonical (shortest form), at most 10 bytes, fits in 64 bits
//! bytes   = varint length, then that many bytes
//! id      = 32 bytes
//!
//! request:
//!   0x01 Reconcile  subwiki:id  round:varint (u32)  payload:bytes (≤ 64 KiB)
//!   0x02 Fetch      subwiki:id  count:varint (≤ 512)  id × count
//!   0x03 Push       subwiki:id  count:varint (≤ 512)  entry:bytes × count
//! response:
//!   0x81 Reconcile  0x00 (done)  |  0x01 payload:bytes (≤ 64 KiB)
//!   0x82 Entries    count:varint (≤ 512)  entry:bytes × count
//!   0x83 Accepted   count:varint (≤ 512)
//!   0x84 Refused    reason:bytes (UTF-8, ≤ 256 bytes)
//! ```
//!
//! An entry is at most [`agora_crdt::limits::MAX_ENTRY_BYTES`]; the entries of one batch sum
//! to at most [`MAX_BATCH_BYTES`]; a whole message is at most [`MAX_MESSAGE_BYTES`]. A
//! reconciliation payload is a negentropy message. Decoding checks every count and length
//! against the bytes left and the limits before it allocates, refuses trailing bytes, and
//! returns a [`WireError`] on anything else; it never panics. Every message has exactly one
//! encoding, so `decode(encode(m)) == m` and `encode(decode(b)) == b`.

use agora_crdt::limits::MAX_ENTRY_BYTES;
use agora_crdt::{EntryId, SubwikiId};
use thiserror::Error;

use super::{
    MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_FETCH_IDS, MAX_MESSAGE_BYTES, MAX_REASON_BYTES,
    MAX_RECONCILE_PAYLOAD,
};

const REQ_RECONCILE: u8 = 0x01;
const REQ_FETCH: u8 = 0x02;
const REQ_PUSH: u8 = 0x03;
const RES_RECONCILE: u8 = 0x81;
const RES_ENTRIES: u8 = 0x82;
const RES_ACCEPTED: u8 = 0x83;
const RES_REFUSED: u8 = 0x84;

/// A request from the initiator of a catch-up session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// One round of set reconciliation.
    Reconcile {
        /// The subwiki reconciled.
        subwiki: SubwikiId,
        /// The round, from 0.
        round: u32,
        /// A negentropy message.
        payload: Vec<u8>,
    },
    /// Asks for entries by id, newest first.
    Fetch {
        /// The subwiki they belong to.
        subwiki: SubwikiId,
        /// At most [`MAX_FETCH_IDS`] ids.
        ids: Vec<EntryId>,
    },
    /// Entries the responder lacks.
    Push {
        /// The subwiki they belong to.
        subwiki: SubwikiId,
        /// At most [`MAX_BATCH_ENTRIES`] entries, [`MAX_BATCH_BYTES`] in all.
        entries: Vec<Vec<u8>>,
    },
}

impl Request {
    /// For a fetch, the first id it asks for: what tells its response from the responses to
    /// the session's other fetches in flight ([`super::Session::handle_reply`]).
    pub fn fetch_key(&self) -> Option<EntryId> {
        match self {
            Request::Fetch { ids, .. } => ids.first().copied(),
            _ => None,
        }
    }
}

/// The responder's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answers [`Request::Reconcile`].
    Reconcile {
        /// The next negentropy message, or `None` when the responder has nothing more to say.
        payload: Option<Vec<u8>>,
    },
    /// Answers [`Request::Fetch`]: the entries found, in the order asked, stopping before the
    /// batch limits.
    Entries {
        /// Raw entries.
        entries: Vec<Vec<u8>>,
    },
    /// Answers [`Request::Push`]: how many entries are now durably held (sent only once they
    /// are stored).
    Accepted {
        /// Entries accepted.
        count: u32,
    },
    /// The request was not served.
    Refused {
        /// Why, for logs.
        reason: String,
    },
}

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("message is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes end inside a field.
    #[error("message ends inside the {0}")]
    Truncated(&'static str),
    /// A kind byte this implementation does not know (or a response where a request belongs).
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    /// A varint that is too long, overflows, or is not in its shortest form.
    #[error("malformed varint in the {0}")]
    Varint(&'static str),
    /// A count or length over its limit.
    #[error("{what} is {got}, over the limit of {max}")]
    Limit {
        /// What was counted.
        what: &'static str,
        /// The value.
        got: u64,
        /// The limit.
        max: u64,
    },
    /// A flag byte other than 0 or 1.
    #[error("bad flag byte {0:#04x}")]
    Flag(u8),
    /// The refusal reason is not UTF-8.
    #[error("refusal reason is not UTF-8")]
    Utf8,
    /// Bytes left after the message.
    #[error("{0} bytes after the end of the message")]
    Trailing(usize),
}

impl Request {
    /// The subwiki the request is about.
    pub fn subwiki(&self) -> SubwikiId {
        match self {
            Request::Reconcile { subwiki, .. }
            | Request::Fetch { subwiki, .. }
            | Request::Push { subwiki, .. } => *subwiki,
        }
    }

    /// A short name of the kind of request, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Reconcile { .. } => "reconcile",
            Request::Fetch { .. } => "fetch",
            Request::Push { .. } => "push",
        }
    }

    /// The encoding. A message over the limits encodes, but does not decode.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(self.encoded_len());
        match self {
            Request::Reconcile {
                subwiki,
                round,
                payload,
            } => {
                w.push(REQ_RECONCILE);
                w.extend_from_slice(subwiki.as_bytes());
                put_varint(&mut w, u64::from(*round));
                put_bytes(&mut w, payload);
            }
            Request::Fetch { subwiki, ids } => {
                w.push(REQ_FETCH);
                w.extend_from_slice(subwiki.as_bytes());
                put_varint(&mut w, ids.len() as u64);
                for id in ids {
                    w.extend_from_slice(id.as_bytes());
                }
            }
            Request::Push { subwiki, entries } => {
                w.push(REQ_PUSH);
                w.extend_from_slice(subwiki.as_bytes());
                put_entries(&mut w, entries);
            }
        }
        w
    }

    /// The length of [`Request::encode`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        1 + 32
            + match self {
                Request::Reconcile { round, payload, .. } => {
                    varint_len(u64::from(*round)) + bytes_len(payload)
                }
                Request::Fetch { ids, .. } => varint_len(ids.len() as u64) + 32 * ids.len(),
                Request::Push { entries, .. } => entries_len(entries),
            }
    }

    /// Decodes a request, checking every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes)?;
        let request = match r.u8("kind")? {
            REQ_RECONCILE => Request::Reconcile {
                subwiki: SubwikiId::from_bytes(r.array("subwiki")?),
                round: r.count("round", u64::from(u32::MAX)).map(|n| n as u32)?,
                payload: r
                    .bytes("reconcile payload", MAX_RECONCILE_PAYLOAD)?
                    .to_vec(),
            },
            REQ_FETCH => {
                let subwiki = SubwikiId::from_bytes(r.array("subwiki")?);
                let count = r.count("fetch id count", MAX_FETCH_IDS as u64)?;
                r.check_room(count, 32, "fetch ids")?;
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    ids.push(EntryId::from_bytes(r.array("fetch ids")?));
                }
                Request::Fetch { subwiki, ids }
            }
            REQ_PUSH => Request::Push {
                subwiki: SubwikiId::from_bytes(r.array("subwiki")?),
                entries: r.entries()?,
            },
            kind => return Err(WireError::UnknownKind(kind)),
        };
        r.finish()?;
        Ok(request)
    }
}

impl Response {
    /// A short name of the kind of response, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Reconcile { .. } => "reconcile",
            Response::Entries { .. } => "entries",
            Response::Accepted { .. } => "accepted",
            Response::Refused { .. } => "refused",
        }
    }

    /// The encoding. A message over the limits encodes, but does not decode.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(self.encoded_len());
        match self {
            Response::Reconcile { payload } => {
                w.push(RES_RECONCILE);
                match payload {
                    None => w.push(0),
                    Some(payload) => {
                        w.push(1);
                        put_bytes(&mut w, payload);
                    }
                }
            }
            Response::Entries { entries } => {
                w.push(RES_ENTRIES);
                put_entries(&mut w, entries);
            }
            Response::Accepted { count } => {
                w.push(RES_ACCEPTED);
                put_varint(&mut w, u64::from(*count));
            }
            Response::Refused { reason } => {
                w.push(RES_REFUSED);
                put_bytes(&mut w, reason.as_bytes());
            }
        }
        w
    }

    /// The length of [`Response::encode`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Response::Reconcile { payload } => 1 + payload.as_deref().map_or(0, bytes_len),
            Response::Entries { entries } => entries_len(entries),
            Response::Accepted { count } => varint_len(u64::from(*count)),
            Response::Refused { reason } => bytes_len(reason.as_bytes()),
        }
    }

    /// Decodes a response, checking every limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes)?;
        let response = match r.u8("kind")? {
            RES_RECONCILE => match r.u8("reconcile flag")? {
                0 => Response::Reconcile { payload: None },
                1 => Response::Reconcile {
                    payload: Some(
                        r.bytes("reconcile payload", MAX_RECONCILE_PAYLOAD)?
                            .to_vec(),
                    ),
                },
                flag => return Err(WireError::Flag(flag)),
            },
            RES_ENTRIES => Response::Entries {
                entries: r.entries()?,
            },
            RES_ACCEPTED => Response::Accepted {
                count: r
                    .count("accepted count", MAX_BATCH_ENTRIES as u64)
                    .map(|n| n as u32)?,
            },
            RES_REFUSED => {
                let reason = r.bytes("refusal reason", MAX_REASON_BYTES)?;
                Response::Refused {
                    reason: String::from_utf8(reason.to_vec()).map_err(|_| WireError::Utf8)?,
                }
            }
            kind => return Err(WireError::UnknownKind(kind)),
        };
        r.finish()?;
        Ok(response)
    }
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn bytes_len(bytes: &[u8]) -> usize {
    varint_len(bytes.len() as u64) + bytes.len()
}

fn entries_len(entries: &[Vec<u8>]) -> usize {
    varint_len(entries.len() as u64) + entries.iter().map(|e| bytes_len(e)).sum::<usize>()
}

fn put_varint(w: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        w.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    w.push(n as u8);
}

fn put_bytes(w: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(w, bytes.len() as u64);
    w.extend_from_slice(bytes);
}

fn put_entries(w: &mut Vec<u8>, entries: &[Vec<u8>]) {
    put_varint(w, entries.len() as u64);
    for entry in entries {
        put_bytes(w, entry);
    }
}

/// A cursor over untrusted bytes; every read is checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        Ok(Self { rest: bytes })
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let (&first, tail) = self.rest.split_first().ok_or(WireError::Truncated(what))?;
        self.rest = tail;
        Ok(first)
    }

    fn array(&mut self, what: &'static str) -> Result<[u8; 32], WireError> {
        let bytes = self.take(32, what)?;
        bytes.try_into().map_err(|_| WireError::Truncated(what))
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i;
            // The tenth byte may only hold the 64th bit.
            if i == 9 && bits > 1 {
                return Err(WireError::Varint(what));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                // Shortest form only: a last byte of zero (after the first) is padding.
                if i > 0 && bits == 0 {
                    return Err(WireError::Varint(what));
                }
                return Ok(value);
            }
        }
        Err(WireError::Varint(what))
    }

    /// A varint that is a count or length, at most `max`.
    fn count(&mut self, what: &'static str, max: u64) -> Result<usize, WireError> {
        let n = self.varint(what)?;
        if n > max {
            return Err(WireError::Limit { what, got: n, max });
        }
        usize::try_from(n).map_err(|_| WireError::Limit { what, got: n, max })
    }

    /// Checks that `count` items of at least `each` bytes can still follow.
    fn check_room(&self, count: usize, each: usize, what: &'static str) -> Result<(), WireError> {
        match count.checked_mul(each) {
            Some(need) if need <= self.rest.len() => Ok(()),
            _ => Err(WireError::Truncated(what)),
        }
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.count(what, max as u64)?;
        self.take(len, what)
    }

    fn entries(&mut self) -> Result<Vec<Vec<u8>>, WireError> {
        let count = self.count("entry count", MAX_BATCH_ENTRIES as u64)?;
        // Each entry takes at least its one-byte length.
        self.check_room(count, 1, "entries")?;
        let mut entries = Vec::with_capacity(count);
        let mut total: usize = 0;
        for _ in 0..count {
            let entry = self.bytes("entry", MAX_ENTRY_BYTES)?;
            total = total.saturating_add(entry.len());
            if total > MAX_BATCH_BYTES {
                return Err(WireError::Limit {
                    what: "batch bytes",
                    got: total as u64,
                    max: MAX_BATCH_BYTES as u64,
                });
            }
            entries.push(entry.to_vec());
        }
        Ok(entries)
    }

    fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.rest.len()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod unit {
    use super::*;

    fn sw() -> SubwikiId {
        SubwikiId::from_bytes([9; 32])
    }

    #[test]
    fn varints_are_canonical() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut w = Vec::new();
            put_varint(&mut w, n);
            assert_eq!(w.len(), varint_len(n));
            let mut r = Reader::new(&w).unwrap();
            assert_eq!(r.varint("n").unwrap(), n);
            r.finish().unwrap();
        }
        // 0 written in two bytes.
        let mut r = Reader::new(&[0x80, 0x00]).unwrap();
        assert_eq!(r.varint("n"), Err(WireError::Varint("n")));
        // 2^64 does not fit.
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        let mut r = Reader::new(&too_big).unwrap();
        assert_eq!(r.varint("n"), Err(WireError::Varint("n")));
        // Eleven bytes.
        let mut r = Reader::new(&[0x80; 11]).unwrap();
        assert_eq!(r.varint("n"), Err(WireError::Varint("n")));
    }

    #[test]
    fn known_encodings() {
        let req = Request::Fetch {
            subwiki: sw(),
            ids: vec![EntryId::from_bytes([1; 32])],
        };
        let bytes = req.encode();
        assert_eq!(bytes[0], 0x02);
        assert_eq!(&bytes[1..33], &[9; 32]);
        assert_eq!(bytes[33], 1);
        assert_eq!(bytes.len(), 1 + 32 + 1 + 32);
        assert_eq!(
            Response::Reconcile { payload: None }.encode(),
            vec![0x81, 0x00]
        );
        assert_eq!(
            Response::Accepted { count: 300 }.encode(),
            vec![0x83, 0xac, 0x02]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let too_many = Request::Fetch {
            subwiki: sw(),
            ids: vec![EntryId::from_bytes([1; 32]); MAX_FETCH_IDS + 1],
        };
        assert!(matches!(
            Request::decode(&too_many.encode()),
            Err(WireError::Limit { .. })
        ));
        // 4 MiB and one byte of entries, in a message under the message limit.
        let mut entries = vec![vec![0; MAX_ENTRY_BYTES]; MAX_BATCH_BYTES / MAX_ENTRY_BYTES];
        entries.push(vec![0]);
        let too_big = Response::Entries { entries };
        assert!(matches!(
            Response::decode(&too_big.encode()),
            Err(WireError::Limit { .. })
        ));
        let entry_too_big = Response::Entries {
            entries: vec![vec![0; MAX_ENTRY_BYTES + 1]],
        };
        assert!(matches!(
            Response::decode(&entry_too_big.encode()),
            Err(WireError::Limit { .. })
        ));
        // A count claiming far more entries than there are bytes is refused before allocating.
        assert_eq!(
            Response::decode(&[0x82, 0x80, 0x04]),
            Err(WireError::Truncated("entries"))
        );
        assert_eq!(
            Response::decode(&vec![0; MAX_MESSAGE_BYTES + 1]),
            Err(WireError::TooLarge {
                len: MAX_MESSAGE_BYTES + 1,
                max: MAX_MESSAGE_BYTES
            })
        );
    }

    #[test]
    fn trailing_and_unknown_are_refused() {
        let mut bytes = Response::Accepted { count: 1 }.encode();
        bytes.push(0);
        assert_eq!(Response::decode(&bytes), Err(WireError::Trailing(1)));
        assert_eq!(Response::decode(&[0x01]), Err(WireError::UnknownKind(0x01)));
        assert_eq!(Request::decode(&[0x81]), Err(WireError::UnknownKind(0x81)));
        assert_eq!(Request::decode(&[]), Err(WireError::Truncated("kind")));
        assert_eq!(Response::decode(&[0x81, 0x02]), Err(WireError::Flag(2)));
        assert_eq!(Response::decode(&[0x84, 0x01, 0xff]), Err(WireError::Utf8));
    }
}
