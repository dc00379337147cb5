//! The paper's Figure 1 table: a neuron's most separated token pairs, with their contexts and,
//! for treebank corpora, the gold UPOS and dependency relation of their words.

use negdiff_scoring::pipeline::ScoreRun;
use serde_json::{Value, json};

use crate::Result;
use crate::datasets::conllu::{Sentence, align_tokens_to_words, joined_text};

/// Per stream token, the word it belongs to; per word, its (UPOS, deprel).
type WordAnnotation = (Vec<Option<usize>>, Vec<(String, String)>);

/// Characters of context shown on each side of a token.
const CONTEXT_CHARS: usize = 40;

fn context(text: &str, start: usize, end: usize) -> String {
    let mut a = start.saturating_sub(CONTEXT_CHARS);
    while !text.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = (end + CONTEXT_CHARS).min(text.len());
    while !text.is_char_boundary(b) {
        b += 1;
    }
    let (s, e) = (start.min(text.len()), end.min(text.len()));
    if !(text.is_char_boundary(s) && text.is_char_boundary(e)) {
        return text[a..b].replace('\n', " ");
    }
    format!("…{}[{}]{}…", &text[a..s], &text[s..e], &text[e..b]).replace('\n', " ")
}

/// The top-`k` pairs of `layer:neuron` as JSON rows (`token_a`, `context_a`, `upos_a`,
/// `deprel_a`, … , `y_a`, `y_b`, `dx`, `dy`, `ratio`). `sentences` are the corpus's treebank
/// sentences when it is CoNLL-U (their joined text must be the scored text).
pub fn top_pair_rows(
    run: &ScoreRun,
    corpus_text: &str,
    sentences: Option<&[Sentence]>,
    layer: usize,
    neuron: usize,
    k: usize,
) -> Result<Vec<Value>> {
    let pairs = run.top_pairs(layer, neuron, k)?;
    // Word annotation per stream token, when the corpus is a treebank whose text we scored.
    let words: Option<WordAnnotation> = sentences.and_then(|s| {
        let (joined, offsets) = joined_text(s);
        (joined == corpus_text).then(|| {
            let mut spans = Vec::new();
            let mut tags = Vec::new();
            for (sent, off) in s.iter().zip(&offsets) {
                for w in &sent.words {
                    spans.push((off + w.start, off + w.end));
                    tags.push((w.upos.clone(), w.deprel.clone()));
                }
            }
            (align_tokens_to_words(&run.stream.offsets, &spans), tags)
        })
    });
    let describe = |i: usize| {
        let (s, e) = run.stream.offsets.get(i).copied().unwrap_or((0, 0));
        let token = corpus_text.get(s..e).unwrap_or("").to_string();
        let (upos, deprel) = words
            .as_ref()
            .and_then(|(align, tags)| align.get(i).copied().flatten().map(|w| tags[w].clone()))
            .map_or((Value::Null, Value::Null), |(u, d)| (json!(u), json!(d)));
        (token, context(corpus_text, s, e), upos, deprel)
    };
    Ok(pairs
        .into_iter()
        .map(|(p, a, b)| {
            let (ta, ca, ua, da) = describe(a);
            let (tb, cb, ub, db) = describe(b);
            json!({
                "token_a": ta, "context_a": ca, "upos_a": ua, "deprel_a": da,
                "token_b": tb, "context_b": cb, "upos_b": ub, "deprel_b": db,
                "y_a": p.y_a, "y_b": p.y_b, "dx": p.dx, "dy": p.dy, "ratio": p.ratio,
            })
        })
        .collect())
}
