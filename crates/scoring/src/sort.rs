//! Fast ascending sorts of floats: LSD radix sort on order-preserving integer keys.
//!
//! Scoring sorts every neuron's activations (tens of thousands of values, tens of thousands of
//! neurons), and a comparison sort is the largest cost there. The float bit pattern is mapped
//! to an unsigned key whose integer order is the float order (flip all bits of negatives, set
//! the sign bit of non-negatives), and the keys are sorted with byte-wide counting passes.
//! Passes whose byte is the same for every element are skipped, which is common for the top
//! byte (sign and high exponent bits).
//!
//! The key order is exactly [`f32::total_cmp`] / [`f64::total_cmp`]: −0.0 sorts before +0.0,
//! and NaNs (which callers are not expected to pass) go to the start (negative sign bit) or
//! the end (positive). The sort is stable, so the result equals
//! `v.sort_by(|a, b| a.total_cmp(b))` bit for bit.

/// Below this length a comparison sort is faster than four counting passes.
const SMALL: usize = 64;

/// The order-preserving key of an `f32`.
#[inline(always)]
fn key32(x: f32) -> u32 {
    let b = x.to_bits();
    // Negative: flip everything (larger magnitude = smaller key). Non-negative: set the sign.
    b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000)
}

/// The order-preserving key of an `f64`.
#[inline(always)]
fn key64(x: f64) -> u64 {
    let b = x.to_bits();
    b ^ ((((b as i64) >> 63) as u64) | 0x8000_0000_0000_0000)
}

/// Sorts `v` ascending (in [`f32::total_cmp`] order), allocating a scratch buffer.
///
/// Use [`sort_f32_with_scratch`] in loops to reuse the buffer.
pub fn sort_f32(v: &mut [f32]) {
    let mut scratch = Vec::new();
    sort_f32_with_scratch(v, &mut scratch);
}

/// Sorts `v` ascending (in [`f32::total_cmp`] order), using `scratch` as the second buffer of
/// the radix passes (resized to `v.len()`; its contents on return are unspecified).
pub fn sort_f32_with_scratch(v: &mut [f32], scratch: &mut Vec<f32>) {
    radix_sort(v, scratch, key32_as_u64);
}

/// Sorts `v` ascending (in [`f64::total_cmp`] order), allocating a scratch buffer.
pub fn sort_f64(v: &mut [f64]) {
    let mut scratch = Vec::new();
    sort_f64_with_scratch(v, &mut scratch);
}

/// Sorts `v` ascending (in [`f64::total_cmp`] order), using `scratch` as the second buffer.
pub fn sort_f64_with_scratch(v: &mut [f64], scratch: &mut Vec<f64>) {
    radix_sort(v, scratch, key64);
}

#[inline(always)]
fn key32_as_u64(x: f32) -> u64 {
    u64::from(key32(x))
}

/// Element types the radix sort handles.
trait RadixItem: Copy + Default {
    /// Number of key bytes.
    const BYTES: usize;
    /// Comparison fallback for short inputs (same order as the key).
    fn small_sort(v: &mut [Self]);
}

impl RadixItem for f32 {
    const BYTES: usize = 4;
    fn small_sort(v: &mut [Self]) {
        v.sort_by(f32::total_cmp);
    }
}

impl RadixItem for f64 {
    const BYTES: usize = 8;
    fn small_sort(v: &mut [Self]) {
        v.sort_by(f64::total_cmp);
    }
}

/// Stable LSD radix sort with 8-bit digits, ping-ponging between `v` and `scratch`.
fn radix_sort<T: RadixItem>(v: &mut [T], scratch: &mut Vec<T>, key: impl Fn(T) -> u64 + Copy) {
    let n = v.len();
    if n < SMALL {
        T::small_sort(v);
        return;
    }
    // One read pass builds every digit's histogram.
    let mut hist = vec![[0usize; 256]; T::BYTES];
    for &x in v.iter() {
        let k = key(x);
        for (d, h) in hist.iter_mut().enumerate() {
            h[((k >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    scratch.clear();
    scratch.resize(n, T::default());
    let mut data_in_v = true;
    for (d, h) in hist.iter().enumerate() {
        // Every element has the same byte here: the pass would be the identity permutation.
        if h.contains(&n) {
            continue;
        }
        let mut offsets = [0usize; 256];
        let mut running = 0;
        for (o, &c) in offsets.iter_mut().zip(h.iter()) {
            *o = running;
            running += c;
        }
        let (src, dst): (&[T], &mut [T]) = if data_in_v {
            (&*v, scratch.as_mut_slice())
        } else {
            (scratch.as_slice(), &mut *v)
        };
        let shift = 8 * d;
        for &x in src {
            let b = ((key(x) >> shift) & 0xff) as usize;
            dst[offsets[b]] = x;
            offsets[b] += 1;
        }
        data_in_v = !data_in_v;
    }
    if !data_in_v {
        v.copy_from_slice(scratch);
    }
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn f32_matches_total_cmp(v in proptest::collection::vec(any::<f32>(), 0..600)) {
            let mut s = v.clone();
            sort_f32(&mut s);
            let got: Vec<u32> = s.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(got, reference32(&v));
        }

        #[test]
        fn f32_matches_total_cmp_narrow(v in proptest::collection::vec(-2.0f32..2.0, 0..3000)) {
            let mut s = v.clone();
            sort_f32(&mut s);
            let got: Vec<u32> = s.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(got, reference32(&v));
        }

        #[test]
        fn f32_matches_with_ties(v in proptest::collection::vec(-20i32..20, 0..800)) {
            let v: Vec<f32> = v.iter().map(|&i| i as f32 * 0.25).collect();
            let mut s = v.clone();
            sort_f32(&mut s);
            let got: Vec<u32> = s.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(got, reference32(&v));
        }

        #[test]
        fn f64_matches_total_cmp(v in proptest::collection::vec(any::<f64>(), 0..600)) {
            let mut s = v.clone();
            sort_f64(&mut s);
            let got: Vec<u64> = s.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(got, reference64(&v));
        }
    }

    #[test]
    fn signed_zeros_and_specials() {
        let mut v: Vec<f32> = vec![0.0, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY];
        v.extend((0..100).map(|i| (i as f32 - 50.0) * 1e-30));
        let want = reference32(&v);
        sort_f32(&mut v);
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
    }

    #[test]
    fn scratch_is_reusable() {
        let mut scratch = Vec::new();
        for n in [0usize, 1, 63, 64, 65, 1000, 10] {
            let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 - 500.0).collect();
            let want = reference32(&v);
            sort_f32_with_scratch(&mut v, &mut scratch);
            assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        }
    }
}
