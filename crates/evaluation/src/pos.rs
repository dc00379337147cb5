//! Excess surprisal by part of speech: where an ablation's extra NLL lands, by gold UPOS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One UPOS tag's share of the excess surprisal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PosExcess {
    /// Universal POS tag.
    pub upos: String,
    /// Scored tokens belonging to words with this tag.
    pub n_tokens: usize,
    /// Mean baseline NLL of those tokens.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub baseline_nll: f64,
    /// Mean ablated NLL of those tokens.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub ablated_nll: f64,
    /// Mean excess (ablated − baseline) per token.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub mean_excess: f64,
    /// Summed excess.
    pub total_excess: f64,
    /// `total_excess` / the excess summed over all tags (can exceed 1 or be negative when
    /// some tags gain and others lose).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub share: f64,
}

/// Aggregates per-token NLLs of two conditions by the UPOS of each token's word.
///
/// `baseline` and `ablated` are `(token index, NLL)` lists over the same tokens;
/// `token_upos[i]` is the tag of the word token `i` belongs to (`None`: not part of a word,
/// skipped). Returns tags sorted by total excess, largest first, plus the number of tokens
/// skipped for lack of a tag.
pub fn excess_by_pos(
    baseline: &[(usize, f32)],
    ablated: &[(usize, f32)],
    token_upos: &[Option<String>],
) -> (Vec<PosExcess>, usize) {
    let abl: BTreeMap<usize, f32> = ablated.iter().copied().collect();
    let mut acc: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    let mut skipped = 0;
    for &(i, b) in baseline {
        let (Some(Some(tag)), Some(&a)) = (token_upos.get(i), abl.get(&i)) else {
            skipped += 1;
            continue;
        };
        let e = acc.entry(tag.as_str()).or_default();
        e.0 += 1;
        e.1 += b as f64;
        e.2 += a as f64;
    }
    let total: f64 = acc.values().map(|(_, b, a)| a - b).sum();
    let mut out: Vec<PosExcess> = acc
        .into_iter()
        .map(|(tag, (n, b, a))| PosExcess {
            upos: tag.to_string(),
            n_tokens: n,
            baseline_nll: b / n as f64,
            ablated_nll: a / n as f64,
            mean_excess: (a - b) / n as f64,
            total_excess: a - b,
            share: if total != 0.0 {
                (a - b) / total
            } else {
                f64::NAN
            },
        })
        .collect();
    out.sort_by(|x, y| {
        y.total_excess
            .total_cmp(&x.total_excess)
            .then(x.upos.cmp(&y.upos))
    });
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_by_tag() {
        let tags = vec![
            Some("DET".to_string()),
            Some("NOUN".into()),
            None,
            Some("DET".into()),
        ];
        let base = [(0, 1.0), (1, 2.0), (2, 5.0), (3, 1.0)];
        let abl = [(0, 2.0), (1, 2.5), (2, 9.0), (3, 3.0)];
        let (rows, skipped) = excess_by_pos(&base, &abl, &tags);
        assert_eq!(skipped, 1);
        assert_eq!(rows[0].upos, "DET");
        assert_eq!(rows[0].n_tokens, 2);
        assert!((rows[0].mean_excess - 1.5).abs() < 1e-12);
        assert!((rows[0].share - 3.0 / 3.5).abs() < 1e-12);
        assert!((rows[1].share - 0.5 / 3.5).abs() < 1e-12);
    }
}
