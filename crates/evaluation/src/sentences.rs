//! Scoring sentences by their tokens' log-probabilities, in length-bucketed batches.

use negdiff_interventions::{Intervention, attach};
use negdiff_model::{LanguageModel, TokenBatch};

use crate::convention::{Aggregate, BosPolicy};
use crate::{EvalError, Result};

/// Default cap on padded tokens per forward pass (batch size × longest sequence).
pub const DEFAULT_BATCH_TOKENS: usize = 2048;

/// One sentence's score.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceScore {
    /// Tokens fed (including a prepended BOS).
    pub n_tokens: usize,
    /// Tokens scored (`n_tokens - 1`).
    pub n_scored: usize,
    /// Natural-log log-probability of each scored token.
    pub token_logprobs: Vec<f32>,
    /// Their sum (f64 accumulation).
    pub sum: f64,
}

impl SentenceScore {
    /// The score under an aggregation (mean of zero tokens is NaN).
    pub fn aggregate(&self, how: Aggregate) -> f64 {
        match how {
            Aggregate::Sum => self.sum,
            Aggregate::Mean => self.sum / self.n_scored as f64,
        }
    }
}

/// Encodes and scores sentences with one model under one BOS policy.
pub struct SentenceScorer<'m> {
    model: &'m LanguageModel,
    policy: BosPolicy,
    bos: Option<u32>,
    batch_tokens: usize,
}

impl<'m> SentenceScorer<'m> {
    /// A scorer; `BosPolicy::Prepend` needs a model whose tokenizer names a BOS token.
    pub fn new(model: &'m LanguageModel, policy: BosPolicy) -> Result<Self> {
        let tok = model.tokenizer();
        let bos = match policy {
            BosPolicy::Never => None,
            BosPolicy::Tokenizer => tok.prepends_bos().then(|| tok.bos_id()).flatten(),
            BosPolicy::Prepend => Some(tok.bos_id().ok_or_else(|| {
                EvalError::Settings(
                    "BOS policy `prepend`: this model's tokenizer names no BOS token".into(),
                )
            })?),
        };
        Ok(SentenceScorer {
            model,
            policy,
            bos,
            batch_tokens: DEFAULT_BATCH_TOKENS,
        })
    }

    /// Caps padded tokens per forward pass.
    pub fn with_batch_tokens(mut self, n: usize) -> Self {
        self.batch_tokens = n.max(1);
        self
    }

    /// The policy asked for.
    pub fn policy(&self) -> BosPolicy {
        self.policy
    }

    /// Whether a BOS is prepended.
    pub fn bos_prepended(&self) -> bool {
        self.bos.is_some()
    }

    /// The model.
    pub fn model(&self) -> &'m LanguageModel {
        self.model
    }

    /// Token ids of a sentence under this policy (no special tokens but the BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        ids.extend(self.bos);
        ids.extend(self.model.tokenizer().encode_plain(text)?.ids);
        Ok(ids)
    }

    /// Scores token sequences (each at least one token), batching sequences of similar length
    /// together. Results come back in input order. The batches depend only on `seqs`, so the
    /// same list always gives bit-identical scores.
    pub fn score_ids(
        &self,
        seqs: &[Vec<u32>],
        intervention: Option<&dyn Intervention>,
    ) -> Result<Vec<SentenceScore>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| (seqs[i].len(), i));
        let mut out: Vec<Option<SentenceScore>> = vec![None; seqs.len()];
        let mut start = 0;
        while start < order.len() {
            // Grow the batch while the padded size stays within the cap.
            let mut end = start + 1;
            while end < order.len()
                && seqs[order[end]].len() * (end + 1 - start) <= self.batch_tokens
            {
                end += 1;
            }
            let batch_idx = &order[start..end];
            let batch = TokenBatch::new(batch_idx.iter().map(|&i| seqs[i].clone()).collect())?;
            let mut hooks = self.model.hooks();
            if let Some(iv) = intervention {
                attach(&mut hooks, iv)?;
            }
            let lps = self.model.next_token_logprobs(&batch, &mut hooks)?;
            for (&i, lp) in batch_idx.iter().zip(lps) {
                let sum = lp.iter().map(|&v| v as f64).sum();
                out[i] = Some(SentenceScore {
                    n_tokens: seqs[i].len(),
                    n_scored: lp.len(),
                    token_logprobs: lp,
                    sum,
                });
            }
            start = end;
        }
        out.into_iter()
            .map(|s| s.ok_or_else(|| EvalError::Settings("internal: unscored sequence".into())))
            .collect()
    }
}
