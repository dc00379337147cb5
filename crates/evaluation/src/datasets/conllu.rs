//! CoNLL-U treebanks (Universal Dependencies), read for gold part-of-speech analyses.
//!
//! Each sentence's surface text is rebuilt from its tokens and checked against the
//! `# text =` comment, which yields the byte span of every syntactic word in that text, so
//! that model tokens (byte spans from a tokenizer's offsets) can be aligned to gold words
//! with [`align_tokens_to_words`].
//!
//! Rebuilding follows the UD guidelines: the surface tokens are the multiword-token lines
//! (`3-4`) and the words not covered by one; empty nodes (`5.1`) have no surface form and are
//! skipped. After each surface token comes one space, unless column 10 (MISC) says
//! `SpaceAfter=No` (nothing) or `SpacesAfter=...` (the exact whitespace, escaped as UD
//! specifies: `\s`, `\t`, `\n`, `\r`, `\p` for `|`, `\\`, `\uXXXX`). UD EWT test uses
//! `SpacesAfter=\u00A0` once (a no-break space), so honouring it matters. What follows the last
//! token is the gap to the next sentence and is not part of the text.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{numbered_lines, read_utf8};
use crate::EvalError;

/// One syntactic word (a CoNLL-U line with an integer ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Word {
    /// The word's ID (column 1), 1-based within its sentence.
    pub id: usize,
    /// The word form (column 2).
    pub form: String,
    /// The universal part-of-speech tag (column 4).
    pub upos: String,
    /// The head's ID (column 7); `Some(0)` for the root, `None` where the column is `_`.
    pub head: Option<usize>,
    /// The dependency relation (column 8).
    pub deprel: String,
    /// Start byte of the word in [`Sentence::text`].
    pub start: usize,
    /// End byte (exclusive) of the word in [`Sentence::text`]. A word inside a multiword
    /// token gets its own slice of the token when the words' forms concatenate to the
    /// token's form (`don't` = `do` + `n't`), otherwise the whole token's span, shared with
    /// the token's other words.
    pub end: usize,
}

/// One sentence of a CoNLL-U file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sentence {
    /// The `# sent_id =` comment, if any.
    pub sent_id: Option<String>,
    /// The `# text =` comment: the raw sentence, which the tokens have been checked to
    /// rebuild.
    pub text: String,
    /// The syntactic words in ID order (multiword tokens and empty nodes excluded).
    pub words: Vec<Word>,
    /// The sentence's first line (1-based) in the file.
    pub line: usize,
}

/// A sentence block as read, before its text is checked.
struct Block<'a> {
    /// First line of the block.
    first_line: usize,
    /// `# sent_id` value.
    sent_id: Option<String>,
    /// `# text` value and its line.
    text: Option<(String, usize)>,
    /// Token lines and their line numbers.
    rows: Vec<(usize, &'a str)>,
}

/// A surface token: a multiword token or a word not inside one.
struct Surface {
    /// First and last word ID it covers.
    first: usize,
    last: usize,
    /// Its form.
    form: String,
    /// The whitespace after it.
    space_after: String,
}

/// Why a sentence is refused: either its tokens do not rebuild its text (skippable in
/// lenient mode) or the block is malformed (always an error).
enum BlockError {
    Rebuild(EvalError),
    Malformed(EvalError),
}

/// Loads every sentence of a CoNLL-U file.
///
/// Returns the sentences and the number of sentences skipped. With `strict = true` a
/// sentence whose tokens do not rebuild its `# text` (or that has no `# text`) is an error
/// naming the file and the `# text` line, and the count is always 0; with `strict = false`
/// such sentences are skipped and counted. Structural problems (a token line without 10
/// columns, non-sequential or unparsable IDs, a bad `SpacesAfter` escape) are errors in both
/// modes.
///
/// # Errors
///
/// The file cannot be read or is not UTF-8, the file holds no sentence, or a sentence is
/// malformed as described above.
pub fn load_conllu(path: &Path, strict: bool) -> Result<(Vec<Sentence>, usize), EvalError> {
    let text = read_utf8(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut sentences = Vec::new();
    let mut skipped = 0;
    for block in blocks(text) {
        match build_sentence(block, path) {
            Ok(sentence) => sentences.push(sentence),
            Err(BlockError::Rebuild(e)) if strict => return Err(e),
            Err(BlockError::Rebuild(_)) => skipped += 1,
            Err(BlockError::Malformed(e)) => return Err(e),
        }
    }
    if sentences.is_empty() && skipped == 0 {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((sentences, skipped))
}

/// Splits a CoNLL-U text into sentence blocks (separated by blank lines).
fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut current: Option<Block<'_>> = None;
    for (line, content) in numbered_lines(text) {
        if content.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        let block = current.get_or_insert_with(|| Block {
            first_line: line,
            sent_id: None,
            text: None,
            rows: Vec::new(),
        });
        if let Some(comment) = content.strip_prefix('#') {
            if let Some((key, value)) = comment.split_once('=') {
                // UD writes `# key = value`; only the single space after `=` is syntax.
                let value = value.strip_prefix(' ').unwrap_or(value);
                match key.trim() {
                    "sent_id" => block.sent_id = Some(value.trim().to_string()),
                    "text" => block.text = Some((value.to_string(), line)),
                    _ => {}
                }
            }
        } else {
            block.rows.push((line, content));
        }
    }
    out.extend(current);
    out
}

/// Checks one block and computes its words' spans.
fn build_sentence(block: Block<'_>, path: &Path) -> Result<Sentence, BlockError> {
    let malformed =
        |line: usize, message: String| BlockError::Malformed(EvalError::line(path, line, message));
    let mut words: Vec<Word> = Vec::new();
    let mut surfaces: Vec<Surface> = Vec::new();
    // Last word ID covered by the most recent multiword token: words up to it are not
    // surface tokens of their own.
    let mut covered_to = 0;
    for &(line, row) in &block.rows {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() != 10 {
            return Err(malformed(
                line,
                format!(
                    "token line has {} tab-separated columns, expected 10",
                    cols.len()
                ),
            ));
        }
        let id = cols[0];
        if id.contains('.') {
            // Empty node: no surface form, not a word of the basic tree.
            continue;
        }
        let space_after =
            space_after(cols[9]).map_err(|m| malformed(line, format!("column 10 (MISC): {m}")))?;
        if let Some((a, b)) = id.split_once('-') {
            let (Ok(first), Ok(last)) = (a.parse::<usize>(), b.parse::<usize>()) else {
                return Err(malformed(line, format!("bad multiword token ID {id:?}")));
            };
            // Multiword tokens must start at the next word and not overlap each other, so
            // the surface tokens below are disjoint and in order.
            if first != words.len() + 1 || last < first || first <= covered_to {
                return Err(malformed(
                    line,
                    format!(
                        "multiword token {id:?} must start at the next word ID {} and not \
                         overlap another multiword token",
                        words.len() + 1
                    ),
                ));
            }
            covered_to = last;
            surfaces.push(Surface {
                first,
                last,
                form: cols[1].to_string(),
                space_after,
            });
            continue;
        }
        let Ok(word_id) = id.parse::<usize>() else {
            return Err(malformed(line, format!("bad word ID {id:?}")));
        };
        if word_id != words.len() + 1 {
            return Err(malformed(
                line,
                format!(
                    "word ID {word_id} out of sequence, expected {}",
                    words.len() + 1
                ),
            ));
        }
        let head = match cols[6] {
            "_" => None,
            h => Some(
                h.parse::<usize>()
                    .map_err(|_| malformed(line, format!("bad HEAD {h:?}")))?,
            ),
        };
        words.push(Word {
            id: word_id,
            form: cols[1].to_string(),
            upos: cols[3].to_string(),
            head,
            deprel: cols[7].to_string(),
            start: 0,
            end: 0,
        });
        if word_id > covered_to {
            surfaces.push(Surface {
                first: word_id,
                last: word_id,
                form: cols[1].to_string(),
                space_after,
            });
        }
    }
    let block_line = block.first_line;
    if words.is_empty() {
        return Err(malformed(block_line, "sentence has no word lines".into()));
    }
    // Checked for every multiword token, not just the last: an early `1-9` in a
    // four-word sentence would otherwise index past the words below.
    if let Some(s) = surfaces.iter().find(|s| s.last > words.len()) {
        return Err(malformed(
            block_line,
            format!(
                "multiword token {}-{} runs past the last word {}",
                s.first,
                s.last,
                words.len()
            ),
        ));
    }

    // Rebuild the surface text and place each word in it.
    let mut rebuilt = String::new();
    let n_surfaces = surfaces.len();
    for (k, surface) in surfaces.iter().enumerate() {
        let start = rebuilt.len();
        rebuilt.push_str(&surface.form);
        let end = rebuilt.len();
        let covered = &mut words[surface.first - 1..surface.last];
        let concatenated: usize = covered.iter().map(|w| w.form.len()).sum();
        let forms_match = concatenated == surface.form.len()
            && covered.iter().map(|w| w.form.as_str()).collect::<String>() == surface.form;
        let mut cursor = start;
        for word in covered.iter_mut() {
            if forms_match {
                word.start = cursor;
                cursor += word.form.len();
                word.end = cursor;
            } else {
                word.start = start;
                word.end = end;
            }
        }
        if k + 1 < n_surfaces {
            rebuilt.push_str(&surface.space_after);
        }
    }

    let Some((text, text_line)) = block.text else {
        return Err(BlockError::Rebuild(EvalError::line(
            path,
            block_line,
            "sentence has no `# text =` comment",
        )));
    };
    if rebuilt != text {
        let at = rebuilt
            .bytes()
            .zip(text.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(rebuilt.len().min(text.len()));
        return Err(BlockError::Rebuild(EvalError::line(
            path,
            text_line,
            format!(
                "tokens do not rebuild the sentence text (first difference at byte {at}): \
                 text {text:?}, tokens give {rebuilt:?}"
            ),
        )));
    }
    Ok(Sentence {
        sent_id: block.sent_id,
        text,
        words,
        line: block_line,
    })
}

/// The whitespace after a token, from its MISC column.
fn space_after(misc: &str) -> Result<String, String> {
    let mut space = " ".to_string();
    if misc == "_" {
        return Ok(space);
    }
    for attribute in misc.split('|') {
        if attribute == "SpaceAfter=No" {
            space.clear();
        } else if let Some(escaped) = attribute.strip_prefix("SpacesAfter=") {
            space = unescape_spaces(escaped)?;
        }
    }
    Ok(space)
}

/// Decodes a UD `SpacesAfter` value.
fn unescape_spaces(escaped: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('p') => out.push('|'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let ch = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad \\u escape in SpacesAfter={escaped}"))?;
                out.push(ch);
            }
            _ => return Err(format!("bad escape in SpacesAfter={escaped}")),
        }
    }
    Ok(out)
}

/// Joins the sentences' texts with one space between consecutive sentences (the corpus
/// convention of the command-line tools) and returns the joined text with the byte offset
/// of each sentence in it, so a word's span in the joined text is
/// `offset + word.start .. offset + word.end`.
pub fn joined_text(sentences: &[Sentence]) -> (String, Vec<usize>) {
    let mut joined =
        String::with_capacity(sentences.iter().map(|s| s.text.len() + 1).sum::<usize>());
    let mut offsets = Vec::with_capacity(sentences.len());
    for (i, sentence) in sentences.iter().enumerate() {
        if i > 0 {
            joined.push(' ');
        }
        offsets.push(joined.len());
        joined.push_str(&sentence.text);
    }
    (joined, offsets)
}

/// Maps each token to the word it overlaps most.
///
/// `token_offsets` and `words` are half-open byte spans `(start, end)` in the same text.
/// Each token gets the index of the word sharing the most bytes with it; on a tie, the
/// lowest word index. A token overlapping no word (one that covers only whitespace, or is
/// empty) gets `None`. Words may overlap each other (the words of a multiword token whose
/// forms do not spell it share its span) and need not be sorted. Spans with `end <= start`
/// overlap nothing.
///
/// Runs in about `O((T + W) log W)` when words do not nest deeply (a scan backwards from
/// the last word starting before the token's end stops once no earlier word can reach the
/// token's start).
pub fn align_tokens_to_words(
    token_offsets: &[(usize, usize)],
    words: &[(usize, usize)],
) -> Vec<Option<usize>> {
    // Word indices by start, stable so equal starts keep index order.
    let mut order: Vec<usize> = (0..words.len()).collect();
    order.sort_by_key(|&i| words[i].0);
    // reach[j] = the largest end among order[..=j]: once it is at or before a token's start,
    // no word at or before j in start order can overlap the token.
    let mut reach = Vec::with_capacity(order.len());
    let mut max_end = 0;
    for &i in &order {
        max_end = max_end.max(words[i].1);
        reach.push(max_end);
    }
    token_offsets
        .iter()
        .map(|&(ts, te)| {
            if te <= ts {
                return None;
            }
            let upto = order.partition_point(|&i| words[i].0 < te);
            let mut best: Option<(usize, usize)> = None; // (overlap, word index)
            for j in (0..upto).rev() {
                if reach[j] <= ts {
                    break;
                }
                let i = order[j];
                let (ws, we) = words[i];
                let overlap = te.min(we).saturating_sub(ts.max(ws));
                if overlap == 0 {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((o, bi)) => overlap > o || (overlap == o && i < bi),
                };
                if better {
                    best = Some((overlap, i));
                }
            }
            best.map(|(_, i)| i)
        })
        .collect()
}

/// The reverse of an alignment from [`align_tokens_to_words`]: for each of `n_words` words,
/// the indices (ascending) of the tokens aligned to it. Words no token was aligned to get an
/// empty list; alignments to a word index `>= n_words` are ignored.
pub fn words_to_tokens(alignment: &[Option<usize>], n_words: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); n_words];
    for (token, word) in alignment.iter().enumerate() {
        if let Some(list) = word.and_then(|w| out.get_mut(w)) {
            list.push(token);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str, strict: bool) -> Result<(Vec<Sentence>, usize), EvalError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.conllu");
        std::fs::write(&path, text).unwrap();
        load_conllu(&path, strict)
    }

    fn row(id: &str, form: &str, upos: &str, head: &str, misc: &str) -> String {
        format!("{id}\t{form}\t_\t{upos}\t_\t_\t{head}\tdep\t_\t{misc}\n")
    }

    #[test]
    fn multiword_tokens_empty_nodes_and_spaces() {
        let mut text = String::from("# sent_id = s1\n# text = I don't know.\u{a0}Ok\n");
        text += &row("1", "I", "PRON", "3", "_");
        text += &row("2-3", "don't", "_", "_", "_");
        text += &row("2", "do", "AUX", "4", "SpaceAfter=No"); // ignored inside the MWT
        text += &row("3", "n't", "PART", "4", "_");
        text += &row("3.1", "ghost", "X", "_", "_");
        text += &row("4", "know", "VERB", "0", "SpaceAfter=No");
        text += &row("5", ".", "PUNCT", "4", "SpacesAfter=\\u00A0");
        text += &row("6", "Ok", "INTJ", "4", "_");
        text += "\n";
        let (sentences, skipped) = parse(&text, true).unwrap();
        assert_eq!(skipped, 0);
        let s = &sentences[0];
        assert_eq!(s.sent_id.as_deref(), Some("s1"));
        assert_eq!(s.line, 1);
        assert_eq!(s.words.len(), 6);
        let spans: Vec<&str> = s.words.iter().map(|w| &s.text[w.start..w.end]).collect();
        assert_eq!(spans, vec!["I", "do", "n't", "know", ".", "Ok"]);
        assert_eq!(s.words[3].head, Some(0));
        assert_eq!(s.words[1].upos, "AUX");
    }

    #[test]
    fn mwt_whose_words_do_not_spell_it_shares_its_span() {
        let mut text = String::from("# text = gimme it\n");
        text += &row("1-2", "gimme", "_", "_", "_");
        text += &row("1", "give", "VERB", "0", "_");
        text += &row("2", "me", "PRON", "1", "_");
        text += &row("3", "it", "PRON", "1", "_");
        let (sentences, _) = parse(&text, true).unwrap();
        let w = &sentences[0].words;
        assert_eq!((w[0].start, w[0].end), (0, 5));
        assert_eq!((w[1].start, w[1].end), (0, 5));
        assert_eq!((w[2].start, w[2].end), (6, 8));
    }

    #[test]
    fn mismatch_is_an_error_or_skipped() {
        let mut text = String::from("# text = A b\n");
        text += &row("1", "A", "DET", "2", "_");
        text += &row("2", "b", "NOUN", "0", "_");
        text += "\n# text = Hello world\n";
        text += &row("1", "Hello", "INTJ", "0", "SpaceAfter=No");
        text += &row("2", "world", "NOUN", "1", "_");
        let err = parse(&text, true).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.conllu:5:"), "{msg}");
        assert!(msg.contains("do not rebuild"), "{msg}");
        let (sentences, skipped) = parse(&text, false).unwrap();
        assert_eq!((sentences.len(), skipped), (1, 1));
    }

    #[test]
    fn malformed_lines_are_errors_even_when_lenient() {
        let text = "# text = A\n1\tA\t_\n";
        let err = parse(text, false).unwrap_err();
        assert!(err.to_string().contains("t.conllu:2:"), "{err}");
        let mut text = String::from("# text = A b\n");
        text += &row("1", "A", "DET", "2", "_");
        text += &row("3", "b", "NOUN", "0", "_");
        let err = parse(&text, false).unwrap_err();
        assert!(err.to_string().contains("t.conllu:3:"), "{err}");
        assert!(matches!(parse("\n\n", true), Err(EvalError::Empty { .. })));

        // A multiword token running past the sentence's words, followed by another one.
        let mut text = String::from("# text = ab cd\n");
        text += &row("1-5", "ab", "_", "_", "_");
        text += &row("1", "a", "X", "0", "_");
        text += &row("2", "b", "X", "1", "_");
        text += &row("3-4", "cd", "_", "_", "_");
        text += &row("3", "c", "X", "1", "_");
        text += &row("4", "d", "X", "1", "_");
        let err = parse(&text, false).unwrap_err();
        assert!(err.to_string().contains("t.conllu:5:"), "{err}");
        // One running past the end of the sentence.
        let mut text = String::from("# text = ab c\n");
        text += &row("1", "a", "X", "0", "_");
        text += &row("2-3", "bc", "_", "_", "_");
        text += &row("2", "b", "X", "1", "_");
        let err = parse(&text, false).unwrap_err();
        assert!(err.to_string().contains("runs past"), "{err}");
    }

    #[test]
    fn joined_text_offsets() {
        let s = |t: &str| Sentence {
            sent_id: None,
            text: t.into(),
            words: vec![],
            line: 1,
        };
        let (joined, offsets) = joined_text(&[s("Ab c."), s("Dé."), s("F")]);
        assert_eq!(joined, "Ab c. Dé. F");
        assert_eq!(offsets, vec![0, 6, 11]);
        assert_eq!(joined_text(&[]), (String::new(), vec![]));
    }

    #[test]
    fn alignment_examples() {
        // "I don't know" with words I / do / n't / know and tokens "I", " don", "'t", " know", " ".
        let words = [(0, 1), (2, 4), (4, 7), (8, 12)];
        let tokens = [(0, 1), (1, 5), (5, 7), (7, 12), (12, 13), (3, 3)];
        let a = align_tokens_to_words(&tokens, &words);
        assert_eq!(a, vec![Some(0), Some(1), Some(2), Some(3), None, None]);
        assert_eq!(
            words_to_tokens(&a, 4),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
        // A token spanning two words equally goes to the first.
        assert_eq!(align_tokens_to_words(&[(2, 6)], &words), vec![Some(1)]);
        // Shared spans (an MWT): the lower index wins.
        assert_eq!(
            align_tokens_to_words(&[(0, 5)], &[(6, 8), (0, 5), (0, 5)]),
            vec![Some(1)]
        );
    }

    /// The obvious quadratic definition the fast version must match.
    fn naive(tokens: &[(usize, usize)], words: &[(usize, usize)]) -> Vec<Option<usize>> {
        tokens
            .iter()
            .map(|&(ts, te)| {
                let mut best: Option<(usize, usize)> = None;
                for (i, &(ws, we)) in words.iter().enumerate() {
                    let o = te.min(we).saturating_sub(ts.max(ws));
                    if o > 0 && best.is_none_or(|(bo, _)| o > bo) {
                        best = Some((o, i));
                    }
                }
                best.map(|(_, i)| i)
            })
            .collect()
    }

    fn spans(max_len: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
        prop::collection::vec((0usize..60, 0usize..12), 0..max_len)
            .prop_map(|v| v.into_iter().map(|(s, l)| (s, s + l)).collect())
    }

    /// Contiguous tokenisation of a text: consecutive spans from the cut points.
    fn tiling() -> impl Strategy<Value = Vec<(usize, usize)>> {
        prop::collection::btree_set(1usize..80, 0..30).prop_map(|cuts| {
            let mut prev = 0;
            let mut out = Vec::new();
            for c in cuts.into_iter().chain(std::iter::once(80)) {
                out.push((prev, c));
                prev = c;
            }
            out
        })
    }

    proptest! {
        #[test]
        fn alignment_matches_naive(tokens in spans(40), words in spans(40)) {
            prop_assert_eq!(align_tokens_to_words(&tokens, &words), naive(&tokens, &words));
        }

        #[test]
        fn alignment_on_tilings(tokens in tiling(), words in tiling()) {
            let a = align_tokens_to_words(&tokens, &words);
            prop_assert_eq!(&a, &naive(&tokens, &words));
            // Two tilings of the same text: every non-empty token overlaps some word.
            prop_assert!(a.iter().all(Option::is_some));
            let back = words_to_tokens(&a, words.len());
            prop_assert_eq!(back.iter().map(Vec::len).sum::<usize>(), tokens.len());
            for (w, toks) in back.iter().enumerate() {
                prop_assert!(toks.windows(2).all(|p| p[0] < p[1]));
                for &t in toks {
                    prop_assert_eq!(a[t], Some(w));
                }
            }
        }
    }
}
