//! Corpora for scoring: one text, tokenised once and cut into windows.
//!
//! Formats: plain UTF-8 text; CoNLL-U (its `# text =` lines joined by one space, the CLI
//! contract's convention); JSON lines with a string field (records joined by a blank line).

use std::path::{Path, PathBuf};

use negdiff_model::Tokenizer;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Result, ScoringError};

/// How to read a corpus file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CorpusFormat {
    /// The whole file is the text.
    Text,
    /// CoNLL-U: `# text =` lines joined by one space.
    Conllu,
    /// JSON lines: the named string field of each record, joined by a blank line.
    Jsonl {
        /// The field holding the text.
        field: String,
    },
}

impl CorpusFormat {
    /// `.conllu` → CoNLL-U, `.jsonl` → JSON lines with field `text`, anything else → plain text.
    pub fn infer(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("conllu") => CorpusFormat::Conllu,
            Some("jsonl") => CorpusFormat::Jsonl {
                field: "text".into(),
            },
            _ => CorpusFormat::Text,
        }
    }
}

/// A loaded corpus: its text and where it came from.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The file read.
    pub path: PathBuf,
    /// How it was read.
    pub format: CorpusFormat,
    /// The text scored.
    pub text: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

fn corpus_err(path: &Path, message: impl Into<String>) -> ScoringError {
    ScoringError::Corpus {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Corpus {
    /// Reads `path` in `format`.
    pub fn load(path: &Path, format: CorpusFormat) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| corpus_err(path, e.to_string()))?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let raw = String::from_utf8(bytes).map_err(|e| {
            corpus_err(
                path,
                format!("not UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        let text = match &format {
            CorpusFormat::Text => raw,
            CorpusFormat::Conllu => raw
                .lines()
                .filter_map(|l| l.strip_prefix("# text = "))
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join(" "),
            CorpusFormat::Jsonl { field } => {
                let mut docs = Vec::new();
                for (i, line) in raw.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let v: serde_json::Value = serde_json::from_str(line)
                        .map_err(|e| corpus_err(path, format!("line {}: {e}", i + 1)))?;
                    let s = v.get(field).and_then(|s| s.as_str()).ok_or_else(|| {
                        corpus_err(path, format!("line {}: no string field `{field}`", i + 1))
                    })?;
                    docs.push(s.to_string());
                }
                docs.join("\n\n")
            }
        };
        if text.trim().is_empty() {
            return Err(corpus_err(path, "the corpus has no text"));
        }
        Ok(Corpus {
            path: path.to_path_buf(),
            format,
            text,
            sha256,
        })
    }

    /// A corpus from a string (tests, notebooks).
    pub fn from_text(name: &str, text: impl Into<String>) -> Self {
        let text = text.into();
        Corpus {
            path: PathBuf::from(name),
            format: CorpusFormat::Text,
            sha256: format!("{:x}", Sha256::digest(text.as_bytes())),
            text,
        }
    }
}

/// How the token stream is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowSpec {
    /// Tokens per window (the authors: 2048).
    pub window: usize,
    /// Start-to-start distance; `window / 2` is the authors' 50% overlap.
    pub stride: usize,
    /// Stop once this many token positions are collected (the last window is cut short).
    pub max_tokens: usize,
}

/// One window of the corpus's token stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Token ids fed to the model (a BOS first when the tokenizer prepends one).
    pub ids: Vec<u32>,
    /// Index in `ids` of the first position that is collected (1 after a BOS, else 0).
    pub first_scored: usize,
    /// Index in the corpus token stream of `ids[first_scored]`.
    pub stream_start: usize,
}

/// The corpus tokenised once: ids and the byte span of each token in the text.
#[derive(Debug, Clone)]
pub struct TokenStream {
    /// Token ids (no special tokens).
    pub ids: Vec<u32>,
    /// Byte span of each token in [`Corpus::text`].
    pub offsets: Vec<(usize, usize)>,
}

impl TokenStream {
    /// Tokenises the whole text once, without special tokens.
    pub fn new(corpus: &Corpus, tokenizer: &Tokenizer) -> Result<Self> {
        let enc = tokenizer.encode_plain(&corpus.text)?;
        if enc.ids.is_empty() {
            return Err(corpus_err(&corpus.path, "the corpus encodes to no tokens"));
        }
        Ok(TokenStream {
            ids: enc.ids,
            offsets: enc.offsets,
        })
    }

    /// Cuts the stream into windows. With a BOS-prepending tokenizer each window starts with
    /// BOS, which is fed but never collected. Errors if the stream is shorter than one window
    /// (pass a smaller window) or the settings are degenerate.
    pub fn windows(&self, spec: &WindowSpec, bos: Option<u32>) -> Result<Vec<Window>> {
        if spec.window == 0 || spec.stride == 0 || spec.max_tokens == 0 {
            return Err(ScoringError::Settings(
                "window, stride and token budget must be positive".into(),
            ));
        }
        let content = spec.window - usize::from(bos.is_some());
        if content == 0 {
            return Err(ScoringError::Settings(
                "window too small for a BOS token".into(),
            ));
        }
        if self.ids.len() < content {
            return Err(ScoringError::Settings(format!(
                "the corpus has {} tokens, fewer than one window of {}; pass a smaller --window",
                self.ids.len(),
                content
            )));
        }
        let mut out = Vec::new();
        let mut collected = 0usize;
        let mut start = 0usize;
        while start + content <= self.ids.len() && collected < spec.max_tokens {
            let take = content.min(spec.max_tokens - collected);
            let mut ids = Vec::with_capacity(take + 1);
            ids.extend(bos);
            ids.extend_from_slice(&self.ids[start..start + take]);
            out.push(Window {
                ids,
                first_scored: usize::from(bos.is_some()),
                stream_start: start,
            });
            collected += take;
            start += spec.stride;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: usize) -> TokenStream {
        TokenStream {
            ids: (0..n as u32).collect(),
            offsets: (0..n).map(|i| (i, i + 1)).collect(),
        }
    }

    #[test]
    fn windows_respect_budget_stride_and_bos() {
        let s = stream(100);
        let w = s
            .windows(
                &WindowSpec {
                    window: 10,
                    stride: 10,
                    max_tokens: 25,
                },
                None,
            )
            .unwrap();
        assert_eq!(
            w.iter().map(|w| w.ids.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let w = s
            .windows(
                &WindowSpec {
                    window: 10,
                    stride: 5,
                    max_tokens: 1000,
                },
                Some(7),
            )
            .unwrap();
        assert!(
            w.iter()
                .all(|w| w.ids[0] == 7 && w.first_scored == 1 && w.ids.len() == 10)
        );
        assert_eq!(w[1].stream_start, 5);
        // Windows of 9 text tokens every 5: the last one that fits starts at 90.
        assert_eq!(w.last().unwrap().stream_start, 90);
        assert!(
            s.windows(
                &WindowSpec {
                    window: 200,
                    stride: 200,
                    max_tokens: 10
                },
                None
            )
            .is_err()
        );
        assert!(
            s.windows(
                &WindowSpec {
                    window: 0,
                    stride: 1,
                    max_tokens: 10
                },
                None
            )
            .is_err()
        );
    }
}
