//! Hub ids resolve through a standard HF cache tree, offline.

use negdiff_model::hub::{HubId, resolve};
use negdiff_model::{LanguageModel, ModelError, ModelSource, device::default_device};

use crate::common::fixture;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OLD_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// Builds `models--org--tiny` with `main` → COMMIT (complete) and `step1` → OLD_COMMIT
/// (config only: incomplete).
fn fake_cache() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--org--tiny");
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    let src = fixture("models/llama_gqa_tied");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), snap.join(f)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
    std::fs::write(repo.join("refs").join("v1"), format!("{COMMIT}\n")).unwrap();
    let old = repo.join("snapshots").join(OLD_COMMIT);
    std::fs::create_dir_all(&old).unwrap();
    std::fs::copy(src.join("config.json"), old.join("config.json")).unwrap();
    std::fs::write(repo.join("refs").join("step1"), OLD_COMMIT).unwrap();
    tmp
}

#[test]
fn hub_ids_resolve_offline_from_the_cache() {
    let cache = fake_cache();
    let expected = cache
        .path()
        .join("models--org--tiny")
        .join("snapshots")
        .join(COMMIT);
    for spec in [
        "org/tiny",
        "org/tiny@main",
        "org/tiny@v1",
        &format!("org/tiny@{COMMIT}"),
    ] {
        let id = HubId::parse(spec).unwrap();
        assert_eq!(
            resolve(&id, cache.path(), false).unwrap(),
            expected,
            "{spec}"
        );
        assert!(matches!(
            ModelSource::parse(spec).unwrap(),
            ModelSource::Hub(_)
        ));
    }
    let dir = resolve(&HubId::parse("org/tiny").unwrap(), cache.path(), false).unwrap();
    let model = LanguageModel::from_hf_dir(&dir, &default_device()).unwrap();
    assert_eq!(model.info().architecture, "llama");

    // Incomplete snapshot, unknown revision, unknown repo: errors naming the id, no network.
    for spec in ["org/tiny@step1", "org/tiny@nope", "org/other"] {
        let id = HubId::parse(spec).unwrap();
        match resolve(&id, cache.path(), false) {
            Err(ModelError::Hub { id: shown, message }) => {
                assert!(shown.starts_with(spec.split('@').next().unwrap()));
                assert!(message.contains("local cache"), "{message}");
            }
            other => panic!("{spec}: expected Hub error, got {other:?}"),
        }
    }
}
