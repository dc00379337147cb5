//! The evaluation crate's error type.
//!
//! Every variant that comes from a data file names that file, and a line (1-based) wherever
//! the format has lines, so a user can open the file at the offending place.

use std::path::PathBuf;

use thiserror::Error;

/// Errors from loading evaluation data and computing evaluation statistics.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file is not valid UTF-8.
    #[error("{path}:{line}: not valid UTF-8 (byte offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The line (1-based) holding the first invalid byte.
        line: usize,
        /// The byte offset of the first invalid byte in the file.
        offset: usize,
    },
    /// A file holds no data (no bytes, or only whitespace).
    #[error("{path}: file is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line of a line-oriented file (JSON lines, CoNLL-U) is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A whole file, or a directory of data files, does not have the expected shape.
    #[error("{path}: {message}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A pickle file could not be decoded (malformed, or it refers to Python globals,
    /// which are refused so that loading data can never mean running code).
    #[error("{path}: cannot decode pickle: {message}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// One item of a targeted-syntactic-evaluation pickle has the wrong shape.
    #[error("{path}: case {case:?}, item {index}: {message}")]
    TseItem {
        /// The file.
        path: PathBuf,
        /// The case (dictionary key) holding the item.
        case: String,
        /// The item's 0-based position in the case's list.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Names of BLiMP paradigms that were asked for but have no file.
    #[error("{dir}: no BLiMP file for paradigm(s) {names:?}")]
    UnknownParadigm {
        /// The BLiMP directory.
        dir: PathBuf,
        /// The names with no `<name>.jsonl` file.
        names: Vec<String>,
    },
    /// The injected fetcher could not download a file.
    #[error("download of {url} failed: {message}")]
    Fetch {
        /// The address asked for.
        url: String,
        /// The fetcher's message.
        message: String,
    },
    /// A downloaded file did not parse as what it should be; it was not kept.
    #[error("file downloaded from {url} is invalid: {source}")]
    InvalidDownload {
        /// The address it came from.
        url: String,
        /// Why it was rejected.
        source: Box<EvalError>,
    },
    /// Two per-item slices that must be paired (the same items under two conditions) differ
    /// in length.
    #[error("paired inputs differ in length: {left} vs {right}")]
    LengthMismatch {
        /// Length of the first slice.
        left: usize,
        /// Length of the second slice.
        right: usize,
    },
    /// Settings that cannot work (window, BOS policy, …).
    #[error("invalid evaluation settings: {0}")]
    Settings(String),
    /// A result file could not be written.
    #[error("cannot write {path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] negdiff_model::ModelError),
    /// An intervention or neuron set failed.
    #[error(transparent)]
    Intervention(#[from] negdiff_interventions::InterventionError),
    /// Scoring failed.
    #[error(transparent)]
    Scoring(#[from] negdiff_scoring::ScoringError),
}

impl EvalError {
    /// Shorthand for [`EvalError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`EvalError::Line`].
    pub(crate) fn line(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self::Line {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// Shorthand for [`EvalError::File`].
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            message: message.into(),
        }
    }
}
