//! Hugging Face hub ids, resolved through the standard local cache first.
//!
//! The cache layout is the one `huggingface_hub` and `hf-hub` write:
//! `$HF_HUB_CACHE` (else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`) /
//! `models--{org}--{name}/refs/{revision}` (a file holding a commit hash) and
//! `.../snapshots/{commit}/{files}`. A model found there is used without any network access.
//! Otherwise, unless `HF_HUB_OFFLINE=1`, the files are downloaded (feature `hub-download`).

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// `org/name` plus a revision (branch, tag or commit; default `main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or 40-hex commit.
    pub revision: String,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl HubId {
    /// Parses `org/name` or `org/name@revision`; `None` if the string is not of that form.
    pub fn parse(spec: &str) -> Option<Self> {
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, "main"),
        };
        let (org, name) = repo.split_once('/')?;
        let rev_ok = !revision.is_empty()
            && !revision.contains("..")
            && revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        (valid_part(org) && valid_part(name) && rev_ok).then(|| HubId {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The cache folder name, `models--org--name`.
    pub fn folder(&self) -> String {
        format!("models--{}", self.repo.replace('/', "--"))
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

/// The hub cache root from the environment.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface").join("hub")
}

/// Whether downloads are forbidden (`HF_HUB_OFFLINE` set to a true value).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The snapshot directory of `id` in `cache`, if that revision is cached.
pub fn cached_snapshot(cache: &Path, id: &HubId) -> Option<PathBuf> {
    let repo = cache.join(id.folder());
    let commit = if is_commit(&id.revision) {
        id.revision.clone()
    } else {
        std::fs::read_to_string(repo.join("refs").join(&id.revision))
            .ok()?
            .trim()
            .to_string()
    };
    if !is_commit(&commit) {
        return None;
    }
    let snap = repo.join("snapshots").join(commit);
    snap.is_dir().then_some(snap)
}

/// Whether a snapshot directory holds a loadable HF model.
pub fn is_complete(dir: &Path) -> bool {
    let weights =
        dir.join(crate::weights::safetensors::SINGLE_FILE).is_file() || complete_shards(dir);
    dir.join("config.json").is_file() && dir.join("tokenizer.json").is_file() && weights
}

fn complete_shards(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(crate::weights::safetensors::INDEX_FILE))
    else {
        return false;
    };
    shard_names(&text).is_some_and(|names| names.iter().all(|n| dir.join(n).is_file()))
}

fn shard_names(index_json: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(index_json).ok()?;
    let mut names: Vec<String> = v
        .get("weight_map")?
        .as_object()?
        .values()
        .filter_map(|f| f.as_str().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

/// Resolves `id` to a local snapshot directory: the cache if it has the model, else a download
/// when `allow_download` (callers pass `!offline()`).
pub fn resolve(id: &HubId, cache: &Path, allow_download: bool) -> Result<PathBuf> {
    if let Some(snap) = cached_snapshot(cache, id)
        && is_complete(&snap)
    {
        return Ok(snap);
    }
    if !allow_download {
        return Err(ModelError::Hub {
            id: id.to_string(),
            message: format!(
                "not in the local cache {} and downloads are off (HF_HUB_OFFLINE)",
                cache.display()
            ),
        });
    }
    download(id, cache)
}

#[cfg(feature = "hub-download")]
fn download(id: &HubId, cache: &Path) -> Result<PathBuf> {
    use hf_hub::{Repo, RepoType, api::sync::ApiBuilder};
    let hub_err = |m: String| ModelError::Hub {
        id: id.to_string(),
        message: m,
    };
    let api = ApiBuilder::from_env()
        .with_cache_dir(cache.to_path_buf())
        .with_progress(true)
        .build()
        .map_err(|e| hub_err(format!("cannot start the hub client: {e}")))?;
    let repo = api.repo(Repo::with_revision(
        id.repo.clone(),
        RepoType::Model,
        id.revision.clone(),
    ));
    let get = |file: &str| {
        repo.get(file).map_err(|e| {
            hub_err(format!(
                "not in the local cache {} and downloading `{file}` failed: {e}",
                cache.display()
            ))
        })
    };
    let config = get("config.json")?;
    get("tokenizer.json")?;
    if get(crate::weights::safetensors::SINGLE_FILE).is_err() {
        let index = get(crate::weights::safetensors::INDEX_FILE)?;
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        for shard in shard_names(&text).ok_or_else(|| hub_err("shard index is malformed".into()))? {
            get(&shard)?;
        }
    }
    Ok(config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cache.to_path_buf()))
}

#[cfg(not(feature = "hub-download"))]
fn download(id: &HubId, cache: &Path) -> Result<PathBuf> {
    Err(ModelError::Hub {
        id: id.to_string(),
        message: format!(
            "not in the local cache {} and this build has no `hub-download` feature",
            cache.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids() {
        assert_eq!(
            HubId::parse("EleutherAI/pythia-160m@step3000"),
            Some(HubId {
                repo: "EleutherAI/pythia-160m".into(),
                revision: "step3000".into()
            })
        );
        assert_eq!(HubId::parse("a/b").unwrap().revision, "main");
        for bad in [
            "pythia",
            "/abs/path",
            "a/b/c",
            "a/",
            "a/b@",
            "../x",
            "a/b@../../etc",
            "a b/c",
        ] {
            assert!(HubId::parse(bad).is_none(), "{bad}");
        }
    }
}
