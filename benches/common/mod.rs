//! What the benches that need the real model and data share.

use std::path::{Path, PathBuf};

use negdiff_model::{LanguageModel, default_model_path, device::default_device};

/// The default model (SmolLM2, see `scripts/setup.sh`), or `None` after saying why the bench
/// is skipped.
pub fn default_model_or_skip() -> Option<LanguageModel> {
    match LanguageModel::load(
        &default_model_path().display().to_string(),
        &default_device(),
    ) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("skipping: {e} (run scripts/setup.sh)");
            None
        }
    }
}

/// The benchmark data: `$NEGDIFF_DATA`, else `../shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    std::env::var_os("NEGDIFF_DATA")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}
