//! The attention step on the host (CPU device): rotary embedding and causal, optionally
//! tree-masked, attention over q/k/v as the packed projections write them, row-major
//! `[tokens, features]`.
//!
//! burn's CPU attention computes the full `t × t` score matrix of every head (masked entries
//! included, one scalar `exp` each) after the heads have been reshaped, transposed and, for
//! grouped-query models, copied once per query head. Here each query visits only the keys it
//! may see (its prefix, or its ancestors in a prefix tree), shared key/value heads are read in
//! place, and the exponentials are vectorised. The arithmetic is the textbook one:
//! `softmax(q·kᵀ · scale) · v` with the maximum subtracted before `exp`.

use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::TokenLayout;
use super::layers::Linear;
use super::rope::Rotary;
use crate::error::{ModelError, Result};
use crate::fastmath;

/// Where the heads of one of q, k, v sit in a row-major `[tokens, row_stride]` buffer: head `h`
/// of token `r` is `buf[r·row_stride + offset + h·head_stride ..][..head_dim]`.
#[derive(Debug, Clone, Copy)]
pub struct HeadLayout {
    /// Values per token row.
    pub row_stride: usize,
    /// Start of head 0 within a row.
    pub offset: usize,
    /// Distance between consecutive heads.
    pub head_stride: usize,
}

impl HeadLayout {
    /// `n_heads` heads of `head_dim` back to back (`[tokens, n_heads · head_dim]`).
    pub fn dense(n_heads: usize, head_dim: usize) -> Self {
        HeadLayout {
            row_stride: n_heads * head_dim,
            offset: 0,
            head_stride: head_dim,
        }
    }

    #[inline(always)]
    fn at(self, token: usize, head: usize) -> usize {
        token * self.row_stride + self.offset + head * self.head_stride
    }
}

/// Rotary tables for every token of a batch on the host.
#[derive(Debug, Clone)]
pub struct HostRotary {
    cos: Vec<f32>,
    sin: Vec<f32>,
    dim: usize,
    /// Per-token position (tree batches); `None`: token `i` of a row is at position `i`.
    positions: Option<Vec<usize>>,
    seq_len: usize,
}

impl HostRotary {
    /// Tables for a `[batch, seq_len]` batch laid out as `layout`.
    pub fn new(rotary: &Rotary, layout: &TokenLayout, seq_len: usize) -> Self {
        let positions = layout.positions().map(<[usize]>::to_vec);
        let span = positions
            .as_ref()
            .and_then(|p| p.iter().max().map(|m| m + 1))
            .unwrap_or(seq_len)
            .max(1);
        let (cos, sin) = rotary.host_tables(span);
        HostRotary {
            cos,
            sin,
            dim: rotary.rotary_dim(),
            positions,
            seq_len,
        }
    }

    /// Rotates the first `rotary_dim` dimensions of each of `n_heads` heads of every token in
    /// place, as HF's `x·cos + rotate_half(x)·sin`.
    pub fn apply(&self, x: &mut [f32], heads: HeadLayout, n_heads: usize, tokens: usize) {
        let (dim, half) = (self.dim, self.dim / 2);
        if dim == 0 {
            return;
        }
        let rows_per_task = self.seq_len.max(1);
        x.par_chunks_mut(heads.row_stride * rows_per_task)
            .enumerate()
            .for_each(|(chunk, rows)| {
                for (i, row) in rows.chunks_exact_mut(heads.row_stride).enumerate() {
                    let token = chunk * rows_per_task + i;
                    if token >= tokens {
                        break;
                    }
                    let pos = match &self.positions {
                        Some(p) => p[token],
                        None => token % self.seq_len,
                    };
                    let cos = &self.cos[pos * dim..][..dim];
                    let sin = &self.sin[pos * dim..][..dim];
                    for h in 0..n_heads {
                        let head = &mut row[heads.offset + h * heads.head_stride..][..dim];
                        let (x1, x2) = head.split_at_mut(half);
                        for j in 0..half {
                            let (a, b) = (x1[j], x2[j]);
                            x1[j] = a * cos[j] + -b * sin[j];
                            x2[j] = b * cos[half + j] + a * sin[half + j];
                        }
                    }
                }
            });
    }
}

/// The rotary tables of one forward pass, in the form the attention will use: on the host
/// (CPU device, [`attend`]) or as `[1 | batch, 1, seq_len, rotary_dim]` device tensors.
pub enum RotaryTables {
    /// For host attention.
    Host(HostRotary),
    /// `(cos, sin)` for burn's attention.
    Device(Box<(Tensor<4>, Tensor<4>)>),
}

impl RotaryTables {
    /// Tables for a `[batch, seq_len]` batch laid out as `layout`.
    pub fn new(
        on_host: bool,
        rotary: &Rotary,
        layout: &TokenLayout,
        seq_len: usize,
        device: &Device,
    ) -> Self {
        if on_host {
            RotaryTables::Host(HostRotary::new(rotary, layout, seq_len))
        } else {
            RotaryTables::Device(Box::new(layout.rotary_tables(rotary, seq_len, device)))
        }
    }
}

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Rows of the batch.
    pub batch: usize,
    /// Tokens per row (padded).
    pub seq_len: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple).
    pub kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
}

/// Query rows one parallel task handles (late rows of a causal head cost more; rayon balances).
const QUERY_CHUNK: usize = 32;

/// `out[token, h·d..][..d] = softmax(q_h · k_gᵀ · scale) · v_g` for every token and query head
/// `h` (key/value head `g = h / (heads / kv_heads)`), attending to keys `≤` the query in its
/// row and not `blocked` (`[batch, seq_len, seq_len]`, `true` = may not attend). `out` is
/// `[batch · seq_len, heads · head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    shape: AttentionShape,
    scale: f32,
    q: (&[f32], HeadLayout),
    k: (&[f32], HeadLayout),
    v: (&[f32], HeadLayout),
    blocked: Option<&[bool]>,
    out: &mut [f32],
) -> Result<()> {
    attend_with(Simd::detect(), shape, scale, q, k, v, blocked, out)
}

/// [`attend`] with the inner loops compiled for `simd` (tests run every level the CPU has).
#[allow(clippy::too_many_arguments)]
fn attend_with(
    simd: Simd,
    shape: AttentionShape,
    scale: f32,
    q: (&[f32], HeadLayout),
    k: (&[f32], HeadLayout),
    v: (&[f32], HeadLayout),
    blocked: Option<&[bool]>,
    out: &mut [f32],
) -> Result<()> {
    let AttentionShape {
        batch,
        seq_len: t,
        heads,
        kv_heads,
        head_dim: d,
    } = shape;
    let tokens = batch * t;
    let fits = |(buf, l): (&[f32], HeadLayout), n: usize| {
        tokens == 0
            || buf.len() >= (tokens - 1) * l.row_stride + l.offset + (n - 1) * l.head_stride + d
    };
    if heads == 0
        || kv_heads == 0
        || heads % kv_heads != 0
        || !fits(q, heads)
        || !fits(k, kv_heads)
        || !fits(v, kv_heads)
        || out.len() != tokens * heads * d
        || blocked.is_some_and(|m| m.len() != batch * t * t)
    {
        return Err(ModelError::InvalidInput(format!(
            "host attention buffers do not match {shape:?}"
        )));
    }
    let rep = heads / kv_heads;
    let chunks = t.div_ceil(QUERY_CHUNK);
    // Keys transposed per (row, key/value head), `[d][tp]`, zero-padded to whole key blocks,
    // so that a query's scores come out KEY_BLOCK keys at a time with no horizontal sums.
    let tp = t.div_ceil(KEY_BLOCK) * KEY_BLOCK;
    let mut kt = vec![0f32; batch * kv_heads * d * tp];
    kt.par_chunks_mut(d * tp).enumerate().for_each(|(bg, dst)| {
        let (b, g) = (bg / kv_heads, bg % kv_heads);
        for j in 0..t {
            let krow = &k.0[k.1.at(b * t + j, g)..][..d];
            for (dd, &x) in krow.iter().enumerate() {
                dst[dd * tp + j] = x;
            }
        }
    });
    let target = SharedOut(out.as_mut_ptr());
    (0..batch * heads * chunks)
        .into_par_iter()
        .for_each_init(Scratch::default, |scratch, task| {
            let (bh, chunk) = (task / chunks, task % chunks);
            let (b, h) = (bh / heads, bh % heads);
            let queries = chunk * QUERY_CHUNK..((chunk + 1) * QUERY_CHUNK).min(t);
            let job = HeadJob {
                b,
                h,
                g: h / rep,
                t,
                d,
                heads,
                kv_heads,
                scale,
                q,
                kt: &kt,
                tp,
                v,
                blocked,
                out: target,
            };
            simd.run(&job, queries, scratch);
        });
    Ok(())
}

/// [`attend`] with the usual `1/√d` scale, then the output projection `out_proj`, as a
/// `[batch, seq_len, d_out]` tensor on `device`: the tail both architectures' host attention
/// share.
#[allow(clippy::too_many_arguments)]
pub fn attend_and_project(
    shape: AttentionShape,
    q: (&[f32], HeadLayout),
    k: (&[f32], HeadLayout),
    v: (&[f32], HeadLayout),
    blocked: Option<&[bool]>,
    out_proj: &Linear,
    device: &Device,
) -> Result<Tensor<3>> {
    let (b, t) = (shape.batch, shape.seq_len);
    let mut mixed = vec![0f32; b * t * shape.heads * shape.head_dim];
    let scale = (1.0 / (shape.head_dim as f64).sqrt()) as f32;
    attend(shape, scale, q, k, v, blocked, &mut mixed)?;
    let out = out_proj
        .forward_host(&mixed, b * t)?
        .pop()
        .ok_or_else(|| ModelError::InvalidInput("output projection has no output".into()))?;
    let width = out_proj.d_out();
    Ok(Tensor::from_data(
        TensorData::new(out, [b, t, width]),
        device,
    ))
}

/// Base pointer of the output, shared with the worker tasks (see the SAFETY note in [`attend`]).
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
impl SharedOut {
    /// `base + offset`; a method so that closures capture the whole (`Sync`) wrapper.
    ///
    /// # Safety
    /// `offset` is inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's promise.
        unsafe { self.0.add(offset) }
    }
}
// SAFETY: the tasks write disjoint ranges of a buffer that outlives them.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// The vector extension the inner loops are compiled for, picked once per call.
#[derive(Debug, Clone, Copy)]
enum Simd {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Simd {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }

    /// Every level this CPU can run.
    #[cfg(test)]
    fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut levels = vec![Simd::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                levels.push(Simd::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                levels.push(Simd::Avx512);
            }
        }
        levels
    }

    /// Runs `job` on `queries`, inlined into a function compiled for this extension so that
    /// the inner loops of [`fastmath`] vectorise for it. (A closure would not do: it is
    /// compiled as a function of its own, without the extension.)
    fn run(self, job: &HeadJob<'_>, queries: Range<usize>, scratch: &mut Scratch) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512(job: &HeadJob<'_>, queries: Range<usize>, scratch: &mut Scratch) {
                job.rows::<AVX512>(queries, scratch)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(job: &HeadJob<'_>, queries: Range<usize>, scratch: &mut Scratch) {
                job.rows::<AVX2>(queries, scratch)
            }
            match self {
                // SAFETY: `detect` picked these only where the CPU has the features.
                Simd::Avx512 => return unsafe { avx512(job, queries, scratch) },
                // SAFETY: as above.
                Simd::Avx2 => return unsafe { avx2(job, queries, scratch) },
                Simd::Portable => {}
            }
        }
        job.rows::<PORTABLE>(queries, scratch)
    }
}

/// Per-task buffers, reused across queries.
#[derive(Default)]
struct Scratch {
    keys: Vec<usize>,
    scores: Vec<f32>,
}

/// One (row, query head) of an [`attend`] call.
struct HeadJob<'a> {
    b: usize,
    h: usize,
    g: usize,
    t: usize,
    d: usize,
    heads: usize,
    kv_heads: usize,
    scale: f32,
    q: (&'a [f32], HeadLayout),
    /// Transposed keys, `[batch][kv_heads][d][tp]`.
    kt: &'a [f32],
    tp: usize,
    v: (&'a [f32], HeadLayout),
    blocked: Option<&'a [bool]>,
    out: SharedOut,
}

impl HeadJob<'_> {
    #[inline(always)]
    fn rows<const LEVEL: u8>(&self, queries: Range<usize>, scratch: &mut Scratch) {
        let (b, t, d, heads, h) = (self.b, self.t, self.d, self.heads, self.h);
        for qi in queries {
            // SAFETY: each (b, h, qi) is handled by exactly one task, which writes only
            // `out[(b·t + qi)·heads·d + h·d ..][..d]`, inside `out` (checked in `attend`),
            // borrowed mutably for that whole call.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(self.out.at(((b * t + qi) * heads + h) * d), d)
            };
            self.query::<LEVEL>(qi, scratch, dst);
        }
    }

    #[inline(always)]
    fn query<const LEVEL: u8>(&self, qi: usize, scratch: &mut Scratch, dst: &mut [f32]) {
        let (b, t, d, tp) = (self.b, self.t, self.d, self.tp);
        let n = qi + 1;
        let token = b * t + qi;
        let qrow = &self.q.0[self.q.1.at(token, self.h)..][..d];
        let kt = &self.kt[(b * self.kv_heads + self.g) * d * tp..][..d * tp];
        let scores = &mut scratch.scores;
        scores.clear();
        scores.resize(n.div_ceil(KEY_BLOCK) * KEY_BLOCK, 0.0);
        for (block, out) in scores.as_chunks_mut::<KEY_BLOCK>().0.iter_mut().enumerate() {
            key_block_scores::<LEVEL>(qrow, kt, tp, block * KEY_BLOCK, out);
        }
        scores.truncate(n);
        scores.iter_mut().for_each(|s| *s *= self.scale);
        scratch.keys.clear();
        match self.blocked {
            Some(mask) => {
                let row = &mask[token * t..][..n];
                for (kj, (s, &no)) in scores.iter_mut().zip(row).enumerate() {
                    if no {
                        *s = f32::NEG_INFINITY;
                    } else {
                        scratch.keys.push(kj);
                    }
                }
            }
            None => scratch.keys.extend(0..n),
        }
        if scores.iter().fold(false, |nan, s| nan | s.is_nan()) {
            dst.fill(f32::NAN);
            return;
        }
        fastmath::softmax_in_place(scores);
        // Blocked keys have probability 0 exactly: only the allowed ones are mixed.
        let (v, layout) = self.v;
        let values = &v[layout.at(b * t, self.g)..];
        let keys = &scratch.keys;
        #[cfg(target_arch = "x86_64")]
        {
            // The vector kernels hold the `d`-wide sum in at most eight registers.
            let lanes = match LEVEL {
                AVX512 => LANES,
                AVX2 => AVX2_LANES,
                _ => 0,
            };
            let stride = layout.row_stride;
            let last = keys.last().map_or(0, |&kj| kj * stride + d);
            if lanes > 0 && d % lanes == 0 && d <= 8 * lanes && values.len() >= last {
                // SAFETY: LEVEL is AVX512 / AVX2 only inside the wrappers of `Simd::run`
                // compiled for those extensions; every row read (`kj·stride .. +d` for the
                // keys) lies in `values` (checked just above: keys are increasing), `dst` holds
                // `d` values.
                unsafe { mix_in_registers::<LEVEL>(d / lanes, scores, keys, values, stride, dst) };
                return;
            }
        }
        dst.fill(0.0);
        for &kj in keys {
            fastmath::axpy(scores[kj], &values[kj * layout.row_stride..][..d], dst);
        }
    }
}

/// `dst = Σ_{kj ∈ keys} p[kj] · values[kj·stride ..][..d]` with `d = chunks` vectors of the
/// `LEVEL` extension (1 ..= 8), dispatched to the kernel specialised for that width.
///
/// # Safety
/// The CPU has the extension of `LEVEL` (AVX512 or AVX2 with FMA); `values` holds every row
/// read; `dst` holds `d` values.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mix_in_registers<const LEVEL: u8>(
    chunks: usize,
    p: &[f32],
    keys: &[usize],
    values: &[f32],
    stride: usize,
    dst: &mut [f32],
) {
    macro_rules! by_width {
        ($kernel:ident) => {
            match chunks {
                1 => $kernel::mix::<1>(p, keys, values, stride, dst),
                2 => $kernel::mix::<2>(p, keys, values, stride, dst),
                3 => $kernel::mix::<3>(p, keys, values, stride, dst),
                4 => $kernel::mix::<4>(p, keys, values, stride, dst),
                5 => $kernel::mix::<5>(p, keys, values, stride, dst),
                6 => $kernel::mix::<6>(p, keys, values, stride, dst),
                7 => $kernel::mix::<7>(p, keys, values, stride, dst),
                _ => $kernel::mix::<8>(p, keys, values, stride, dst),
            }
        };
    }
    // SAFETY: the caller's promise.
    unsafe {
        if LEVEL == AVX512 {
            by_width!(avx512)
        } else {
            by_width!(avx2)
        }
    }
}

/// Levels of [`HeadJob::rows`]: which extension its caller was compiled for.
const PORTABLE: u8 = 0;
const AVX2: u8 = 1;
const AVX512: u8 = 2;

/// The value mixing with AVX-512 intrinsics, the `d`-wide sum held in registers.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// `dst = Σ_{kj ∈ keys} p[kj] · values[kj·stride ..][..CH·16]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `values` holds every row read; `dst` holds `CH·16` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn mix<const CH: usize>(
        p: &[f32],
        keys: &[usize],
        values: &[f32],
        stride: usize,
        dst: &mut [f32],
    ) {
        debug_assert!(dst.len() >= CH * LANES);
        let mut even = [_mm512_setzero_ps(); CH];
        let mut odd = [_mm512_setzero_ps(); CH];
        let base = values.as_ptr();
        let mut pairs = keys.chunks_exact(2);
        for pair in &mut pairs {
            let (k0, k1) = (pair[0], pair[1]);
            let (p0, p1) = (_mm512_set1_ps(p[k0]), _mm512_set1_ps(p[k1]));
            for c in 0..CH {
                // SAFETY: the caller's promise on `values`.
                unsafe {
                    let r0 = _mm512_loadu_ps(base.add(k0 * stride + c * LANES));
                    let r1 = _mm512_loadu_ps(base.add(k1 * stride + c * LANES));
                    even[c] = _mm512_fmadd_ps(p0, r0, even[c]);
                    odd[c] = _mm512_fmadd_ps(p1, r1, odd[c]);
                }
            }
        }
        if let [k0] = *pairs.remainder() {
            let p0 = _mm512_set1_ps(p[k0]);
            for (c, e) in even.iter_mut().enumerate() {
                // SAFETY: as above.
                unsafe {
                    let r0 = _mm512_loadu_ps(base.add(k0 * stride + c * LANES));
                    *e = _mm512_fmadd_ps(p0, r0, *e);
                }
            }
        }
        for c in 0..CH {
            // SAFETY: `dst` holds CH·16 values.
            unsafe {
                _mm512_storeu_ps(
                    dst.as_mut_ptr().add(c * LANES),
                    _mm512_add_ps(even[c], odd[c]),
                )
            };
        }
    }
}

/// The value mixing with AVX2 intrinsics: the `d`-wide sum (at most eight 8-lane vectors)
/// held in registers, one fused multiply-add per key in key order.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::AVX2_LANES;
    use std::arch::x86_64::*;

    /// `dst = Σ_{kj ∈ keys} p[kj] · values[kj·stride ..][..CH·8]`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `values` holds every row read; `dst` holds `CH·8` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mix<const CH: usize>(
        p: &[f32],
        keys: &[usize],
        values: &[f32],
        stride: usize,
        dst: &mut [f32],
    ) {
        debug_assert!(dst.len() >= CH * AVX2_LANES);
        let mut acc = [_mm256_setzero_ps(); CH];
        let base = values.as_ptr();
        for &kj in keys {
            let pk = _mm256_set1_ps(p[kj]);
            for (c, a) in acc.iter_mut().enumerate() {
                // SAFETY: the caller's promise on `values`.
                unsafe {
                    let r = _mm256_loadu_ps(base.add(kj * stride + c * AVX2_LANES));
                    *a = _mm256_fmadd_ps(pk, r, *a);
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            // SAFETY: `dst` holds CH·8 values.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(c * AVX2_LANES), *a) };
        }
    }
}

/// f32 lanes of an AVX2 vector.
const AVX2_LANES: usize = 8;

/// Keys scored at once by [`key_block_scores`] (four vectors of [`LANES`]).
const KEY_BLOCK: usize = 64;
/// f32 lanes of the widest vectors (AVX-512).
const LANES: usize = 16;

/// `a · b + c`, fused where the caller is compiled with FMA (without it `mul_add` would be a
/// library call).
#[inline(always)]
fn madd<const LEVEL: u8>(a: f32, b: f32, c: f32) -> f32 {
    if LEVEL >= AVX2 {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `out[j] = q · k_{j0+j}` for `KEY_BLOCK` keys, from transposed keys `kt: [d][tp]`. With
/// AVX-512, even and odd dimensions go to separate sums (twice the independent chains, one add
/// at the end); with AVX2 one set of sums (eight registers; two sets would not fit in sixteen).
#[inline(always)]
fn key_block_scores<const LEVEL: u8>(
    q: &[f32],
    kt: &[f32],
    tp: usize,
    j0: usize,
    out: &mut [f32; KEY_BLOCK],
) {
    type Acc = [[f32; LANES]; KEY_BLOCK / LANES];
    // Not a closure, for the reason given in `weighted_sum`.
    #[inline(always)]
    fn add<const LEVEL: u8>(acc: &mut Acc, qd: f32, row: Option<&[f32; KEY_BLOCK]>) {
        let Some(row) = row else { return };
        for (a, r) in acc.iter_mut().zip(row.as_chunks::<LANES>().0) {
            for l in 0..LANES {
                a[l] = madd::<LEVEL>(qd, r[l], a[l]);
            }
        }
    }
    let mut even: Acc = [[0f32; LANES]; KEY_BLOCK / LANES];
    let mut odd = even;
    for (pair, qs) in q.chunks(2).enumerate() {
        let dd = 2 * pair;
        add::<LEVEL>(&mut even, qs[0], kt[dd * tp + j0..].first_chunk());
        if let Some(&qd) = qs.get(1) {
            let sums = if LEVEL == AVX2 { &mut even } else { &mut odd };
            add::<LEVEL>(sums, qd, kt[(dd + 1) * tp + j0..].first_chunk());
        }
    }
    for ((o, e), d) in out
        .as_chunks_mut::<LANES>()
        .0
        .iter_mut()
        .zip(&even)
        .zip(&odd)
    {
        for l in 0..LANES {
            o[l] = e[l] + d[l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::attention::causal_attention_reference;
    use burn::tensor::Bool;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0)
            .collect()
    }

    /// `[b·t, n·d]` host buffer → `[b, n, t, d]` tensor.
    fn heads_tensor(x: &[f32], b: usize, t: usize, n: usize, d: usize) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(x.to_vec(), [b, t, n, d]), &Device::flex())
            .swap_dims(1, 2)
    }

    #[test]
    fn matches_the_reference_with_and_without_a_mask() {
        // Head sizes: one and two AVX2 vectors, SmolLM2's 64, and one the vector paths skip.
        for (simd, d) in Simd::available()
            .into_iter()
            .flat_map(|s| [8, 16, 64, 12].map(|d| (s, d)))
        {
            matches_the_reference(simd, d);
        }
    }

    fn matches_the_reference(simd: Simd, d: usize) {
        let (b, t, heads, kv) = (2, 37, 6, 2);
        let q = values(b * t * heads * d, 1);
        let k = values(b * t * kv * d, 2);
        let v = values(b * t * kv * d, 3);
        // A mask that blocks every third key of each query except itself.
        let blocked: Vec<bool> = (0..b * t * t)
            .map(|i| {
                let (qi, kj) = ((i / t) % t, i % t);
                kj != qi && (kj + qi) % 3 == 0
            })
            .collect();
        for mask in [None, Some(&blocked[..])] {
            let shape = AttentionShape {
                batch: b,
                seq_len: t,
                heads,
                kv_heads: kv,
                head_dim: d,
            };
            let mut out = vec![0f32; b * t * heads * d];
            attend_with(
                simd,
                shape,
                0.25,
                (&q, HeadLayout::dense(heads, d)),
                (&k, HeadLayout::dense(kv, d)),
                (&v, HeadLayout::dense(kv, d)),
                mask,
                &mut out,
            )
            .unwrap();
            let dev = Device::flex();
            let blocked_t = mask.map(|m| {
                Tensor::<4, Bool>::from_data(TensorData::new(m.to_vec(), [b, 1, t, t]), &dev)
            });
            let want: Vec<f32> = causal_attention_reference(
                heads_tensor(&q, b, t, heads, d),
                heads_tensor(&k, b, t, kv, d),
                heads_tensor(&v, b, t, kv, d),
                0.25,
                blocked_t,
            )
            .try_into_vec_as()
            .unwrap();
            let err = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "{simd:?} d {d} mask {}: {err}", mask.is_some());
        }
    }

    #[test]
    fn strided_heads_read_the_same_values() {
        // q|k|v interleaved per head (GPT-NeoX's fused layout) gives the same result as dense.
        let (b, t, heads, d) = (1, 9, 3, 8);
        let qkv = values(b * t * heads * 3 * d, 5);
        let split = |part: usize| -> Vec<f32> {
            qkv.chunks_exact(3 * d)
                .flat_map(|c| c[part * d..(part + 1) * d].to_vec())
                .collect()
        };
        let shape = AttentionShape {
            batch: b,
            seq_len: t,
            heads,
            kv_heads: heads,
            head_dim: d,
        };
        let strided = |part: usize| HeadLayout {
            row_stride: heads * 3 * d,
            offset: part * d,
            head_stride: 3 * d,
        };
        let mut a = vec![0f32; t * heads * d];
        attend(
            shape,
            0.5,
            (&qkv, strided(0)),
            (&qkv, strided(1)),
            (&qkv, strided(2)),
            None,
            &mut a,
        )
        .unwrap();
        let (q, k, v) = (split(0), split(1), split(2));
        let dense = HeadLayout::dense(heads, d);
        let mut b_out = vec![0f32; t * heads * d];
        attend(
            shape,
            0.5,
            (&q, dense),
            (&k, dense),
            (&v, dense),
            None,
            &mut b_out,
        )
        .unwrap();
        assert_eq!(a, b_out);
    }

    #[test]
    fn host_rotary_matches_the_tensor_rotation() {
        use crate::config::{RopeScaling, RopeSpec};
        let dev = Device::flex();
        let (b, t, heads, d) = (2, 6, 3, 8);
        // Partial (GPT-NeoX style) and full rotation; sequential and tree positions.
        for rotary_dim in [4, 8] {
            let rotary = Rotary::new(&RopeSpec {
                theta: 10_000.0,
                rotary_dim,
                scaling: RopeScaling::None,
            });
            let tree_positions = vec![0, 1, 1, 2, 3, 2, 0, 1, 2, 3, 4, 5];
            let layouts = [
                TokenLayout::sequential(),
                TokenLayout::tree(tree_positions, b, t, vec![false; b * t * t], &dev).unwrap(),
            ];
            for layout in layouts {
                let x = values(b * t * heads * d, 7);
                let mut host = x.clone();
                HostRotary::new(&rotary, &layout, t).apply(
                    &mut host,
                    HeadLayout::dense(heads, d),
                    heads,
                    b * t,
                );
                let (cos, sin) = layout.rotary_tables(&rotary, t, &dev);
                let want: Vec<f32> = rotary
                    .apply(heads_tensor(&x, b, t, heads, d), &cos, &sin)
                    .swap_dims(1, 2)
                    .try_into_vec_as()
                    .unwrap();
                assert_eq!(host, want, "rotary_dim {rotary_dim}");
            }
        }
    }

    #[test]
    fn mismatched_buffers_are_errors() {
        let shape = AttentionShape {
            batch: 1,
            seq_len: 4,
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
        };
        let q = [0f32; 32];
        let kv = vec![0f32; 16];
        let mut out = vec![0f32; 32];
        let dense = |n| HeadLayout::dense(n, 4);
        // `attend` on these buffers with the given query length, mask and output.
        let call = |q_len: usize, mask: Option<&[bool]>, out: &mut [f32]| {
            attend(
                shape,
                1.0,
                (&q[..q_len], dense(2)),
                (&kv, dense(1)),
                (&kv, dense(1)),
                mask,
                out,
            )
        };
        assert!(call(32, None, &mut out).is_ok());
        assert!(call(31, None, &mut out).is_err());
        assert!(call(32, Some(&[false; 3]), &mut out).is_err());
        let mut short = vec![0f32; 31];
        assert!(call(32, None, &mut short).is_err());
    }
}
