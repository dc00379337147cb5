//! Plain-text corpora (for perplexity) and one string field of a JSON-lines file.

use std::path::Path;

use super::{jsonl_lines, read_utf8};
use crate::EvalError;

/// Reads a whole UTF-8 text file.
///
/// A leading byte-order mark is removed (it is an encoding marker, not text a model should
/// see); everything else, line endings included, is returned unchanged.
///
/// # Errors
///
/// The file cannot be read, is not UTF-8 ([`EvalError::NotUtf8`], naming the line of the
/// first bad byte), or holds nothing but whitespace ([`EvalError::Empty`]).
pub fn read_text(path: &Path) -> Result<String, EvalError> {
    let mut text = read_utf8(path)?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    if text.trim().is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// Reads the string field `field` from every non-blank line of a JSON-lines file, in file
/// order.
///
/// # Errors
///
/// The file cannot be read or is not UTF-8, it has no non-blank line ([`EvalError::Empty`]),
/// or a line is not a JSON object whose `field` is a string (error names file and line).
pub fn read_jsonl_field(path: &Path, field: &str) -> Result<Vec<String>, EvalError> {
    let text = read_utf8(path)?;
    let mut out = Vec::new();
    for (line, line_text) in jsonl_lines(&text) {
        let value: serde_json::Value = serde_json::from_str(line_text)
            .map_err(|e| EvalError::line(path, line, e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(EvalError::line(path, line, "line is not a JSON object"));
        };
        match object.get(field) {
            Some(serde_json::Value::String(s)) => out.push(s.clone()),
            Some(other) => {
                return Err(EvalError::line(
                    path,
                    line,
                    format!("field {field:?} is not a string: {other}"),
                ));
            }
            None => {
                return Err(EvalError::line(path, line, format!("no field {field:?}")));
            }
        }
    }
    if out.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_text_and_rejects_bad_files() {
        let (_d, p) = write("a.txt", "\u{feff}Hello\r\nworld\n".as_bytes());
        assert_eq!(read_text(&p).unwrap(), "Hello\r\nworld\n");

        let (_d, p) = write("e.txt", b" \n\t");
        let err = read_text(&p).unwrap_err();
        assert!(matches!(err, EvalError::Empty { .. }));
        assert!(err.to_string().contains("e.txt"), "{err}");

        let (_d, p) = write("latin1.txt", b"caf\xe9\n");
        let err = read_text(&p).unwrap_err();
        assert!(err.to_string().contains("latin1.txt:1:"), "{err}");

        let err = read_text(Path::new("/nonexistent/x.txt")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.txt"), "{err}");
    }

    #[test]
    fn reads_jsonl_field() {
        let (_d, p) = write(
            "c.jsonl",
            b"{\"text\": \"a\", \"n\": 1}\n\n{\"text\": \"b\"}\n",
        );
        assert_eq!(read_jsonl_field(&p, "text").unwrap(), vec!["a", "b"]);

        let err = read_jsonl_field(&p, "n").unwrap_err();
        assert!(err.to_string().contains("c.jsonl:1:"), "{err}");
        assert!(err.to_string().contains("not a string"), "{err}");

        let (_d, p) = write("m.jsonl", b"{\"text\": \"a\"}\n\n{\"other\": \"b\"}\n");
        let err = read_jsonl_field(&p, "text").unwrap_err();
        assert!(err.to_string().contains("m.jsonl:3:"), "{err}");

        let (_d, p) = write("x.jsonl", b"[1]\n");
        assert!(
            read_jsonl_field(&p, "text")
                .unwrap_err()
                .to_string()
                .contains("x.jsonl:1:")
        );
    }
}
