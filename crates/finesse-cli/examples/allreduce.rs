//! Times the all-reduce that data-parallel training runs, for the sizes DISTRIBUTED.md's cost
//! model uses: the k floats of a FISH mask and every parameter of a dense model.
//!
//! `mpirun -np 2 target/release/examples/allreduce [FLOATS…]` prints one JSON line per size
//! (on rank 0): the median seconds of 20 all-reduces after 3 warm-up ones, and the payload
//! bandwidth. Without sizes: MiniLM's 0.5% mask (113 570 floats) and all of MiniLM
//! (22 713 986 floats).

use std::time::Instant;

use finesse_train::dist;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = dist::init_from_launcher()?;
    let world = dist::world();
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    if sizes.is_empty() {
        sizes = vec![113_570, 22_713_986];
    }
    for n in sizes {
        let mut buf = vec![1.0f32; n];
        let mut times = Vec::new();
        for i in 0..23 {
            world.barrier();
            let started = Instant::now();
            world.sum_f32(&mut buf);
            if i >= 3 {
                times.push(started.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        if world.rank() == 0 {
            println!(
                "{{\"ranks\": {}, \"floats\": {n}, \"bytes\": {}, \"median_secs\": {median:.6}, \"payload_gbit_per_sec\": {:.2}}}",
                world.size(),
                4 * n,
                4.0 * n as f64 * 8.0 / median / 1e9
            );
        }
    }
    Ok(())
}
