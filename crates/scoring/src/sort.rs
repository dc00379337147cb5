//! Fast ascending sorts of floats: LSD radix sort on order-preserving integer keys.
//!
//! Scoring sorts every neuron's activations (tens of thousands of values, tens of thousands of
//! neurons), and a comparison sort is the largest cost there (about 3× slower than this at
//! 30,000 values). The float bit pattern is mapped to an unsigned key whose integer order is
//! the float order (flip all bits of negatives, set the sign bit of non-negatives); the keys
//! are computed once, sorted with byte-wide counting passes (all byte histograms are built in
//! the same pass that computes the keys), and mapped back. A pass whose byte is the same for
//! every element is skipped.
//!
//! The key order is exactly [`f32::total_cmp`] / [`f64::total_cmp`]: −0.0 sorts before +0.0,
//! and NaNs (which callers are not expected to pass) go to the start (negative sign bit) or
//! the end (positive). Elements with equal keys are bit-identical, so the result equals
//! `v.sort_by(|a, b| a.total_cmp(b))` bit for bit.

/// Below this length a comparison sort of the keys beats the counting passes.
const SMALL: usize = 64;

/// The order-preserving key of an `f32`.
#[inline(always)]
pub(crate) fn key32(x: f32) -> u32 {
    let b = x.to_bits();
    // Negative: flip everything (larger magnitude = smaller key). Non-negative: set the sign.
    b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000)
}

/// Inverse of [`key32`].
#[inline(always)]
pub(crate) fn unkey32(k: u32) -> f32 {
    // Keys with the top bit set came from non-negative floats.
    let mask = if k & 0x8000_0000 != 0 {
        0x8000_0000
    } else {
        0xffff_ffff
    };
    f32::from_bits(k ^ mask)
}

/// The order-preserving key of an `f64`.
#[inline(always)]
fn key64(x: f64) -> u64 {
    let b = x.to_bits();
    b ^ ((((b as i64) >> 63) as u64) | 0x8000_0000_0000_0000)
}

/// Inverse of [`key64`].
#[inline(always)]
fn unkey64(k: u64) -> f64 {
    let mask = if k & 0x8000_0000_0000_0000 != 0 {
        0x8000_0000_0000_0000
    } else {
        u64::MAX
    };
    f64::from_bits(k ^ mask)
}

/// Reusable buffers for the radix sorts, so sorting in a loop does not allocate.
#[derive(Debug, Default, Clone)]
pub struct RadixScratch {
    k32: [Vec<u32>; 2],
    k64: [Vec<u64>; 2],
}

impl RadixScratch {
    /// Empty buffers; they grow to the largest input sorted.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Sorts `v` ascending (in [`f32::total_cmp`] order), allocating scratch buffers.
///
/// Use [`sort_f32_with`] in loops to reuse them.
pub fn sort_f32(v: &mut [f32]) {
    sort_f32_with(v, &mut RadixScratch::new());
}

/// Sorts `v` ascending (in [`f32::total_cmp`] order) with reusable scratch buffers.
pub fn sort_f32_with(v: &mut [f32], scratch: &mut RadixScratch) {
    let [a, b] = &mut scratch.k32;
    a.clear();
    a.extend(v.iter().map(|&x| key32(x)));
    let keys = radix_sort_keys(a, b);
    for (x, &k) in v.iter_mut().zip(keys) {
        *x = unkey32(k);
    }
}

/// Sorts `v` ascending (in [`f64::total_cmp`] order), allocating scratch buffers.
pub fn sort_f64(v: &mut [f64]) {
    sort_f64_with(v, &mut RadixScratch::new());
}

/// Sorts `v` ascending (in [`f64::total_cmp`] order) with reusable scratch buffers.
pub fn sort_f64_with(v: &mut [f64], scratch: &mut RadixScratch) {
    let [a, b] = &mut scratch.k64;
    a.clear();
    a.extend(v.iter().map(|&x| key64(x)));
    let keys = radix_sort_keys(a, b);
    for (x, &k) in v.iter_mut().zip(keys) {
        *x = unkey64(k);
    }
}

/// The sorted keys ([`key32`]) of `x`, in one of the scratch buffers, and Σx in f64 (four
/// accumulators); `x` is not modified. Scoring needs the sum anyway, and taking it in the pass
/// that computes the keys and the byte histograms saves a pass over the data; returning keys
/// lets the caller fuse the decoding with its next pass.
pub(crate) fn sorted_keys_f32_and_sum<'a>(
    x: &[f32],
    scratch: &'a mut RadixScratch,
) -> (&'a [u32], f64) {
    let [a, b] = &mut scratch.k32;
    a.clear();
    a.resize(x.len(), 0);
    let mut hist = [[0u32; 256]; 4];
    let mut sums = [0.0f64; 4];
    let xc = x.chunks_exact(4);
    let mut rest = 0.0;
    for (&v, k) in xc.remainder().iter().zip(a.iter_mut().rev()) {
        // The remainder goes to the end of `a` in reverse; order is irrelevant before sorting.
        *k = key32(v);
        rest += f64::from(v);
    }
    for (c, ks) in xc.zip(a.chunks_exact_mut(4)) {
        for l in 0..4 {
            ks[l] = key32(c[l]);
            sums[l] += f64::from(c[l]);
        }
    }
    for &k in a.iter() {
        for (d, h) in hist.iter_mut().enumerate() {
            h[k.byte(d)] += 1;
        }
    }
    let sum = (sums[0] + sums[2]) + (sums[1] + sums[3]) + rest;
    (radix_sort_keys_with_hist(a, b, &hist), sum)
}

/// Unsigned keys the counting sort handles.
trait Key: Copy + Default + Ord {
    /// Number of bytes.
    const BYTES: usize;
    /// Byte `d` (0 = least significant).
    fn byte(self, d: usize) -> usize;
}

impl Key for u32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn byte(self, d: usize) -> usize {
        ((self >> (8 * d)) & 0xff) as usize
    }
}

impl Key for u64 {
    const BYTES: usize = 8;
    #[inline(always)]
    fn byte(self, d: usize) -> usize {
        ((self >> (8 * d)) & 0xff) as usize
    }
}

/// LSD radix sort of `a` with 8-bit digits, ping-ponging with `b`; returns whichever buffer
/// holds the result.
fn radix_sort_keys<'a, K: Key>(a: &'a mut Vec<K>, b: &'a mut Vec<K>) -> &'a [K] {
    if a.len() < SMALL {
        a.sort_unstable();
        return a;
    }
    // One read pass builds every digit's histogram (u32 counts: half the cache footprint).
    let mut hist = vec![[0u32; 256]; K::BYTES];
    for &k in a.iter() {
        for (d, h) in hist.iter_mut().enumerate() {
            h[k.byte(d)] += 1;
        }
    }
    radix_sort_keys_with_hist(a, b, &hist)
}

/// [`radix_sort_keys`] given the byte histograms of `a`.
fn radix_sort_keys_with_hist<'a, K: Key>(
    a: &'a mut Vec<K>,
    b: &'a mut Vec<K>,
    hist: &[[u32; 256]],
) -> &'a [K] {
    let n = a.len();
    if n < SMALL {
        a.sort_unstable();
        return a;
    }
    b.clear();
    b.resize(n, K::default());
    let mut in_a = true;
    for (d, h) in hist.iter().enumerate() {
        // Every element has the same byte here: the pass would be the identity permutation.
        if h.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut offsets = [0usize; 256];
        let mut running = 0usize;
        for (o, &c) in offsets.iter_mut().zip(h.iter()) {
            *o = running;
            running += c as usize;
        }
        let (src, dst): (&[K], &mut [K]) = if in_a {
            (a.as_slice(), b.as_mut_slice())
        } else {
            (b.as_slice(), a.as_mut_slice())
        };
        for &k in src {
            let o = &mut offsets[k.byte(d)];
            dst[*o] = k;
            *o += 1;
        }
        in_a = !in_a;
    }
    if in_a { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference32(v: &[f32]) -> Vec<u32> {
        let mut r = v.to_vec();
        r.sort_by(f32::total_cmp);
        r.iter().map(|x| x.to_bits()).collect()
    }

    fn reference64(v: &[f64]) -> Vec<u64> {
        let mut r = v.to_vec();
        r.sort_by(f64::total_cmp);
        r.iter().map(|x| x.to_bits()).collect()
    }

    fn bits32(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn f32_matches_total_cmp(v in proptest::collection::vec(any::<f32>(), 0..600)) {
            let mut s = v.clone();
            sort_f32(&mut s);
            prop_assert_eq!(bits32(&s), reference32(&v));
        }

        #[test]
        fn f32_matches_total_cmp_narrow(v in proptest::collection::vec(-2.0f32..2.0, 0..3000)) {
            let mut s = v.clone();
            sort_f32(&mut s);
            prop_assert_eq!(bits32(&s), reference32(&v));
        }

        #[test]
        fn f32_matches_with_ties(v in proptest::collection::vec(-20i32..20, 0..800)) {
            let v: Vec<f32> = v.iter().map(|&i| i as f32 * 0.25).collect();
            let mut s = v.clone();
            sort_f32(&mut s);
            prop_assert_eq!(bits32(&s), reference32(&v));
        }

        #[test]
        fn f64_matches_total_cmp(v in proptest::collection::vec(any::<f64>(), 0..600)) {
            let mut s = v.clone();
            sort_f64(&mut s);
            let got: Vec<u64> = s.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(got, reference64(&v));
        }

        #[test]
        fn keys_round_trip(x in any::<f32>(), y in any::<f32>()) {
            prop_assert_eq!(unkey32(key32(x)).to_bits(), x.to_bits());
            prop_assert_eq!(key32(x).cmp(&key32(y)), x.total_cmp(&y));
        }
    }

    #[test]
    fn fused_keys_and_sum() {
        let mut scratch = RadixScratch::new();
        for n in [0usize, 3, 64, 1001] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 997) as f32 * 0.5 - 200.0)
                .collect();
            let (keys, sum) = sorted_keys_f32_and_sum(&x, &mut scratch);
            let got: Vec<f32> = keys.iter().map(|&k| unkey32(k)).collect();
            assert_eq!(bits32(&got), reference32(&x));
            let want: f64 = x.iter().map(|&v| f64::from(v)).sum();
            assert!((sum - want).abs() < 1e-9);
        }
    }

    #[test]
    fn signed_zeros_and_specials() {
        let mut v: Vec<f32> = vec![0.0, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY];
        v.extend((0..100).map(|i| (i as f32 - 50.0) * 1e-30));
        v.push(f32::NAN);
        v.push(-f32::NAN);
        let want = reference32(&v);
        sort_f32(&mut v);
        assert_eq!(bits32(&v), want);
    }

    #[test]
    fn scratch_is_reusable() {
        let mut scratch = RadixScratch::new();
        for n in [0usize, 1, 63, 64, 65, 1000, 10, 5000] {
            let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 - 500.0).collect();
            let want = reference32(&v);
            sort_f32_with(&mut v, &mut scratch);
            assert_eq!(bits32(&v), want);
            let mut w: Vec<f64> = v.iter().rev().map(|&x| f64::from(x) * 1.5).collect();
            let want = reference64(&w);
            sort_f64_with(&mut w, &mut scratch);
            assert_eq!(w.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        }
    }
}
