//! CPU matrix multiply for the linear layers, with the weights packed once at load.
//!
//! A forward pass is ~2 FLOP per parameter per token of `y = x Wᵀ`, and on the CPU backend
//! most of its time goes to those products. burn's CPU matmul (the `gemm` crate) re-packs the
//! weight matrix on every call: on SmolLM2's shapes it reached ~110–270 GFLOP/s on a 2-core
//! AVX-512 Xeon (f32 peak 324) and 65–85 on a 2-core AVX2 EPYC (peak 110–170), where this
//! module's kernel reached 236–291 and 88–105 (`benches/matmul.rs`, docs/benchmarks.md). Here
//! the weights are laid out once, at load, in the order the inner kernel reads them (column
//! panels of [`NR`] outputs, `[k][NR]` each), so a call only packs the activations (register
//! transposes, 16×16 with AVX-512 and 8×8 with AVX2, ~2% of the work).
//!
//! The inner kernel multiplies an [`MR`]×kc block of rows by a kc×[`NR`] run of a panel, one
//! fused multiply-add per `k` in order. `k` is cut into equal runs of at most [`KC`]; each
//! run's sum is added to the output (not chained on), which rounds no worse than burn's matmul,
//! and a run of a panel (≤ 32 KiB) stays near the core while the kernel walks down the rows.
//! Kernels, picked at run time: AVX-512 keeps the whole `MR × NR` tile in registers (24 of its
//! 32 vectors); AVX2+FMA has 16 registers and computes the tile as four 6×16 corners (12
//! accumulators each), with the same chain per output, so both give bit-identical results; a
//! portable version serves other CPUs. Work items (rows × panel groups, a multiple of the
//! thread count where possible) go to rayon's threads.
//!
//! A [`PackedMatrix`] may hold several weight matrices side by side (*segments*, e.g. the query,
//! key and value projections, or gate and up), so one call computes all of them and writes
//! each into its own output. [`PackedMatrix::log_softmax_at`] (in `gemm/log_softmax.rs`) is the
//! product fused with a log-softmax read at a few entries, what scoring needs from the LM head.
//!
//! ```
//! use negdiff_model::gemm::PackedMatrix;
//!
//! // Two maps from 3 inputs: W₁ (2 outputs) and W₂ (1 output), rows in PyTorch's [out, in].
//! let w1 = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
//! let w2 = [2.0, 2.0, 2.0];
//! let packed = PackedMatrix::pack(3, &[(&w1[..], 2), (&w2[..], 1)]).unwrap();
//! let x = [1.0, 2.0, 3.0]; // one row
//! let (mut y1, mut y2) = (vec![0.0; 2], vec![0.0; 1]);
//! packed.matmul(&x, 1, &mut [&mut y1[..], &mut y2[..]]).unwrap();
//! assert_eq!((y1, y2), (vec![1.0, 5.0], vec![12.0]));
//! ```

use std::cell::RefCell;

use rayon::prelude::*;

use crate::error::{ModelError, Result};

mod log_softmax;

/// Rows of the output tile one kernel call computes.
pub const MR: usize = 12;
/// Columns of the output tile (two AVX-512 vectors); weights are packed in panels this wide.
pub const NR: usize = 32;
/// Longest run of `k` one kernel call covers: a `KC × NR` run of a weight panel (32 KiB) stays
/// in L1 while the kernel walks down the rows, and each output is a sum of per-run chains
/// (rounding error grows with the length of a chain).
pub const KC: usize = 256;
/// f32 values per 64-byte cache line.
const CACHE_LINE_FLOATS: usize = 16;
/// Most rows one work item packs.
const MC: usize = 768;
/// Work items per thread in one call.
const ITEMS_PER_THREAD: usize = 4;
/// Bytes of packed activations one work item keeps (in L2).
const L2_BUDGET: usize = 1 << 20;

/// Where one panel's columns go.
#[derive(Debug, Clone, Copy)]
struct Panel {
    segment: usize,
    /// First output column (within its segment).
    col: usize,
    /// Valid columns (`≤ NR`; the rest of the panel is zero padding).
    cols: usize,
}

/// One or more `[d_out, d_in]` weight matrices sharing `d_in`, packed for [`PackedMatrix::matmul`].
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    widths: Vec<usize>,
    panels: Vec<Panel>,
    /// Panel `p` is `data[start + p·k·NR ..][..k·NR]`, row-major `[k][NR]`.
    data: Vec<f32>,
    /// First element of panel 0, chosen so that every weight row of a panel lies within one
    /// 64-byte cache line (a vector load across two lines costs twice).
    start: usize,
}

impl PackedMatrix {
    /// Packs `segments`, each a row-major `[d_out, d_in]` weight (PyTorch's layout) with its
    /// `d_out`, all with `d_in` inputs.
    pub fn pack(d_in: usize, segments: &[(&[f32], usize)]) -> Result<Self> {
        if d_in == 0 || segments.is_empty() {
            return Err(ModelError::InvalidInput(
                "packing a matrix with no inputs or no outputs".into(),
            ));
        }
        let mut panels = Vec::new();
        for (s, &(w, d_out)) in segments.iter().enumerate() {
            if w.len() != d_out * d_in || d_out == 0 {
                return Err(ModelError::InvalidInput(format!(
                    "weight segment {s}: {} values for [{d_out}, {d_in}]",
                    w.len()
                )));
            }
            for col in (0..d_out).step_by(NR) {
                panels.push(Panel {
                    segment: s,
                    col,
                    cols: NR.min(d_out - col),
                });
            }
        }
        let panel_len = d_in * NR;
        let mut data = vec![0f32; panels.len() * panel_len + CACHE_LINE_FLOATS];
        let start = data
            .as_ptr()
            .align_offset(CACHE_LINE_FLOATS * 4)
            .min(CACHE_LINE_FLOATS);
        data[start..]
            .par_chunks_mut(panel_len)
            .zip(&panels)
            .for_each(|(dst, panel)| {
                let w = segments[panel.segment].0;
                for j in 0..panel.cols {
                    let row = &w[(panel.col + j) * d_in..][..d_in];
                    for (kk, &v) in row.iter().enumerate() {
                        dst[kk * NR + j] = v;
                    }
                }
            });
        Ok(PackedMatrix {
            k: d_in,
            widths: segments.iter().map(|s| s.1).collect(),
            panels,
            data,
            start,
        })
    }

    /// Inputs per row (`d_in`).
    pub fn d_in(&self) -> usize {
        self.k
    }

    /// Output width of each segment.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// An error unless `x` holds `m` rows of `d_in` values.
    fn check_input(&self, x: &[f32], m: usize) -> Result<()> {
        if x.len() != m * self.k {
            return Err(ModelError::InvalidInput(format!(
                "matmul input has {} values, expected {m} × {}",
                x.len(),
                self.k
            )));
        }
        Ok(())
    }

    /// `outs[s] = x · W_sᵀ` for `x: [m, d_in]` row-major; `outs[s]` is `[m, widths[s]]`.
    pub fn matmul(&self, x: &[f32], m: usize, outs: &mut [&mut [f32]]) -> Result<()> {
        self.check_input(x, m)?;
        if outs.len() != self.widths.len()
            || outs
                .iter()
                .zip(&self.widths)
                .any(|(o, &w)| o.len() != m * w)
        {
            return Err(ModelError::InvalidInput(format!(
                "matmul outputs do not match [{m}, {:?}]",
                self.widths
            )));
        }
        let targets: Vec<OutPtr> = outs.iter_mut().map(|o| OutPtr(o.as_mut_ptr())).collect();
        // SAFETY: each target holds `m × widths[s]` values (checked above), borrowed mutably
        // for this call.
        unsafe { self.run(x, m, &targets) };
        Ok(())
    }

    /// `x · W_sᵀ` for every segment into new `[m, widths[s]]` buffers. The buffers are not
    /// zero-filled first (a page-sized memset per call otherwise): the kernel writes every
    /// element.
    pub fn matmul_new(&self, x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        self.check_input(x, m)?;
        let mut outs: Vec<Vec<f32>> = self
            .widths
            .iter()
            .map(|&w| Vec::with_capacity(m * w))
            .collect();
        let targets: Vec<OutPtr> = outs.iter_mut().map(|o| OutPtr(o.as_mut_ptr())).collect();
        // SAFETY: each target has capacity for `m × widths[s]` values and no other reference.
        unsafe { self.run(x, m, &targets) };
        for (out, &w) in outs.iter_mut().zip(&self.widths) {
            // SAFETY: `run` wrote all `m × w` elements: the work items' rectangles cover every
            // (row, column) of every segment, and each one's first run of `k` stores (does not
            // add to) its outputs; later runs only read what the first one wrote.
            unsafe { out.set_len(m * w) };
        }
        Ok(outs)
    }

    /// The product into `targets` (one per segment).
    ///
    /// # Safety
    /// `x` holds `m × d_in` values; `targets[s]` is valid for writes (and reads of what this
    /// call wrote) of `m × widths[s]` values, with no other reference during the call.
    unsafe fn run(&self, x: &[f32], m: usize, targets: &[OutPtr]) {
        if m == 0 {
            return;
        }
        let plan = self.plan(m);
        plan.items.par_iter().for_each(|&item| {
            PACKED_ROWS.with_borrow_mut(|packed| {
                let (row0, rows) = plan.rows(item, m);
                pack_rows(plan.kernel, x, self.k, row0, rows, plan.kc_max, packed);
                for p in plan.panels(item, self.panels.len()) {
                    let panel = self.panels[p];
                    let width = self.widths[panel.segment];
                    // SAFETY: rows row0..row0+rows < m and columns col..col+cols ≤ width lie
                    // inside this segment's `m × width` output, which the caller lent mutably
                    // for the duration of this call; work items cover disjoint (rows, panels)
                    // rectangles, so no two threads write one element.
                    unsafe {
                        let dst = targets[panel.segment].0.add(row0 * width + panel.col);
                        self.panel_product(&plan, packed, p, rows, dst, width);
                    }
                }
            })
        });
    }

    /// How a product of `m` rows is cut into work items.
    fn plan(&self, m: usize) -> Plan {
        // k in `k_blocks` equal runs of at most KC: each output is the sum of one product chain
        // per run (shorter chains round less than one chain over all of k).
        let k_blocks = self.k.div_ceil(KC);
        let kc_max = self.k.div_ceil(k_blocks);
        // Rows per work item: their packed activations (all of k, ≤ L2_BUDGET) stay in this
        // core's L2; the rows are split evenly, so that no item is a small remainder.
        let mc_max = (L2_BUDGET / (4 * self.k) / MR).clamp(1, MC / MR) * MR;
        let row_items = m.div_ceil(mc_max);
        let mc = m.div_ceil(row_items).div_ceil(MR) * MR;
        // Several items per thread, so that rayon can even out the load; the panels are split
        // too when there are few rows (the LM head's chunks, one token at a time).
        let threads = rayon::current_num_threads().max(1);
        let want = ITEMS_PER_THREAD * threads;
        let group_len = balanced_group_len(self.panels.len(), row_items, want, threads);
        let panel_groups = self.panels.len().div_ceil(group_len);
        let items = (0..row_items)
            .flat_map(|r| (0..panel_groups).map(move |g| (r, g)))
            .filter(|&(r, g)| r * mc < m && g * group_len < self.panels.len())
            .collect();
        Plan {
            kernel: Kernel::detect(),
            kc_max,
            mc,
            group_len,
            items,
        }
    }

    /// Panel `p` times the rows packed in `packed` (`rows` of them, by [`pack_rows`] with
    /// `plan`'s run length): row `i`, column `j < panel.cols` goes to `dst + i·ld + j`.
    ///
    /// # Safety
    /// `dst + i·ld + j` is valid for writes and reads for `i < rows`, `j < panel.cols`, with
    /// no other reference during the call.
    unsafe fn panel_product(
        &self,
        plan: &Plan,
        packed: &[f32],
        p: usize,
        rows: usize,
        dst: *mut f32,
        ld: usize,
    ) {
        let cols = self.panels[p].cols;
        let blocks = rows.div_ceil(MR);
        // The panel's `MR × NR` tiles stay in cache across the runs of k; a run of the weight
        // panel (`kc × NR`, ≤ 32 KiB) stays in L1 down the rows.
        for (kb, k0) in (0..self.k).step_by(plan.kc_max).enumerate() {
            let kc = plan.kc_max.min(self.k - k0);
            let b = &self.data[self.start + p * self.k * NR + k0 * NR..][..kc * NR];
            let run = &packed[blocks * MR * k0..][..blocks * MR * kc];
            for blk in 0..blocks {
                let a = &run[blk * kc * MR..][..kc * MR];
                // SAFETY: the block's rows lie below `rows`; the caller's promise on `dst`.
                unsafe {
                    plan.kernel.run(
                        kc,
                        a,
                        b,
                        dst.add(blk * MR * ld),
                        ld,
                        MR.min(rows - blk * MR),
                        cols,
                        kb > 0,
                    )
                };
            }
        }
    }
}

/// Work items of one product: `(row item, panel group)` pairs and the sizes that cut them.
struct Plan {
    kernel: Kernel,
    /// Longest run of k.
    kc_max: usize,
    /// Rows per row item (a multiple of [`MR`]).
    mc: usize,
    /// Panels per group.
    group_len: usize,
    items: Vec<(usize, usize)>,
}

impl Plan {
    /// First row and number of rows of `item`.
    fn rows(&self, (r_item, _): (usize, usize), m: usize) -> (usize, usize) {
        let row0 = r_item * self.mc;
        (row0, self.mc.min(m - row0))
    }

    /// The panels of `item`.
    fn panels(&self, (_, group): (usize, usize), n_panels: usize) -> std::ops::Range<usize> {
        group * self.group_len..((group + 1) * self.group_len).min(n_panels)
    }
}

thread_local! {
    /// Each thread's packed activations, kept between calls: a fresh buffer per work item
    /// (up to [`L2_BUDGET`]) costs page faults and zeroing of new pages.
    static PACKED_ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Panels per work item: about `want` items in all, and where possible a multiple of
/// `threads` of them (nine items on two threads leave one thread idle for a ninth of the call).
fn balanced_group_len(panels: usize, row_items: usize, want: usize, threads: usize) -> usize {
    let len_for = |groups: usize| panels.div_ceil(groups);
    let first = want.div_ceil(row_items).clamp(1, panels);
    (first..=panels)
        .take(8)
        .map(len_for)
        .find(|&len| (row_items * panels.div_ceil(len)).is_multiple_of(threads))
        .unwrap_or(len_for(first))
}

/// An output buffer's base pointer, shared with the worker threads (see the SAFETY note in
/// [`PackedMatrix::matmul`]).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointee outlives the parallel section and threads write disjoint elements.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// Lays rows `row0..row0+rows` of `x` (`k` columns) out for `kernel`: k in runs of `kc_max`
/// (the last may be shorter), each run as blocks of [`MR`] rows, `[kc][MR]` each, zero-padding
/// the last block. The run starting at column `k0` starts at `blocks · MR · k0`.
fn pack_rows(
    kernel: Kernel,
    x: &[f32],
    k: usize,
    row0: usize,
    rows: usize,
    kc_max: usize,
    out: &mut Vec<f32>,
) {
    let blocks = rows.div_ceil(MR);
    out.clear();
    out.resize(blocks * MR * k, 0.0);
    for k0 in (0..k).step_by(kc_max) {
        let kc = kc_max.min(k - k0);
        let run = &mut out[blocks * MR * k0..][..blocks * MR * kc];
        for (blk, dst) in run.chunks_mut(kc * MR).enumerate() {
            let first = row0 + blk * MR;
            let n = MR.min(row0 + rows - first);
            let srcs: [&[f32]; MR] = std::array::from_fn(|i| {
                if i < n {
                    &x[(first + i) * k + k0..][..kc]
                } else {
                    &[]
                }
            });
            match kernel {
                // SAFETY: `Kernel::detect` picks AVX-512 only where the CPU has AVX-512F; every
                // source holds `kc` values or none, `dst` holds `kc · MR`.
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => unsafe { avx512::pack_block(&srcs, kc, dst) },
                // SAFETY: as above, for AVX2.
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => unsafe { avx2::pack_block(&srcs, kc, dst) },
                Kernel::Portable => pack_tail(&srcs, 0, kc, dst),
            }
        }
    }
}

/// `dst[kk·MR + i] = srcs[i][kk]` for `from ≤ kk < kc` (rows without values stay as they are:
/// zero). The whole block where no vector version runs, the remainder of `kc` where one does.
fn pack_tail(srcs: &[&[f32]; MR], from: usize, kc: usize, dst: &mut [f32]) {
    for (i, src) in srcs.iter().enumerate() {
        for (kk, &v) in src.iter().enumerate().take(kc).skip(from) {
            dst[kk * MR + i] = v;
        }
    }
}

/// Writes (or adds) the valid `rows × cols` corner of a tile at `dst` with row stride `ld`.
///
/// # Safety
/// `dst + i·ld + j` must be valid for writes for `i < rows`, `j < cols`.
#[inline(always)]
unsafe fn store_tile(
    tile: &[[f32; NR]; MR],
    dst: *mut f32,
    ld: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    for (i, tile_row) in tile.iter().enumerate().take(rows) {
        // SAFETY: guaranteed by the caller.
        let row = unsafe { std::slice::from_raw_parts_mut(dst.add(i * ld), cols) };
        if accumulate {
            for (d, &v) in row.iter_mut().zip(tile_row) {
                *d += v;
            }
        } else {
            row.copy_from_slice(&tile_row[..cols]);
        }
    }
}

/// `Σ_k a[k][i] · b[k][j]` for one `MR × NR` tile, one multiply-add per `k` in order.
#[inline(always)]
fn tile_product<const FUSED: bool>(kc: usize, a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0f32; NR]; MR];
    let (a, _) = a.as_chunks::<MR>();
    let (b, _) = b.as_chunks::<NR>();
    for (ak, bk) in a.iter().zip(b).take(kc) {
        for (acc_row, &ai) in acc.iter_mut().zip(ak) {
            for (c, &bj) in acc_row.iter_mut().zip(bk) {
                *c = if FUSED {
                    ai.mul_add(bj, *c)
                } else {
                    *c + ai * bj
                };
            }
        }
    }
    acc
}

/// The inner kernel this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                return Kernel::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// `C[..rows, ..cols] (+)= A·B` for one tile; see [`store_tile`] for `c`'s contract.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn run(
        self,
        kc: usize,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        match self {
            // SAFETY: `detect` chose this only where the CPU has AVX-512F; the slices hold
            // `kc` steps; `c` is the caller's promise.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { avx512::tile(kc, a, b, c, ldc, rows, cols, accumulate) },
            // SAFETY: as above, for AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::tile(kc, a, b, c, ldc, rows, cols, accumulate) },
            // SAFETY: the caller's promise on `c`.
            Kernel::Portable => unsafe {
                store_tile(
                    &tile_product::<false>(kc, a, b),
                    c,
                    ldc,
                    rows,
                    cols,
                    accumulate,
                )
            },
        }
    }

    /// The tile as an array (tests).
    #[cfg(test)]
    fn tile(self, kc: usize, a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
        let mut out = [[0f32; NR]; MR];
        // SAFETY: `out` holds MR rows of NR.
        unsafe { self.run(kc, a, b, out.as_mut_ptr().cast(), NR, MR, NR, false) };
        out
    }
}

/// The AVX-512 kernel, written with intrinsics so that the tile goes from registers straight
/// to the output (masked at the right edge) instead of through a copy on the stack.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    const _: () = assert!(NR == 32, "two 16-lane vectors per row");
    const _: () = assert!(MR <= 16, "a row block fits one 16×16 transpose");

    /// [`super::pack_tail`] sixteen `k` at a time: a 16×16 transpose in registers (rows past
    /// `MR` or without values are zero) instead of one strided store per value.
    ///
    /// # Safety
    /// The CPU has AVX-512F; each source holds `kc` values or none; `dst` holds `kc · MR`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_block(srcs: &[&[f32]; MR], kc: usize, dst: &mut [f32]) {
        debug_assert!(dst.len() >= kc * MR && srcs.iter().all(|s| s.is_empty() || s.len() >= kc));
        let keep: __mmask16 = (1 << MR) - 1;
        let mut kk = 0;
        while kk + 16 <= kc {
            let mut r = [_mm512_setzero_ps(); 16];
            for (ri, src) in r.iter_mut().zip(srcs) {
                if !src.is_empty() {
                    // SAFETY: kk + 16 ≤ kc ≤ src.len().
                    *ri = unsafe { _mm512_loadu_ps(src.as_ptr().add(kk)) };
                }
            }
            transpose16(&mut r);
            for (j, col) in r.iter().enumerate() {
                // SAFETY: (kk + j)·MR + MR ≤ kc·MR ≤ dst.len().
                unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add((kk + j) * MR), keep, *col) };
            }
            kk += 16;
        }
        super::pack_tail(srcs, kk, kc, dst);
    }

    /// Transposes a 16×16 block held as 16 row vectors.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: &mut [__m512; 16]) {
        {
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let pd = _mm512_castps_pd;
            let ps = _mm512_castpd_ps;
            for i in 0..4 {
                let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
                r[4 * i] = ps(_mm512_unpacklo_pd(pd(a), pd(c)));
                r[4 * i + 1] = ps(_mm512_unpackhi_pd(pd(a), pd(c)));
                r[4 * i + 2] = ps(_mm512_unpacklo_pd(pd(b), pd(d)));
                r[4 * i + 3] = ps(_mm512_unpackhi_pd(pd(b), pd(d)));
            }
            for h in 0..2 {
                for i in 0..4 {
                    let (a, b) = (r[8 * h + i], r[8 * h + 4 + i]);
                    t[8 * h + i] = _mm512_shuffle_f32x4::<0x88>(a, b);
                    t[8 * h + 4 + i] = _mm512_shuffle_f32x4::<0xdd>(a, b);
                }
            }
            for i in 0..8 {
                r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
                r[8 + i] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[8 + i]);
            }
        }
    }

    /// `C[..rows, ..cols] (+)= A·B` for `a: [kc][MR]`, `b: [kc][NR]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` and `b` hold at least `kc` steps; `c + i·ldc + j` is valid for
    /// reads and writes for `i < rows ≤ MR`, `j < cols ≤ NR`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(
        kc: usize,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        debug_assert!(a.len() >= kc * MR && b.len() >= kc * NR && rows <= MR && cols <= NR);
        let lanes = |n: usize| -> __mmask16 {
            if n >= 16 {
                0xffff
            } else {
                ((1u32 << n) - 1) as __mmask16
            }
        };
        let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for p in 0..kc {
            // SAFETY: p < kc and the slices hold kc steps.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(p * NR));
                let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(p * MR + i));
                    acc_row[0] = _mm512_fmadd_ps(ai, b0, acc_row[0]);
                    acc_row[1] = _mm512_fmadd_ps(ai, b1, acc_row[1]);
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            if i < rows {
                // SAFETY: row i < rows, masked to the valid columns.
                unsafe {
                    let (mut lo, mut hi) = (acc_row[0], acc_row[1]);
                    if accumulate {
                        // This run's sum is added to the earlier runs' (not chained on).
                        lo = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c.add(i * ldc)), lo);
                        hi = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c.add(i * ldc + 16)), hi);
                    }
                    _mm512_mask_storeu_ps(c.add(i * ldc), m0, lo);
                    _mm512_mask_storeu_ps(c.add(i * ldc + 16), m1, hi);
                }
            }
        }
    }
}

/// The AVX2 kernel: sixteen 256-bit registers hold a 6×16 corner of the tile (12
/// accumulators, two weight vectors, one broadcast), so the 12×32 tile is computed as four such
/// corners over the same packed runs. Each output is the same in-order chain of fused
/// multiply-adds as in the AVX-512 kernel: both give bit-identical results.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Rows of one corner.
    const SUB_ROWS: usize = 6;
    /// Columns of one corner (two 8-lane vectors).
    const SUB_COLS: usize = 16;
    const _: () = assert!(MR.is_multiple_of(SUB_ROWS) && NR.is_multiple_of(SUB_COLS));

    /// [`super::pack_tail`] eight `k` at a time: rows 0–7 and 8–11 (padded with zero rows)
    /// as two 8×8 transposes in registers.
    ///
    /// # Safety
    /// The CPU has AVX2; each source holds `kc` values or none; `dst` holds `kc · MR`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pack_block(srcs: &[&[f32]; MR], kc: usize, dst: &mut [f32]) {
        const _: () = assert!(MR > 8 && MR <= 16, "two 8-row halves");
        debug_assert!(dst.len() >= kc * MR && srcs.iter().all(|s| s.is_empty() || s.len() >= kc));
        let mut kk = 0;
        while kk + 8 <= kc {
            for (half, first) in [0usize, 8].into_iter().enumerate() {
                let mut r = [_mm256_setzero_ps(); 8];
                for (ri, src) in r.iter_mut().zip(&srcs[first..]) {
                    if !src.is_empty() {
                        // SAFETY: kk + 8 ≤ kc ≤ src.len().
                        *ri = unsafe { _mm256_loadu_ps(src.as_ptr().add(kk)) };
                    }
                }
                transpose8(&mut r);
                for (j, col) in r.iter().enumerate() {
                    // SAFETY: (kk + j)·MR + first + (8 or 4) ≤ kc·MR ≤ dst.len().
                    unsafe {
                        let at = dst.as_mut_ptr().add((kk + j) * MR + first);
                        if half == 0 {
                            _mm256_storeu_ps(at, *col);
                        } else {
                            _mm_storeu_ps(at, _mm256_castps256_ps128(*col));
                        }
                    }
                }
            }
            kk += 8;
        }
        super::pack_tail(srcs, kk, kc, dst);
    }

    /// Transposes an 8×8 block held as 8 row vectors.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose8(r: &mut [__m256; 8]) {
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_ps(); 8];
        for h in 0..2 {
            let (a, b, c, d) = (t[4 * h], t[4 * h + 1], t[4 * h + 2], t[4 * h + 3]);
            u[4 * h] = _mm256_shuffle_ps::<0x44>(a, c);
            u[4 * h + 1] = _mm256_shuffle_ps::<0xee>(a, c);
            u[4 * h + 2] = _mm256_shuffle_ps::<0x44>(b, d);
            u[4 * h + 3] = _mm256_shuffle_ps::<0xee>(b, d);
        }
        for i in 0..4 {
            r[i] = _mm256_permute2f128_ps::<0x20>(u[i], u[4 + i]);
            r[4 + i] = _mm256_permute2f128_ps::<0x31>(u[i], u[4 + i]);
        }
    }

    /// `C[..rows, ..cols] (+)= A·B` for `a: [kc][MR]`, `b: [kc][NR]`; corners without valid
    /// rows or columns are skipped.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `a` and `b` hold at least `kc` steps; `c + i·ldc + j` is
    /// valid for reads and writes for `i < rows ≤ MR`, `j < cols ≤ NR`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(
        kc: usize,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        debug_assert!(a.len() >= kc * MR && b.len() >= kc * NR && rows <= MR && cols <= NR);
        for i0 in (0..rows).step_by(SUB_ROWS) {
            for j0 in (0..cols).step_by(SUB_COLS) {
                // SAFETY: i0 < MR, j0 < NR, so the corner's reads stay inside the steps.
                let acc = unsafe { corner(kc, a.as_ptr().add(i0), b.as_ptr().add(j0)) };
                let (n_rows, n_cols) = (SUB_ROWS.min(rows - i0), SUB_COLS.min(cols - j0));
                for (i, acc_row) in acc.iter().enumerate().take(n_rows) {
                    // SAFETY: row i0 + i < rows; columns j0 .. j0 + n_cols ≤ cols.
                    unsafe { store_row(acc_row, c.add((i0 + i) * ldc + j0), n_cols, accumulate) };
                }
            }
        }
    }

    /// `Σ_p a[p·MR + i] · b[p·NR + j]` for `i < 6`, `j < 16`, one fused multiply-add per step.
    ///
    /// # Safety
    /// AVX2 and FMA; `a + p·MR + 5` and `b + p·NR + 15` are readable for `p < kc`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn corner(kc: usize, a: *const f32, b: *const f32) -> [[__m256; 2]; SUB_ROWS] {
        let mut acc = [[_mm256_setzero_ps(); 2]; SUB_ROWS];
        for p in 0..kc {
            // SAFETY: the caller's promise.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(p * NR));
                let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*a.add(p * MR + i));
                    acc_row[0] = _mm256_fmadd_ps(ai, b0, acc_row[0]);
                    acc_row[1] = _mm256_fmadd_ps(ai, b1, acc_row[1]);
                }
            }
        }
        acc
    }

    /// Writes (or adds) the first `cols ≤ 16` values of a corner row at `dst`.
    ///
    /// # Safety
    /// AVX2; `dst .. dst + cols` is valid for reads and writes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_row(row: &[__m256; 2], dst: *mut f32, cols: usize, accumulate: bool) {
        if cols == SUB_COLS {
            for (h, &v) in row.iter().enumerate() {
                // SAFETY: 16 values at dst (the caller's promise).
                unsafe {
                    let at = dst.add(8 * h);
                    // This run's sum is added to the earlier runs' (not chained on).
                    let v = if accumulate {
                        _mm256_add_ps(_mm256_loadu_ps(at), v)
                    } else {
                        v
                    };
                    _mm256_storeu_ps(at, v);
                }
            }
            return;
        }
        let mut lanes = [0f32; SUB_COLS];
        // SAFETY: `lanes` holds two vectors.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), row[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), row[1]);
        }
        // SAFETY: `cols` values at dst (the caller's promise).
        let out = unsafe { std::slice::from_raw_parts_mut(dst, cols) };
        for (d, &v) in out.iter_mut().zip(&lanes) {
            *d = if accumulate { *d + v } else { v };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `x Wᵀ` in f64.
    fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f64> {
        let mut y = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k)
                    .map(|kk| x[i * k + kk] as f64 * w[j * k + kk] as f64)
                    .sum();
            }
        }
        y
    }

    #[test]
    fn matches_f64_reference_on_edge_shapes() {
        // Rows below, at and above MR and MC; k across KC blocks; widths not multiples of NR;
        // several segments.
        for &(m, k, ref ns) in &[
            (1usize, 1usize, vec![1usize]),
            (5, 7, vec![33]),
            (12, 256, vec![32, 64]),
            (13, 257, vec![31, 1, 40]),
            (100, 600, vec![96, 17]),
            (1600, 20, vec![70]),
        ] {
            let x = values(m * k, 1);
            let ws: Vec<Vec<f32>> = ns
                .iter()
                .enumerate()
                .map(|(s, &n)| values(n * k, 10 + s as u64))
                .collect();
            let segments: Vec<(&[f32], usize)> =
                ws.iter().zip(ns).map(|(w, &n)| (&w[..], n)).collect();
            let packed = PackedMatrix::pack(k, &segments).unwrap();
            let mut outs: Vec<Vec<f32>> = ns.iter().map(|&n| vec![f32::NAN; m * n]).collect();
            let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| &mut o[..]).collect();
            packed.matmul(&x, m, &mut views).unwrap();
            for ((out, w), &n) in outs.iter().zip(&ws).zip(ns) {
                let want = reference(&x, m, k, w, n);
                let err = out
                    .iter()
                    .zip(&want)
                    .map(|(&g, &r)| (g as f64 - r).abs())
                    .fold(0f64, f64::max);
                assert!(err < 1e-5 * (k as f64).sqrt(), "m {m} k {k} n {n}: {err}");
            }
        }
    }

    #[test]
    fn every_kernel_gives_the_same_tile() {
        let (kc, a, b) = (70, values(70 * MR, 3), values(70 * NR, 4));
        let portable = tile_product::<false>(kc, &a, &b);
        let fused = tile_product::<true>(kc, &a, &b);
        let detected = Kernel::detect().tile(kc, &a, &b);
        for i in 0..MR {
            for j in 0..NR {
                let r: f64 = (0..kc)
                    .map(|kk| a[kk * MR + i] as f64 * b[kk * NR + j] as f64)
                    .sum();
                for got in [portable[i][j], fused[i][j], detected[i][j]] {
                    assert!((got as f64 - r).abs() < 1e-5, "{got} vs {r}");
                }
            }
        }
        // The runtime kernel and the fused source agree bit for bit where FMA is available.
        if Kernel::detect() != Kernel::Portable {
            assert_eq!(fused, detected);
        }
    }

    /// Every kernel this CPU can run (not only the one `detect` picks), on full and partial
    /// tiles, written and accumulated: the same values as the in-order fused chain.
    #[test]
    fn each_available_kernel_handles_partial_tiles() {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                kernels.push(Kernel::Avx2);
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                kernels.push(Kernel::Avx512);
            }
        }
        let kc = 37;
        let (a, b) = (values(kc * MR, 5), values(kc * NR, 6));
        let fused = tile_product::<true>(kc, &a, &b);
        let ld = NR + 3;
        for &kernel in &kernels {
            for (rows, cols) in [(MR, NR), (1, 1), (5, 17), (7, 16), (MR, 9), (6, NR)] {
                for accumulate in [false, true] {
                    let before = values(MR * ld, 7);
                    let mut c = before.clone();
                    // SAFETY: `c` holds MR rows of `ld ≥ NR` values.
                    unsafe { kernel.run(kc, &a, &b, c.as_mut_ptr(), ld, rows, cols, accumulate) };
                    for i in 0..MR {
                        for j in 0..ld {
                            let inside = i < rows && j < cols;
                            let want = match (inside, accumulate) {
                                (false, _) => before[i * ld + j],
                                (true, false) => fused[i][j],
                                (true, true) => before[i * ld + j] + fused[i][j],
                            };
                            let got = c[i * ld + j];
                            let tol = if kernel == Kernel::Portable {
                                1e-5
                            } else {
                                0.0
                            };
                            assert!(
                                (got - want).abs() <= tol,
                                "{kernel:?} rows {rows} cols {cols} acc {accumulate} at ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 packing (run only where the CPU has AVX2, whatever `pack_rows` picks).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_packing_is_the_transposed_block() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        for kc in [1usize, 7, 8, 9, 16, 23] {
            for n in [0usize, 1, 8, 9, MR] {
                let rows: Vec<Vec<f32>> = (0..MR).map(|i| values(kc, (i + 100) as u64)).collect();
                let srcs: [&[f32]; MR] =
                    std::array::from_fn(|i| if i < n { &rows[i][..] } else { &[] });
                let mut simd = vec![0f32; kc * MR];
                let mut plain = vec![0f32; kc * MR];
                // SAFETY: AVX2 checked above; sources hold kc values or none.
                unsafe { avx2::pack_block(&srcs, kc, &mut simd) };
                pack_tail(&srcs, 0, kc, &mut plain);
                assert_eq!(simd, plain, "kc {kc} rows {n}");
            }
        }
    }

    #[test]
    fn packed_rows_are_the_transposed_block() {
        // Runs of k around the 16-wide steps, full and partial blocks, rows not from 0.
        for k in [1usize, 15, 16, 17, 33, 64] {
            for kc_max in [7usize, 16, k] {
                for rows in [1usize, 5, MR, MR + 3] {
                    let x = values((rows + 2) * k, k as u64);
                    let mut packed = Vec::new();
                    pack_rows(Kernel::detect(), &x, k, 2, rows, kc_max, &mut packed);
                    let blocks = rows.div_ceil(MR);
                    assert_eq!(packed.len(), blocks * MR * k);
                    for k0 in (0..k).step_by(kc_max) {
                        let kc = kc_max.min(k - k0);
                        for blk in 0..blocks {
                            for kk in 0..kc {
                                for i in 0..MR {
                                    let row = blk * MR + i;
                                    let want = if row < rows {
                                        x[(2 + row) * k + k0 + kk]
                                    } else {
                                        0.0
                                    };
                                    let at = blocks * MR * k0 + blk * kc * MR + kk * MR + i;
                                    assert_eq!(packed[at], want, "k {k} kc {kc_max} rows {rows}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rounding: each output is a sum of per-run chains of at most `KC` products, which rounds
    /// no worse than burn's CPU matmul on the model's shapes (measured against f64).
    #[test]
    fn rounds_no_worse_than_burns_matmul() {
        use burn::tensor::{Device, Tensor, TensorData};
        let dev = Device::flex();
        for &(m, k, n) in &[(64usize, 576usize, 576usize), (64, 1536, 576)] {
            let x = values(m * k, 21);
            let w: Vec<f32> = values(n * k, 22).iter().map(|v| v * 0.1).collect();
            let packed = PackedMatrix::pack(k, &[(&w[..], n)]).unwrap();
            let mut ours = vec![0f32; m * n];
            packed.matmul(&x, m, &mut [&mut ours[..]]).unwrap();
            let mut w_t = vec![0f32; k * n];
            for j in 0..n {
                for kk in 0..k {
                    w_t[kk * n + j] = w[j * k + kk];
                }
            }
            let burn: Vec<f32> = Tensor::<2>::from_data(TensorData::new(x.clone(), [m, k]), &dev)
                .matmul(Tensor::<2>::from_data(TensorData::new(w_t, [k, n]), &dev))
                .try_into_vec_as()
                .unwrap();
            let exact = reference(&x, m, k, &w, n);
            let rms = |y: &[f32]| {
                let s: f64 = y
                    .iter()
                    .zip(&exact)
                    .map(|(&a, &r)| (a as f64 - r).powi(2))
                    .sum();
                (s / exact.len() as f64).sqrt()
            };
            let (ours, burn) = (rms(&ours), rms(&burn));
            assert!(
                ours <= 1.05 * burn,
                "k {k}: rms error {ours:.2e} vs burn {burn:.2e}"
            );
        }
    }

    #[test]
    fn new_buffers_equal_the_lent_ones() {
        for &(m, k, ref ns) in &[
            (0usize, 4usize, vec![3usize]),
            (13, 300, vec![40, 7]),
            (1, 5, vec![1]),
        ] {
            let x = values(m * k, 30);
            let ws: Vec<Vec<f32>> = ns.iter().map(|&n| values(n * k, 31 + n as u64)).collect();
            let segments: Vec<(&[f32], usize)> =
                ws.iter().zip(ns).map(|(w, &n)| (&w[..], n)).collect();
            let packed = PackedMatrix::pack(k, &segments).unwrap();
            let mut lent: Vec<Vec<f32>> = ns.iter().map(|&n| vec![0f32; m * n]).collect();
            let mut views: Vec<&mut [f32]> = lent.iter_mut().map(|o| &mut o[..]).collect();
            packed.matmul(&x, m, &mut views).unwrap();
            assert_eq!(packed.matmul_new(&x, m).unwrap(), lent);
        }
        let packed = PackedMatrix::pack(2, &[(&[1.0, 2.0][..], 1)]).unwrap();
        assert!(packed.matmul_new(&[1.0; 3], 1).is_err());
    }

    #[test]
    fn work_items_are_a_multiple_of_the_threads_where_possible() {
        // SmolLM2's gate/up on 1,024 rows: 96 panels, 3 row items, 2 threads.
        // Four equal groups of 24 (twelve items), not three of 32 (nine).
        assert_eq!(balanced_group_len(96, 3, 8, 2), 24);
        // Nothing to balance: one panel.
        assert_eq!(balanced_group_len(1, 3, 8, 2), 1);
        // Many row items already: whole panels per item.
        assert_eq!(balanced_group_len(18, 16, 8, 2), 18);
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let w = values(6, 0);
        assert!(PackedMatrix::pack(3, &[(&w[..], 3)]).is_err());
        assert!(PackedMatrix::pack(0, &[(&w[..0], 1)]).is_err());
        let packed = PackedMatrix::pack(3, &[(&w[..], 2)]).unwrap();
        let mut y = [0f32; 2];
        assert!(packed.matmul(&[1.0; 4], 1, &mut [&mut y[..]]).is_err());
        assert!(packed.matmul(&[1.0; 3], 1, &mut [&mut y[..1]]).is_err());
        assert!(packed.matmul(&[1.0; 3], 1, &mut []).is_err());
    }
}
