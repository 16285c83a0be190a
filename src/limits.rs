//! Memory limits. Every allocation whose size comes from the input (a Gram matrix, a combined
//! kernel, LMF outputs and gradients) is checked against a cap *before* it is made, so that an
//! oversized request is an [`Error::TooLarge`] naming the bytes needed, not an abort by the
//! allocator (or a later kill by the OOM killer).
//!
//! The cap is, in order: the value set by [`set_memory_limit`]; else the environment variable
//! `MMFUSE_MAX_MEMORY` (bytes, with an optional K/M/G/T suffix in powers of 1024, e.g. `8G`);
//! else the machine's physical memory (Linux), else no cap beyond the address space. The CLI's
//! global `--max-memory` sets it.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// 0 = not set.
static CAP: AtomicU64 = AtomicU64::new(0);

/// Sets (or with `None` clears) the memory cap for this process, in bytes.
pub fn set_memory_limit(bytes: Option<u64>) {
    CAP.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// Parses a byte count with an optional K, M, G or T suffix (powers of 1024; `B` and `iB`
/// accepted): `1000000`, `512M`, `8G`, `1.5T`.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.trim_end_matches('B').trim_end_matches('I');
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| {
        Error::param(
            "max_memory",
            format!("`{s}` is not a byte count such as 8G"),
        )
    })?;
    if !(v.is_finite() && v >= 1.0) {
        return Err(Error::param(
            "max_memory",
            format!("`{s}` must be at least 1 byte"),
        ));
    }
    Ok((v * mult as f64).min(u64::MAX as f64) as u64)
}

/// Physical memory in bytes, if the OS says.
fn physical_memory() -> Option<u64> {
    // (Not under Miri, which does not model the machine's memory.)
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: sysconf only reads system configuration; it has no memory-safety
        // preconditions.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return Some(pages as u64 * size as u64);
        }
    }
    None
}

/// The cap in force and where it comes from.
pub fn memory_limit() -> (u128, &'static str) {
    let set = CAP.load(Ordering::Relaxed);
    let (cap, source) = if set > 0 {
        (set as u128, "set by --max-memory / set_memory_limit")
    } else if let Some(v) = std::env::var("MMFUSE_MAX_MEMORY")
        .ok()
        .and_then(|s| parse_bytes(&s).ok())
    {
        (v as u128, "MMFUSE_MAX_MEMORY")
    } else if let Some(p) = physical_memory() {
        (p as u128, "the physical memory")
    } else {
        (isize::MAX as u128, "the address space")
    };
    (cap.min(isize::MAX as u128), source)
}

/// Refuses an `n x m` buffer of `T` above the cap, with a message naming what, the bytes
/// needed and the cap.
pub(crate) fn check_alloc<T>(n: usize, m: usize, what: &str) -> Result<()> {
    let bytes = (n as u128) * (m as u128) * (std::mem::size_of::<T>() as u128);
    let (limit, source) = memory_limit();
    if bytes > limit {
        return Err(Error::TooLarge {
            what: format!(
                "{what} ({n} x {m}; the cap is {source}, see --max-memory or MMFUSE_MAX_MEMORY)"
            ),
            bytes,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("8G").unwrap(), 8 << 30);
        assert_eq!(parse_bytes("512mb").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5KiB").unwrap(), 1536);
        for bad in ["", "x", "-1", "0", "1Q", "nan"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
