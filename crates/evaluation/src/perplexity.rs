//! Perplexity over non-overlapping windows, with per-token negative log-likelihoods.

use negdiff_interventions::Intervention;
use negdiff_model::LanguageModel;
use serde::Serialize;

use crate::convention::BosPolicy;
use crate::sentences::SentenceScorer;
use crate::{EvalError, Result};

/// A text tokenised once, with each token's byte span.
#[derive(Debug, Clone)]
pub struct TokenizedText {
    /// Token ids (no special tokens).
    pub ids: Vec<u32>,
    /// Byte span of each token in the text.
    pub offsets: Vec<(usize, usize)>,
}

impl TokenizedText {
    /// Tokenises `text`, keeping at most `max_tokens` tokens.
    pub fn new(model: &LanguageModel, text: &str, max_tokens: Option<usize>) -> Result<Self> {
        let enc = model.tokenizer().encode_plain(text)?;
        let n = max_tokens.unwrap_or(usize::MAX).min(enc.ids.len());
        if n == 0 {
            return Err(EvalError::Settings("the text encodes to no tokens".into()));
        }
        Ok(TokenizedText {
            ids: enc.ids[..n].to_vec(),
            offsets: enc.offsets[..n].to_vec(),
        })
    }
}

/// Perplexity and the NLL of every scored token.
#[derive(Debug, Clone, Serialize)]
pub struct PerplexityResult {
    /// `exp(mean NLL)` over scored tokens.
    pub perplexity: f64,
    /// Tokens scored.
    pub tokens_scored: usize,
    /// Window size (tokens fed per window, BOS included).
    pub window: usize,
    /// Sum of NLLs (natural log).
    pub nll_sum: f64,
    /// `(token index in the text, NLL)` of every scored token, in order.
    #[serde(skip)]
    pub token_nll: Vec<(usize, f32)>,
}

/// One perplexity window: the ids fed and where its text tokens start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PplWindow {
    /// Ids fed to the model (a BOS first if prepended).
    pub ids: Vec<u32>,
    /// Index in the text of the window's first text token.
    pub start: usize,
    /// Whether `ids[0]` is a prepended BOS.
    pub bos: bool,
}

impl PplWindow {
    /// Text-token index of the token scored by `token_logprobs[i]`.
    pub fn scored_token(&self, i: usize) -> usize {
        self.start + i + 1 - usize::from(self.bos)
    }
}

/// Cuts `text` into consecutive, non-overlapping windows of `window` tokens. Without a BOS the
/// first token of each window has no context and is not scored; with one (per the scorer's
/// policy), every token is scored and each window holds `window - 1` text tokens.
pub fn ppl_windows(
    scorer: &SentenceScorer<'_>,
    text: &TokenizedText,
    window: usize,
) -> Result<Vec<PplWindow>> {
    let model = scorer.model();
    if window < 2 {
        return Err(EvalError::Settings(
            "perplexity window must be at least 2".into(),
        ));
    }
    let limit = model.dims().max_positions;
    if window > limit {
        return Err(EvalError::Settings(format!(
            "perplexity window {window} exceeds the model's context of {limit}"
        )));
    }
    let prepend = scorer.bos_prepended();
    let content = window - usize::from(prepend);
    let bos_id = model.tokenizer().bos_id();
    Ok(text
        .ids
        .chunks(content)
        .enumerate()
        .filter_map(|(k, chunk)| {
            let mut ids = Vec::with_capacity(chunk.len() + 1);
            if prepend {
                ids.extend(bos_id);
            }
            ids.extend_from_slice(chunk);
            (ids.len() >= 2).then_some(PplWindow {
                ids,
                start: k * content,
                bos: prepend,
            })
        })
        .collect())
}

/// Per-token NLLs of `windows`, one list per window (`-log p` of each scored token).
///
/// Windows of one text share no prefix, so they run as plain rows whatever the scorer's
/// prefix-sharing setting.
pub fn window_nlls(
    scorer: &SentenceScorer<'_>,
    windows: &[PplWindow],
    intervention: Option<&dyn Intervention>,
) -> Result<Vec<Vec<f32>>> {
    let seqs: Vec<Vec<u32>> = windows.iter().map(|w| w.ids.clone()).collect();
    Ok(scorer
        .score_rows(&seqs, intervention)?
        .into_iter()
        .map(|s| s.token_logprobs.into_iter().map(|lp| -lp).collect())
        .collect())
}

/// Assembles a [`PerplexityResult`] from windows and their NLLs.
pub fn perplexity_from(
    windows: &[PplWindow],
    nlls: &[Vec<f32>],
    window: usize,
) -> PerplexityResult {
    let mut token_nll = Vec::new();
    let mut nll_sum = 0f64;
    for (w, nll) in windows.iter().zip(nlls) {
        for (i, &v) in nll.iter().enumerate() {
            token_nll.push((w.scored_token(i), v));
            nll_sum += v as f64;
        }
    }
    let n = token_nll.len();
    PerplexityResult {
        perplexity: (nll_sum / n.max(1) as f64).exp(),
        tokens_scored: n,
        window,
        nll_sum,
        token_nll,
    }
}

/// Perplexity of `text` in non-overlapping windows of `window` tokens (see [`ppl_windows`]).
pub fn perplexity(
    model: &LanguageModel,
    text: &TokenizedText,
    window: usize,
    bos: BosPolicy,
    intervention: Option<&dyn Intervention>,
) -> Result<PerplexityResult> {
    let scorer = SentenceScorer::new(model, bos)?.with_batch_tokens(window.max(2048));
    let windows = ppl_windows(&scorer, text, window)?;
    let nlls = window_nlls(&scorer, &windows, intervention)?;
    Ok(perplexity_from(&windows, &nlls, window))
}
