//! Giving freed heap back to the system after a config load.
//!
//! Loading 10,000 services allocates several times the size of the snapshot it keeps, and
//! glibc keeps freed memory in per-thread arenas: without a trim, RSS settled at the peak of
//! the largest reload and grew with each worker thread that ran one.

/// Returns free heap pages of every arena to the kernel.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and madvises free
    // pages away; it takes no pointers from us and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
