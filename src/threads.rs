//! Worker pools: one rayon pool per requested thread count, built on first use and kept for
//! the life of the process.
//!
//! Options such as [`GramOptions::threads`](crate::gram::GramOptions) ask for `Some(t)`
//! threads. Building a rayon pool starts `t` OS threads (tens of microseconds each, more than a
//! small Gram matrix costs), so a pool is never built per call or per row block: the first call
//! with a given `t` builds it, every later one reuses it. `None` runs on the caller's current
//! pool (rayon's global pool unless the caller is already inside one), with no set-up at all.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The pools built so far, by thread count. They are never dropped: a program asks for a few
/// thread counts at most, and keeping the threads parked costs nothing.
fn pools() -> &'static Mutex<HashMap<usize, Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The shared pool of `threads` workers (built on the first request for that count).
///
/// # Errors
/// `InvalidParameter` for 0 threads or when the OS refuses to start the threads.
pub fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    if threads == 0 {
        return Err(Error::param("threads", "must be >= 1"));
    }
    // A poisoned lock only means another thread panicked while holding it; the map itself is
    // always in a valid state (an insert either happened or not).
    let mut map = pools().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(&threads) {
        return Ok(Arc::clone(p));
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("mmfuse-{threads}-{i}"))
        .build()
        .map_err(|e| Error::param("threads", format!("cannot start {threads}: {e}")))?;
    let p = Arc::new(p);
    map.insert(threads, Arc::clone(&p));
    Ok(p)
}

/// Runs `f` on `threads` workers: the shared pool of that size for `Some(t)` (or `f` directly
/// when the caller already runs on a pool of exactly `t` threads), the current pool for `None`.
///
/// ```
/// let sum: u64 = mmfuse::threads::install(Some(2), || {
///     use rayon::prelude::*;
///     (1..=100u64).into_par_iter().sum()
/// })?;
/// assert_eq!(sum, 5050);
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn install<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match threads {
        None => Ok(f()),
        Some(t) if rayon::current_thread_index().is_some() && rayon::current_num_threads() == t => {
            Ok(f())
        }
        Some(t) => Ok(pool(t)?.install(f)),
    }
}
