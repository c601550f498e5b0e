//! Export files: every signed entry of a subwiki, so it can be carried to another node.
//!
//! Layout: the 8 bytes `agoraexp`, a version byte (1), a u32 big-endian entry count, then each
//! entry as a u32 big-endian length and its exact bytes, then the 32-byte blake3 hash of
//! everything before it. A file whose hash does not match, or with any invalid entry, is
//! refused whole.

use std::io::Write;
use std::path::Path;

use agora_crdt::{Entry, SubwikiId, Timestamp, limits};

const MAGIC: &[u8; 8] = b"agoraexp";
const VERSION: u8 = 1;
/// The most entries one file may hold.
pub const MAX_ENTRIES: usize = 10_000_000;

/// Encodes entries in the export layout.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(
        &u32::try_from(entries.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for entry in entries {
        let len = u32::try_from(entry.bytes().len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry.bytes());
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rest.len() < n {
        return Err("file is truncated".into());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn u32_at(rest: &mut &[u8]) -> Result<usize, String> {
    let bytes: [u8; 4] = take(rest, 4)?.try_into().map_err(|_| "file is truncated")?;
    Ok(u32::from_be_bytes(bytes) as usize)
}

/// Decodes and validates an export file; the first problem found refuses the whole file.
pub fn decode(bytes: &[u8], now: Timestamp) -> Result<Vec<Entry>, String> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or("not an Agora export file (too short)")?;
    let (body, hash) = bytes.split_at(body_len);
    let mut rest = body;
    if take(&mut rest, MAGIC.len())? != MAGIC {
        return Err("not an Agora export file".into());
    }
    let version = take(&mut rest, 1)?.first().copied().unwrap_or_default();
    if version != VERSION {
        return Err(format!("unknown export file version {version}"));
    }
    if blake3::hash(body).as_bytes() != hash {
        return Err("file is damaged: its checksum does not match".into());
    }
    let count = u32_at(&mut rest)?;
    if count > MAX_ENTRIES {
        return Err(format!("file claims {count} entries, over the limit"));
    }
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for i in 0..count {
        let len = u32_at(&mut rest)?;
        if len > limits::MAX_ENTRY_BYTES {
            return Err(format!("entry {i} is {len} bytes, over the limit"));
        }
        let raw = take(&mut rest, len)?;
        let entry = agora_crdt::validate(raw, now).map_err(|e| format!("entry {i}: {e}"))?;
        entries.push(entry);
    }
    if !rest.is_empty() {
        return Err("file has trailing bytes".into());
    }
    Ok(entries)
}

/// The one subwiki all entries belong to.
pub fn single_subwiki(entries: &[Entry]) -> Result<SubwikiId, String> {
    let first = entries.first().ok_or("file holds no entries")?.subwiki();
    if entries.iter().any(|e| e.subwiki() != first) {
        return Err("file mixes entries of several subwikis".into());
    }
    Ok(first)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("partial");
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A file with a good header and checksum that declares `count` entries and holds
    /// `entries` bytes after the count.
    fn file(count: u32, entries: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(entries);
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out
    }

    /// A file may declare at most `MAX_ENTRIES` entries: one declaring more is refused from
    /// its count, before any entry is read, whatever follows it; one declaring exactly the
    /// limit gets past the count and is refused only when its entries run out.
    #[test]
    fn a_file_declaring_too_many_entries_is_refused_from_its_count() {
        let now = Timestamp(u64::MAX);
        let limit = u32::try_from(MAX_ENTRIES).unwrap();
        // What follows the count reads as one entry length of zero bytes, then nothing.
        let rest = [0u8; 4];
        for count in [limit + 1, u32::MAX] {
            assert_eq!(
                decode(&file(count, &rest), now).unwrap_err(),
                format!("file claims {count} entries, over the limit")
            );
        }
        assert_eq!(
            decode(&file(limit, &[]), now).unwrap_err(),
            "file is truncated"
        );
        // The same file declaring no entries is a well-formed empty export.
        assert_eq!(decode(&file(0, &[]), now).unwrap(), Vec::new());
    }
}
