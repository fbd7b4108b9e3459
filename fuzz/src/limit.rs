//! An allocator for the fuzz targets that turns unbounded memory into a crash libFuzzer saves:
//! any single allocation above [`ALLOCATION_MAX`] aborts with a message. (libFuzzer's own
//! `-malloc_limit_mb` needs a sanitizer runtime, absent with `--sanitizer none`; its
//! `-rss_limit_mb` still catches memory that is used, in many small pieces.)

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest allocation an input may cause: far above what parsing a small input needs
/// (a configuration of [`SENSORS_MAX`](crate::checks::SENSORS_MAX) sensors takes a few MB).
pub const ALLOCATION_MAX: usize = 256 << 20;

/// The system allocator, refusing allocations above [`ALLOCATION_MAX`] by aborting.
pub struct Limited;

impl Limited {
    fn check(size: usize) {
        if size > ALLOCATION_MAX {
            // Unbuffered stderr: nothing is allocated here.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"fuzz: an allocation above ALLOCATION_MAX (256 MiB): unbounded memory\n",
            );
            std::process::abort();
        }
    }
}

// SAFETY: every method forwards to `System` after a check that allocates nothing.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
