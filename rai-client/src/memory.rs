//! How the client's allocator hands memory back.
//!
//! A first submit reads a whole project through buffers of a chunk or a batch each (256 KiB to 6 MiB). glibc's
//! allocator maps such a buffer on its own and unmaps it when freed, but each one freed raises the size it maps from
//! (its "dynamic mmap threshold", up to 32 MiB), so after the first few every such buffer comes from the heap, where
//! freed ones stay resident: a first submit's peak RSS was 57-67 MiB while it held about 40 (issue 30's target is 64).
//! Fixing the threshold keeps buffers of a megabyte and more mapped, and returned when freed. Other platforms'
//! allocators (musl's, of the students' Linux downloads; Windows'; macOS's) have no such threshold.

/// Buffers of this size and more are mapped on their own (glibc). Below it (sources, sealed small chunks, the
/// runtime's own) they stay in the heap, where they are cheap to reuse.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// What [`tune_allocator`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// glibc took the fixed threshold.
    Fixed,
    /// glibc refused it (the allocator was replaced, say); it keeps its own.
    Refused,
    /// Not glibc: nothing to do.
    NotGlibc,
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`]; call it first in `main`.
pub fn tune_allocator() -> Tuning {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a parameter of the allocator, under the allocator's own lock; it reads and keeps
        // no pointer. It answers 1 when it took the value.
        #[allow(unsafe_code)]
        let taken = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
        if taken == 1 {
            Tuning::Fixed
        } else {
            Tuning::Refused
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    Tuning::NotGlibc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_fixed_threshold() {
        let expected = if cfg!(all(target_os = "linux", target_env = "gnu")) {
            Tuning::Fixed
        } else {
            Tuning::NotGlibc
        };
        assert_eq!(tune_allocator(), expected);
        // Buffers above and below it are still allocated, filled and freed as before.
        for size in [MMAP_THRESHOLD / 2, MMAP_THRESHOLD, 3 * MMAP_THRESHOLD] {
            let buffer = vec![7u8; size];
            assert_eq!(buffer.iter().map(|&b| b as usize).sum::<usize>(), 7 * size);
        }
    }
}
