//! Loaders for the evaluation data sets.
//!
//! Every loader is pure (no model involved) and deterministic: files are read in sorted name
//! order and items keep their file order, so "the first N" of anything is reproducible.
//! Malformed data gives an [`EvalError`] naming the file and, where the format has lines,
//! the 1-based line.
//!
//! - [`blimp`]: BLiMP minimal pairs (a directory of JSON-lines files, one per paradigm).
//! - [`tse`]: targeted syntactic evaluation pairs (Marvin & Linzen 2018 pickles).
//! - [`conllu`]: CoNLL-U treebanks (UD EWT) with byte spans of every word in its sentence,
//!   and token-to-word alignment.
//! - [`text`]: plain-text corpora and one string field of a JSON-lines file.
//! - [`multiple_choice`]: lm-eval-harness style multiple-choice JSON lines.
//! - [`download`]: filling a BLiMP cache directory through an injected fetcher.

pub mod blimp;
pub mod conllu;
pub mod download;
pub mod multiple_choice;
pub mod text;
pub mod tse;

pub use blimp::{BlimpPair, load_blimp};
pub use conllu::{
    Sentence, Word, align_tokens_to_words, joined_text, load_conllu, words_to_tokens,
};
pub use download::{BLIMP_PARADIGMS, blimp_urls, ensure_blimp};
pub use multiple_choice::{McItem, load_multiple_choice};
pub use text::{read_jsonl_field, read_text};
pub use tse::{TsePair, load_tse};

use std::path::Path;

use crate::EvalError;

/// Reads a whole file as bytes, naming the file in the error.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, EvalError> {
    std::fs::read(path).map_err(|e| EvalError::io(path, e))
}

/// Decodes bytes as UTF-8; on failure the error names `path` and the line of the first bad
/// byte, which is what a user needs to find it in an editor.
pub(crate) fn decode_utf8(bytes: Vec<u8>, path: &Path) -> Result<String, EvalError> {
    String::from_utf8(bytes).map_err(|e| not_utf8(e.as_bytes(), e.utf8_error(), path))
}

/// Like [`decode_utf8`], borrowing.
pub(crate) fn utf8_str<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, EvalError> {
    std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, e, path))
}

/// The error for `bytes` failing UTF-8 decoding with `error`.
fn not_utf8(bytes: &[u8], error: std::str::Utf8Error, path: &Path) -> EvalError {
    let offset = error.valid_up_to();
    let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
    EvalError::NotUtf8 {
        path: path.to_path_buf(),
        line,
        offset,
    }
}

/// Reads a UTF-8 file, naming the file (and line of a bad byte) in errors.
pub(crate) fn read_utf8(path: &Path) -> Result<String, EvalError> {
    decode_utf8(read_bytes(path)?, path)
}

/// Iterates over the lines of `text` as `(1-based line number, line)`, without the line
/// terminator. A trailing `\r` is dropped so files written on Windows parse the same.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().map(|(i, line)| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        (i + 1, line)
    })
}

/// The non-blank lines of a JSON-lines text as `(1-based line number, line)`. Blank lines
/// (including the usual one after the final newline) carry no item, so they are skipped
/// rather than reported, while line numbers still count them.
pub(crate) fn jsonl_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    numbered_lines(text).filter(|(_, line)| !line.trim().is_empty())
}

/// Parses one JSON-lines line into `T`, turning a parse failure into an error naming the
/// file and line.
pub(crate) fn parse_json_line<T: serde::de::DeserializeOwned>(
    line_text: &str,
    path: &Path,
    line: usize,
) -> Result<T, EvalError> {
    serde_json::from_str(line_text).map_err(|e| EvalError::line(path, line, e.to_string()))
}

/// The regular files directly in `dir` whose names end in `.{ext}`, sorted by file name
/// (byte order, so the order does not depend on the locale).
pub(crate) fn sorted_files_with_ext(
    dir: &Path,
    ext: &str,
) -> Result<Vec<std::path::PathBuf>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EvalError::io(dir, e))?;
        let path = entry.path();
        let is_file = entry
            .file_type()
            .map_err(|e| EvalError::io(&path, e))?
            .is_file()
            // A symlink to a file counts: caches and shared data are often linked in.
            || path.is_file();
        if is_file && path.extension().is_some_and(|x| x == ext) {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_error_names_line() {
        let bytes = b"ok\nstill ok\nbad \xff here\n".to_vec();
        match decode_utf8(bytes, Path::new("x.txt")) {
            Err(EvalError::NotUtf8 { line, offset, .. }) => {
                assert_eq!(line, 3);
                assert_eq!(offset, 16);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lines_are_numbered_from_one_and_strip_cr() {
        let lines: Vec<_> = numbered_lines("a\r\nb\n\nc").collect();
        assert_eq!(lines, vec![(1, "a"), (2, "b"), (3, ""), (4, "c")]);
        let lines: Vec<_> = jsonl_lines("a\r\n\n  \nc\n").collect();
        assert_eq!(lines, vec![(1, "a"), (4, "c")]);
    }
}
