//! glibc's malloc, tuned for a training process.
//!
//! A training step allocates and frees many tensor-sized buffers (activations, gradients,
//! optimizer temporaries: up to ~90 MB each for all-MiniLM-L6-v2). glibc serves every
//! allocation above its mmap threshold with a fresh `mmap` and returns it with `munmap`, and
//! trims the top of the heap back to the kernel on `free`: the next step faults the same
//! memory in again, page by page, and the kernel zeroes every page. In a profile of a Fisher
//! estimate that was a third of the time (page faults, `clear_page`, `malloc`/`free`).
//! [`tune`] keeps freed memory in the process instead: no `mmap` for large blocks, no trimming,
//! 64 MiB of slack at each heap growth. Peak RSS stays the same (the process reached it
//! anyway); memory is not handed back until the process ends. BENCHMARKS.md has the figures
//! (Fisher 1.9× and dense step ~1.15× faster on flex).
//!
//! mimalloc and jemalloc were measured too, and both were slower than glibc untuned (a
//! freshly `mmap`ed block is zero for free, and Burn's CPU backends allocate zeroed buffers).

/// Whether [`tune`] may change the allocator: not when `FINESSE_SYSTEM_MALLOC=1` (glibc's own
/// defaults, e.g. to measure them), nor when the user set glibc's own `MALLOC_*` variables.
pub fn wanted() -> bool {
    std::env::var_os("FINESSE_SYSTEM_MALLOC").is_none_or(|v| v != "1")
        && !std::env::vars_os().any(|(k, _)| {
            k.to_str()
                .is_some_and(|k| k.starts_with("MALLOC_") && k.ends_with('_'))
        })
}

/// Tunes glibc's malloc (see the crate doc); call it first thing in `main`, before any thread
/// starts. Returns whether the settings were applied (false off glibc, when not
/// [`wanted`], or when glibc refused one).
pub fn tune() -> bool {
    wanted() && apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    const TOP_PAD: libc::c_int = 64 << 20;
    let settings = [
        (libc::M_MMAP_MAX, 0),
        (libc::M_TRIM_THRESHOLD, libc::c_int::MAX),
        (libc::M_TOP_PAD, TOP_PAD),
    ];
    settings.iter().all(|&(param, value)| {
        // SAFETY: `mallopt` only changes malloc's tuning parameters; it takes the arena lock
        // itself and is called with valid parameter constants and values.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(param, value) };
        ok == 1
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

/// Restores the default action of `SIGPIPE` (the process ends quietly), as command-line tools
/// do: Rust ignores the signal, so `finesse mask stats … | head` would otherwise panic on the
/// first `println!` after `head` exits ("failed printing to stdout: Broken pipe"). Sockets are
/// unaffected (std's writes to them pass `MSG_NOSIGNAL`). Call it first thing in a command-line
/// `main`; a no-op off Unix.
pub fn default_sigpipe() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `signal` with `SIG_DFL` installs no handler code; it is called before any
        // thread starts, so no other thread observes the change mid-way.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_settings_and_memory_still_works() {
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(apply(), "mallopt refused a setting");
        }
        // Large blocks (above the default mmap threshold) still allocate, fill and free.
        for _ in 0..3 {
            let v = vec![1u8; 64 << 20];
            assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
        }
    }
}
