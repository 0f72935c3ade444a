//! Downloads through the `finesse` binary against local servers on 127.0.0.1 (no network):
//! models by Hugging Face id (`HF_ENDPOINT` pointed at a fake hub serving the tiny model) and
//! `finesse data fetch` (`FINESSE_GLUE_URL_BASE` pointed at a server of wrong files). The
//! library tests of the GLUE download (good zip, truncated download, wrong checksum, `../`
//! entries) are in `crates/finesse-glue/src/fetch.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use finesse_testkit::{TinyBert, finesse, ok, stderr};

/// The commit the fake hub reports.
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fake hub: `GET /<repo>/resolve/<rev>/<file>` with `Range: bytes=N-` (what hf-hub's
/// sync API sends: `bytes=0-0` for the metadata, then `bytes=0-`) answers 206 with `etag`,
/// `x-repo-commit` and `content-range`; unknown files are 404. Serves at most 64 requests;
/// records each request path.
struct FakeHub {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn fake_hub(repos: BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(&mut stream);
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            // `Range: bytes=A-B` or `bytes=A-` (B: the last byte).
            let mut range: (usize, Option<usize>) = (0, None);
            for _ in 0..100 {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.trim().to_ascii_lowercase();
                if let Some((a, b)) = lower
                    .strip_prefix("range: bytes=")
                    .and_then(|r| r.split_once('-'))
                {
                    range = (a.parse().unwrap_or(0), b.parse().ok());
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().expect("log").push(path.clone());
            // /<org>/<name>/resolve/<rev>/<file> or /<name>/resolve/<rev>/<file>
            let found = path.split_once("/resolve/").and_then(|(repo, rest)| {
                let file = rest.split_once('/')?.1;
                repos.get(repo.trim_start_matches('/'))?.get(file)
            });
            let response = match found {
                Some(body) if !body.is_empty() => {
                    let last = body.len() - 1;
                    let range_start = range.0.min(last);
                    let end = range.1.unwrap_or(last).clamp(range_start, last);
                    let part = &body[range_start..=end];
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\netag: \"{:x}\"\r\nx-repo-commit: \
                         {COMMIT}\r\ncontent-range: bytes {range_start}-{end}/{}\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n",
                        fxhash(body),
                        body.len(),
                        part.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(part);
                    head
                }
                _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    FakeHub { base, requests }
}

/// A content hash for the etag (distinct files must get distinct blobs).
fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The tiny model's files (random weights, the assets' config and tokenizer), by name.
fn tiny_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let folder = TinyBert::from_assets()
        .seed(7)
        .write(&dir.join("src-model"));
    ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(folder.join(f)).expect("read")))
        .collect()
}

/// `vocab.txt` (one token per line, in id order) from a `tokenizer.json`'s WordPiece vocab.
fn vocab_txt(tokenizer_json: &[u8]) -> Vec<u8> {
    let t: serde_json::Value = serde_json::from_slice(tokenizer_json).expect("json");
    let vocab = t["model"]["vocab"].as_object().expect("vocab");
    let by_id: BTreeMap<u64, &str> = vocab
        .iter()
        .map(|(k, v)| (v.as_u64().expect("id"), k.as_str()))
        .collect();
    let last = by_id.keys().next_back().copied().unwrap_or(0);
    // A line per id; ids the vocabulary skips get a placeholder, as BERT's `[unusedN]`.
    (0..=last)
        .map(|i| {
            by_id
                .get(&i)
                .map_or(format!("[unused{i}]\n"), |t| format!("{t}\n"))
        })
        .collect::<String>()
        .into_bytes()
}

/// The binary with a fresh HF cache and finesse home below `home`, and `HF_ENDPOINT` set.
fn cmd(home: &Path, endpoint: &str) -> Command {
    let mut c = finesse!();
    c.env("HF_HOME", home.join("hf"))
        .env("FINESSE_HOME", home.join("finesse"))
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("FINESSE_OFFLINE");
    c
}

/// `forward --text` output without the timing line.
fn forward(home: &Path, endpoint: &str, model: &str) -> Output {
    cmd(home, endpoint)
        .args([
            "forward",
            "--model",
            model,
            "--text",
            "the film was great",
            "--device",
            "ndarray",
        ])
        .output()
        .expect("run")
}

fn stable_stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split("time:").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn hub_id_downloads_into_the_hf_cache_and_runs_then_works_offline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files(tmp.path());
    let hub = fake_hub(BTreeMap::from([(
        "finesse-test/tiny-bert".to_string(),
        files.clone(),
    )]));
    let home = tmp.path().join("home");
    let o = ok(cmd(&home, &hub.base)
        .args(["model", "fetch", "finesse-test/tiny-bert"])
        .output()
        .expect("run"));
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    let snapshot = home
        .join("hf/hub/models--finesse-test--tiny-bert/snapshots")
        .join(COMMIT);
    assert!(
        printed.contains(&snapshot.display().to_string()),
        "{printed}"
    );
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(snapshot.join(name)).expect(name),
            bytes,
            "{name}"
        );
    }
    let online = forward(&home, &hub.base, "finesse-test/tiny-bert");
    let online = ok(online);
    // Offline (both switches), with the server gone from the picture: the cache serves it.
    let before = hub.requests.lock().expect("log").len();
    for (k, v) in [("FINESSE_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1")] {
        let o = ok(cmd(&home, "http://127.0.0.1:9")
            .env(k, v)
            .args([
                "forward",
                "--model",
                "finesse-test/tiny-bert",
                "--text",
                "the film was great",
            ])
            .args(["--device", "ndarray"])
            .output()
            .expect("run"));
        assert_eq!(stable_stdout(&o), stable_stdout(&online), "{k}");
    }
    assert_eq!(
        hub.requests.lock().expect("log").len(),
        before,
        "offline made requests"
    );
}

#[test]
fn hub_repo_with_only_vocab_txt_gets_the_same_tokenizer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files(tmp.path());
    let mut vocab_only = files.clone();
    let tokenizer = vocab_only.remove("tokenizer.json").expect("tokenizer");
    vocab_only.insert("vocab.txt".into(), vocab_txt(&tokenizer));
    vocab_only.insert(
        "tokenizer_config.json".into(),
        br#"{"do_lower_case": true}"#.to_vec(),
    );
    let hub = fake_hub(BTreeMap::from([
        ("org/full".to_string(), files),
        ("org/vocab-only".to_string(), vocab_only),
    ]));
    let home = tmp.path().join("home");
    let full = ok(forward(&home, &hub.base, "org/full"));
    let built = ok(forward(&home, &hub.base, "org/vocab-only"));
    assert_eq!(stable_stdout(&built), stable_stdout(&full));
    // The HF cache holds only the hub's files; the built tokenizer lives in finesse's folder.
    let hf = home.join("hf/hub/models--org--vocab-only");
    assert!(
        files_below(&hf)
            .iter()
            .all(|p| !p.ends_with("tokenizer.json"))
    );
    let view = home
        .join("finesse/models/.hub/models--org--vocab-only")
        .join(COMMIT);
    assert!(view.join("tokenizer.json").is_file(), "{view:?}");
}

#[test]
fn hub_repo_with_a_sharded_checkpoint_is_merged_and_runs_like_the_single_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files(tmp.path());
    let whole = files["model.safetensors"].clone();
    let st = safetensors::SafeTensors::deserialize(&whole).expect("safetensors");
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let shard = |part: &[String]| {
        let views = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).expect("tensor")));
        safetensors::serialize(views, None).expect("serialize")
    };
    let mut sharded = files.clone();
    sharded.remove("model.safetensors");
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        sharded.insert(file.into(), shard(part));
        for n in part {
            weight_map.insert(n.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    sharded.insert(
        "model.safetensors.index.json".into(),
        serde_json::to_vec(&index).expect("json"),
    );
    let hub = fake_hub(BTreeMap::from([
        ("org/whole".to_string(), files),
        ("org/sharded".to_string(), sharded),
    ]));
    let home = tmp.path().join("home");
    let whole_run = ok(forward(&home, &hub.base, "org/whole"));
    let sharded_run = ok(forward(&home, &hub.base, "org/sharded"));
    assert_eq!(stable_stdout(&sharded_run), stable_stdout(&whole_run));
    // The merged file lives in finesse's view of the snapshot, not in the HF cache.
    let view = home
        .join("finesse/models/.hub/models--org--sharded")
        .join(COMMIT);
    assert!(view.join("model.safetensors").is_file(), "{view:?}");
    assert!(
        files_below(&home.join("hf/hub/models--org--sharded"))
            .iter()
            .all(|p| !p.ends_with("model.safetensors"))
    );
}

#[test]
fn hub_repo_without_safetensors_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut files = tiny_files(tmp.path());
    files.remove("model.safetensors");
    let mut sharded = files.clone();
    sharded.insert("model.safetensors.index.json".into(), b"{}".to_vec());
    files.insert("pytorch_model.bin".into(), b"pickle".to_vec());
    let hub = fake_hub(BTreeMap::from([
        ("org/bin-only".to_string(), files),
        ("org/sharded".to_string(), sharded),
    ]));
    let home = tmp.path().join("home");
    let o = forward(&home, &hub.base, "org/bin-only");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("org/bin-only")
            && err.contains("no model.safetensors")
            && err.contains("safetensors only"),
        "{err}"
    );
    let o = forward(&home, &hub.base, "org/sharded");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sharded"), "{}", stderr(&o));
    // A repository the hub does not have.
    let o = forward(&home, &hub.base, "org/nothing-here");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("org/nothing-here") && stderr(&o).contains("no config.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn hub_id_offline_with_nothing_cached_fails_without_requests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = fake_hub(BTreeMap::new());
    let home = tmp.path().join("home");
    for (flag, env) in [
        (Some("--offline"), None),
        (None, Some(("HF_HUB_OFFLINE", "1"))),
    ] {
        let mut c = cmd(&home, &hub.base);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        c.args(flag);
        let o = c
            .args(["forward", "--model", "bert-base-uncased", "--text", "hi"])
            .output()
            .expect("run");
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("bert-base-uncased")
                && err.contains("not in the Hugging Face cache")
                && err.contains("offline"),
            "{err}"
        );
    }
    assert!(hub.requests.lock().expect("log").is_empty());
    assert!(!home.join("hf").exists(), "nothing written to the HF cache");
}

/// Serves `body` with its full length to every request (at most 16).
fn serve_bytes(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(&mut stream);
            for _ in 0..100 {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

#[test]
fn data_fetch_refuses_a_file_that_is_not_the_pinned_release() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // WNLI's pinned size, other bytes: the sha256 check refuses it.
    let base = serve_bytes(vec![b'x'; 28_999]);
    let data = tmp.path().join("glue");
    let o = finesse!()
        .env("FINESSE_GLUE_URL_BASE", &base)
        .env_remove("FINESSE_OFFLINE")
        .args(["data", "fetch", "wnli", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("WNLI.zip") && err.contains("sha256") && err.contains("ae0e8e4d"),
        "{err}"
    );
    assert_eq!(
        files_below(tmp.path()),
        Vec::<PathBuf>::new(),
        "nothing written"
    );
    assert!(!data.exists());
}

#[test]
fn data_fetch_offline_downloads_nothing_and_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("glue");
    let o = finesse!()
        .env("FINESSE_GLUE_URL_BASE", "http://127.0.0.1:9")
        .args(["--offline", "data", "fetch", "sst2", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("SST-2") && err.contains("offline"), "{err}");
    assert!(!data.exists());
}

#[test]
fn data_fetch_rejects_unknown_tasks() {
    let o = finesse!()
        .args(["data", "fetch", "squad"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("squad"), "{}", stderr(&o));
}
