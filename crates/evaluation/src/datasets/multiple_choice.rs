//! Multiple-choice items in the lm-eval-harness style: one JSON object per line,
//! `{"context": str, "choices": [str, ...], "gold": int}`.
//!
//! The gold index may be given under `gold`, `label` or `answer` (the names different task
//! exports use); it must be a non-negative JSON integer. If more than one is present they
//! must agree. Other fields are ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{jsonl_lines, parse_json_line, read_utf8};
use crate::EvalError;

/// One multiple-choice item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McItem {
    /// The item's 0-based position among the file's non-blank lines.
    pub id: usize,
    /// The context every choice continues.
    pub context: String,
    /// The candidate continuations (at least one).
    pub choices: Vec<String>,
    /// The index of the correct choice in `choices`.
    pub gold: usize,
}

/// One line as written; the gold index under any of its accepted names.
#[derive(Deserialize)]
struct RawItem {
    context: String,
    choices: Vec<String>,
    gold: Option<u64>,
    label: Option<u64>,
    answer: Option<u64>,
}

/// Loads multiple-choice items from a JSON-lines file.
///
/// # Errors
///
/// The file cannot be read or is not UTF-8, it has no item ([`EvalError::Empty`]), or a line
/// is not JSON, lacks `context` or `choices`, has no choices, has no gold index (under `gold`,
/// `label` or `answer`), has gold indices that disagree, or has a gold index out of range.
/// Errors name the file and the 1-based line.
pub fn load_multiple_choice(path: &Path) -> Result<Vec<McItem>, EvalError> {
    let text = read_utf8(path)?;
    let mut items = Vec::new();
    for (line, line_text) in jsonl_lines(&text) {
        let raw: RawItem = parse_json_line(line_text, path, line)?;
        if raw.choices.is_empty() {
            return Err(EvalError::line(path, line, "`choices` is empty"));
        }
        let given: Vec<u64> = [raw.gold, raw.label, raw.answer]
            .into_iter()
            .flatten()
            .collect();
        let Some(&gold) = given.first() else {
            return Err(EvalError::line(
                path,
                line,
                "no gold index (expected `gold`, `label` or `answer`)",
            ));
        };
        if given.iter().any(|&g| g != gold) {
            return Err(EvalError::line(
                path,
                line,
                format!("gold indices disagree: {given:?}"),
            ));
        }
        let gold = usize::try_from(gold)
            .ok()
            .filter(|&g| g < raw.choices.len())
            .ok_or_else(|| {
                EvalError::line(
                    path,
                    line,
                    format!(
                        "gold index {gold} out of range for {} choices",
                        raw.choices.len()
                    ),
                )
            })?;
        items.push(McItem {
            id: items.len(),
            context: raw.context,
            choices: raw.choices,
            gold,
        });
    }
    if items.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<McItem>, EvalError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mc.jsonl");
        std::fs::write(&path, text).unwrap();
        load_multiple_choice(&path)
    }

    #[test]
    fn accepts_gold_label_and_answer() {
        let items = load(concat!(
            r#"{"context": "a", "choices": ["x", "y"], "gold": 1}"#,
            "\n\n",
            r#"{"context": "b", "choices": ["x", "y", "z"], "label": 2, "extra": true}"#,
            "\n",
            r#"{"context": "c", "choices": ["x"], "answer": 0, "gold": 0}"#,
            "\n",
        ))
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!((items[0].id, items[0].gold), (0, 1));
        assert_eq!((items[1].id, items[1].gold), (1, 2));
        assert_eq!(items[2].gold, 0);
    }

    #[test]
    fn errors_name_the_line() {
        let ok = r#"{"context": "a", "choices": ["x", "y"], "gold": 0}"#;
        for (bad, needle) in [
            (
                r#"{"context": "a", "choices": ["x", "y"], "gold": 2}"#,
                "out of range",
            ),
            (
                r#"{"context": "a", "choices": ["x", "y"], "gold": -1}"#,
                "mc.jsonl:2:",
            ),
            (
                r#"{"context": "a", "choices": ["x", "y"]}"#,
                "no gold index",
            ),
            (r#"{"context": "a", "choices": [], "gold": 0}"#, "empty"),
            (
                r#"{"context": "a", "choices": ["x", "y"], "gold": 0, "label": 1}"#,
                "disagree",
            ),
            (r#"{"choices": ["x", "y"], "gold": 0}"#, "context"),
        ] {
            let err = load(&format!("{ok}\n{bad}\n")).unwrap_err().to_string();
            assert!(err.contains("mc.jsonl:2:"), "{err}");
            assert!(err.contains(needle), "{err}");
        }
        assert!(matches!(load("\n"), Err(EvalError::Empty { .. })));
    }
}
