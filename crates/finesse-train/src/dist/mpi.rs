//! [`Comm`] over MPI through rsmpi (the `mpi` crate). Collectives go to `MPI_COMM_WORLD`; MPI
//! is initialised with `MPI_THREAD_SERIALIZED` because the training thread, not the main
//! thread, makes the calls (one thread at a time).

use mpi::Threading;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use super::Comm;

/// Floats per all-reduce call: gradients travel in buckets of 16 MiB, so a dense model's
/// exchange needs no second full-size buffer.
pub const BUCKET: usize = 4 << 20;

/// `MPI_COMM_WORLD`.
pub struct MpiComm {
    rank: usize,
    size: usize,
}

/// Finalises MPI when dropped.
pub struct MpiGuard {
    _universe: Universe,
}

/// Initialises MPI; the world and the guard that keeps MPI up (`None` when MPI was already
/// initialised by someone else, who then finalises it).
pub fn init() -> Result<(MpiComm, Option<MpiGuard>), String> {
    let guard = match mpi::initialize_with_threading(Threading::Serialized) {
        Some((universe, level)) if level >= Threading::Serialized => Some(MpiGuard {
            _universe: universe,
        }),
        Some((_, level)) => {
            return Err(format!(
                "this MPI library grants thread level {level:?}; finesse needs Serialized \
                 (its training thread makes the MPI calls)"
            ));
        }
        None if mpi::environment::is_initialized() => None,
        None => return Err("MPI failed to initialise".into()),
    };
    let world = SimpleCommunicator::world();
    let (rank, size) = (world.rank(), world.size());
    Ok((
        MpiComm {
            rank: usize::try_from(rank).unwrap_or(0),
            size: usize::try_from(size).unwrap_or(1),
        },
        guard,
    ))
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f32(&self, buf: &mut [f32]) {
        let world = SimpleCommunicator::world();
        for chunk in buf.chunks_mut(BUCKET) {
            let send = chunk.to_vec();
            world.all_reduce_into(&send[..], chunk, SystemOperation::sum());
        }
    }

    fn sum_f64(&self, buf: &mut [f64]) {
        let world = SimpleCommunicator::world();
        let send = buf.to_vec();
        world.all_reduce_into(&send[..], buf, SystemOperation::sum());
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let world = SimpleCommunicator::world();
        let root = world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(usize::try_from(len).unwrap_or(0), 0);
        root.broadcast_into(&mut bytes[..]);
    }

    fn barrier(&self) {
        SimpleCommunicator::world().barrier();
    }

    fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}
