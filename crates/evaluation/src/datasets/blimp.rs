//! BLiMP (Warstadt et al., TACL 2020): 67 paradigms of 1,000 minimal pairs each, one JSON
//! object per line, one `<paradigm>.jsonl` file per paradigm.
//!
//! Only the fields the evaluation uses are read; the prefix-method fields
//! (`one_prefix_prefix`, `two_prefix_word`, ...) and flags are ignored. In the released data
//! `pairID` is a JSON *string* of digits (`"pairID": "0"`); a JSON number is accepted too.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{jsonl_lines, parse_json_line, read_utf8, sorted_files_with_ext};
use crate::EvalError;

/// One BLiMP minimal pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlimpPair {
    /// The paradigm identifier (`UID` field), e.g. `adjunct_island`; equals the file stem in
    /// the released data.
    pub uid: String,
    /// The pair's index within its paradigm (`pairID`, 0-999 in the released data).
    pub pair_id: u64,
    /// The linguistics subfield (`field`): `morphology`, `syntax`, `semantics`,
    /// `syntax_semantics` (and, in one paradigm of the released data, `syntax/semantics`).
    pub field: String,
    /// The phenomenon (`linguistics_term`), one of 12, e.g. `island_effects`.
    pub linguistics_term: String,
    /// The acceptable sentence.
    pub sentence_good: String,
    /// The unacceptable sentence.
    pub sentence_bad: String,
    /// The file the pair was read from.
    pub file: PathBuf,
    /// The pair's line (1-based) in `file`.
    pub line: usize,
}

/// `pairID` as it may appear: the released files store a digit string, but a number is
/// the obvious alternative for re-serialised copies.
#[derive(Deserialize)]
#[serde(untagged)]
enum PairId {
    Number(u64),
    Text(String),
}

/// The fields of one line that the evaluation needs; serde reports the first one missing.
#[derive(Deserialize)]
struct RawPair {
    sentence_good: String,
    sentence_bad: String,
    field: String,
    linguistics_term: String,
    #[serde(rename = "UID")]
    uid: String,
    #[serde(rename = "pairID")]
    pair_id: PairId,
}

/// Loads BLiMP pairs from `dir`, a directory of `<paradigm>.jsonl` files.
///
/// Files are read in byte-wise sorted name order. `paradigms` restricts loading to the files
/// whose stem is in the list (the output still follows sorted file order, not the list's
/// order); a name with no file is an [`EvalError::UnknownParadigm`]. `per_paradigm = Some(n)`
/// keeps the first `n` pairs of each file in file order (lines after them are not read, so
/// they are not validated either). Blank lines are skipped.
///
/// # Errors
///
/// The directory or a file cannot be read, a file is not UTF-8, the directory holds no
/// `.jsonl` file, or a line is not JSON or lacks one of `sentence_good`, `sentence_bad`,
/// `field`, `linguistics_term`, `UID`, `pairID` (error names the file and 1-based line).
pub fn load_blimp(
    dir: &Path,
    paradigms: Option<&[String]>,
    per_paradigm: Option<usize>,
) -> Result<Vec<BlimpPair>, EvalError> {
    let mut files = sorted_files_with_ext(dir, "jsonl")?;
    if files.is_empty() {
        return Err(EvalError::file(
            dir,
            "no *.jsonl files (expected BLiMP paradigms)",
        ));
    }
    if let Some(wanted) = paradigms {
        let stem_of = |p: &PathBuf| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let missing: Vec<String> = wanted
            .iter()
            .filter(|name| !files.iter().any(|f| stem_of(f) == **name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(EvalError::UnknownParadigm {
                dir: dir.to_path_buf(),
                names: missing,
            });
        }
        files.retain(|f| wanted.contains(&stem_of(f)));
    }
    let mut pairs = Vec::new();
    for file in &files {
        let text = read_utf8(file)?;
        pairs.extend(parse_blimp_text(&text, file, per_paradigm)?);
    }
    Ok(pairs)
}

/// Parses the text of one BLiMP file (named `path` in errors and in the pairs), keeping at
/// most `limit` pairs.
pub(crate) fn parse_blimp_text(
    text: &str,
    path: &Path,
    limit: Option<usize>,
) -> Result<Vec<BlimpPair>, EvalError> {
    let mut pairs = Vec::new();
    for (line, line_text) in jsonl_lines(text) {
        if limit.is_some_and(|n| pairs.len() >= n) {
            break;
        }
        let raw: RawPair = parse_json_line(line_text, path, line)?;
        let pair_id = match raw.pair_id {
            PairId::Number(n) => n,
            PairId::Text(s) => s.trim().parse::<u64>().map_err(|_| {
                EvalError::line(
                    path,
                    line,
                    format!("pairID {s:?} is not a non-negative integer"),
                )
            })?,
        };
        pairs.push(BlimpPair {
            uid: raw.uid,
            pair_id,
            field: raw.field,
            linguistics_term: raw.linguistics_term,
            sentence_good: raw.sentence_good,
            sentence_bad: raw.sentence_bad,
            file: path.to_path_buf(),
            line,
        });
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BLiMP line; `id` is the raw JSON of `pairID`.
    fn line(uid: &str, id: &str) -> String {
        let n = id.trim_matches('"');
        format!(
            r#"{{"sentence_good": "Good {n}.", "sentence_bad": "Bad {n}.", "field": "syntax", "linguistics_term": "island_effects", "UID": "{uid}", "simple_LM_method": true, "pairID": {id}}}"#
        )
    }

    #[test]
    fn parses_string_and_number_pair_ids() {
        let text = format!("{}\n\n{}\n", line("p", "\"7\""), line("p", "8"));
        let pairs = parse_blimp_text(&text, Path::new("p.jsonl"), None).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].pair_id, 7);
        assert_eq!(pairs[0].line, 1);
        assert_eq!(pairs[1].pair_id, 8);
        assert_eq!(pairs[1].line, 3);
        assert_eq!(pairs[1].sentence_bad, "Bad 8.");
    }

    #[test]
    fn limit_keeps_first_pairs() {
        let text = format!("{}\n{}\nnot json\n", line("p", "0"), line("p", "1"));
        let pairs = parse_blimp_text(&text, Path::new("p.jsonl"), Some(2)).unwrap();
        assert_eq!(pairs.len(), 2);
        // Without the limit the broken third line is reached.
        let err = parse_blimp_text(&text, Path::new("p.jsonl"), None).unwrap_err();
        assert!(err.to_string().starts_with("p.jsonl:3:"), "{err}");
    }

    #[test]
    fn missing_field_and_bad_pair_id_name_the_line() {
        let text = format!(
            "{}\n{}\n",
            line("p", "0"),
            r#"{"sentence_good": "a", "field": "f", "linguistics_term": "t", "UID": "p", "pairID": "1"}"#
        );
        let err = parse_blimp_text(&text, Path::new("p.jsonl"), None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("p.jsonl:2:"), "{msg}");
        assert!(msg.contains("sentence_bad"), "{msg}");

        let text = line("p", "\"x1\"");
        let err = parse_blimp_text(&text, Path::new("p.jsonl"), None).unwrap_err();
        assert!(err.to_string().contains("pairID"), "{err}");
    }
}
