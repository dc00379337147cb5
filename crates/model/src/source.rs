//! What a model string means: a GGUF file, an HF model directory, or a hub id.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::hub::HubId;
use crate::weights::gguf::GGUF_MAGIC;

/// Where a model is loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A `.gguf` file.
    Gguf(PathBuf),
    /// A directory with `config.json`, safetensors weights and `tokenizer.json`.
    HfDir(PathBuf),
    /// `org/name[@revision]`, looked up in the HF cache (downloaded if absent and allowed).
    Hub(HubId),
}

fn has_gguf_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == GGUF_MAGIC
}

impl ModelSource {
    /// Interprets a model string. An existing path wins over a hub id of the same spelling.
    pub fn parse(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSource::HfDir(path.to_path_buf()));
        }
        if path.is_file() {
            let gguf_ext = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
            if gguf_ext || has_gguf_magic(path) {
                return Ok(ModelSource::Gguf(path.to_path_buf()));
            }
            return Err(ModelError::BadModelSpec {
                spec: spec.to_string(),
                reason: "the file is not a GGUF file; pass a .gguf file or an HF model directory"
                    .into(),
            });
        }
        if let Some(id) = HubId::parse(spec) {
            return Ok(ModelSource::Hub(id));
        }
        Err(ModelError::BadModelSpec {
            spec: spec.to_string(),
            reason: "no such file or directory, and not a hub id of the form org/name[@revision]"
                .into(),
        })
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Gguf(p) | ModelSource::HfDir(p) => write!(f, "{}", p.display()),
            ModelSource::Hub(id) => write!(f, "{id}"),
        }
    }
}
