//! Scoring conventions, recorded with every result because peers differ on them.

use serde::{Deserialize, Serialize};

/// Whether a BOS token is put before each sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BosPolicy {
    /// Follow the tokenizer: prepend iff it prepends one itself (the authors' behaviour: for
    /// models without BOS the first token is left unscored).
    Tokenizer,
    /// Always prepend the model's BOS token, so the first word is scored too.
    Prepend,
    /// Never prepend: the first token is not scored.
    Never,
}

impl std::str::FromStr for BosPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tokenizer" => Ok(BosPolicy::Tokenizer),
            "prepend" => Ok(BosPolicy::Prepend),
            "never" => Ok(BosPolicy::Never),
            other => Err(format!(
                "unknown BOS policy `{other}` (tokenizer, prepend, never)"
            )),
        }
    }
}

/// How a sentence's token log-probabilities become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregate {
    /// Sum over scored tokens (BLiMP: the authors and lm-eval).
    Sum,
    /// Mean over scored tokens (TSE: the authors).
    Mean,
}

/// The full convention of a scoring run, as written into result files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convention {
    /// BOS policy asked for.
    pub bos: BosPolicy,
    /// Whether a BOS was actually prepended (the policy resolved for this model).
    pub bos_prepended: bool,
    /// Aggregation of token log-probabilities.
    pub aggregate: Aggregate,
    /// Log base of all log-probabilities: always natural.
    pub log_base: LogBase,
    /// How equal scores are judged.
    pub ties: TieRule,
}

/// How a minimal pair with equal scores is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TieRule {
    /// `good > bad` strictly: a tie is wrong (the authors' comparison). lm-eval's argmax would
    /// count it right; BLiMP has 7 pairs with identical sentences that always tie.
    Wrong,
}

/// Log base marker (always `e`), serialised so that readers never have to guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogBase {
    /// Natural logarithm.
    #[serde(rename = "e")]
    E,
}
