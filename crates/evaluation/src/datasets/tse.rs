//! Targeted syntactic evaluation (Marvin & Linzen, EMNLP 2018), the `EMNLP2018/templates`
//! pickles.
//!
//! Each file is a pickled dict from case name to a list of tuples, `(good, bad)` or, in the
//! NPI files, `(good, intrusive, bad)`: the grammatical sentence is the first element and the
//! ungrammatical one the last. The released files mix pickle protocol 0 (Python 2 `str`
//! opcodes, which decode to *bytes*) and protocol 3 (unicode strings), so both bytes and
//! strings are accepted and bytes are decoded as UTF-8.
//!
//! Pickles are decoded with `serde-pickle`, which interprets the opcode stream as data only
//! and never imports or calls anything; a pickle that refers to a Python global (a class or
//! function, as malicious or object pickles do) is rejected, because the decoder is left in
//! its default mode, where unresolved globals are an error.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_pickle::{DeOptions, HashableValue, Value};

use super::{read_bytes, sorted_files_with_ext};
use crate::EvalError;

/// One TSE minimal pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsePair {
    /// The file stem, e.g. `simple_agrmt`.
    pub file: String,
    /// The case (dictionary key), e.g. `sing_MS_MV`.
    pub case: String,
    /// The 0-based position of the tuple in the case's list.
    pub index: usize,
    /// The grammatical sentence (the tuple's first element).
    pub good: String,
    /// The ungrammatical sentence (the tuple's last element).
    pub bad: String,
}

/// Loads TSE pairs from every `*.pickle` file in `dir`.
///
/// Files are read in byte-wise sorted name order and cases in sorted name order within a
/// file; `per_case = Some(n)` keeps the first `n` tuples of each case in list order.
///
/// # Errors
///
/// The directory or a file cannot be read, the directory holds no `.pickle` file, a file is
/// empty or not a decodable pickle (including one referring to Python globals), the top
/// level is not a non-empty dict, a key is not a string, a case is not a list, or a tuple
/// (checked only within the kept first `n`) is not of 2 or 3 strings. Errors name the file
/// and, for items, the case and index.
pub fn load_tse(dir: &Path, per_case: Option<usize>) -> Result<Vec<TsePair>, EvalError> {
    let files = sorted_files_with_ext(dir, "pickle")?;
    if files.is_empty() {
        return Err(EvalError::file(
            dir,
            "no *.pickle files (expected TSE templates)",
        ));
    }
    let mut pairs = Vec::new();
    for file in &files {
        let bytes = read_bytes(file)?;
        pairs.extend(parse_tse_pickle(&bytes, file, per_case)?);
    }
    Ok(pairs)
}

/// Decodes one TSE pickle (named `path` in errors and, by stem, in the pairs).
pub(crate) fn parse_tse_pickle(
    bytes: &[u8],
    path: &Path,
    per_case: Option<usize>,
) -> Result<Vec<TsePair>, EvalError> {
    if bytes.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    // Default options: STRING opcodes stay bytes (decoded below), globals are an error.
    let value =
        serde_pickle::value_from_slice(bytes, DeOptions::new()).map_err(|e| EvalError::Pickle {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let Value::Dict(dict) = value else {
        return Err(EvalError::file(
            path,
            format!("top level is {}, expected a dict of cases", kind(&value)),
        ));
    };
    if dict.is_empty() {
        return Err(EvalError::file(path, "the dict of cases is empty"));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut cases = Vec::with_capacity(dict.len());
    for (key, items) in dict {
        let case = match key {
            HashableValue::String(s) => s,
            HashableValue::Bytes(b) => String::from_utf8(b)
                .map_err(|_| EvalError::file(path, "a case name (dict key) is not valid UTF-8"))?,
            other => {
                return Err(EvalError::file(
                    path,
                    format!("a case name (dict key) is {other:?}, expected a string"),
                ));
            }
        };
        cases.push((case, items));
    }
    // The pickle's BTreeMap orders bytes keys apart from str keys; sort the decoded names so
    // the order is by name whatever the protocol.
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = cases.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(EvalError::file(
            path,
            format!("case {:?} appears twice (as bytes and as str)", w[0].0),
        ));
    }

    let mut pairs = Vec::new();
    for (case, items) in cases {
        let Value::List(items) = items else {
            return Err(EvalError::file(
                path,
                format!("case {case:?} is {}, expected a list", kind(&items)),
            ));
        };
        let keep = per_case.unwrap_or(usize::MAX).min(items.len());
        for (index, item) in items.into_iter().take(keep).enumerate() {
            let item_err = |message: String| EvalError::TseItem {
                path: path.to_path_buf(),
                case: case.clone(),
                index,
                message,
            };
            let elements = match item {
                Value::Tuple(v) | Value::List(v) => v,
                other => return Err(item_err(format!("is {}, expected a tuple", kind(&other)))),
            };
            if !(2..=3).contains(&elements.len()) {
                return Err(item_err(format!(
                    "tuple has {} elements, expected 2 (good, bad) or 3 (good, intrusive, bad)",
                    elements.len()
                )));
            }
            let mut texts = Vec::with_capacity(elements.len());
            for (position, element) in elements.into_iter().enumerate() {
                let text = match element {
                    Value::String(s) => s,
                    Value::Bytes(b) => String::from_utf8(b)
                        .map_err(|_| item_err(format!("element {position} is not valid UTF-8")))?,
                    other => {
                        return Err(item_err(format!(
                            "element {position} is {}, expected a string",
                            kind(&other)
                        )));
                    }
                };
                texts.push(text);
            }
            let (Some(bad), Some(good)) = (texts.pop(), texts.into_iter().next()) else {
                return Err(item_err("tuple is too short".into()));
            };
            pairs.push(TsePair {
                file: stem.clone(),
                case: case.clone(),
                index,
                good,
                bad,
            });
        }
    }
    Ok(pairs)
}

/// A short name for a pickle value's type, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a str",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) => "a set",
        Value::FrozenSet(_) => "a frozenset",
        Value::Dict(_) => "a dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol-0 pickle of `{'c': [('good one', 'bad one'), ('g2', 'i2', 'b2')]}` as
    /// Python 2 writes it (STRING opcodes, i.e. bytes), and `{'a': [(u'x', u'y')]}` with
    /// UNICODE opcodes.
    const PROTO0: &[u8] = b"(dp0\nS'c'\np1\n(lp2\n(S'good one'\np3\nS'bad one'\np4\ntp5\na(S'g2'\nS'i2'\nS'b2'\ntp6\nas.";
    const PROTO0_UNICODE: &[u8] = b"(dp0\nVa\np1\n(lp2\n(Vx\nVy\ntp3\nas.";

    #[test]
    fn decodes_protocol0_bytes_and_unicode() {
        let pairs = parse_tse_pickle(PROTO0, Path::new("d/agr.pickle"), None).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].file, "agr");
        assert_eq!(pairs[0].case, "c");
        assert_eq!(
            (pairs[0].good.as_str(), pairs[0].bad.as_str()),
            ("good one", "bad one")
        );
        // A 3-tuple: first is good, last is bad, the middle (intrusive) is dropped.
        assert_eq!(
            (pairs[1].good.as_str(), pairs[1].bad.as_str()),
            ("g2", "b2")
        );
        assert_eq!(pairs[1].index, 1);

        let pairs = parse_tse_pickle(PROTO0_UNICODE, Path::new("u.pickle"), None).unwrap();
        assert_eq!(pairs[0].good, "x");
        assert_eq!(pairs[0].bad, "y");

        let pairs = parse_tse_pickle(PROTO0, Path::new("agr.pickle"), Some(1)).unwrap();
        assert_eq!(pairs.len(), 1);
    }

    #[test]
    fn rejects_globals_without_running_them() {
        // `os.system('echo pwned')`: the classic code-execution pickle.
        let evil = b"cos\nsystem\n(S'echo pwned'\ntR.";
        let err = parse_tse_pickle(evil, Path::new("evil.pickle"), None).unwrap_err();
        assert!(
            matches!(err, EvalError::Pickle { .. } | EvalError::File { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("evil.pickle"), "{err}");
    }

    #[test]
    fn shape_errors_name_file_case_and_index() {
        let err = parse_tse_pickle(b"", Path::new("e.pickle"), None).unwrap_err();
        assert!(matches!(err, EvalError::Empty { .. }), "{err}");

        // A list at top level.
        let err = parse_tse_pickle(b"(lp0\n.", Path::new("l.pickle"), None).unwrap_err();
        assert!(err.to_string().contains("expected a dict"), "{err}");

        // {'c': [('only',)]}
        let one = b"(dp0\nS'c'\n(l(S'only'\ntas.";
        match parse_tse_pickle(one, Path::new("one.pickle"), None).unwrap_err() {
            EvalError::TseItem { case, index, .. } => {
                assert_eq!(case, "c");
                assert_eq!(index, 0);
            }
            other => panic!("unexpected {other:?}"),
        }

        // {'c': [('a', 'b'), ('a', 1)]}
        let int = b"(dp0\nS'c'\n(l(S'a'\nS'b'\nta(S'a'\nI1\ntas.";
        let err = parse_tse_pickle(int, Path::new("int.pickle"), None).unwrap_err();
        assert!(err.to_string().contains("item 1"), "{err}");
        // The bad item lies beyond the first one, so per_case = 1 never reaches it.
        assert_eq!(
            parse_tse_pickle(int, Path::new("int.pickle"), Some(1))
                .unwrap()
                .len(),
            1
        );
    }
}
