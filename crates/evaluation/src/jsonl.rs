//! Results written as they are computed, in whole chunks, so that a killed run resumes where it
//! stopped and gives bit-identical results.
//!
//! Items are processed in fixed chunks; a chunk's lines are appended and synced together. On
//! restart, complete chunks already in the file are kept and a trailing partial chunk (or a
//! half-written line) is cut off and recomputed. Because a chunk's batching depends only on its
//! own items, resumed and uninterrupted runs produce the same numbers.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{EvalError, Result};

fn io_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads the complete JSON lines of `path` (missing file → none). Stops at the first line that
/// is not valid JSON or lacks its newline: everything from there on is an interrupted write.
pub fn read_complete_lines(path: &Path) -> Result<Vec<Value>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| io_err(path, e))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        match serde_json::from_str::<Value>(line.trim_end()) {
            Ok(v) => out.push(v),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// Rewrites `path` to hold exactly `lines`.
fn rewrite(path: &Path, lines: &[Value]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        for v in lines {
            writeln!(f, "{v}").map_err(|e| io_err(&tmp, e))?;
        }
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Runs `compute` over `items` in chunks of `chunk`, appending each chunk's JSON lines to
/// `path`; chunks already complete in `path` are not recomputed. Returns all lines, in item
/// order. `compute` must return one line per item.
pub fn run_chunked<T>(
    path: &Path,
    items: &[T],
    chunk: usize,
    mut compute: impl FnMut(&[T]) -> Result<Vec<Value>>,
    mut on_chunk: impl FnMut(usize),
) -> Result<Vec<Value>> {
    let chunk = chunk.max(1);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut lines = read_complete_lines(path)?;
    let keep = if lines.len() >= items.len() {
        items.len()
    } else {
        (lines.len() / chunk) * chunk
    };
    if keep != lines.len() || lines.len() > items.len() {
        lines.truncate(keep);
        rewrite(path, &lines)?;
    } else if lines.is_empty() {
        rewrite(path, &[])?;
    }
    on_chunk(keep);
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let mut done = keep;
    for part in items[keep..].chunks(chunk) {
        let new = compute(part)?;
        if new.len() != part.len() {
            return Err(EvalError::Settings(format!(
                "internal: {} result lines for {} items",
                new.len(),
                part.len()
            )));
        }
        let mut buf = String::new();
        for v in &new {
            buf.push_str(&v.to_string());
            buf.push('\n');
        }
        file.write_all(buf.as_bytes())
            .map_err(|e| io_err(path, e))?;
        file.sync_data().map_err(|e| io_err(path, e))?;
        done += part.len();
        on_chunk(done);
        lines.extend(new);
    }
    Ok(lines)
}

/// A path inside a run directory.
pub fn unit_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_whole_chunks_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let items: Vec<u32> = (0..10).collect();
        let mut calls = 0;
        let all = run_chunked(
            &path,
            &items,
            3,
            |c| {
                calls += 1;
                Ok(c.iter().map(|i| serde_json::json!({"i": i})).collect())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(calls, 4);
        // Simulate a kill in the middle of chunk 3 (7 complete lines + half a line).
        let text = std::fs::read_to_string(&path).unwrap();
        let cut: String = text
            .lines()
            .take(7)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + "{\"i\":";
        std::fs::write(&path, cut).unwrap();
        let mut recomputed = Vec::new();
        let again = run_chunked(
            &path,
            &items,
            3,
            |c| {
                recomputed.extend_from_slice(c);
                Ok(c.iter().map(|i| serde_json::json!({"i": i})).collect())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(recomputed, vec![6, 7, 8, 9]);
        assert_eq!(again, all);
        assert_eq!(read_complete_lines(&path).unwrap(), all);
        // Complete file: nothing recomputed.
        let none = run_chunked(&path, &items, 3, |_| panic!("recomputed"), |_| {}).unwrap();
        assert_eq!(none, all);
    }
}
