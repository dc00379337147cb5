//! JSON has no NaN: serde_json writes it as `null`. This reads `null` back as NaN, for the
//! fields that are legitimately undefined (an accuracy over no items, a share of zero excess).

use serde::{Deserialize, Deserializer};

/// Deserialises a number or `null` (→ NaN).
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
