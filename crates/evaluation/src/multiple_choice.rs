//! Multiple-choice items (lm-eval-harness style): the log-likelihood of each continuation
//! given the context, optionally normalised by the continuation's length in bytes (`acc_norm`).
//! This is the non-grammatical side of the paper's double dissociation.

use negdiff_interventions::Intervention;
use serde::Serialize;

use crate::datasets::multiple_choice::McItem;
use crate::sentences::SentenceScorer;
use crate::{EvalError, Result};

/// The verdict on one item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McOutcome {
    /// Item id.
    pub id: usize,
    /// Summed log-probability of each choice's tokens given the context.
    pub loglik: Vec<f64>,
    /// Choice with the highest log-likelihood (first on ties, as lm-eval's argmax).
    pub pred: usize,
    /// Choice with the highest byte-length-normalised log-likelihood.
    pub pred_norm: usize,
    /// `pred == gold`.
    pub correct: bool,
    /// `pred_norm == gold`.
    pub correct_norm: bool,
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Scores every choice of every item. The context is encoded under the scorer's BOS policy
/// and each continuation separately without special tokens, then concatenated (as lm-eval
/// does), so a continuation's first token is always scored from the context.
pub fn score_multiple_choice(
    scorer: &SentenceScorer<'_>,
    items: &[McItem],
    intervention: Option<&dyn Intervention>,
) -> Result<Vec<McOutcome>> {
    let tok = scorer.model().tokenizer();
    let mut seqs = Vec::new();
    let mut spans = Vec::new(); // (item, start of continuation in seq)
    for item in items {
        let ctx = scorer.encode(&item.context)?;
        if ctx.is_empty() {
            return Err(EvalError::Settings(format!(
                "item {}: the context encodes to no token and there is no BOS to score from",
                item.id
            )));
        }
        for choice in &item.choices {
            let cont = tok.encode_plain(choice)?.ids;
            let mut ids = ctx.clone();
            ids.extend(&cont);
            spans.push(ctx.len());
            seqs.push(ids);
        }
    }
    let scores = scorer.score_ids(&seqs, intervention)?;
    let mut out = Vec::with_capacity(items.len());
    let mut k = 0;
    for item in items {
        let mut loglik = Vec::with_capacity(item.choices.len());
        let mut norm = Vec::with_capacity(item.choices.len());
        for choice in &item.choices {
            // token_logprobs[i] scores ids[i + 1]: the continuation starts at ids[spans[k]].
            let lp: f64 = scores[k].token_logprobs[spans[k] - 1..]
                .iter()
                .map(|&v| v as f64)
                .sum();
            loglik.push(lp);
            norm.push(lp / choice.len().max(1) as f64);
            k += 1;
        }
        let (pred, pred_norm) = (argmax(&loglik), argmax(&norm));
        out.push(McOutcome {
            id: item.id,
            loglik,
            pred,
            pred_norm,
            correct: pred == item.gold,
            correct_norm: pred_norm == item.gold,
        });
    }
    Ok(out)
}
