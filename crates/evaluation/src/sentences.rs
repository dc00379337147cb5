//! Scoring sentences by their tokens' log-probabilities, in length-bucketed batches.

use negdiff_interventions::{Intervention, attach};
use negdiff_model::packing::{DEFAULT_ROW_TOKENS, pack_prefix_trees};
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
    /// Tokens per prefix-tree row; `None` runs every sequence in a plain row of its own.
    tree_row_tokens: Option<usize>,
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
            tree_row_tokens: Some(DEFAULT_ROW_TOKENS),
        })
    }

    /// Caps padded tokens per forward pass.
    pub fn with_batch_tokens(mut self, n: usize) -> Self {
        self.batch_tokens = n.max(1);
        self
    }

    /// Shares prefixes between sequences (on by default): sequences are packed into prefix-tree
    /// rows of at most `row_tokens` tokens ([`negdiff_model::packing`]), so a prefix common to
    /// several sentences (a minimal pair's shared start, a template's opening) runs once. Scores
    /// equal those of separate rows up to float rounding. Hooks then see tree rows (a shared
    /// prefix once, positions by depth): built-in edits act per neuron and are unaffected, but an
    /// intervention that reads positions or accumulates statistics over tokens (a recorder)
    /// should run with `None`, which feeds each sentence whole in a plain row, as alone.
    pub fn with_prefix_sharing(mut self, row_tokens: Option<usize>) -> Self {
        self.tree_row_tokens = row_tokens.map(|n| n.max(1));
        self
    }

    /// Tokens per prefix-tree row, if prefixes are shared.
    pub fn prefix_sharing(&self) -> Option<usize> {
        self.tree_row_tokens
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

    /// Scores token sequences (each at least one token), sharing prefixes (see
    /// [`with_prefix_sharing`](Self::with_prefix_sharing)) or batching sequences of similar
    /// length together. Results come back in input order. The batches depend only on `seqs`,
    /// so the same list always gives bit-identical scores.
    pub fn score_ids(
        &self,
        seqs: &[Vec<u32>],
        intervention: Option<&dyn Intervention>,
    ) -> Result<Vec<SentenceScore>> {
        if let Some(i) = seqs.iter().position(Vec::is_empty) {
            return Err(EvalError::Settings(format!("sequence {i} has no tokens")));
        }
        match self.tree_row_tokens {
            Some(row_tokens) => self.score_packed(seqs, row_tokens, intervention),
            None => self.score_rows(seqs, intervention),
        }
    }

    fn score_packed(
        &self,
        seqs: &[Vec<u32>],
        row_tokens: usize,
        intervention: Option<&dyn Intervention>,
    ) -> Result<Vec<SentenceScore>> {
        // A sequence of one token has no scored token and is in no pack.
        let mut out: Vec<SentenceScore> = seqs
            .iter()
            .map(|s| SentenceScore {
                n_tokens: s.len(),
                n_scored: 0,
                token_logprobs: Vec::new(),
                sum: 0.0,
            })
            .collect();
        for packed in pack_prefix_trees(seqs, row_tokens, self.batch_tokens)? {
            let mut hooks = self.model.hooks();
            if let Some(iv) = intervention {
                attach(&mut hooks, iv)?;
            }
            let lps = self.model.packed_next_token_logprobs(&packed, &mut hooks)?;
            for (member, lp) in packed.members.iter().zip(lps) {
                let score = &mut out[member.index];
                score.sum = lp.iter().map(|&v| v as f64).sum();
                score.n_scored = lp.len();
                score.token_logprobs = lp;
            }
        }
        Ok(out)
    }

    /// Plain rows, length-bucketed (no prefix sharing).
    pub(crate) fn score_rows(
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
