//! The model crate's error type: every variant names the file, tensor or setting at fault.

use std::path::PathBuf;

use thiserror::Error;

/// Errors from loading or running a model.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file the model needs is absent.
    #[error("{what} not found: {path}")]
    MissingFile {
        /// Which file was expected (e.g. "config.json").
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The model string is neither an existing path nor a hub id.
    #[error("cannot load model `{spec}`: {reason}")]
    BadModelSpec {
        /// What the user gave.
        spec: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `config.json` is not valid JSON or lacks a field.
    #[error("invalid config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// `model_type` names an architecture negdiff does not implement.
    #[error("unsupported model_type `{model_type}` in {path} (supported: {supported})")]
    UnsupportedModelType {
        /// The config file (or GGUF file).
        path: PathBuf,
        /// The value found.
        model_type: String,
        /// The values negdiff accepts.
        supported: String,
    },
    /// A config setting negdiff cannot honour faithfully.
    #[error("unsupported setting in {path}: {setting} = {value} ({reason})")]
    UnsupportedSetting {
        /// The config file.
        path: PathBuf,
        /// The setting's name.
        setting: String,
        /// Its value.
        value: String,
        /// Why it is not supported.
        reason: String,
    },
    /// A weight tensor the architecture needs is not in the checkpoint.
    #[error("tensor `{name}` missing from {source_desc}")]
    MissingTensor {
        /// The checkpoint (file or directory).
        source_desc: String,
        /// The tensor name the architecture asked for.
        name: String,
    },
    /// A weight tensor has another shape than the config implies.
    #[error("tensor `{name}` in {source_desc} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The checkpoint.
        source_desc: String,
        /// The tensor.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A safetensors file is malformed or truncated.
    #[error("invalid safetensors file {path}: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor's element type is not one negdiff reads.
    #[error("tensor `{name}` in {path} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A GGUF file is malformed or truncated.
    #[error("invalid GGUF file {path}: {message}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the byte offset where useful).
        message: String,
    },
    /// A tokenizer could not be loaded or used.
    #[error("tokenizer error ({source_desc}): {message}")]
    Tokenizer {
        /// Where the tokenizer came from.
        source_desc: String,
        /// What went wrong.
        message: String,
    },
    /// A hub id could not be resolved.
    #[error("cannot resolve hub model `{id}`: {message}")]
    Hub {
        /// The id as given.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// The caller passed something the model cannot run on.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Reading a result back from the device failed.
    #[error("device readback failed: {0}")]
    Readback(String),
    /// A hook failed during the forward pass.
    #[error(transparent)]
    Hook(#[from] negdiff_hooks::HookError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
