//! Tokenizers: HF `tokenizer.json`, or rebuilt from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Whether a BOS token is prepended is a property of each tokenizer and changes which tokens get
//! scored: [`Tokenizer::prepends_bos`] reports it (probed by encoding a short text), and
//! [`Tokenizer::bos_id`] names the BOS token even when it is not prepended, so that evaluation can
//! choose its convention explicitly.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{ModelError, Result};
use crate::weights::gguf::GgufFile;

/// Token ids with the character span each token covers in the input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Byte offsets `(start, end)` of each token in the text (`(0, 0)` for added special tokens).
    pub offsets: Vec<(usize, usize)>,
    /// Whether each token is a special token added by the tokenizer (e.g. BOS).
    pub special: Vec<bool>,
}

/// A text tokenizer plus its special-token conventions.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    source: String,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    prepends_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab", &self.vocab_size())
            .field("bos_id", &self.bos_id)
            .field("prepends_bos", &self.prepends_bos)
            .finish()
    }
}

fn tok_err(source: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
        source_desc: source.to_string(),
        message: e.to_string(),
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`. `bos_id`/`eos_id` come from the model config when known.
    pub fn from_file(path: &Path, bos_id: Option<u32>, eos_id: Option<u32>) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                what: "tokenizer.json".into(),
                path: path.to_path_buf(),
            });
        }
        let source = path.display().to_string();
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| tok_err(&source, e))?;
        Self::finish(inner, source, bos_id, eos_id)
    }

    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.model = gpt2`, i.e.
    /// byte-level BPE; the pre-tokenizer follows `tokenizer.ggml.pre`).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let source = format!("{} (GGUF metadata)", file.path().display());
        let err = |m: String| tok_err(&source, m);
        let model = file
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err("tokenizer.ggml.model is missing".into()))?;
        if model != "gpt2" {
            return Err(err(format!(
                "tokenizer.ggml.model = `{model}` is not supported (negdiff rebuilds byte-level BPE `gpt2` tokenizers); \
                 pass an HF directory with tokenizer.json instead"
            )));
        }
        let tokens = file
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .ok_or_else(|| err("tokenizer.ggml.tokens is missing".into()))?;
        let merges = file
            .get("tokenizer.ggml.merges")
            .and_then(|v| v.as_array())
            .ok_or_else(|| err("tokenizer.ggml.merges is missing".into()))?;
        let types = file
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array());
        let mut vocab = serde_json::Map::with_capacity(tokens.len());
        let mut added = Vec::new();
        for (id, tok) in tokens.iter().enumerate() {
            let tok = tok
                .as_str()
                .ok_or_else(|| err(format!("token {id} is not a string")))?;
            vocab.insert(tok.to_string(), json!(id));
            // llama.cpp token types: 3 = control (special), 4 = user-defined (added, not special).
            let ty = types
                .and_then(|t| t.get(id))
                .and_then(|v| v.as_u64())
                .unwrap_or(1);
            if ty == 3 || ty == 4 {
                added.push(json!({
                    "id": id, "content": tok, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": ty == 4, "special": ty == 3
                }));
            }
        }
        let merges: Vec<Value> = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let m = m
                    .as_str()
                    .ok_or_else(|| err(format!("merge {i} is not a string")))?;
                let (a, b) = m
                    .split_once(' ')
                    .ok_or_else(|| err(format!("merge {i} `{m}` has no space")))?;
                Ok(json!([a, b]))
            })
            .collect::<Result<_>>()?;
        let pre = file
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
        let (normalizer, pre_tokenizer) = match pre {
            "default" | "gpt2" | "gpt-2" => (Value::Null, byte_level(true)),
            "smollm" => (
                Value::Null,
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            ),
            "llama-bpe" | "llama3" => (
                Value::Null,
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false)]}),
            ),
            "qwen2" => (
                json!({"type": "NFC"}),
                json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false)]}),
            ),
            other => {
                return Err(err(format!(
                    "tokenizer.ggml.pre = `{other}` is not supported (known: default, gpt2, smollm, llama-bpe, qwen2)"
                )));
            }
        };
        let id_of = |key: &str| {
            file.get(key)
                .and_then(|v| v.as_u64())
                .map(|v| v as u32)
                .filter(|&v| (v as usize) < tokens.len())
        };
        let bos_id = id_of("tokenizer.ggml.bos_token_id");
        let eos_id = id_of("tokenizer.ggml.eos_token_id");
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let post_processor = match (add_bos, bos_id) {
            (true, Some(bos)) => {
                let bos_tok = tokens[bos as usize].as_str().unwrap_or_default();
                json!({
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": bos_tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": bos_tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {bos_tok: {"id": bos_tok, "ids": [bos], "tokens": [bos_tok]}}
                })
            }
            _ => Value::Null,
        };
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges
            }
        });
        let bytes = serde_json::to_vec(&spec).map_err(|e| err(e.to_string()))?;
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| tok_err(&source, e))?;
        Self::finish(inner, source, bos_id, eos_id)
    }

    fn finish(
        inner: tokenizers::Tokenizer,
        source: String,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
    ) -> Result<Self> {
        // Probe: does encoding with special tokens put something before the text's tokens?
        let with = inner.encode("a", true).map_err(|e| tok_err(&source, e))?;
        let without = inner.encode("a", false).map_err(|e| tok_err(&source, e))?;
        let extra = with.get_ids().len() > without.get_ids().len()
            && with.get_special_tokens_mask().first() == Some(&1);
        let prepends_bos = extra;
        let bos_id = if extra {
            with.get_ids().first().copied()
        } else {
            bos_id
        };
        Ok(Tokenizer {
            inner,
            source,
            bos_id,
            eos_id,
            prepends_bos,
        })
    }

    fn encode_impl(&self, text: &str, special: bool) -> Result<Encoded> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
            special: enc
                .get_special_tokens_mask()
                .iter()
                .map(|&m| m == 1)
                .collect(),
        })
    }

    /// Encodes with the tokenizer's own convention (a BOS is added iff [`prepends_bos`](Self::prepends_bos)).
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        self.encode_impl(text, true)
    }

    /// Encodes without adding any special token.
    pub fn encode_plain(&self, text: &str) -> Result<Encoded> {
        self.encode_impl(text, false)
    }

    /// Decodes ids to text (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| tok_err(&self.source, e))
    }

    /// The string form of one token id (byte-level symbols as stored).
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether [`encode`](Self::encode) prepends a BOS token.
    pub fn prepends_bos(&self) -> bool {
        self.prepends_bos
    }

    /// The BOS id, if the tokenizer or model config names one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The EOS id, if known.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Number of tokens including added ones.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Where the tokenizer came from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Llama 3's pre-tokenizer split pattern.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's pre-tokenizer split pattern (single digits).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
