//! Runs that survive crashes and bad resumes, through the `finesse` binary and the tiny model:
//! SIGKILL after a periodic checkpoint resumes bit-identically, SIGTERM leaves a resumable run,
//! a resume that would change the run is refused (naming why) and a user's folder is never used.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use finesse_testkit::{ToySst2, events, finesse, stderr, tiny_glue, tiny_model};
use finesse_train::{RunDir, RunStatus};

/// `finesse finetune` of the tiny model on the toy SST-2 into `out`, with `extra` flags.
fn finetune(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = finesse!();
    c.args([
        "finetune",
        "--task",
        "sst2",
        "--batch-size",
        "4",
        "--log-every",
        "1",
    ])
    .args(extra)
    .arg("--model")
    .arg(model)
    .arg("--data-dir")
    .arg(data)
    .arg("--output-dir")
    .arg(out);
    c
}

/// Waits until `pred` holds for the run's events (at most 120 s).
fn wait_for(run: &Path, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !events(run).iter().any(&pred) {
        assert!(Instant::now() < deadline, "no {what} within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn a_sigkilled_run_resumes_from_its_periodic_checkpoint_and_ends_bit_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), tiny_glue(dir.path()));
    let flags = [
        "--max-steps",
        "300",
        "--checkpoint-every",
        "10",
        "--save-model",
        "--save-best",
    ];
    let full = dir.path().join("full");
    let o = finetune(&model, &data, &full, &flags)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));

    assert!(full.join("best/model.safetensors").is_file());
    let cut = dir.path().join("cut");
    let mut child = finetune(&model, &data, &cut, &flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(&cut, "checkpoint", |e| {
        e["type"] == "checkpoint" && e["step"].as_u64().is_some_and(|s| s >= 20)
    });
    signal(&child, "-KILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "SIGKILL ends the process: {status}");
    let run = RunDir::open(&cut).expect("open");
    let status = run.status();
    assert_eq!(status, RunStatus::Interrupted { resumable: true });
    let at = run.checkpoint_state().expect("checkpoint").step;
    assert!(at < 300, "killed at step {at}");
    assert!(!events(&cut).iter().any(|e| e["type"] == "end"));

    let o = finesse!()
        .args(["finetune", "--resume"])
        .arg(&cut)
        .output()
        .expect("resume");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run.status(), RunStatus::Finished);
    assert!(
        !cut.join("checkpoint").exists(),
        "a finished run keeps no checkpoint"
    );
    for file in [
        "model/model.safetensors",
        "best/model.safetensors",
        "analysis.json",
    ] {
        assert_eq!(
            std::fs::read(full.join(file)).expect("full"),
            std::fs::read(cut.join(file)).expect("cut"),
            "{file} differs between the resumed and the uninterrupted run"
        );
    }
    let (a, b) = (
        RunDir::new(&full).read_metrics().expect("m").expect("m"),
        run.read_metrics().expect("m").expect("m"),
    );
    assert_eq!(
        (a.final_metrics, a.best, a.steps),
        (b.final_metrics, b.best, b.steps)
    );
}

#[test]
fn sigterm_leaves_a_resumable_run_and_a_resume_that_would_change_it_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), tiny_glue(dir.path()));
    let run_dir = dir.path().join("run");
    let mut child = finetune(&model, &data, &run_dir, &["--max-steps", "400"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(&run_dir, "step", |e| e["type"] == "step");
    signal(&child, "-TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "SIGTERM ends the run cleanly: {status}");
    let run = RunDir::open(&run_dir).expect("open");
    assert_eq!(run.status(), RunStatus::Cancelled);

    let refused = |extra: &[&str], data_dir: Option<&Path>, needles: &[&str]| {
        let mut c = finesse!();
        c.args(["finetune", "--resume"]).arg(&run_dir).args(extra);
        if let Some(d) = data_dir {
            c.arg("--data-dir").arg(d);
        }
        let o = c.output().expect("resume");
        assert!(!o.status.success(), "{extra:?} must be refused");
        let err = stderr(&o);
        for needle in needles {
            assert!(err.contains(needle), "{extra:?}: {err}");
        }
        assert_eq!(
            run.status(),
            RunStatus::Cancelled,
            "a refusal changes nothing"
        );
    };
    refused(
        &["--device", "ndarray"],
        None,
        &["`flex`", "--force-device"],
    );
    refused(
        &["--lr", "1e-3", "--epochs", "2"],
        None,
        &["--lr", "--epochs", "cannot change a resumed run"],
    );
    let other = ToySst2::great_awful().folder("glue2").write(dir.path());
    let train = other.join("SST-2/train.tsv");
    let text = std::fs::read_to_string(&train).expect("read");
    std::fs::write(&train, text.replacen("great", "grand", 1)).expect("write");
    refused(&[], Some(&other), &["train.tsv has sha256"]);

    // The same data moved elsewhere is accepted, and the run finishes.
    let moved = ToySst2::great_awful().folder("glue3").write(dir.path());
    let o = finesse!()
        .args(["finetune", "--resume"])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&moved)
        .output()
        .expect("resume");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run.status(), RunStatus::Finished);
    let o = finesse!()
        .args(["runs", "show", "--json"])
        .arg(&run_dir)
        .output()
        .expect("show");
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(summary["status"]["status"], "finished");
    assert_eq!(summary["progress"]["step"], 400);
    assert!(summary["metrics"]["accuracy"].is_f64(), "{summary}");
}

#[test]
fn a_users_folder_is_never_used_for_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), tiny_glue(dir.path()));
    let out = dir.path().join("mine");
    std::fs::create_dir_all(out.join("checkpoint")).expect("mkdir");
    std::fs::write(out.join("checkpoint/notes.txt"), "my notes").expect("write");
    let o = finetune(&model, &data, &out, &["--max-steps", "2"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("checkpoint/notes.txt")).expect("survives"),
        "my notes"
    );
    assert!(!out.join("events.jsonl").exists() && !out.join("run.json").exists());
}
