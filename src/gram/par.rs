//! When the O(n d) passes before an assembly (finiteness check, column means, the centred
//! copy, norms) run in parallel (docs/design.md section 2).
//!
//! They run on the current rayon pool: the assembly functions call them inside
//! [`super::GramOptions::install`], so they use the threads the caller asked for. Each pass
//! is split so that its result does not depend on how it is split (every output element is
//! computed by one task, with the same sequential arithmetic as the serial pass), so K stays
//! bitwise the same for any number of threads. Measured at n = 4096, d = 300 (f32, Intel
//! AVX-512 host, 2 threads): the serial passes took about 2.7 ms of a 27 ms assembly, with one
//! core idle.

/// Below this many elements a pass runs on the calling thread: splitting costs more.
pub(crate) const MIN_ELEMENTS: usize = 1 << 16;

/// Rows per task for a pass over `n x d` data: about 2^14 elements (64 KB of f32), at least 1.
pub(crate) fn chunk_rows(d: usize) -> usize {
    ((1usize << 14) / d.max(1)).max(1)
}

/// Whether a pass over `len` elements is worth splitting.
pub(crate) fn worth_it(len: usize) -> bool {
    len >= MIN_ELEMENTS && rayon::current_num_threads() > 1
}
