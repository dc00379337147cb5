//! The matmul fused with a log-softmax read at a few entries: what scoring needs from the LM
//! head.
//!
//! Scoring wants `log p(target | position) = y_target − log Σ_j exp(y_j)` for `y = x Wᵀ`, one
//! or a few targets per row, over a 49k-word vocabulary. Writing all of `y` first costs
//! 200 KB per row of fresh memory (page clearing, a pass to write, one to read back). Here each
//! panel's `rows × 32` block of `y` goes to a small per-thread buffer that stays in cache; its
//! rows are folded into running (max, Σ exp) pieces, kept per vector lane ([`LaneMaxSum`]:
//! no horizontal step per panel), the requested entries picked out, and the buffer reused for
//! the next panel. The products are the ones
//! [`PackedMatrix::matmul`] computes (same kernel, same order of operations), so the picked
//! logits are bit-identical to it; the normaliser is merged from one piece per panel (in panel
//! order, whatever the threads did) and differs from one pass over the whole row only by
//! rounding.

use std::cell::RefCell;

use rayon::prelude::*;

use super::{NR, PACKED_ROWS, PackedMatrix, pack_rows};
use crate::error::{ModelError, Result};
use crate::fastmath::{FOLD_LANES, LaneMaxSum, MaxSum, fold_lanes};

const _: () = assert!(
    NR.is_multiple_of(FOLD_LANES),
    "a panel row is whole lane groups"
);

thread_local! {
    /// Each thread's block of outputs for one panel (`rows × NR`), reused between panels.
    static PANEL_OUT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// What one work item found: a (max, Σ exp) piece per row of its rows, and the picks whose
/// columns lie in its panels.
struct ItemPieces {
    pieces: Vec<MaxSum>,
    picked: Vec<(usize, f32)>,
}

impl PackedMatrix {
    /// `y[row, col] − log Σ_j exp(y[row, j])` for each `(row, col)` in `picks`, where
    /// `y = x · Wᵀ (+ bias)` over all segments side by side (`[m, Σ widths]`), without storing
    /// `y`. `x` is `[m, d_in]` row-major; `bias`, if given, holds one value per output column.
    /// A row holding NaN or no finite value gives NaN (as `log_softmax` does).
    pub fn log_softmax_at(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        picks: &[(usize, usize)],
    ) -> Result<Vec<f32>> {
        self.check_input(x, m)?;
        let width: usize = self.widths.iter().sum();
        if let Some(b) = bias
            && b.len() != width
        {
            return Err(ModelError::InvalidInput(format!(
                "log-softmax bias has {} values for {width} outputs",
                b.len()
            )));
        }
        if let Some(&(row, col)) = picks.iter().find(|&&(r, c)| r >= m || c >= width) {
            return Err(ModelError::InvalidInput(format!(
                "log-softmax pick ({row}, {col}) outside [{m}, {width}]"
            )));
        }
        if picks.is_empty() {
            return Ok(Vec::new());
        }
        // First output column and first panel of each segment.
        let mut seg_start = Vec::with_capacity(self.widths.len());
        let mut seg_panel = Vec::with_capacity(self.widths.len());
        let (mut col, mut panel) = (0, 0);
        for &w in &self.widths {
            seg_start.push(col);
            seg_panel.push(panel);
            col += w;
            panel += w.div_ceil(NR);
        }
        // Picks by the panel that computes them: those of panel p are
        // `by_panel[panel_start[p]..panel_start[p + 1]]`.
        let panel_of = |col: usize| {
            let s = seg_start.partition_point(|&c| c <= col) - 1;
            seg_panel[s] + (col - seg_start[s]) / NR
        };
        let pick_panel: Vec<usize> = picks.iter().map(|&(_, c)| panel_of(c)).collect();
        let mut by_panel: Vec<usize> = (0..picks.len()).collect();
        by_panel.sort_by_key(|&i| pick_panel[i]);
        let mut panel_start = vec![0usize; self.panels.len() + 1];
        for &p in &pick_panel {
            panel_start[p + 1] += 1;
        }
        for p in 0..self.panels.len() {
            panel_start[p + 1] += panel_start[p];
        }
        let plan = self.plan(m);
        let found: Vec<ItemPieces> = plan
            .items
            .par_iter()
            .map(|&item| {
                PACKED_ROWS.with_borrow_mut(|packed| {
                    PANEL_OUT.with_borrow_mut(|out| {
                        let (row0, rows) = plan.rows(item, m);
                        pack_rows(plan.kernel, x, self.k, row0, rows, plan.kc_max, packed);
                        if out.len() < rows * NR {
                            out.resize(rows * NR, 0.0);
                        }
                        let mut lanes = vec![LaneMaxSum::EMPTY; rows];
                        let mut picked = Vec::new();
                        for p in plan.panels(item, self.panels.len()) {
                            let panel = self.panels[p];
                            // SAFETY: `out` holds `rows × NR` values, this thread's own.
                            unsafe {
                                self.panel_product(&plan, packed, p, rows, out.as_mut_ptr(), NR)
                            };
                            let col0 = seg_start[panel.segment] + panel.col;
                            if let Some(b) = bias {
                                for y in out.chunks_exact_mut(NR).take(rows) {
                                    y.iter_mut()
                                        .zip(&b[col0..col0 + panel.cols])
                                        .for_each(|(y, b)| *y += b);
                                }
                            }
                            for &pick in &by_panel[panel_start[p]..panel_start[p + 1]] {
                                let (row, col) = picks[pick];
                                if (row0..row0 + rows).contains(&row) {
                                    picked.push((pick, out[(row - row0) * NR + col - col0]));
                                }
                            }
                            if panel.cols < NR {
                                // The panel's padding columns count as exp(−∞) = 0.
                                for y in out.chunks_exact_mut(NR).take(rows) {
                                    y[panel.cols..].fill(f32::NEG_INFINITY);
                                }
                            }
                            fold_lanes(out, NR, NR, &mut lanes);
                        }
                        let pieces = lanes.iter().map(LaneMaxSum::reduce).collect();
                        ItemPieces { pieces, picked }
                    })
                })
            })
            .collect();
        // Pieces merged per row in item order (rows, then panel groups): the same result
        // however the threads ran.
        let mut whole = vec![MaxSum::EMPTY; m];
        let mut logit = vec![0f32; picks.len()];
        for (&item, found) in plan.items.iter().zip(found) {
            let (row0, _) = plan.rows(item, m);
            for (w, piece) in whole[row0..].iter_mut().zip(found.pieces) {
                *w = w.merge(piece);
            }
            for (pick, y) in found.picked {
                logit[pick] = y;
            }
        }
        Ok(picks
            .iter()
            .zip(logit)
            .map(|(&(row, _), y)| y - whole[row].log_sum_exp())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastmath::log_sum_exp;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.5)
            .collect()
    }

    /// Reference: the full product, then `log_sum_exp` per row.
    fn reference(
        packed: &PackedMatrix,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        picks: &[(usize, usize)],
    ) -> Vec<f32> {
        let parts = packed.matmul_new(x, m).unwrap();
        let width: usize = packed.widths().iter().sum();
        let mut y = vec![0f32; m * width];
        for r in 0..m {
            let mut c = 0;
            for (part, &w) in parts.iter().zip(packed.widths()) {
                y[r * width + c..][..w].copy_from_slice(&part[r * w..][..w]);
                c += w;
            }
            if let Some(b) = bias {
                y[r * width..][..width]
                    .iter_mut()
                    .zip(b)
                    .for_each(|(y, b)| *y += b);
            }
        }
        picks
            .iter()
            .map(|&(r, c)| y[r * width + c] - log_sum_exp(&y[r * width..][..width]))
            .collect()
    }

    #[test]
    fn matches_full_logits_then_log_sum_exp() {
        // Partial panels, several segments, rows over one work item's worth, repeated picks.
        for (k, widths, m) in [
            (576, vec![1000], 5),
            (64, vec![33, 70], 30),
            (300, vec![4097], 1),
            (7, vec![31], 800),
        ] {
            let w: Vec<Vec<f32>> = widths.iter().map(|&d| values(d * k, d)).collect();
            let segs: Vec<(&[f32], usize)> =
                w.iter().zip(&widths).map(|(w, &d)| (&w[..], d)).collect();
            let packed = PackedMatrix::pack(k, &segs).unwrap();
            let width: usize = widths.iter().sum();
            let x = values(m * k, 3);
            let bias = values(width, 9);
            let picks: Vec<(usize, usize)> = (0..m)
                .flat_map(|r| [(r, (r * 31) % width), (r, width - 1), (r, (r * 31) % width)])
                .collect();
            for b in [None, Some(&bias[..])] {
                let got = packed.log_softmax_at(&x, m, b, &picks).unwrap();
                let want = reference(&packed, &x, m, b, &picks);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 2e-5 * w.abs().max(1.0),
                        "k {k} m {m}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_picks_and_bias_are_errors() {
        let w = values(40 * 8, 1);
        let packed = PackedMatrix::pack(8, &[(&w[..], 40)]).unwrap();
        let x = values(16, 2);
        assert!(packed.log_softmax_at(&x, 2, None, &[(2, 0)]).is_err());
        assert!(packed.log_softmax_at(&x, 2, None, &[(0, 40)]).is_err());
        assert!(
            packed
                .log_softmax_at(&x, 2, Some(&[0.0; 39]), &[(0, 0)])
                .is_err()
        );
        assert!(packed.log_softmax_at(&x[1..], 2, None, &[(0, 0)]).is_err());
        assert_eq!(
            packed.log_softmax_at(&x, 2, None, &[]).unwrap(),
            Vec::<f32>::new()
        );
    }

    #[test]
    fn nan_rows_give_nan() {
        let w = values(40 * 8, 1);
        let packed = PackedMatrix::pack(8, &[(&w[..], 40)]).unwrap();
        let mut x = values(16, 2);
        x[9] = f32::NAN; // row 1
        let lp = packed
            .log_softmax_at(&x, 2, None, &[(0, 3), (1, 3)])
            .unwrap();
        assert!(lp[0].is_finite() && lp[1].is_nan());
    }
}
