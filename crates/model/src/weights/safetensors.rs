//! Hugging Face safetensors checkpoints: one `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`. F32, F16 and BF16 tensors are upcast to f32 on read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};

use super::{HostTensor, WeightSource, bf16_bits_to_f32, f16_bits_to_f32};
use crate::error::{ModelError, Result};

/// File name of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// File name of the shard index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    map: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// A memory-mapped safetensors checkpoint (one file or several shards).
pub struct SafetensorsWeights {
    describe: String,
    shards: Vec<Shard>,
    /// Tensor name → shard index.
    names: HashMap<String, usize>,
}

impl SafetensorsWeights {
    /// Opens the checkpoint in an HF model directory: `model.safetensors`, else the index.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        if single.is_file() {
            Self::open_files(&[single], dir.display().to_string())
        } else if index.is_file() {
            Self::open_index(&index)
        } else {
            let bin = dir.join("pytorch_model.bin");
            let what = if bin.is_file() {
                format!(
                    "safetensors weights ({SINGLE_FILE} or {INDEX_FILE}; only pytorch_model.bin is present, \
                     which negdiff does not read because unpickling can run code: convert it to safetensors)"
                )
            } else {
                format!("safetensors weights ({SINGLE_FILE} or {INDEX_FILE})")
            };
            Err(ModelError::MissingFile {
                what,
                path: dir.to_path_buf(),
            })
        }
    }

    /// Opens a sharded checkpoint from its `model.safetensors.index.json`.
    pub fn open_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::Safetensors {
                path: index.to_path_buf(),
                message: format!("index is not valid JSON: {e}"),
            })?;
        let map = parsed
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::Safetensors {
                path: index.to_path_buf(),
                message: "index has no `weight_map` object".into(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| ModelError::Safetensors {
                path: index.to_path_buf(),
                message: format!("weight_map entry for `{name}` is not a string"),
            })?;
            // Shards must sit beside the index: refuse paths that climb out of the directory.
            if file.contains('/') || file.contains('\\') || file == ".." {
                return Err(ModelError::Safetensors {
                    path: index.to_path_buf(),
                    message: format!("shard name `{file}` is not a plain file name"),
                });
            }
            files.insert(dir.join(file));
        }
        let files: Vec<PathBuf> = files.into_iter().collect();
        let weights = Self::open_files(&files, index.display().to_string())?;
        for name in map.keys() {
            if !weights.names.contains_key(name) {
                return Err(ModelError::Safetensors {
                    path: index.to_path_buf(),
                    message: format!("index lists `{name}` but no shard contains it"),
                });
            }
        }
        Ok(weights)
    }

    /// Opens one or more safetensors files as one checkpoint.
    pub fn open_files(files: &[PathBuf], describe: String) -> Result<Self> {
        let mut shards = Vec::with_capacity(files.len());
        let mut names = HashMap::new();
        for path in files {
            if !path.is_file() {
                return Err(ModelError::MissingFile {
                    what: "safetensors shard".into(),
                    path: path.clone(),
                });
            }
            let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
            // SAFETY: the map is read-only and lives as long as `Shard`; a checkpoint changed by
            // another process while mapped is outside what any reader can guard against.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&map).map_err(|e| ModelError::Safetensors {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            let index = shards.len();
            for name in metadata.tensors().keys() {
                if names.insert(name.clone(), index).is_some() {
                    return Err(ModelError::Safetensors {
                        path: path.clone(),
                        message: format!("tensor `{name}` appears in more than one shard"),
                    });
                }
            }
            shards.push(Shard {
                path: path.clone(),
                map,
                header_len,
                metadata,
            });
        }
        Ok(SafetensorsWeights {
            describe,
            shards,
            names,
        })
    }

    /// Names of all tensors in the checkpoint.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.names.keys().cloned().collect();
        v.sort();
        v
    }
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}").to_lowercase()
}

impl WeightSource for SafetensorsWeights {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn tensor(&self, name: &str) -> Result<HostTensor> {
        let &index = self
            .names
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                source_desc: self.describe.clone(),
                name: name.to_string(),
            })?;
        let shard = &self.shards[index];
        let info = shard
            .metadata
            .info(name)
            .ok_or_else(|| ModelError::MissingTensor {
                source_desc: shard.path.display().to_string(),
                name: name.to_string(),
            })?;
        // read_metadata validated that offsets are contiguous and sized for the dtype and that
        // the buffer is exactly header + data, so this slice is in bounds.
        let start = 8 + shard.header_len + info.data_offsets.0;
        let end = 8 + shard.header_len + info.data_offsets.1;
        let bytes = shard
            .map
            .get(start..end)
            .ok_or_else(|| ModelError::Safetensors {
                path: shard.path.clone(),
                message: format!("data of `{name}` lies outside the file"),
            })?;
        let data: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            other => {
                return Err(ModelError::UnsupportedDtype {
                    path: shard.path.clone(),
                    name: name.to_string(),
                    dtype: dtype_name(other),
                });
            }
        };
        Ok(HostTensor {
            shape: info.shape.clone(),
            data,
        })
    }

    fn dtype_summary(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for shard in &self.shards {
            for info in shard.metadata.tensors().values() {
                *counts.entry(dtype_name(info.dtype)).or_default() += 1;
            }
        }
        counts.into_keys().collect::<Vec<_>>().join("+")
    }
}
