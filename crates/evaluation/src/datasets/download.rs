//! Getting the BLiMP files on a networked machine.
//!
//! The crate has no HTTP client: the caller injects one as a `fetch` function from URL to
//! bytes, which keeps this code testable offline (tests fetch from local files) and leaves
//! the choice of client, proxy and timeout to the command-line tool.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::blimp::parse_blimp_text;
use super::utf8_str;
use crate::EvalError;

/// Where the BLiMP paradigm files are published (the data folder of the authors' repository).
pub const BLIMP_BASE_URL: &str = "https://raw.githubusercontent.com/alexwarstadt/blimp/master/data";

/// The 67 BLiMP paradigm names (file stems), in byte-wise sorted order.
pub const BLIMP_PARADIGMS: [&str; 67] = [
    "adjunct_island",
    "anaphor_gender_agreement",
    "anaphor_number_agreement",
    "animate_subject_passive",
    "animate_subject_trans",
    "causative",
    "complex_NP_island",
    "coordinate_structure_constraint_complex_left_branch",
    "coordinate_structure_constraint_object_extraction",
    "determiner_noun_agreement_1",
    "determiner_noun_agreement_2",
    "determiner_noun_agreement_irregular_1",
    "determiner_noun_agreement_irregular_2",
    "determiner_noun_agreement_with_adj_2",
    "determiner_noun_agreement_with_adj_irregular_1",
    "determiner_noun_agreement_with_adj_irregular_2",
    "determiner_noun_agreement_with_adjective_1",
    "distractor_agreement_relational_noun",
    "distractor_agreement_relative_clause",
    "drop_argument",
    "ellipsis_n_bar_1",
    "ellipsis_n_bar_2",
    "existential_there_object_raising",
    "existential_there_quantifiers_1",
    "existential_there_quantifiers_2",
    "existential_there_subject_raising",
    "expletive_it_object_raising",
    "inchoative",
    "intransitive",
    "irregular_past_participle_adjectives",
    "irregular_past_participle_verbs",
    "irregular_plural_subject_verb_agreement_1",
    "irregular_plural_subject_verb_agreement_2",
    "left_branch_island_echo_question",
    "left_branch_island_simple_question",
    "matrix_question_npi_licensor_present",
    "npi_present_1",
    "npi_present_2",
    "only_npi_licensor_present",
    "only_npi_scope",
    "passive_1",
    "passive_2",
    "principle_A_c_command",
    "principle_A_case_1",
    "principle_A_case_2",
    "principle_A_domain_1",
    "principle_A_domain_2",
    "principle_A_domain_3",
    "principle_A_reconstruction",
    "regular_plural_subject_verb_agreement_1",
    "regular_plural_subject_verb_agreement_2",
    "sentential_negation_npi_licensor_present",
    "sentential_negation_npi_scope",
    "sentential_subject_island",
    "superlative_quantifiers_1",
    "superlative_quantifiers_2",
    "tough_vs_raising_1",
    "tough_vs_raising_2",
    "transitive",
    "wh_island",
    "wh_questions_object_gap",
    "wh_questions_subject_gap",
    "wh_questions_subject_gap_long_distance",
    "wh_vs_that_no_gap",
    "wh_vs_that_no_gap_long_distance",
    "wh_vs_that_with_gap",
    "wh_vs_that_with_gap_long_distance",
];

/// The file name and download address of every BLiMP paradigm, in [`BLIMP_PARADIGMS`] order.
pub fn blimp_urls() -> Vec<(String, String)> {
    BLIMP_PARADIGMS
        .iter()
        .map(|name| {
            let file = format!("{name}.jsonl");
            let url = format!("{BLIMP_BASE_URL}/{file}");
            (file, url)
        })
        .collect()
}

/// Makes sure `cache_dir` holds all 67 BLiMP files and returns it (ready for
/// [`load_blimp`](super::load_blimp)).
///
/// The directory is created if needed. Every file already there is checked to parse as
/// BLiMP JSON lines of its own paradigm; a missing or invalid file is fetched with `fetch`
/// (given the URL, returning the body or a message), checked the same way before it is
/// kept, written to a temporary file in `cache_dir` and renamed into place, so an
/// interrupted run never leaves a partial file under the final name.
///
/// # Errors
///
/// The directory or a file cannot be created or written, `fetch` fails
/// ([`EvalError::Fetch`]), or a fetched file is not a valid BLiMP file for its paradigm
/// ([`EvalError::InvalidDownload`]; nothing is written then).
pub fn ensure_blimp(
    cache_dir: &Path,
    fetch: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<PathBuf, EvalError> {
    std::fs::create_dir_all(cache_dir).map_err(|e| EvalError::io(cache_dir, e))?;
    for (paradigm, (file, url)) in BLIMP_PARADIGMS.iter().zip(blimp_urls()) {
        let path = cache_dir.join(&file);
        if path.is_file() {
            let existing = std::fs::read(&path).map_err(|e| EvalError::io(&path, e))?;
            if validate(&existing, &path, paradigm).is_ok() {
                continue;
            }
            // A corrupt cached copy (an earlier tool, a full disk) is replaced rather than
            // reported: the download is the authority.
        }
        let body = fetch(&url).map_err(|message| EvalError::Fetch {
            url: url.clone(),
            message,
        })?;
        validate(&body, &path, paradigm).map_err(|e| EvalError::InvalidDownload {
            url: url.clone(),
            source: Box::new(e),
        })?;
        write_atomically(cache_dir, &path, &body)?;
    }
    Ok(cache_dir.to_path_buf())
}

/// Checks that `bytes` are a BLiMP file of `paradigm`: UTF-8, every line a pair, at least
/// one pair, and every pair's `UID` the paradigm's name.
fn validate(bytes: &[u8], path: &Path, paradigm: &str) -> Result<(), EvalError> {
    let text = utf8_str(bytes, path)?;
    let pairs = parse_blimp_text(text, path, None)?;
    if pairs.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    if let Some(p) = pairs.iter().find(|p| p.uid != paradigm) {
        return Err(EvalError::line(
            path,
            p.line,
            format!("UID {:?} is not the paradigm {paradigm:?}", p.uid),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in `dir` (the same file system, so the
/// final rename is atomic).
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The process id keeps two concurrent fillers of one cache from sharing a temporary.
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| EvalError::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| EvalError::io(&tmp, e))?;
        file.sync_all().map_err(|e| EvalError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| EvalError::io(path, e))
    })();
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn body(paradigm: &str) -> Vec<u8> {
        format!(
            "{{\"sentence_good\": \"A.\", \"sentence_bad\": \"B.\", \"field\": \"syntax\", \
             \"linguistics_term\": \"t\", \"UID\": \"{paradigm}\", \"pairID\": \"0\"}}\n"
        )
        .into_bytes()
    }

    #[test]
    fn urls_cover_all_paradigms_in_order() {
        let urls = blimp_urls();
        assert_eq!(urls.len(), 67);
        assert_eq!(urls[0].0, "adjunct_island.jsonl");
        assert_eq!(
            urls[0].1,
            "https://raw.githubusercontent.com/alexwarstadt/blimp/master/data/adjunct_island.jsonl"
        );
        let mut sorted = BLIMP_PARADIGMS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, BLIMP_PARADIGMS.to_vec());
    }

    #[test]
    fn fills_missing_and_replaces_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("blimp");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("causative.jsonl"), body("causative")).unwrap();
        std::fs::write(cache.join("wh_island.jsonl"), b"{truncated").unwrap();
        let fetched = RefCell::new(Vec::new());
        let fetch = |url: &str| -> Result<Vec<u8>, String> {
            fetched.borrow_mut().push(url.to_string());
            let name = url.rsplit('/').next().unwrap().trim_end_matches(".jsonl");
            Ok(body(name))
        };
        assert_eq!(ensure_blimp(&cache, &fetch).unwrap(), cache);
        let fetched = fetched.into_inner();
        assert_eq!(fetched.len(), 66);
        assert!(!fetched.iter().any(|u| u.ends_with("/causative.jsonl")));
        assert!(fetched.iter().any(|u| u.ends_with("/wh_island.jsonl")));
        let pairs = crate::datasets::load_blimp(&cache, None, None).unwrap();
        assert_eq!(pairs.len(), 67);
        // No temporaries left behind.
        let leftovers = std::fs::read_dir(&cache)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0);
        // A second run fetches nothing.
        let never = |url: &str| -> Result<Vec<u8>, String> { Err(format!("unexpected {url}")) };
        ensure_blimp(&cache, &never).unwrap();
    }

    #[test]
    fn fetch_failures_and_invalid_bodies_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let offline = |_: &str| -> Result<Vec<u8>, String> { Err("no network".into()) };
        let err = ensure_blimp(dir.path(), &offline).unwrap_err();
        assert!(matches!(err, EvalError::Fetch { .. }), "{err}");
        assert!(err.to_string().contains("adjunct_island.jsonl"), "{err}");

        let wrong = |_: &str| -> Result<Vec<u8>, String> { Ok(body("causative")) };
        let err = ensure_blimp(dir.path(), &wrong).unwrap_err();
        assert!(matches!(err, EvalError::InvalidDownload { .. }), "{err}");
        assert!(!dir.path().join("adjunct_island.jsonl").exists());

        let html = |_: &str| -> Result<Vec<u8>, String> { Ok(b"<html>404</html>".to_vec()) };
        let err = ensure_blimp(dir.path(), &html).unwrap_err();
        assert!(err.to_string().contains("adjunct_island.jsonl:1:"), "{err}");
    }
}
