//! Minimal pairs: the grammatical sentence must get the higher score.

use negdiff_interventions::Intervention;
use serde::Serialize;

use crate::Result;
use crate::convention::Aggregate;
use crate::sentences::SentenceScorer;

/// The verdict on one pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairOutcome {
    /// Score of the grammatical sentence.
    pub score_good: f64,
    /// Score of the ungrammatical sentence.
    pub score_bad: f64,
    /// `score_good > score_bad` (ties count as wrong).
    pub correct: bool,
    /// Scored tokens of the good sentence.
    pub n_scored_good: usize,
    /// Scored tokens of the bad sentence.
    pub n_scored_bad: usize,
    /// Why the pair was not scored, if it was not (counted and reported, never silent).
    pub skipped: Option<String>,
}

/// Scores `(good, bad)` pairs with `aggregate`. A pair is skipped (not failed) when a sentence
/// has no scored token or exceeds the model's context; skipped pairs count as neither right nor
/// wrong and are reported.
pub fn score_pairs(
    scorer: &SentenceScorer<'_>,
    pairs: &[(&str, &str)],
    aggregate: Aggregate,
    intervention: Option<&dyn Intervention>,
) -> Result<Vec<PairOutcome>> {
    let max_len = scorer.model().dims().max_positions;
    let mut seqs = Vec::with_capacity(pairs.len() * 2);
    let mut skip: Vec<Option<String>> = Vec::with_capacity(pairs.len());
    for (good, bad) in pairs {
        let g = scorer.encode(good)?;
        let b = scorer.encode(bad)?;
        let why = if g.len() < 2 || b.len() < 2 {
            Some("a sentence has no scored token (one token and no BOS)".to_string())
        } else if g.len() > max_len || b.len() > max_len {
            Some(format!(
                "a sentence has {} tokens, beyond the model's context of {max_len}",
                g.len().max(b.len())
            ))
        } else {
            None
        };
        if why.is_none() {
            seqs.push(g);
            seqs.push(b);
        }
        skip.push(why);
    }
    let scores = scorer.score_ids(&seqs, intervention)?;
    let mut it = scores.chunks_exact(2);
    skip.into_iter()
        .map(|why| match why {
            Some(reason) => Ok(PairOutcome {
                score_good: f64::NAN,
                score_bad: f64::NAN,
                correct: false,
                n_scored_good: 0,
                n_scored_bad: 0,
                skipped: Some(reason),
            }),
            None => {
                let Some([g, b]) = it.next() else {
                    return Err(crate::EvalError::Settings(
                        "internal: pair scores missing".into(),
                    ));
                };
                let (sg, sb) = (g.aggregate(aggregate), b.aggregate(aggregate));
                Ok(PairOutcome {
                    score_good: sg,
                    score_bad: sb,
                    correct: sg > sb,
                    n_scored_good: g.n_scored,
                    n_scored_bad: b.n_scored,
                    skipped: None,
                })
            }
        })
        .collect()
}
