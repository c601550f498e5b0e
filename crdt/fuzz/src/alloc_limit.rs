//! A global allocator that aborts on one allocation over a limit, with a backtrace, so that
//! inputs which make a few bytes allocate hundreds of megabytes are saved as crashes.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The limit in bytes; 0 is no limit.
static MAX_ALLOC: AtomicUsize = AtomicUsize::new(0);
/// Set while reporting, so that the report's own allocations pass.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Sets the largest single allocation allowed, in MiB (0: no limit).
pub fn set_max_alloc_mb(mb: usize) {
    MAX_ALLOC.store(mb.saturating_mul(1024 * 1024), Ordering::Relaxed);
}

struct Limited;

#[global_allocator]
static ALLOCATOR: Limited = Limited;

fn check(size: usize) {
    let max = MAX_ALLOC.load(Ordering::Relaxed);
    if max != 0 && size > max && !REPORTING.swap(true, Ordering::SeqCst) {
        eprintln!(
            "[agora-fuzz] ALLOCATION OF {size} BYTES (limit {max}); AGORA_FUZZ_MAX_ALLOC_MB sets the limit\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        std::process::abort();
    }
}

// SAFETY: every method forwards to `System` with the same arguments.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
