//! Free space on the disk that holds the store, checked before every write.
//!
//! sled 0.34 does not survive running out of space. A failed write of its log sets an error that
//! every later write returns until the database is opened again, and a `flush` waiting at that
//! moment may never wake up (the write that fails in `Log::exit_reservation` sets the error
//! without waking the waiters: `sled-0.34.7/src/pagecache/logger.rs`). Seen with the real
//! binary on a 30 MB home: the flush waits for ever inside sled's global concurrency lock, the
//! next transaction queues behind it, every read then queues behind the transaction, and the
//! node answers nothing, not even SIGTERM.
//!
//! So the store does not let sled get there: a write is refused, with
//! [`StoreError::DiskFull`](super::StoreError::DiskFull) and before anything of it is written,
//! while the space free (for an unprivileged user) is below [`needed`]: [`RESERVE`] plus twice
//! the write, since what a write derives (rendered views, Automerge snapshots) is often as
//! large as the write itself. The reserve is room for what sled writes on its own (log
//! segments, garbage collection, the page table snapshot it writes when it is closed) and for
//! the caches written while the disk fills. Caches (views, snapshots) are not written at all
//! below it; reads go on. Once space is freed, writes are taken again.

use std::path::Path;

/// Space left free for sled and the caches: 8 MiB.
pub(crate) const RESERVE: u64 = 8 * 1024 * 1024;

/// The space a write of `bytes` needs free before it starts.
pub(crate) fn needed(bytes: usize) -> u64 {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    RESERVE.saturating_add(bytes.saturating_mul(2))
}

/// Bytes free for an unprivileged user on the filesystem that holds `dir` (`statvfs`); `None`
/// if that cannot be known, and then no write is refused for space.
pub(crate) fn free(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stat = nix::sys::statvfs::statvfs(dir).ok()?;
        // The types of these fields differ between platforms.
        #[allow(clippy::useless_conversion)]
        let (blocks, size) = (
            u64::from(stat.blocks_available()),
            u64::from(stat.fragment_size()),
        );
        Some(blocks.saturating_mul(size))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_write_needs_the_reserve_and_twice_its_size() {
        assert_eq!(needed(0), RESERVE);
        assert_eq!(needed(1000), RESERVE + 2000);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }

    #[cfg(unix)]
    #[test]
    fn the_free_space_of_a_directory_is_known() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free(dir.path()).is_some());
        assert!(free(&dir.path().join("missing")).is_none());
    }
}
