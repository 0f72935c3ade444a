//! Data-parallel training under `mpirun` (Open MPI; `.ci/run` installs it): a job of 2 or 3
//! ranks ends with the weights of one process at the same global batch, the parallel Fisher
//! gives the same mask, `--sync-every` exchanges k floats per sync, ranks with different
//! flags stop the job, and a killed rank ends the job, which then resumes.
//!
//! Every test launches real processes of the `finesse` binary (built with the `mpi` feature)
//! on the tiny model; dropout is off so that one process and a job draw nothing different.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use finesse_testkit::{events, finesse, stderr, tiny_glue, tiny_model};
use safetensors::SafeTensors;

/// `mpirun -np N finesse`, as root in a container and on fewer cores than ranks.
fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--oversubscribe", "-np", &np.to_string()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Ranks share 2 cores: wait for messages without spinning, one thread per rank.
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RAYON_NUM_THREADS", "1")
        .arg(env!("CARGO_BIN_EXE_finesse"));
    c
}

fn output(mut c: Command) -> Output {
    c.output().unwrap_or_else(|e| {
        panic!(
            "cannot start {c:?}: {e} (mpirun comes with Debian's openmpi-bin; .ci/run installs it)"
        )
    })
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    data: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let (model, data) = (tiny_model(&root), tiny_glue(&root));
    Setup {
        _tmp: tmp,
        root,
        model,
        data,
    }
}

impl Setup {
    /// `finetune` arguments of a short deterministic run into `out`.
    fn args(&self, out: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "finetune",
            "--task",
            "SST-2",
            "--no-dropout",
            "--save-model",
            "--log-every",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (flag, value) in [
            ("--max-steps", "6"),
            ("--batch-size", "8"),
            ("--lr", "1e-3"),
        ] {
            if !extra.contains(&flag) {
                a.extend([flag.to_string(), value.to_string()]);
            }
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        for (flag, path) in [
            ("--model", &self.model),
            ("--data-dir", &self.data),
            ("--output-dir", &self.root.join(out)),
        ] {
            a.push(flag.into());
            a.push(path.display().to_string());
        }
        a
    }

    fn run(&self, out: &str) -> PathBuf {
        self.root.join(out)
    }
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            (view.dtype() == safetensors::Dtype::F32).then(|| {
                let data = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name.trim_start_matches("bert.").to_string(), data)
            })
        })
        .collect()
}

/// max |a − b| / max |a| over each tensor; panics on a missing tensor.
fn worst_relative(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> (f64, String) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = (0.0, String::new());
    for (name, x) in a {
        let y = &b[name];
        let scale = x
            .iter()
            .fold(0f64, |m, v| m.max(f64::from(v.abs())))
            .max(1e-30);
        let diff = x
            .iter()
            .zip(y)
            .fold(0f64, |m, (p, q)| m.max(f64::from((p - q).abs())));
        if diff / scale > 1e-6 {
            println!("{name}: {:e} relative (max |a| {scale:e})", diff / scale);
        }
        if diff / scale > worst.0 {
            worst = (diff / scale, name.clone());
        }
    }
    worst
}

/// The kept flat indices of every tensor of a readable mask file (u8 0/1).
fn kept(mask: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(mask).expect("mask file");
    let st = SafeTensors::deserialize(&bytes).expect("mask safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let on = view
                .data()
                .iter()
                .enumerate()
                .filter(|(_, b)| **b != 0)
                .map(|(i, _)| i)
                .collect();
            (name.trim_start_matches("bert.").to_string(), on)
        })
        .collect()
}

fn step_comm(run: &Path) -> Vec<serde_json::Value> {
    events(run)
        .into_iter()
        .filter(|e| e["type"] == "step")
        .map(|e| e["comm"].clone())
        .collect()
}

fn trainable(run: &Path) -> u64 {
    events(run)
        .iter()
        .find(|e| e["type"] == "start")
        .and_then(|e| e["trainable_params"].as_u64())
        .expect("start event")
}

/// FISH flags: a 5% mask from the Fisher over `samples` examples, then `more`.
fn fish<'a>(samples: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--method",
        "fish",
        "--keep-ratio",
        "0.05",
        "--fisher-samples",
        samples,
    ];
    a.extend_from_slice(more);
    a
}

/// One process and `np` ranks on the same flags; returns the two run directories.
fn one_and_many(s: &Setup, np: usize, name: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let solo = format!("{name}-1");
    let job = format!("{name}-{np}");
    let o = finesse!()
        .env("RAYON_NUM_THREADS", "1")
        .args(s.args(&solo, extra))
        .output()
        .expect("finesse");
    assert!(o.status.success(), "one process: {}", stderr(&o));
    let mut c = mpirun(np);
    c.args(s.args(&job, extra));
    let o = output(c);
    assert!(o.status.success(), "{np} ranks: {}", stderr(&o));
    (s.run(&solo), s.run(&job))
}

/// The summation-order noise allowed between one process and a job, relative to each
/// tensor's largest entry. The job's sums run in another order (each rank's share, then the
/// exchange), and its result moves from run to run by a few 1e-7 (3.8e-7 to 6.1e-7 in three
/// runs of the dense test, 1.2e-6 in one CI run with the other tests beside it, on the small
/// LayerNorm biases); a wrong exchange moves weights by far more (a missing rank's share: the
/// gradient halved).
const SUMMATION_NOISE: f64 = 5e-6;

fn assert_same_weights(solo: &Path, job: &Path) {
    let a = tensors(&solo.join("model/model.safetensors"));
    let b = tensors(&job.join("model/model.safetensors"));
    let (worst, name) = worst_relative(&a, &b);
    assert!(
        worst <= SUMMATION_NOISE,
        "`{name}` differs by {worst:e} (relative)"
    );
    println!("largest relative difference: {worst:e} in `{name}`");
}

#[test]
fn fish_on_two_ranks_ends_with_the_weights_of_one_process() {
    let s = setup();
    let flags = fish("16", &[]);
    let (solo, job) = one_and_many(&s, 2, "fish", &flags);
    assert_same_weights(&solo, &job);
    // The parallel Fisher equals the single-process one and selects the same mask.
    let (fa, fb) = (
        tensors(&solo.join("fisher.safetensors")),
        tensors(&job.join("fisher.safetensors")),
    );
    let (worst, name) = worst_relative(&fa, &fb);
    assert!(worst <= 1e-6, "Fisher of `{name}` differs by {worst:e}");
    let mask = kept(&job.join("mask.safetensors"));
    assert_eq!(kept(&solo.join("mask.safetensors")), mask, "same mask");
    // Entries outside the mask keep the base model's bits.
    let base = tensors(&s.model.join("model.safetensors"));
    let tuned = tensors(&job.join("model/model.safetensors"));
    let mut outside = 0;
    for (name, on) in &mask {
        let (Some(b), Some(t)) = (base.get(name), tuned.get(name)) else {
            continue;
        };
        let on: std::collections::HashSet<_> = on.iter().collect();
        for (i, (x, y)) in b.iter().zip(t).enumerate() {
            if !on.contains(&i) {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "`{name}`[{i}] moved outside the mask"
                );
                outside += 1;
            }
        }
    }
    assert!(outside > 0);
    // Rank 0 wrote the run: world size recorded, k floats of gradients per step.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(info["world_size"], 2);
    let k = trainable(&job);
    let comm = step_comm(&job);
    assert_eq!(comm.len(), 6);
    for c in &comm {
        assert_eq!(c["world_size"], 2);
        assert_eq!(c["exchanges"], 1);
        assert_eq!(c["bytes"].as_u64(), Some(4 * k), "{c}");
    }
    assert!(step_comm(&solo).iter().all(serde_json::Value::is_null));
    // `runs show` gives the command as a job of the same size.
    let o = finesse!()
        .args(["runs", "show"])
        .arg(&job)
        .output()
        .expect("runs show");
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("command: mpirun -np 2 finesse finetune"),
        "{shown}"
    );
}

#[test]
fn dense_on_two_ranks_ends_with_the_weights_of_one_process() {
    let s = setup();
    // SGD: the update is the gradient itself, so the comparison sees the exchange's rounding
    // only. (AdamW divides each gradient by its own scale: on entries whose true gradient is
    // zero — attention key biases, which softmax ignores — it turns rounding noise into
    // full-size steps in both runs, different ones; DISTRIBUTED.md shows the numbers.)
    let sgd = [
        "--method",
        "dense",
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--lr",
        "0.05",
    ];
    let (solo, job) = one_and_many(&s, 2, "dense", &sgd);
    assert_same_weights(&solo, &job);
    let comm = step_comm(&job);
    let total = events(&job)
        .iter()
        .find(|e| e["type"] == "start")
        .and_then(|e| e["total_params"].as_u64())
        .expect("start");
    assert_eq!(comm[0]["bytes"].as_u64(), Some(4 * total));
}

#[test]
fn three_ranks_share_a_batch_that_does_not_divide() {
    let s = setup();
    // 8 examples per batch over 3 ranks: 3 + 3 + 2.
    let flags = fish("10", &[]);
    let (solo, job) = one_and_many(&s, 3, "uneven", &flags);
    assert_same_weights(&solo, &job);
    let m = |run: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).expect("metrics"))
            .expect("json")
    };
    // Sharded evaluation: the same metrics as one process.
    let (a, b) = (m(&solo), m(&job));
    let acc = |v: &serde_json::Value| v["final_metrics"]["accuracy"].as_f64();
    assert_eq!(acc(&a), acc(&b), "{a} vs {b}");
}

#[test]
fn sync_every_exchanges_the_kept_values_once_per_sync() {
    let s = setup();
    let mut c = mpirun(2);
    c.args(s.args(
        "sync",
        &fish("16", &["--max-steps", "8", "--sync-every", "4"]),
    ));
    let o = output(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = s.run("sync");
    let k = trainable(&run);
    let comm = step_comm(&run);
    let (exchanges, bytes) = comm.iter().fold((0, 0), |(n, b), c| {
        (
            n + c["exchanges"].as_u64().expect("exchanges"),
            b + c["bytes"].as_u64().expect("bytes"),
        )
    });
    assert_eq!(exchanges, 2, "8 steps, a sync every 4: {comm:?}");
    assert_eq!(bytes, 2 * 4 * k, "k × 4 bytes per sync");
    assert!(run.join("metrics.json").is_file());
    // One process refuses --sync-every with a clear message.
    let o = finesse!()
        .args(s.args("sync-solo", &["--sync-every", "4"]))
        .output()
        .expect("run");
    assert!(
        !o.status.success() && stderr(&o).contains("mpirun"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ranks_with_different_flags_stop_the_job_with_a_message() {
    let s = setup();
    let started = Instant::now();
    let mut c = mpirun(1);
    c.args(s.args("mismatch", &["--seed", "1"]))
        .args([":", "-np", "1", env!("CARGO_BIN_EXE_finesse")])
        .args(s.args("mismatch", &["--seed", "2"]));
    let o = output(c);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("rank 1") && err.contains("`seed`: rank 0 has 1, this rank 2"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// The pid of `rank` among the processes of the job writing `run` (its environment names the
/// rank; its command line names the run's folder, so the ranks of the other tests' jobs, which
/// run at the same time, are never taken).
fn rank_pid(rank: usize, run: &Path) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let folder = run.display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let ours = args.contains(&b"finetune".as_slice())
            && args.contains(&folder.as_bytes())
            && env.split(|b| *b == 0).any(|v| v == want.as_bytes());
        ours.then_some(pid)
    })
}

fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Long enough to kill a rank after the first checkpoint, short enough to resume to the end.
const KILLED_STEPS: &str = "600";

#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes() {
    let s = setup();
    let mut c = mpirun(2);
    c.args(s.args(
        "killed",
        &fish(
            "16",
            &["--max-steps", KILLED_STEPS, "--checkpoint-every", "2"],
        ),
    ))
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut job = c.spawn().expect("mpirun");
    let run = s.run("killed");
    let started = Instant::now();
    while !events(&run).iter().any(|e| e["type"] == "checkpoint") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = rank_pid(1, &run).expect("rank 1's process");
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let status = wait_for(&mut job, Duration::from_secs(30));
    if status.is_none() {
        let _ = job.kill();
    }
    let mut err = String::new();
    if let Some(mut e) = job.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let status =
        status.unwrap_or_else(|| panic!("the job still runs 30 s after rank 1 died: {err}"));
    assert!(!status.success(), "{err}");
    assert!(err.contains("rank 1"), "the message names the rank: {err}");
    println!(
        "the job ended {:?} after rank 1 was killed",
        killed.elapsed()
    );

    // Another world size is refused; the same one finishes the run from its checkpoint.
    let mut c = mpirun(1);
    c.args(["finetune", "--resume"]).arg(&run);
    let o = output(c);
    assert!(
        !o.status.success() && stderr(&o).contains("same number of ranks"),
        "{}",
        stderr(&o)
    );
    let mut c = mpirun(2);
    c.args(["finetune", "--resume"]).arg(&run);
    let o = output(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(run.join("metrics.json").is_file());
    let starts: Vec<u64> = events(&run)
        .iter()
        .filter(|e| e["type"] == "start")
        .filter_map(|e| e["start_step"].as_u64())
        .collect();
    assert!(
        starts.len() >= 2 && starts[starts.len() - 1] >= 2,
        "{starts:?}"
    );
}
