//! Running a model over corpus windows and streaming chosen activations to consumers.

use std::collections::BTreeSet;

use indicatif::ProgressBar;
use negdiff_hooks::{CapturedBatch, HookError, HookSite};
use negdiff_model::{LanguageModel, TokenBatch};

use crate::corpus::Window;
use crate::{Result, ScoringError};

/// Receives activations collected at some sites, in corpus order, padding and BOS removed.
pub trait ActivationConsumer {
    /// The sites this consumer needs.
    fn sites(&self) -> Vec<HookSite>;

    /// `rows` holds `rows.len() / width` collected tokens (row-major `[n, width]`) whose first
    /// has collected index `first_index`.
    fn consume(
        &mut self,
        site: HookSite,
        first_index: usize,
        rows: &[f32],
        width: usize,
    ) -> Result<()>;
}

/// Number of collected positions in `windows`.
pub fn collected_tokens(windows: &[Window]) -> usize {
    windows.iter().map(|w| w.ids.len() - w.first_scored).sum()
}

/// Runs `model` over `windows`, `batch_windows` windows per forward pass, and hands every
/// consumer the activations it asked for. Non-finite activations stop the run with an error
/// naming layer, neuron and token. Returns the number of collected tokens.
pub fn collect(
    model: &LanguageModel,
    windows: &[Window],
    batch_windows: usize,
    consumers: &mut [&mut dyn ActivationConsumer],
    progress: &ProgressBar,
) -> Result<usize> {
    if batch_windows == 0 {
        return Err(ScoringError::Settings("batch size must be positive".into()));
    }
    let sites: BTreeSet<HookSite> = consumers.iter().flat_map(|c| c.sites()).collect();
    let mut next_index = 0usize;
    for chunk in windows.chunks(batch_windows) {
        let batch = TokenBatch::new(chunk.iter().map(|w| w.ids.clone()).collect())?;
        let first_scored: Vec<usize> = chunk.iter().map(|w| w.first_scored).collect();
        let batch_start = next_index;
        let mut failure: Option<ScoringError> = None;
        {
            let mut hooks = model.hooks();
            let consumers = &mut *consumers;
            let failure = &mut failure;
            hooks.add_capture(
                sites.iter().copied(),
                None,
                |c: &CapturedBatch<'_>| -> std::result::Result<(), HookError> {
                    let mut rows = Vec::new();
                    for (b, &len) in c.lengths.iter().enumerate() {
                        for pos in first_scored[b]..len {
                            rows.extend_from_slice(c.row(b, pos));
                        }
                    }
                    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
                        *failure = Some(ScoringError::NonFinite {
                            layer: c.site.layer,
                            neuron: i % c.width,
                            token: batch_start + i / c.width,
                            value: rows[i],
                        });
                        return Err(HookError::failed(
                            "collect",
                            c.site,
                            "non-finite activation",
                        ));
                    }
                    for consumer in consumers.iter_mut() {
                        if consumer.sites().contains(&c.site)
                            && let Err(e) = consumer.consume(c.site, batch_start, &rows, c.width)
                        {
                            *failure = Some(e);
                            return Err(HookError::failed("collect", c.site, "consumer failed"));
                        }
                    }
                    Ok(())
                },
            )?;
            let run = model.forward_hidden(&batch, &mut hooks);
            if let Err(e) = run {
                drop(hooks);
                return Err(failure.take().unwrap_or(e.into()));
            }
        }
        next_index += chunk
            .iter()
            .map(|w| w.ids.len() - w.first_scored)
            .sum::<usize>();
        progress.inc(chunk.len() as u64);
    }
    Ok(next_index)
}
