//! End-to-end tests of the `finesse` binary: the parity tool against the HF fixtures on every
//! compiled CPU backend (and wgpu where an adapter exists), model fetching and the cache, and
//! clear errors on bad input.
//!
//! Tests that need the real model fetch it into the finesse cache on first use and fail when it
//! cannot be had, unless `FINESSE_SKIP_REAL_MODEL=1` (a deliberate local opt-out, printed). The
//! fixtures are `tests/fixtures/all-MiniLM-L6-v2`.

use std::path::{Path, PathBuf};
use std::process::Output;

use finesse_bert::HostTensor;
use finesse_bert::io::{read_float_tensors, write_f32_tensors};
use finesse_testkit::{SKIP_REAL_MODEL, TinyBert, finesse, fixtures, real_model_skipped, stderr};

/// Fetches the real model through the CLI (a no-op when cached). `false` only when skipped
/// with `FINESSE_SKIP_REAL_MODEL=1`; a failure, with finesse's message, when it cannot be
/// fetched.
fn real_model_available() -> bool {
    if real_model_skipped() {
        return false;
    }
    let out = finesse!()
        .args(["model", "fetch"])
        .output()
        .expect("run finesse");
    assert!(
        out.status.success(),
        "this test needs the real model; `finesse model fetch` failed (set {SKIP_REAL_MODEL}=1 \
         to skip the real-model tests deliberately): {}",
        stderr(&out)
    );
    true
}

fn max_abs_diff(a: &HostTensor, b: &HostTensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn forward_fixture(device: &str) -> Option<Output> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out.safetensors");
    let out = finesse!()
        .args([
            "forward",
            "--model",
            "all-MiniLM-L6-v2",
            "--device",
            device,
            "--inputs",
        ])
        .arg(fixtures().join("forward.safetensors"))
        .arg("--head")
        .arg(fixtures().join("classifier.safetensors"))
        .arg("--out")
        .arg(&out_path)
        .output()
        .expect("run finesse");
    assert!(
        out.status.success(),
        "forward on {device} failed: {}",
        stderr(&out)
    );
    let got = read_float_tensors(&out_path).expect("output file");
    let want = read_float_tensors(&fixtures().join("forward.safetensors")).expect("fixture");
    let head = read_float_tensors(&fixtures().join("classifier.safetensors")).expect("fixture");
    let tol = if device == "wgpu" { 1e-3 } else { 1e-4 };
    for (name, reference) in [
        ("last_hidden_state", &want.tensors["last_hidden_state"]),
        ("pooler_output", &want.tensors["pooler_output"]),
        ("logits", &head.tensors["logits"]),
    ] {
        let d = max_abs_diff(&got.tensors[name], reference);
        println!("{device}: {name} max |Δ| = {d:.2e}");
        assert!(d <= tol, "{device}: {name} differs by {d} > {tol}");
    }
    Some(out)
}

#[test]
fn parity_tool_matches_transformers_on_flex() {
    if real_model_available() {
        forward_fixture("flex");
    }
}

#[test]
fn parity_tool_matches_transformers_on_ndarray() {
    if real_model_available() {
        forward_fixture("ndarray");
    }
}

/// The real-model golden test on wgpu, within 1e-3. It needs a wgpu adapter: CI sets
/// `FINESSE_WGPU_GOLDEN=1` and runs it on Mesa's lavapipe (about 100 s of kernel compilation on
/// 2 cores); elsewhere it is a printed skip unless that variable is set.
#[test]
fn parity_tool_matches_transformers_on_wgpu_when_asked() {
    if std::env::var_os("FINESSE_WGPU_GOLDEN").is_none() {
        eprintln!("SKIPPED: set FINESSE_WGPU_GOLDEN=1 on a machine with a GPU adapter");
        return;
    }
    if real_model_available() {
        forward_fixture("wgpu");
    }
}

fn tiny_inputs(path: &Path) {
    // Token inputs are int tensors; write them with the safetensors crate directly.
    let ids: Vec<i64> = vec![2, 10, 11, 12, 3, 0, 2, 20, 21, 3, 30, 3];
    let types: Vec<i64> = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    let mask: Vec<i64> = vec![1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1];
    let bytes = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    write_i64_inputs(path, [2, 6], [bytes(&ids), bytes(&types), bytes(&mask)]);
}

/// Writes `input_ids`, `token_type_ids`, `attention_mask` (little-endian i64 bytes) of `shape`.
fn write_i64_inputs(path: &Path, shape: [usize; 2], tensors: [Vec<u8>; 3]) {
    let names = ["input_ids", "token_type_ids", "attention_mask"];
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = names
        .iter()
        .zip(&tensors)
        .map(|(n, d)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, shape.to_vec(), d);
            (n.to_string(), v.expect("view"))
        })
        .collect();
    std::fs::write(
        path,
        safetensors::serialize(views, None).expect("serialize"),
    )
    .expect("write");
}

fn run_tiny(device: &str, model: &Path, inputs: &Path, out: &Path) -> Output {
    finesse!()
        .args(["forward", "--device", device, "--model"])
        .arg(model)
        .arg("--inputs")
        .arg(inputs)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run finesse")
}

#[test]
fn backends_agree_on_a_tiny_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("tiny");
    TinyBert::with_vocab(64).write(&model);
    let inputs = dir.path().join("in.safetensors");
    tiny_inputs(&inputs);
    let flex_out = dir.path().join("flex.safetensors");
    let o = run_tiny("flex", &model, &inputs, &flex_out);
    assert!(o.status.success(), "{}", stderr(&o));
    let flex = read_float_tensors(&flex_out).expect("flex out");
    let nd_out = dir.path().join("nd.safetensors");
    let o = run_tiny("ndarray", &model, &inputs, &nd_out);
    assert!(o.status.success(), "{}", stderr(&o));
    let nd = read_float_tensors(&nd_out).expect("ndarray out");
    for name in ["last_hidden_state", "pooler_output"] {
        let d = max_abs_diff(&flex.tensors[name], &nd.tensors[name]);
        assert!(d < 1e-5, "flex vs ndarray {name}: {d}");
    }
}

/// wgpu on the tiny model. CI installs Mesa's lavapipe and sets `FINESSE_REQUIRE_WGPU=1`, so
/// there a missing adapter is a failure; elsewhere it is a printed skip.
#[test]
fn wgpu_agrees_with_flex_on_a_tiny_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("tiny");
    TinyBert::with_vocab(64).write(&model);
    let inputs = dir.path().join("in.safetensors");
    tiny_inputs(&inputs);
    let flex_out = dir.path().join("flex.safetensors");
    let o = run_tiny("flex", &model, &inputs, &flex_out);
    assert!(o.status.success(), "{}", stderr(&o));
    let wgpu_out = dir.path().join("wgpu.safetensors");
    let started = std::time::Instant::now();
    let o = run_tiny("wgpu", &model, &inputs, &wgpu_out);
    println!(
        "wgpu forward of the tiny model took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if !o.status.success() {
        let required = std::env::var_os("FINESSE_REQUIRE_WGPU").is_some_and(|v| v == "1");
        assert!(!required, "wgpu required but failed: {}", stderr(&o));
        eprintln!("SKIPPED: no usable wgpu adapter here: {}", stderr(&o));
        return;
    }
    let flex = read_float_tensors(&flex_out).expect("flex out");
    let wgpu = read_float_tensors(&wgpu_out).expect("wgpu out");
    for name in ["last_hidden_state", "pooler_output"] {
        let d = max_abs_diff(&flex.tensors[name], &wgpu.tensors[name]);
        println!("wgpu vs flex {name}: max |Δ| = {d:.2e}");
        assert!(d < 1e-3, "wgpu vs flex {name}: {d}");
    }
}

#[test]
fn out_of_range_token_ids_are_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("tiny");
    TinyBert::with_vocab(64).write(&model);
    let inputs = dir.path().join("in.safetensors");
    let ids: Vec<u8> = [2i64, 999, 3]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let zeros: Vec<u8> = [0i64; 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    let ones: Vec<u8> = [1i64; 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    write_i64_inputs(&inputs, [1, 3], [ids, zeros, ones]);
    let o = run_tiny("flex", &model, &inputs, &dir.path().join("o.safetensors"));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("`input_ids`[0][1] = 999") && err.contains("in.safetensors"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dir.path().join("o.safetensors").exists(),
        "no output on error"
    );
}

#[test]
fn missing_backend_names_the_feature_to_enable() {
    let o = finesse!()
        .args(["forward", "--device", "cuda", "--text", "hi"])
        .output()
        .expect("run");
    if cfg!(feature = "cuda") {
        return;
    }
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--features cuda"), "{}", stderr(&o));
}

#[test]
fn unknown_model_lists_the_known_ones() {
    let o = finesse!()
        .args(["forward", "--model", "nope-model", "--text", "hi"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("all-MiniLM-L6-v2"), "{}", stderr(&o));
}

#[test]
fn bad_head_file_is_rejected_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("tiny");
    TinyBert::with_vocab(64).write(&model);
    let head = dir.path().join("head.safetensors");
    let w = HostTensor::new(vec![2, 31], vec![0.0; 62]);
    let b = HostTensor::new(vec![2], vec![0.0; 2]);
    write_f32_tensors(
        &head,
        &[
            ("classifier.weight".into(), w),
            ("classifier.bias".into(), b),
        ],
        Default::default(),
    )
    .expect("write head");
    let inputs = dir.path().join("in.safetensors");
    tiny_inputs(&inputs);
    let o = finesse!()
        .args(["forward", "--device", "flex", "--model"])
        .arg(&model)
        .arg("--inputs")
        .arg(&inputs)
        .arg("--head")
        .arg(&head)
        .arg("--out")
        .arg(dir.path().join("o.safetensors"))
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("head.safetensors") && stderr(&o).contains("[2, 31]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn text_mode_prints_an_embedding() {
    if !real_model_available() {
        return;
    }
    let o = finesse!()
        .args([
            "forward",
            "--text",
            "a gripping, beautifully acted film",
            "--pair",
            "loved it",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("pooler_output[..8]") && stdout.contains("mean-pooled embedding"),
        "{stdout}"
    );
}

/// Two processes fetching into one empty cache at once both succeed and leave one verified
/// copy and no temporary folders.
#[test]
fn concurrent_fetches_into_an_empty_cache_both_succeed() {
    if !real_model_available() {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let spawn = || {
        finesse!()
            .args(["model", "fetch", "all-MiniLM-L6-v2"])
            .env("FINESSE_HOME", home.path())
            .spawn()
            .expect("spawn")
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().expect("wait a").success());
    assert!(b.wait().expect("wait b").success());
    let list = finesse!()
        .args(["model", "list", "--json"])
        .env("FINESSE_HOME", home.path())
        .output()
        .expect("list");
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["verified"], true);
    let leftovers: Vec<_> = std::fs::read_dir(home.path().join("models"))
        .expect("models dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left: {leftovers:?}"
    );
}

#[test]
fn empty_cache_lists_nothing_and_says_how_to_fetch() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = finesse!()
        .args(["model", "list"])
        .env("FINESSE_HOME", home.path())
        .output()
        .expect("run");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("finesse model fetch"));
}

#[test]
fn fetch_without_python_says_what_to_do() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = finesse!()
        .args(["model", "fetch"])
        .env("FINESSE_HOME", home.path())
        .env("PATH", home.path())
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("python3") && err.contains("--model"), "{err}");
    assert!(
        !home.path().join("models/all-MiniLM-L6-v2").exists(),
        "nothing half-written"
    );
}

/// A fake `python3` that records that it ran: the folder to put first on PATH and the marker
/// file it creates.
#[cfg(unix)]
fn fake_python(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let marker = dir.join("python-ran");
    let script = bin.join("python3");
    std::fs::write(
        &script,
        // A shell builtin writes the marker: PATH holds nothing else.
        format!("#!/bin/sh\n: > '{}'\nexit 1\n", marker.display()),
    )
    .expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (bin, marker)
}

#[cfg(unix)]
#[test]
fn offline_mode_with_an_empty_cache_fails_without_running_pip() {
    let home = tempfile::tempdir().expect("tempdir");
    let (bin, marker) = fake_python(home.path());
    // The fake is what a fetch would run: online, it does run.
    let o = finesse!()
        .args(["model", "fetch"])
        .env("FINESSE_HOME", home.path())
        .env("PATH", &bin)
        .env_remove("FINESSE_OFFLINE")
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        marker.exists(),
        "the fake python3 is on PATH: {}",
        stderr(&o)
    );
    std::fs::remove_file(&marker).expect("rm marker");
    for args in [
        vec!["model", "fetch"],
        vec!["model", "fetch", "--force"],
        vec!["forward", "--device", "flex", "--text", "hi"],
    ] {
        let o = finesse!()
            .args(&args)
            .env("FINESSE_HOME", home.path())
            .env("PATH", &bin)
            .env("FINESSE_OFFLINE", "1")
            .output()
            .expect("run");
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains("not in the cache")
                && err.contains("offline mode")
                && err.contains("all-MiniLM-L6-v2"),
            "{args:?}: {err}"
        );
        assert!(!marker.exists(), "{args:?}: pip ran in offline mode");
        assert!(
            !home.path().join("models/all-MiniLM-L6-v2").exists(),
            "{args:?}: nothing cached"
        );
    }
}

/// A copy of the cached real model in a fresh FINESSE_HOME with one byte of `tokenizer.json`
/// changed is refused wherever it is used, with the file, both digests and the fix named.
#[test]
fn tampered_cached_tokenizer_is_refused_naming_file_digests_and_fix() {
    if !real_model_available() {
        return;
    }
    let source = finesse_bert::hub::models_dir().join("all-MiniLM-L6-v2");
    let home = tempfile::tempdir().expect("tempdir");
    let copy = home.path().join("models/all-MiniLM-L6-v2");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for entry in std::fs::read_dir(&source).expect("cache entry") {
        let entry = entry.expect("entry");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
        }
    }
    let list = |home: &Path| -> serde_json::Value {
        let o = finesse!()
            .args(["model", "list", "--json"])
            .env("FINESSE_HOME", home)
            .output()
            .expect("list");
        serde_json::from_slice(&o.stdout).expect("json")
    };
    assert_eq!(list(home.path())[0]["verified"], true);
    let tokenizer = copy.join("tokenizer.json");
    let mut bytes = std::fs::read(&tokenizer).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&tokenizer, &bytes).expect("tamper");
    let o = finesse!()
        .args(["forward", "--device", "flex", "--text", "hi"])
        .env("FINESSE_HOME", home.path())
        .env("FINESSE_OFFLINE", "1")
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    let pinned = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";
    assert!(
        err.contains("tokenizer.json")
            && err.contains(pinned)
            && err.contains("finesse model fetch --force all-MiniLM-L6-v2"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(list(home.path())[0]["verified"], false);
}

#[test]
fn tokenizer_beyond_vocab_size_and_too_long_max_seq_len_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("small-vocab");
    TinyBert::with_vocab(100).with_tokenizer().write(&small);
    let o = finesse!()
        .args(["forward", "--device", "flex", "--text", "a b c", "--model"])
        .arg(&small)
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("tokenizer.json")
            && err.contains("config.json")
            && err.contains("vocab_size 100")
            && err.contains("127"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let fits = dir.path().join("fits");
    TinyBert::with_vocab(128).with_tokenizer().write(&fits);
    let o = finesse!()
        .args(["forward", "--device", "flex", "--text", "a b c", "--model"])
        .arg(&fits)
        .args(["--max-seq-len", "64"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    // tiny(128) has 64 positions.
    let o = finesse!()
        .args(["forward", "--device", "flex", "--text", "a b c", "--model"])
        .arg(&fits)
        .args(["--max-seq-len", "65"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("max_position_embeddings 64") && err.contains("--max-seq-len 64"),
        "{err}"
    );
    // fisher checks the same before it reads any data.
    let glue = dir.path().join("glue/SST-2");
    std::fs::create_dir_all(&glue).expect("mkdir");
    std::fs::write(
        glue.join("train.tsv"),
        "sentence\tlabel\na b c\t1\nc b a\t0\n",
    )
    .expect("write tsv");
    let o = finesse!()
        .args([
            "fisher",
            "--device",
            "flex",
            "--task",
            "sst2",
            "--samples",
            "2",
        ])
        .arg("--model")
        .arg(&small)
        .arg("--data-dir")
        .arg(dir.path().join("glue"))
        .arg("--out")
        .arg(dir.path().join("f.safetensors"))
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("vocab_size 100"), "{}", stderr(&o));
    assert!(!dir.path().join("f.safetensors").exists());
}

/// Every file below `dir` with its bytes, for before/after comparisons.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Runs finesse with `args` (paths as given) and asserts it refuses to write over an input,
/// naming both paths, and that nothing under `dir` changed.
fn assert_refused(dir: &Path, args: &[&std::ffi::OsStr], output: &str, input: &str) {
    let before = snapshot(dir);
    let o = finesse!().args(args).output().expect("run");
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(
        err.contains("would overwrite") && err.contains(output) && err.contains(input),
        "{args:?}: {err}"
    );
    assert!(snapshot(dir) == before, "{args:?} changed files");
}

#[test]
fn outputs_that_are_their_own_inputs_are_refused() {
    use std::ffi::OsStr;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base");
    TinyBert::with_vocab(128).with_tokenizer().write(&base);
    // A fine-tuned copy: one weight changed.
    let tuned = dir.path().join("tuned");
    std::fs::create_dir_all(&tuned).expect("mkdir");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(base.join(f), tuned.join(f)).expect("copy");
    }
    let mut t = read_float_tensors(&base.join("model.safetensors")).expect("read");
    let name = t.tensors.keys().next().expect("a tensor").clone();
    t.tensors.get_mut(&name).expect("tensor").data[0] += 1.0;
    let list: Vec<(String, HostTensor)> = t.tensors.into_iter().collect();
    write_f32_tensors(&tuned.join("model.safetensors"), &list, Default::default())
        .expect("write tuned");
    let diff = dir.path().join("d.safetensors");
    let o = finesse!()
        .args(["diff", "export", "--base"])
        .arg(&base)
        .arg("--model")
        .arg(&tuned)
        .arg("--out")
        .arg(&diff)
        .output()
        .expect("export");
    assert!(o.status.success(), "{}", stderr(&o));

    let p = |p: &Path| p.as_os_str().to_owned();
    let s = |s: &str| OsStr::new(s).to_owned();
    let run = |args: Vec<std::ffi::OsString>, output: &Path, input: &Path| {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        assert_refused(
            dir.path(),
            &args,
            &output.display().to_string(),
            &input.display().to_string(),
        );
    };
    // diff apply onto its own base folder (spelled differently) and over the diff file.
    let base_dotted = dir.path().join("./base/");
    run(
        vec![
            s("diff"),
            s("apply"),
            s("--base"),
            p(&base),
            s("--diff"),
            p(&diff),
            s("--out"),
            p(&base_dotted),
        ],
        &base_dotted,
        &base,
    );
    let holder = dir.path().join("holder");
    std::fs::create_dir_all(&holder).expect("mkdir");
    let diff_in_holder = holder.join("model.safetensors");
    std::fs::copy(&diff, &diff_in_holder).expect("copy diff");
    run(
        vec![
            s("diff"),
            s("apply"),
            s("--base"),
            p(&base),
            s("--diff"),
            p(&diff_in_holder),
            s("--out"),
            p(&holder),
        ],
        &holder.join("model.safetensors"),
        &diff_in_holder,
    );
    // diff revert onto the fine-tuned folder.
    run(
        vec![
            s("diff"),
            s("revert"),
            s("--model"),
            p(&tuned),
            s("--diff"),
            p(&diff),
            s("--out"),
            p(&tuned),
        ],
        &tuned,
        &tuned,
    );
    // diff export over the fine-tuned weights.
    let tuned_weights = tuned.join("model.safetensors");
    run(
        vec![
            s("diff"),
            s("export"),
            s("--base"),
            p(&base),
            s("--model"),
            p(&tuned),
            s("--out"),
            p(&tuned_weights),
        ],
        &tuned_weights,
        &tuned_weights,
    );
    // diff compose over one of its inputs.
    run(
        vec![
            s("diff"),
            s("compose"),
            p(&diff),
            p(&diff),
            s("--out"),
            p(&diff),
        ],
        &diff,
        &diff,
    );
    // mask over its Fisher file.
    let fisher = dir.path().join("fisher.safetensors");
    write_f32_tensors(
        &fisher,
        &[(
            "bert.pooler.dense.bias".into(),
            HostTensor::new(vec![2], vec![1.0, 2.0]),
        )],
        Default::default(),
    )
    .expect("write fisher");
    run(
        vec![
            s("mask"),
            s("--fisher"),
            p(&fisher),
            s("--keep-count"),
            s("1"),
            s("--out"),
            p(&fisher),
        ],
        &fisher,
        &fisher,
    );
    // forward over its token inputs.
    let inputs = dir.path().join("in.safetensors");
    tiny_inputs(&inputs);
    run(
        vec![
            s("forward"),
            s("--device"),
            s("flex"),
            s("--model"),
            p(&base),
            s("--inputs"),
            p(&inputs),
            s("--out"),
            p(&inputs),
        ],
        &inputs,
        &inputs,
    );
    // fisher over the model's weights.
    let base_weights = base.join("model.safetensors");
    run(
        vec![
            s("fisher"),
            s("--device"),
            s("flex"),
            s("--task"),
            s("sst2"),
            s("--model"),
            p(&base),
            s("--data-dir"),
            p(&dir.path().join("glue")),
            s("--out"),
            p(&base_weights),
        ],
        &base_weights,
        &base_weights,
    );
    // A distinct output still works.
    let applied = dir.path().join("applied");
    let o = finesse!()
        .args(["diff", "apply", "--base"])
        .arg(&base)
        .arg("--diff")
        .arg(&diff)
        .arg("--out")
        .arg(&applied)
        .output()
        .expect("apply");
    assert!(o.status.success(), "{}", stderr(&o));
    let got = read_float_tensors(&applied.join("model.safetensors")).expect("applied");
    let want = read_float_tensors(&tuned_weights).expect("tuned");
    assert!(
        got.tensors == want.tensors,
        "apply does not give the tuned weights"
    );
}

#[test]
fn report_prints_the_table_of_a_run_directory_and_writes_csv_and_json() {
    let run = finesse_testkit::root().join("crates/finesse-train/tests/fixtures/run-v1-fish");
    let out = finesse_testkit::ok(
        finesse!()
            .arg("report")
            .arg(&run)
            .output()
            .expect("run finesse"),
    );
    let md = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 3, "{md}");
    assert!(
        lines[0].starts_with("| run | status | task | method | kept | lr |"),
        "{md}"
    );
    assert_eq!(
        lines[2],
        "| run-v1-fish | finished | SST-2 | fish | 5.00% | 1e-3 | 42 | 12 | 0.5000 | 0.5000 (6) \
         | 1,326 | 2,652 | 0.0 min | 2985.3 | 28 MiB | 0.03 MB |"
    );

    // The format follows --out's extension; the file is written whole.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("runs.csv");
    let out = finesse!()
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(&csv)
        .output()
        .expect("run");
    assert!(finesse_testkit::ok(out).stdout.is_empty());
    let text = std::fs::read_to_string(&csv).expect("csv written");
    assert!(
        text.starts_with("run,status,task,method,kept,keep_ratio,lr,seed,steps,dev_accuracy,"),
        "{text}"
    );
    assert!(text.contains(",28152\n"), "raw diff bytes: {text}");

    let out = finesse!()
        .arg("report")
        .arg(&run)
        .args(["--group-by", "method,lr", "--format", "json"])
        .output()
        .expect("run");
    let json: serde_json::Value =
        serde_json::from_slice(&finesse_testkit::ok(out).stdout).expect("json");
    assert_eq!(json["groups"][0]["key"]["method"], "fish");
    assert_eq!(json["groups"][0]["stats"]["dev_accuracy"]["mean"], 0.5);

    let out = finesse!()
        .arg("report")
        .arg(&run)
        .args(["--group-by", "colour"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown group key `colour`"),
        "{}",
        stderr(&out)
    );

    // A pivot on lr: one column per lr, the best cell bold and named.
    let out = finesse!()
        .arg("report")
        .arg(&run)
        .args(["--pivot", "lr"])
        .output()
        .expect("run");
    let md = String::from_utf8_lossy(&finesse_testkit::ok(out).stdout).into_owned();
    assert_eq!(
        md.lines().collect::<Vec<_>>(),
        [
            "| task | method | kept | lr 1e-3 | best lr (dev accuracy) |",
            "|---|---|---|---|---|",
            "| SST-2 | fish | 5.00% | **0.5000** | 1e-3 |"
        ],
        "{md}"
    );
    let out = finesse!()
        .arg("report")
        .arg(&run)
        .args(["--pivot", "lr", "--group-by", "method"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "--pivot and --group-by together");
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn figure_draws_pngs_and_svgs_from_a_run_and_names_what_a_run_lacks() {
    let run = finesse_testkit::root().join("crates/finesse-train/tests/fixtures/run-v1-fish");
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("sparsity.svg");
    finesse_testkit::ok(
        finesse!()
            .args(["figure", "sparsity"])
            .arg(&run)
            .arg("--out")
            .arg(&svg)
            .output()
            .expect("run"),
    );
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        text.starts_with("<svg") && text.contains("Kept fraction per layer"),
        "{text}"
    );

    // --dpi scales the PNG's pixels: 640 × 400 CSS pixels at 192 dpi.
    let png = dir.path().join("curves.png");
    finesse_testkit::ok(
        finesse!()
            .args(["figure", "curves"])
            .arg(&run)
            .args(["--width", "640", "--height", "400", "--dpi", "192", "--out"])
            .arg(&png)
            .output()
            .expect("run"),
    );
    let bytes = std::fs::read(&png).expect("png written");
    assert_eq!(&bytes[1..4], b"PNG");
    let size =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!((size(16), size(20)), (1280, 800), "IHDR width and height");

    let out = finesse!()
        .args(["figure", "curves"])
        .arg(&run)
        .arg("--out")
        .arg(dir.path().join("curves.gif"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(finesse_testkit::stderr(&out).contains("unknown figure format"));

    // A run with only its settings and events: curves work, the mask's figure names its file.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).expect("mkdir");
    for f in ["run.json", "events.jsonl"] {
        std::fs::copy(run.join(f), bare.join(f)).expect("copy");
    }
    let out = finesse!()
        .args(["figure", "sparsity"])
        .arg(&bare)
        .arg("--out")
        .arg(dir.path().join("s.png"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = finesse_testkit::stderr(&out);
    assert!(
        err.contains("sparsity figure") && err.contains("mask_stats.json"),
        "{err}"
    );
    assert!(
        !dir.path().join("s.png").exists(),
        "nothing written on failure"
    );

    let all = finesse_testkit::ok(
        finesse!()
            .args(["figure", "all"])
            .arg(&bare)
            .output()
            .expect("run"),
    );
    let said = String::from_utf8_lossy(&all.stdout);
    assert!(
        said.contains("wrote") && said.contains("curves.png"),
        "{said}"
    );
    assert!(
        said.contains("skipped sparsity.png") && said.contains("mask_stats.json"),
        "{said}"
    );
    assert!(bare.join("figures/curves.png").is_file());
}

#[test]
fn doctor_reports_backends_threads_models_and_glue() {
    let home = tempfile::tempdir().expect("tempdir");
    let sst2 = home.path().join("data/glue/SST-2");
    std::fs::create_dir_all(&sst2).expect("mkdir");
    std::fs::write(sst2.join("train.tsv"), "sentence\tlabel\n").expect("write");
    let out = finesse_testkit::ok(
        finesse!()
            .args(["doctor", "--json"])
            .env("FINESSE_HOME", home.path())
            .output()
            .expect("run"),
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let backends: Vec<&str> = r["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    assert_eq!(
        backends,
        ["flex", "ndarray", "wgpu"],
        "the test build's backends"
    );
    assert!(r["threads"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(
        r["models"].as_array().map(Vec::len),
        Some(0),
        "an empty model cache"
    );
    let tasks = r["glue_tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 9);
    assert!(
        tasks.iter().any(|t| t[0] == "SST-2" && t[1] == true),
        "{tasks:?}"
    );
    assert!(
        tasks.iter().any(|t| t[0] == "MRPC" && t[1] == false),
        "{tasks:?}"
    );
    let text = finesse_testkit::ok(
        finesse!()
            .arg("doctor")
            .env("FINESSE_HOME", home.path())
            .output()
            .expect("run"),
    );
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.contains("backends compiled: flex, ndarray, wgpu (default flex)"),
        "{said}"
    );
    assert!(said.contains("model cache: empty"), "{said}");
}

#[test]
fn device_wgpu_list_prints_the_adapters_and_a_missing_adapter_is_named() {
    let listed = finesse_testkit::ok(
        finesse!()
            .args(["forward", "--device", "wgpu:list"])
            .output()
            .expect("run"),
    );
    let said = String::from_utf8_lossy(&listed.stdout);
    assert!(said.contains("wgpu"), "{said}");
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("tiny");
    TinyBert::with_vocab(64).write(&model);
    let inputs = dir.path().join("in.safetensors");
    tiny_inputs(&inputs);
    let out = finesse!()
        .args(["forward", "--device", "wgpu:99", "--model"])
        .arg(&model)
        .arg("--inputs")
        .arg(&inputs)
        .arg("--out")
        .arg(dir.path().join("o.safetensors"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("wgpu:99") && err.contains("finesse doctor"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = finesse!()
        .args(["forward", "--device", "wgpu:first", "--text", "x"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("wgpu:N"), "{}", stderr(&out));
}

/// `finesse … | head`: when the reader of stdout is gone, finesse ends quietly (SIGPIPE's
/// default action, as other command-line tools) instead of panicking in `println!`.
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = finesse!()
        .args(["model", "list"])
        .env("FINESSE_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run finesse");
    // Close the read end before finesse prints its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "finesse panicked: {err}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "expected an end by SIGPIPE, got {:?}: {err}",
        out.status
    );
}
