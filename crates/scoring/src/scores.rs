//! Score files: per-neuron tables in `scores.safetensors` plus `manifest.json`.
//!
//! Each table is an f64 tensor `[n_layers, d_mlp]`. The safetensors header carries no metadata
//! and tensors are written in name order, so equal scores give byte-identical files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::{Result, ScoringError};

/// File name of the score tables.
pub const SCORES_FILE: &str = "scores.safetensors";
/// File name of the run manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Named per-neuron tables for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreTables {
    /// Number of layers.
    pub n_layers: usize,
    /// Neurons per layer.
    pub d_mlp: usize,
    /// Table name → `n_layers × d_mlp` values, layer-major.
    pub tables: BTreeMap<String, Vec<f64>>,
}

fn file_err(path: &Path, message: impl Into<String>) -> ScoringError {
    ScoringError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ScoreTables {
    /// Empty tables for a model shape.
    pub fn new(n_layers: usize, d_mlp: usize) -> Self {
        ScoreTables {
            n_layers,
            d_mlp,
            tables: BTreeMap::new(),
        }
    }

    /// Sets one layer's row of a table (creating the table filled with NaN).
    pub fn set_layer(&mut self, name: &str, layer: usize, values: &[f64]) {
        let (n, d) = (self.n_layers, self.d_mlp);
        let t = self
            .tables
            .entry(name.to_string())
            .or_insert_with(|| vec![f64::NAN; n * d]);
        t[layer * d..layer * d + values.len().min(d)]
            .copy_from_slice(&values[..values.len().min(d)]);
    }

    /// A table as `[layer][neuron]`.
    pub fn rows(&self, name: &str) -> Option<Vec<Vec<f64>>> {
        let t = self.tables.get(name)?;
        Some(t.chunks(self.d_mlp.max(1)).map(<[f64]>::to_vec).collect())
    }

    /// Writes `dir/scores.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e.to_string()))?;
        let path = dir.join(SCORES_FILE);
        let bytes: Vec<(String, Vec<u8>)> = self
            .tables
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b)| {
                TensorView::new(Dtype::F64, vec![self.n_layers, self.d_mlp], b)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| file_err(&path, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let tmp = dir.join(format!("{SCORES_FILE}.tmp"));
        safetensors::serialize_to_file(views, None, &tmp)
            .map_err(|e| file_err(&tmp, e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| file_err(&path, e.to_string()))?;
        Ok(path)
    }

    /// Reads `dir/scores.safetensors` (or the file itself). f32 and f64 tables are accepted.
    pub fn load(path: &Path) -> Result<Self> {
        let path = if path.is_dir() {
            path.join(SCORES_FILE)
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&path).map_err(|e| file_err(&path, e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| file_err(&path, e.to_string()))?;
        let mut out: Option<ScoreTables> = None;
        for (name, view) in st.tensors() {
            let shape = view.shape();
            if shape.len() != 2 {
                return Err(file_err(
                    &path,
                    format!("table `{name}` has shape {shape:?}, expected [n_layers, d_mlp]"),
                ));
            }
            let values: Vec<f64> = match view.dtype() {
                Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64)
                    .collect(),
                d => return Err(file_err(&path, format!("table `{name}` has dtype {d:?}"))),
            };
            let t = out.get_or_insert_with(|| ScoreTables::new(shape[0], shape[1]));
            if (t.n_layers, t.d_mlp) != (shape[0], shape[1]) {
                return Err(file_err(
                    &path,
                    format!(
                        "table `{name}` has shape {shape:?}, others [{}, {}]",
                        t.n_layers, t.d_mlp
                    ),
                ));
            }
            t.tables.insert(name, values);
        }
        out.ok_or_else(|| file_err(&path, "no tables"))
    }
}

/// Writes a manifest value as pretty JSON to `dir/manifest.json`.
pub fn write_manifest(dir: &Path, manifest: &serde_json::Value) -> Result<PathBuf> {
    let path = dir.join(MANIFEST_FILE);
    let text =
        serde_json::to_string_pretty(manifest).map_err(|e| file_err(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| file_err(&path, e.to_string()))?;
    Ok(path)
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes, if available.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
