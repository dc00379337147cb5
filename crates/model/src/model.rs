//! [`LanguageModel`]: a loaded architecture plus its tokenizer, with the operations the rest of
//! negdiff builds on (hidden states, next-token log-probabilities, greedy generation).

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use negdiff_hooks::{HookRegistry, SiteLayout};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::arch::layers::{host_slice, read_host};
use crate::arch::{self, CausalLm, ModelDims};
use crate::batch::TokenBatch;
use crate::config::{ArchConfig, LlamaConfig};
use crate::error::{ModelError, Result};
use crate::fastmath::log_sum_exp;
use crate::hub;
use crate::packing::PackedBatch;
use crate::source::ModelSource;
use crate::tokenizer::Tokenizer;
use crate::weights::WeightSource;
use crate::weights::gguf::GgufFile;
use crate::weights::gguf_names::GgufWeights;
use crate::weights::safetensors::SafetensorsWeights;

/// Rows of the unembedding computed at once when scoring: bounds the `[rows, vocab]` logits
/// buffer (128 × 49k × 4 B ≈ 25 MB, below glibc's mmap threshold so it is reused rather than
/// faulted in afresh) whatever the batch size.
const LOGIT_CHUNK_ROWS: usize = 128;

/// What `negdiff info` reports about a loaded model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// HF `model_type`.
    pub architecture: String,
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual width.
    pub d_model: usize,
    /// Neurons per MLP.
    pub d_mlp: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// MLP nonlinearity.
    pub activation: String,
    /// Parameter count (tied matrices once).
    pub n_params: usize,
    /// Stored element types (weights are computed in f32).
    pub dtype: String,
    /// `gguf` or `safetensors`.
    pub format: String,
    /// The file or directory loaded.
    pub source: String,
    /// Whether the tokenizer prepends a BOS token.
    pub bos_prepended: bool,
    /// The BOS id, if any.
    pub bos_id: Option<u32>,
}

/// A language model ready to run.
pub struct LanguageModel {
    model: Box<dyn CausalLm>,
    tokenizer: Tokenizer,
    info: ModelInfo,
    device: Device,
    pad_id: u32,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel")
            .field("info", &self.info)
            .finish()
    }
}

fn read_config_ids(config: &Path) -> (Option<u32>, Option<u32>) {
    let Ok(text) = std::fs::read_to_string(config) else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (None, None);
    };
    let id = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as u32);
    (id("bos_token_id"), id("eos_token_id"))
}

impl LanguageModel {
    /// Loads a model from a GGUF path, an HF directory, or a hub id `org/name[@rev]`.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        Self::load_source(&ModelSource::parse(spec)?, device)
    }

    /// Loads from a parsed [`ModelSource`].
    pub fn load_source(source: &ModelSource, device: &Device) -> Result<Self> {
        match source {
            ModelSource::Gguf(path) => Self::from_gguf(path, device),
            ModelSource::HfDir(dir) => Self::from_hf_dir(dir, device),
            ModelSource::Hub(id) => {
                let dir = hub::resolve(id, &hub::cache_root(), !hub::offline())?;
                Self::from_hf_dir(&dir, device)
            }
        }
    }

    /// Loads an HF model directory.
    pub fn from_hf_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = ArchConfig::from_file(&config_path)?;
        let weights = SafetensorsWeights::open_dir(dir)?;
        let (bos, eos) = read_config_ids(&config_path);
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"), bos, eos)?;
        let model = arch::build(&config, None, &weights, device, &config_path)?;
        let mut files = vec![config_path];
        files.extend(weights_files(dir));
        Self::assemble(
            model,
            tokenizer,
            &weights,
            "safetensors",
            dir,
            device,
            files,
        )
    }

    /// Loads a GGUF file (Llama-family architectures).
    pub fn from_gguf(path: &Path, device: &Device) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let (config, rope) = LlamaConfig::from_gguf(&file)?;
        let weights = GgufWeights::llama(
            &file,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.kv_heads(),
        );
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let model = arch::build(
            &ArchConfig::Llama(config),
            Some(rope),
            &weights,
            device,
            path,
        )?;
        Self::assemble(
            model,
            tokenizer,
            &weights,
            "gguf",
            path,
            device,
            vec![path.to_path_buf()],
        )
    }

    fn assemble(
        model: Box<dyn CausalLm>,
        tokenizer: Tokenizer,
        weights: &dyn WeightSource,
        format: &str,
        source: &Path,
        device: &Device,
        files: Vec<PathBuf>,
    ) -> Result<Self> {
        let dims = model.dims().clone();
        if tokenizer.vocab_size() > dims.vocab_size {
            return Err(ModelError::Tokenizer {
                source_desc: tokenizer.source().to_string(),
                message: format!(
                    "tokenizer has {} tokens but the model's vocabulary is {}",
                    tokenizer.vocab_size(),
                    dims.vocab_size
                ),
            });
        }
        let info = ModelInfo {
            architecture: model.architecture().to_string(),
            n_layers: dims.n_layers,
            d_model: dims.d_model,
            d_mlp: dims.d_mlp,
            n_heads: dims.n_heads,
            n_kv_heads: dims.n_kv_heads,
            vocab_size: dims.vocab_size,
            activation: model.activation().name().to_string(),
            n_params: model.n_params(),
            dtype: weights.dtype_summary(),
            format: format.to_string(),
            source: source.display().to_string(),
            bos_prepended: tokenizer.prepends_bos(),
            bos_id: tokenizer.bos_id(),
        };
        // Padding positions are never read, any id in range will do.
        let pad_id = tokenizer.eos_id().unwrap_or(0);
        Ok(LanguageModel {
            model,
            tokenizer,
            info,
            device: device.clone(),
            pad_id,
            files,
        })
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Sizes.
    pub fn dims(&self) -> &ModelDims {
        self.model.dims()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The architecture itself.
    pub fn model(&self) -> &dyn CausalLm {
        self.model.as_ref()
    }

    /// The hook sites this model offers.
    pub fn site_layout(&self) -> SiteLayout {
        let d = self.model.dims();
        SiteLayout::new(
            self.model.architecture(),
            d.n_layers,
            d.d_model,
            d.d_mlp,
            self.model.hook_points().to_vec(),
        )
    }

    /// An empty hook registry for this model.
    pub fn hooks<'a>(&self) -> HookRegistry<'a> {
        HookRegistry::new(self.site_layout())
    }

    /// SHA-256 over the loaded files (config and weights), hex; for run manifests.
    pub fn fingerprint(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        for path in &self.files {
            let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
            loop {
                let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        Ok(format!("{:x}", hasher.finalize()))
    }

    fn check_batch(&self, batch: &TokenBatch) -> Result<()> {
        let vocab = self.model.dims().vocab_size;
        for (i, s) in batch.sequences().iter().enumerate() {
            if let Some(&bad) = s.iter().find(|&&t| t as usize >= vocab) {
                return Err(ModelError::InvalidInput(format!(
                    "sequence {i} has token id {bad}, beyond the vocabulary ({vocab})"
                )));
            }
        }
        if let Some(limit) = self.model.max_faithful_len() {
            let span = batch.span();
            if span > limit {
                return Err(ModelError::InvalidInput(format!(
                    "sequence of {span} tokens exceeds the sliding window of {limit}, which negdiff does not implement"
                )));
            }
        }
        Ok(())
    }

    /// Final hidden states `[batch, pos, d_model]` (after the final norm).
    pub fn forward_hidden(
        &self,
        batch: &TokenBatch,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Tensor<3>> {
        self.check_batch(batch)?;
        let tokens = batch.to_tensor(self.pad_id, &self.device);
        let ctx = batch.context(&self.device);
        let layout = batch.layout(&self.device)?;
        self.model.forward_hidden(tokens, &layout, &ctx, hooks)
    }

    /// Logits `[batch, pos, vocab]` (padding positions hold unspecified values).
    pub fn logits(&self, batch: &TokenBatch, hooks: &mut HookRegistry<'_>) -> Result<Tensor<3>> {
        let hidden = self.forward_hidden(batch, hooks)?;
        let [b, t, d] = hidden.dims();
        let logits = self.model.unembed(hidden.reshape([b * t, d]))?;
        let v = logits.dims()[1];
        Ok(logits.reshape([b, t, v]))
    }

    /// For each sequence, `log p(token[i+1] | token[..=i])` for `i` in `0..len-1` (natural log).
    ///
    /// Only real positions are unembedded, in chunks, so padding costs nothing here and memory
    /// stays bounded for any batch.
    pub fn next_token_logprobs(
        &self,
        batch: &TokenBatch,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Vec<Vec<f32>>> {
        let hidden = self.forward_hidden(batch, hooks)?;
        self.logprobs_from_hidden(batch, hidden)
    }

    /// [`next_token_logprobs`](Self::next_token_logprobs) from hidden states already computed.
    pub fn logprobs_from_hidden(
        &self,
        batch: &TokenBatch,
        hidden: Tensor<3>,
    ) -> Result<Vec<Vec<f32>>> {
        let t = batch.seq_len();
        let mut requests = Vec::new();
        for (i, s) in batch.sequences().iter().enumerate() {
            for pos in 0..s.len().saturating_sub(1) {
                requests.push((i * t + pos, s[pos + 1]));
            }
        }
        let flat_lp = self.logprobs_at(hidden, &requests)?;
        let lens = batch.sequences().iter().map(|s| s.len().saturating_sub(1));
        Ok(split_by_lengths(&flat_lp, lens))
    }

    /// `log p(target | position)` for each `(position, target)` request, where `position`
    /// indexes the flattened `[batch · pos]` rows of `hidden`.
    ///
    /// Each distinct position is unembedded once; several requests may share a position (prefix
    /// trees). On the CPU with a packed LM head the logits are never stored (the log-softmax is
    /// folded into the product); elsewhere they are computed in chunks of `LOGIT_CHUNK_ROWS`
    /// (128) rows, so that memory stays bounded for any batch.
    pub fn logprobs_at(&self, hidden: Tensor<3>, requests: &[(usize, u32)]) -> Result<Vec<f32>> {
        let [b, t, d] = hidden.dims();
        let vocab = self.model.dims().vocab_size;
        if let Some(&(p, tgt)) = requests
            .iter()
            .find(|&&(p, tgt)| p >= b * t || tgt as usize >= vocab)
        {
            return Err(ModelError::InvalidInput(format!(
                "log-prob request (position {p}, token {tgt}) outside [{}, {vocab})",
                b * t
            )));
        }
        // Requests grouped by position; positions in order.
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&r| (requests[r].0, r));
        let mut positions: Vec<usize> = order.iter().map(|&r| requests[r].0).collect();
        positions.dedup();
        if self.device == Device::flex()
            && let Some(head) = self.model.unembedding().filter(|l| l.is_packed())
        {
            // CPU: the LM head's product and the log-softmax in one pass over the vocabulary,
            // the logits never written out (see `gemm::log_softmax`); all positions at once,
            // since memory no longer grows with the rows.
            let data = read_host(hidden)?;
            let values = host_slice(&data)?;
            let mut rows = Vec::with_capacity(positions.len() * d);
            for &p in &positions {
                rows.extend_from_slice(&values[p * d..][..d]);
            }
            let picks: Vec<(usize, usize)> = requests
                .iter()
                .map(|&(p, tgt)| (positions.partition_point(|&q| q < p), tgt as usize))
                .collect();
            return head.log_softmax_at_host(&rows, positions.len(), &picks);
        }
        let mut out = vec![0f32; requests.len()];
        let flat = hidden.reshape([b * t, d]);
        let mut next = 0; // first request of `order` not yet answered
        for chunk in positions.chunks(LOGIT_CHUNK_ROWS) {
            let n = chunk.len();
            let last = chunk[n - 1];
            let mut gather = Vec::new(); // (local row, target)
            let mut answered = Vec::new(); // request index
            while next < order.len() && requests[order[next]].0 <= last {
                let (p, tgt) = requests[order[next]];
                // `chunk` is sorted: the local row is its index there.
                gather.push((chunk.partition_point(|&c| c < p), tgt as usize));
                answered.push(order[next]);
                next += 1;
            }
            let rows: Tensor<1, Int> = Tensor::from_data(
                TensorData::new(chunk.iter().map(|&p| p as i64).collect(), [n]),
                &self.device,
            );
            let logits = self.model.unembed(flat.clone().select(0, rows))?; // [n, vocab]
            let lp = if self.device == Device::flex() {
                // CPU: the logits are already in host memory (read without a copy); the
                // normaliser is a vectorised log-sum-exp (see `fastmath`), rows in parallel.
                let data = logits
                    .try_into_data()
                    .map_err(|e| ModelError::Readback(e.to_string()))?;
                let values = data
                    .as_slice::<f32>()
                    .map_err(|e| ModelError::Readback(format!("logits: {e:?}")))?;
                let log_norm: Vec<f32> = values.par_chunks_exact(vocab).map(log_sum_exp).collect();
                gather
                    .iter()
                    .map(|&(row, tgt)| values[row * vocab + tgt] - log_norm[row])
                    .collect()
            } else {
                // log_softmax(x)[target] = (x_t - max) - log Σ exp(x - max)
                let max = logits.clone().max_dim(1); // [n, 1]
                let shifted = logits - max;
                let log_norm = shifted.clone().exp().sum_dim(1).log().reshape([n]);
                let m = gather.len();
                let flat_idx: Vec<i64> = gather
                    .iter()
                    .map(|&(r, t)| (r * vocab + t) as i64)
                    .collect();
                let row_idx: Vec<i64> = gather.iter().map(|&(r, _)| r as i64).collect();
                let flat_idx: Tensor<1, Int> =
                    Tensor::from_data(TensorData::new(flat_idx, [m]), &self.device);
                let row_idx: Tensor<1, Int> =
                    Tensor::from_data(TensorData::new(row_idx, [m]), &self.device);
                (shifted.reshape([n * vocab]).select(0, flat_idx) - log_norm.select(0, row_idx))
                    .try_into_vec_as::<f32>()
                    .map_err(|e| ModelError::Readback(e.to_string()))?
            };
            for (r, v) in answered.into_iter().zip(lp) {
                out[r] = v;
            }
        }
        Ok(out)
    }

    /// Next-token log-probabilities of the sequences packed in `packed` (one entry per
    /// [`PackedSequence`](crate::packing::PackedSequence), in its order), computed on the
    /// packed prefix-tree rows: each shared prefix runs once.
    pub fn packed_next_token_logprobs(
        &self,
        packed: &PackedBatch,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Vec<Vec<f32>>> {
        let hidden = self.forward_hidden(&packed.batch, hooks)?;
        let mut requests = Vec::new();
        for m in &packed.members {
            requests.extend(m.nodes.iter().copied().zip(m.targets.iter().copied()));
        }
        let flat = self.logprobs_at(hidden, &requests)?;
        Ok(split_by_lengths(
            &flat,
            packed.members.iter().map(|m| m.nodes.len()),
        ))
    }

    /// Greedy decoding: appends `n` argmax tokens to `prompt` and returns only the new ones.
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        n: usize,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Vec<u32>> {
        let mut ids = prompt.to_vec();
        let mut generated = Vec::with_capacity(n);
        for _ in 0..n {
            let batch = TokenBatch::single(ids.clone())?;
            let hidden = self.forward_hidden(&batch, hooks)?;
            let [_, t, d] = hidden.dims();
            let last = hidden.narrow(1, t - 1, 1).reshape([1, d]);
            let logits = self.model.unembed(last)?;
            let next = logits
                .argmax(1)
                .try_into_vec_as::<i64>()
                .map_err(|e| ModelError::Readback(e.to_string()))?;
            let next = *next
                .first()
                .ok_or_else(|| ModelError::Readback("empty argmax".into()))?
                as u32;
            generated.push(next);
            ids.push(next);
        }
        Ok(generated)
    }
}

/// Cuts `flat` into consecutive pieces of the given lengths (which sum to its length).
fn split_by_lengths(flat: &[f32], lengths: impl Iterator<Item = usize>) -> Vec<Vec<f32>> {
    let mut k = 0;
    lengths
        .map(|n| {
            let piece = flat[k..k + n].to_vec();
            k += n;
            piece
        })
        .collect()
}

fn weights_files(dir: &Path) -> Vec<PathBuf> {
    let single = dir.join(crate::weights::safetensors::SINGLE_FILE);
    if single.is_file() {
        return vec![single];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                || p.file_name()
                    .is_some_and(|n| n == crate::weights::safetensors::INDEX_FILE)
        })
        .collect();
    v.sort();
    v
}
