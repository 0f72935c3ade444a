//! Data parallelism: the ranks of a job and what they exchange (DISTRIBUTED.md is the user's
//! guide and the cost model).
//!
//! A job is N copies of `finesse finetune` started by an MPI launcher (`mpirun`, `srun`). Each
//! rank holds the same model and mask (same seed), computes the gradients of its share of every
//! global batch and joins one all-reduce of the trained entries (k floats for a FISH mask,
//! every parameter for dense), after which every rank takes the identical optimizer step. With
//! `--sync-every H` ranks instead step on their own share for H steps and then average the
//! trained entries' values.
//!
//! ```text
//! mod.rs   Comm (rank, size, sums, broadcast, abort), the process's world, launch detection,
//!          a rank's share of a batch, agreement checks (config, mask, parameter checksum)
//! mpi.rs   Comm over MPI (rsmpi), feature `mpi`; MpiGuard keeps MPI initialised
//! ```
//!
//! One process alone is [`Solo`]: every collective is the identity, and the trainer takes its
//! single-process path unchanged.

#[cfg(feature = "mpi")]
mod mpi;

use std::ops::Range;
use std::sync::OnceLock;

use crate::error::{Result, TrainError};

/// The collectives a data-parallel run needs. Every rank must call the same collectives in
/// the same order; a rank that cannot go on ends the job with [`Comm::abort`].
pub trait Comm: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn size(&self) -> usize;
    /// Replaces `buf` by its element-wise sum over all ranks (sent in buckets).
    fn sum_f32(&self, buf: &mut [f32]);
    /// Replaces `buf` by its element-wise sum over all ranks.
    fn sum_f64(&self, buf: &mut [f64]);
    /// Replaces `bytes` on every rank by rank 0's.
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// Waits for every rank.
    fn barrier(&self);
    /// Ends every rank of the job with `code` (MPI_Abort); the launcher reports it.
    fn abort(&self, code: i32) -> !;
}

/// The world of a process started alone: rank 0 of 1.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Comm for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _buf: &mut [f32]) {}
    fn sum_f64(&self, _buf: &mut [f64]) {}
    fn broadcast(&self, _bytes: &mut Vec<u8>) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

static WORLD: OnceLock<Box<dyn Comm>> = OnceLock::new();

/// This process's world: the one [`init_from_launcher`] set up, or [`Solo`].
pub fn world() -> &'static dyn Comm {
    WORLD.get().map_or(&Solo, |w| w.as_ref())
}

/// Keeps the process's MPI initialised while alive (MPI is finalised when it drops); `None`
/// for a process started alone.
pub struct WorldGuard {
    #[cfg(feature = "mpi")]
    _mpi: Option<mpi::MpiGuard>,
}

/// The environment variables launchers set, with the job's size: Open MPI's `mpirun`,
/// MPICH / Intel MPI (Hydra, PMI), Slurm's `srun`.
pub const LAUNCHER_SIZE_VARS: [&str; 3] =
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"];

/// The launcher variable that says this process is one rank of a job, and the job's size.
pub fn launched_as() -> Option<(&'static str, usize)> {
    LAUNCHER_SIZE_VARS.iter().find_map(|var| {
        let size = std::env::var(var).ok()?.trim().parse().ok()?;
        Some((*var, size))
    })
}

/// Sets up this process's world from its launcher: under `mpirun` / `srun` (or with
/// `FINESSE_MPI=1`) MPI is initialised and [`world`] becomes the job's; a process started alone
/// stays [`Solo`]. Call it once, from the main thread, before any run starts.
///
/// # Errors
/// A job of several ranks but a binary built without the `mpi` feature (every rank would
/// otherwise train alone into the same run directory), or MPI that fails to start.
pub fn init_from_launcher() -> Result<WorldGuard> {
    let forced = std::env::var("FINESSE_MPI").is_ok_and(|v| v == "1");
    let launched = launched_as();
    #[cfg(feature = "mpi")]
    {
        if launched.is_none() && !forced {
            return Ok(WorldGuard { _mpi: None });
        }
        let (comm, guard) = mpi::init().map_err(|problem| TrainError::Distributed {
            rank: 0,
            size: launched.map_or(1, |(_, n)| n),
            problem,
        })?;
        // A second call keeps the first world (MPI initialises once per process).
        let _ = WORLD.set(Box::new(comm));
        Ok(WorldGuard { _mpi: guard })
    }
    #[cfg(not(feature = "mpi"))]
    match launched {
        Some((var, size)) if size > 1 => Err(TrainError::Distributed {
            rank: 0,
            size,
            problem: format!(
                "started as one of {size} ranks ({var}={size}), but this finesse was built \
                 without the `mpi` feature, so every rank would train alone into the same run \
                 directory. Build it with `cargo build --release -p finesse-cli --features \
                 finesse-cli/mpi` (needs libopenmpi-dev), or run one process"
            ),
        }),
        _ if forced => Err(TrainError::Distributed {
            rank: 0,
            size: 1,
            problem: "FINESSE_MPI=1, but this finesse was built without the `mpi` feature".into(),
        }),
        _ => Ok(WorldGuard {}),
    }
}

/// The examples of a batch of `n` that `rank` of `size` takes: consecutive, the first
/// `n % size` ranks one more than the rest (a rank may get none when `n < size`).
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Fails on every rank whose `bytes` differ from rank 0's (`what` names them in the error).
///
/// # Errors
/// [`TrainError::Distributed`] naming the rank and, through `describe`, the difference.
pub fn check_same(
    comm: &dyn Comm,
    what: &str,
    bytes: &[u8],
    describe: impl Fn(&[u8], &[u8]) -> String,
) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let mut root = bytes.to_vec();
    comm.broadcast(&mut root);
    if root == bytes {
        return Ok(());
    }
    Err(TrainError::Distributed {
        rank: comm.rank(),
        size: comm.size(),
        problem: format!("{what} differs from rank 0's: {}", describe(&root, bytes)),
    })
}

/// The top-level keys of two JSON objects whose values differ (rank 0's first).
pub fn json_difference(root: &[u8], mine: &[u8]) -> String {
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap_or_default();
    let (a, b) = (parse(root), parse(mine));
    let keys: Vec<String> = match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let show = |v: Option<&serde_json::Value>| v.map_or("(none)".into(), |v| v.to_string());
            a.keys()
                .chain(b.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| {
                    format!(
                        "`{k}`: rank 0 has {}, this rank {}",
                        show(a.get(k)),
                        show(b.get(k))
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    };
    if keys.is_empty() {
        "the settings differ".into()
    } else {
        keys.join("; ")
    }
}

/// A 64-bit FNV-1a digest (masks and parameter checksums compared across ranks).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_once_and_differ_by_at_most_one() {
        for n in 0..20 {
            for size in 1..6 {
                let parts: Vec<Range<usize>> = (0..size).map(|r| share(n, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "n {n} size {size}");
                }
                let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
                let (lo, hi) = (lens.iter().min(), lens.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{lens:?}");
            }
        }
        assert_eq!(share(8, 0, 3), 0..3);
        assert_eq!(share(8, 1, 3), 3..6);
        assert_eq!(share(8, 2, 3), 6..8);
        assert_eq!(share(1, 1, 2), 1..1);
    }

    #[test]
    fn a_json_difference_names_the_keys() {
        let a = br#"{"lr":0.001,"seed":1,"task":"sst2"}"#;
        let b = br#"{"lr":0.002,"seed":1,"task":"sst2"}"#;
        let text = json_difference(a, b);
        assert!(
            text.contains("`lr`: rank 0 has 0.001, this rank 0.002"),
            "{text}"
        );
        assert!(!text.contains("seed"), "{text}");
        assert!(check_same(&Solo, "the flags", a, json_difference).is_ok());
        assert_ne!(fnv1a(*b"abc"), fnv1a(*b"abd"));
    }
}
