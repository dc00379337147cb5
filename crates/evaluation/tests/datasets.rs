//! The loaders on the real data sets (BLiMP, TSE, UD EWT) and on broken files.
//!
//! The real data is found through `NEGDIFF_DATA` or at `<repo>/../shared/data`. Without it the
//! data tests print SKIP and pass, except under `CI=true`, where missing data is a failure so
//! that CI cannot silently test nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use negdiff_eval::EvalError;
use negdiff_eval::datasets::{
    BLIMP_PARADIGMS, align_tokens_to_words, blimp_urls, ensure_blimp, joined_text, load_blimp,
    load_conllu, load_multiple_choice, load_tse, words_to_tokens,
};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared data folder, or `None` (after printing SKIP) when it is absent outside CI.
fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("NEGDIFF_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    if dir.join("blimp").is_dir() && dir.join("tse").is_dir() && dir.join("ud_ewt").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: evaluation data not found at {} (set NEGDIFF_DATA to the folder holding \
             blimp/, tse/ and ud_ewt/)",
            dir.display()
        );
    }
    eprintln!("SKIP {test}: no evaluation data at {}", dir.display());
    None
}

#[test]
fn blimp_real_data() {
    let Some(data) = data_dir("blimp_real_data") else {
        return;
    };
    let dir = data.join("blimp");
    let pairs = load_blimp(&dir, None, None).unwrap();
    assert_eq!(pairs.len(), 67_000);

    let mut per_uid: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for p in &pairs {
        per_uid.entry(&p.uid).or_default().push(p.pair_id);
        assert_eq!(
            p.file.file_stem().unwrap().to_str().unwrap(),
            p.uid,
            "{p:?}"
        );
        assert!(!p.sentence_good.is_empty() && !p.sentence_bad.is_empty());
    }
    // The released data has 7 pairs whose two sentences are identical (a scorer comparing
    // them sees a tie): passive_1 lines 325 and 811, principle_A_case_2 lines 106, 288, 373,
    // 817 and 968.
    let identical: Vec<(&str, usize)> = pairs
        .iter()
        .filter(|p| p.sentence_good == p.sentence_bad)
        .map(|p| (p.uid.as_str(), p.line))
        .collect();
    assert_eq!(
        identical,
        vec![
            ("passive_1", 325),
            ("passive_1", 811),
            ("principle_A_case_2", 106),
            ("principle_A_case_2", 288),
            ("principle_A_case_2", 373),
            ("principle_A_case_2", 817),
            ("principle_A_case_2", 968),
        ]
    );
    assert_eq!(per_uid.len(), 67);
    let uids: Vec<&str> = per_uid.keys().copied().collect();
    assert_eq!(
        uids,
        BLIMP_PARADIGMS.to_vec(),
        "the download list must match the data"
    );
    for (uid, ids) in &per_uid {
        assert_eq!(*ids, (0..1000).collect::<Vec<u64>>(), "{uid}");
    }
    // Files in sorted name order, lines in file order.
    assert!(
        pairs
            .windows(2)
            .all(|w| (&w[0].file, w[0].line) < (&w[1].file, w[1].line))
    );

    let mut fields: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &pairs {
        *fields.entry(&p.field).or_default() += 1;
    }
    eprintln!("BLiMP fields: {fields:?}");

    let first50 = load_blimp(&dir, None, Some(50)).unwrap();
    assert_eq!(first50.len(), 3_350);
    for (chunk, uid) in first50.chunks(50).zip(BLIMP_PARADIGMS) {
        assert!(chunk.iter().all(|p| p.uid == uid));
        let lines: Vec<usize> = chunk.iter().map(|p| p.line).collect();
        assert_eq!(lines, (1..=50).collect::<Vec<_>>());
    }
    // The first 50 of a full load are the same pairs.
    let full_first: Vec<_> = pairs.iter().filter(|p| p.pair_id < 50).cloned().collect();
    assert_eq!(full_first, first50);

    // A paradigm filter keeps file order, not the list's.
    let wanted = vec!["wh_island".to_string(), "causative".to_string()];
    let some = load_blimp(&dir, Some(&wanted), Some(3)).unwrap();
    let got: Vec<(&str, u64)> = some.iter().map(|p| (p.uid.as_str(), p.pair_id)).collect();
    assert_eq!(
        got,
        vec![
            ("causative", 0),
            ("causative", 1),
            ("causative", 2),
            ("wh_island", 0),
            ("wh_island", 1),
            ("wh_island", 2)
        ]
    );
    let unknown = vec!["causative".to_string(), "no_such_paradigm".to_string()];
    match load_blimp(&dir, Some(&unknown), None) {
        Err(EvalError::UnknownParadigm { names, .. }) => {
            assert_eq!(names, vec!["no_such_paradigm"])
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn blimp_cache_filled_by_a_local_fetcher() {
    let Some(data) = data_dir("blimp_cache_filled_by_a_local_fetcher") else {
        return;
    };
    let src = data.join("blimp");
    let urls: BTreeMap<String, String> = blimp_urls().into_iter().map(|(f, u)| (u, f)).collect();
    let fetch = |url: &str| -> Result<Vec<u8>, String> {
        let file = urls.get(url).ok_or_else(|| format!("unknown URL {url}"))?;
        std::fs::read(src.join(file)).map_err(|e| e.to_string())
    };
    let tmp = tempfile::tempdir().unwrap();
    let cache = ensure_blimp(&tmp.path().join("blimp"), &fetch).unwrap();
    let cached = load_blimp(&cache, None, Some(5)).unwrap();
    let original = load_blimp(&src, None, Some(5)).unwrap();
    assert_eq!(cached.len(), 335);
    for (c, o) in cached.iter().zip(&original) {
        assert_eq!(
            (&c.uid, c.pair_id, &c.sentence_good, &c.sentence_bad, c.line),
            (&o.uid, o.pair_id, &o.sentence_good, &o.sentence_bad, o.line)
        );
    }
}

#[test]
fn tse_real_data() {
    let Some(data) = data_dir("tse_real_data") else {
        return;
    };
    let dir = data.join("tse");
    let pairs = load_tse(&dir, None).unwrap();
    let mut per_case: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &pairs {
        *per_case.entry((&p.file, &p.case)).or_default() += 1;
        *per_file.entry(&p.file).or_default() += 1;
        assert!(!p.good.is_empty() && !p.bad.is_empty());
        assert_ne!(p.good, p.bad, "{p:?}");
    }
    let distinct_names: std::collections::BTreeSet<&str> =
        per_case.keys().map(|(_, c)| *c).collect();
    eprintln!(
        "TSE: {} files, {} (file, case) cases, {} distinct case names, {} pairs",
        per_file.len(),
        per_case.len(),
        distinct_names.len(),
        pairs.len()
    );
    assert_eq!(per_file.len(), 22);
    // The data README says 62 cases; the files hold 72 (file, case) dicts entries with 50
    // distinct names (checked with Python's pickle as well).
    assert_eq!(per_case.len(), 72);
    assert_eq!(distinct_names.len(), 50);
    assert_eq!(pairs.len(), 163_124);
    let expected_per_file = [
        ("long_vp_coord", 400),
        ("npi_across_anim", 4800),
        ("npi_across_inanim", 5760),
        ("obj_rel_across_anim", 11200),
        ("prep_anim", 16800),
        ("prep_inanim", 5600),
        ("reflexive_sent_comp", 3360),
        ("reflexives_across", 22400),
        ("sent_comp", 1680),
        ("simple_agrmt", 140),
        ("simple_npi_anim", 120),
        ("simple_npi_inanim", 144),
        ("simple_reflexives", 280),
        ("subj_rel", 11200),
        ("vp_coord", 840),
    ];
    for (file, n) in expected_per_file {
        assert_eq!(per_file[file], n, "{file}");
    }

    // Order: files, then cases, by name; the first and last tuple elements.
    assert_eq!(pairs[0].file, "long_vp_coord");
    assert_eq!(pairs[0].case, "plur_MS_LMV_LMV");
    let npi: Vec<_> = pairs
        .iter()
        .filter(|p| p.file == "simple_npi_anim" && p.case == "future")
        .collect();
    assert_eq!(npi[0].index, 0);
    assert_eq!(npi[0].good, "no authors will ever be popular");
    assert_eq!(npi[0].bad, "most authors will ever be popular");
    let agr: Vec<_> = pairs
        .iter()
        .filter(|p| p.file == "simple_agrmt" && p.case == "plur_MS_MV")
        .collect();
    assert_eq!(agr[0].good, "the authors laugh");
    assert_eq!(agr[0].bad, "the authors laughs");

    let ten = load_tse(&dir, Some(10)).unwrap();
    assert_eq!(ten.len(), 720);
    let first_ten: Vec<_> = pairs.iter().filter(|p| p.index < 10).cloned().collect();
    assert_eq!(ten, first_ten);
}

#[test]
fn ud_ewt_real_data() {
    let Some(data) = data_dir("ud_ewt_real_data") else {
        return;
    };
    for (split, n_sentences, n_words) in [("dev", 2001, 25_147), ("test", 2077, 25_094)] {
        let path = data.join(format!("ud_ewt/en_ewt-ud-{split}.conllu"));
        let (sentences, skipped) = load_conllu(&path, true).unwrap();
        let words: usize = sentences.iter().map(|s| s.words.len()).sum();
        eprintln!(
            "UD EWT {split}: {} sentences, {words} words, {skipped} skipped",
            sentences.len()
        );
        assert_eq!((sentences.len(), words, skipped), (n_sentences, n_words, 0));
        let (lenient, skipped) = load_conllu(&path, false).unwrap();
        assert_eq!((lenient.len(), skipped), (n_sentences, 0));

        for s in &sentences {
            assert!(s.sent_id.is_some());
            for (i, w) in s.words.iter().enumerate() {
                assert_eq!(w.id, i + 1);
                // Every multiword token in EWT is spelled by its words, so each word's span
                // is exactly its form.
                assert_eq!(
                    &s.text[w.start..w.end],
                    w.form,
                    "{:?} line {}",
                    s.sent_id,
                    s.line
                );
                assert!(w.head.is_some_and(|h| h <= s.words.len()));
            }
        }

        // Align a whitespace tokenisation of the joined corpus back to the gold words.
        let (joined, offsets) = joined_text(&sentences);
        let word_spans: Vec<(usize, usize)> = sentences
            .iter()
            .zip(&offsets)
            .flat_map(|(s, &o)| s.words.iter().map(move |w| (o + w.start, o + w.end)))
            .collect();
        let mut tokens = Vec::new();
        let mut start = None;
        for (i, c) in joined
            .char_indices()
            .chain(std::iter::once((joined.len(), ' ')))
        {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    tokens.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        let alignment = align_tokens_to_words(&tokens, &word_spans);
        assert!(alignment.iter().all(Option::is_some));
        let back = words_to_tokens(&alignment, word_spans.len());
        let covered = back.iter().filter(|t| !t.is_empty()).count();
        // Words glued to a neighbour (punctuation, clitics) share its token; no word is
        // aligned to a token outside its sentence.
        assert!(covered > word_spans.len() / 2);
        for (t, w) in alignment.iter().enumerate() {
            let (ws, we) = word_spans[w.unwrap()];
            assert!(tokens[t].0 < we && ws < tokens[t].1);
        }
    }
}

#[test]
fn multiple_choice_fixture() {
    let path = repo().join("tests/fixtures/eval/mc_small.jsonl");
    let items = load_multiple_choice(&path).unwrap();
    assert_eq!(items.len(), 10);
    let golds: Vec<usize> = items.iter().map(|i| i.gold).collect();
    assert_eq!(golds, vec![1, 0, 0, 0, 0, 0, 1, 1, 1, 0]);
    assert!(
        items
            .iter()
            .enumerate()
            .all(|(k, i)| i.id == k && i.gold < i.choices.len())
    );
}

#[test]
fn blimp_line_missing_a_field_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let good = r#"{"sentence_good": "A cat sleeps.", "sentence_bad": "A cat sleep.", "field": "morphology", "linguistics_term": "subject_verb_agreement", "UID": "toy", "pairID": "0"}"#;
    let bad = r#"{"sentence_good": "A dog barks.", "field": "morphology", "linguistics_term": "subject_verb_agreement", "UID": "toy", "pairID": "1"}"#;
    std::fs::write(
        tmp.path().join("toy.jsonl"),
        format!("{good}\n{good}\n{bad}\n"),
    )
    .unwrap();
    let err = load_blimp(tmp.path(), None, None).unwrap_err();
    match &err {
        EvalError::Line {
            path,
            line,
            message,
        } => {
            assert!(path.ends_with("toy.jsonl"));
            assert_eq!(*line, 3);
            assert!(message.contains("sentence_bad"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("toy.jsonl:3:"), "{err}");
    // The first two lines alone are fine.
    assert_eq!(load_blimp(tmp.path(), None, Some(2)).unwrap().len(), 2);

    std::fs::write(tmp.path().join("toy.jsonl"), format!("{good}\nnot json\n")).unwrap();
    let err = load_blimp(tmp.path(), None, None).unwrap_err();
    assert!(err.to_string().contains("toy.jsonl:2:"), "{err}");
}

#[test]
fn empty_pickle_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("empty.pickle"), b"").unwrap();
    let err = load_tse(tmp.path(), None).unwrap_err();
    assert!(matches!(err, EvalError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("empty.pickle"), "{err}");

    // A truncated pickle (no STOP opcode) and an empty dict are errors too.
    std::fs::write(tmp.path().join("empty.pickle"), b"(dp0\nS'c'\n").unwrap();
    let err = load_tse(tmp.path(), None).unwrap_err();
    assert!(matches!(err, EvalError::Pickle { .. }), "{err}");
    std::fs::write(tmp.path().join("empty.pickle"), b"}.").unwrap();
    let err = load_tse(tmp.path(), None).unwrap_err();
    assert!(err.to_string().contains("empty.pickle"), "{err}");
}

#[test]
fn conllu_sentence_that_does_not_rebuild_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.conllu");
    let text = "# sent_id = ok\n# text = Fine.\n\
                1\tFine\tfine\tADJ\tJJ\t_\t0\troot\t0:root\tSpaceAfter=No\n\
                2\t.\t.\tPUNCT\t.\t_\t1\tpunct\t1:punct\t_\n\
                \n\
                # sent_id = broken\n# text = Hello there.\n\
                1\tHello\thello\tINTJ\tUH\t_\t0\troot\t0:root\t_\n\
                2\tthere\tthere\tADV\tRB\t_\t1\tadvmod\t1:advmod\t_\n\
                3\t.\t.\tPUNCT\t.\t_\t1\tpunct\t1:punct\t_\n\n";
    std::fs::write(&path, text).unwrap();
    let err = load_conllu(&path, true).unwrap_err();
    match &err {
        EvalError::Line { path, line, .. } => {
            assert!(path.ends_with("bad.conllu"));
            assert_eq!(*line, 7, "the `# text` line of the broken sentence");
        }
        other => panic!("unexpected {other:?}"),
    }
    let (sentences, skipped) = load_conllu(&path, false).unwrap();
    assert_eq!(skipped, 1);
    assert_eq!(sentences.len(), 1);
    assert_eq!(sentences[0].sent_id.as_deref(), Some("ok"));
}
