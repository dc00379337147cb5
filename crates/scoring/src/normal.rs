//! The standard normal distribution: density, CDF, quantile, and the integral of the CDF.
//!
//! These are the only special functions the exact Wasserstein-1 computation needs, so they are
//! implemented here to full double precision rather than pulled from a distribution type:
//!
//! - [`cdf`] goes through `erfc`, so the lower tail keeps its *relative* accuracy
//!   (Φ(−30) ≈ 4.9e-198 is returned as such, not as 0) and the upper tail rounds to 1 only
//!   where the exact value does. `erfc` is FreeBSD/Sun fdlibm's `s_erf.c` (via musl and the
//!   `libm` crate), accurate to < 1 ulp. It is carried here rather than taken from statrs:
//!   statrs 0.18's `erfc` is off by up to ~1e-10 relative (e.g. erfc(1/√2) in the 10th digit),
//!   which would cap the exact W1 at ~1e-10 instead of ~1e-15.
//! - [`quantile`] is Wichura's AS241 (PPND16, 1988), accurate to about 1e-16 relative over
//!   (0, 1). It is evaluated on `min(p, 1 − p)`; callers that know `1 − p` exactly (such as
//!   [`crate::w1::NormalQuantiles`], which uses `(n − i)/n`) should use the symmetry
//!   Φ⁻¹(p) = −Φ⁻¹(1 − p) themselves, because forming `1 − p` from a rounded `p` costs
//!   relative accuracy in the far upper tail.
//! - [`cdf_integral`] is ∫_{−∞}^x Φ(t) dt = xΦ(x) + φ(x), which makes the integral of Φ over
//!   any interval closed-form (used by the streaming estimator).

/// 1/√(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Standard normal density φ(x) = exp(−x²/2)/√(2π). Returns 0 at ±∞.
pub fn phi(x: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Standard normal CDF Φ(x) = erfc(−x/√2)/2, accurate in relative terms in the lower tail.
///
/// Φ(−∞) = 0, Φ(+∞) = 1, NaN stays NaN.
pub fn cdf(x: f64) -> f64 {
    0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// Standard normal quantile Φ⁻¹(p) (Wichura's AS241 / PPND16).
///
/// `p = 0` gives −∞, `p = 1` gives +∞, and `p` outside [0, 1] or NaN gives NaN.
pub fn quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * horner(&AS241_A, r) / horner(&AS241_B, r);
    }
    // Tail: work with the smaller of p and 1 − p, which is exact here because p > 0.075.
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        let r = r - 1.6;
        horner(&AS241_C, r) / horner(&AS241_D, r)
    } else {
        let r = r - 5.0;
        horner(&AS241_E, r) / horner(&AS241_F, r)
    };
    if q < 0.0 { -x } else { x }
}

/// ∫_{−∞}^x Φ(t) dt = xΦ(x) + φ(x).
///
/// So ∫_a^b Φ = `cdf_integral(b) − cdf_integral(a)` exactly. For x → −∞ the two terms cancel
/// (relative accuracy degrades like 1/x²), but the absolute error stays below ~1e-16·φ(x),
/// which is what differences of this function need.
pub fn cdf_integral(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    x * cdf(x) + phi(x)
}

// AS241 coefficients (Wichura 1988, Applied Statistics 37(3), 477–484), increasing degree.
#[allow(clippy::excessive_precision)]
const AS241_A: [f64; 8] = [
    3.387_132_872_796_366_608_0,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];
#[allow(clippy::excessive_precision)]
const AS241_B: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083_0e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061_0e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561_0e3,
];
#[allow(clippy::excessive_precision)]
const AS241_C: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_90,
    5.769_497_221_460_691_405_50,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    2.417_807_251_774_506_117_70e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_40e-4,
];
#[allow(clippy::excessive_precision)]
const AS241_D: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_40,
    6.897_673_349_851_000_045_50e-1,
    1.481_039_764_274_800_745_90e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946_00e-4,
    1.050_750_071_644_416_843_24e-9,
];
#[allow(clippy::excessive_precision)]
const AS241_E: [f64; 8] = [
    6.657_904_643_501_103_777_20,
    5.463_784_911_164_114_369_90,
    1.784_826_539_917_291_335_80,
    2.965_605_718_285_048_912_30e-1,
    2.653_218_952_657_612_309_30e-2,
    1.242_660_947_388_078_438_60e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
#[allow(clippy::excessive_precision)]
const AS241_F: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_90e-1,
    1.369_298_809_227_358_053_10e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591_00e-4,
    1.846_318_317_510_054_681_80e-5,
    1.421_511_758_316_445_888_70e-7,
    2.044_263_103_389_939_785_64e-15,
];

// ---------------------------------------------------------------------------------------------
// erfc: port of FreeBSD /usr/src/lib/msun/src/s_erf.c (as in musl and the `libm` crate).
//
// ====================================================
// Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
//
// Developed at SunPro, a Sun Microsystems, Inc. business.
// Permission to use, copy, modify, and distribute this
// software is freely granted, provided that this notice
// is preserved.
// ====================================================
//
// Method (see the original for the full derivation): rational approximations of erf on
// [0, 0.84375] and of erf(1 + s) − c on [0.84375, 1.25]; for larger |x|,
// erfc(x) = exp(−x² − 0.5625 + R(1/x²)/S(1/x²))/x with −x² split exactly (Note 1 of the
// original), which keeps the tail's relative accuracy.

#[allow(clippy::excessive_precision, clippy::unreadable_literal)]
mod fdlibm {
    pub(super) const ERX: f64 = 8.45062911510467529297e-01;
    pub(super) const PP: [f64; 5] = [
        1.28379167095512558561e-01,
        -3.25042107247001499370e-01,
        -2.84817495755985104766e-02,
        -5.77027029648944159157e-03,
        -2.37630166566501626084e-05,
    ];
    pub(super) const QQ: [f64; 6] = [
        1.0,
        3.97917223959155352819e-01,
        6.50222499887672944485e-02,
        5.08130628187576562776e-03,
        1.32494738004321644526e-04,
        -3.96022827877536812320e-06,
    ];
    pub(super) const PA: [f64; 7] = [
        -2.36211856075265944077e-03,
        4.14856118683748331666e-01,
        -3.72207876035701323847e-01,
        3.18346619901161753674e-01,
        -1.10894694282396677476e-01,
        3.54783043256182359371e-02,
        -2.16637559486879084300e-03,
    ];
    pub(super) const QA: [f64; 7] = [
        1.0,
        1.06420880400844228286e-01,
        5.40397917702171048937e-01,
        7.18286544141962662868e-02,
        1.26171219808761642112e-01,
        1.36370839120290507362e-02,
        1.19844998467991074170e-02,
    ];
    pub(super) const RA: [f64; 8] = [
        -9.86494403484714822705e-03,
        -6.93858572707181764372e-01,
        -1.05586262253232909814e+01,
        -6.23753324503260060396e+01,
        -1.62396669462573470355e+02,
        -1.84605092906711035994e+02,
        -8.12874355063065934246e+01,
        -9.81432934416914548592e+00,
    ];
    pub(super) const SA: [f64; 9] = [
        1.0,
        1.96512716674392571292e+01,
        1.37657754143519042600e+02,
        4.34565877475229228821e+02,
        6.45387271733267880336e+02,
        4.29008140027567833386e+02,
        1.08635005541779435134e+02,
        6.57024977031928170135e+00,
        -6.04244152148580987438e-02,
    ];
    pub(super) const RB: [f64; 7] = [
        -9.86494292470009928597e-03,
        -7.99283237680523006574e-01,
        -1.77579549177547519889e+01,
        -1.60636384855821916062e+02,
        -6.37566443368389627722e+02,
        -1.02509513161107724954e+03,
        -4.83519191608651397019e+02,
    ];
    pub(super) const SB: [f64; 8] = [
        1.0,
        3.03380607434824582924e+01,
        3.25792512996573918826e+02,
        1.53672958608443695994e+03,
        3.19985821950859553908e+03,
        2.55305040643316442583e+03,
        4.74528541206955367215e+02,
        -2.24409524465858183362e+01,
    ];
}

/// Horner evaluation of a polynomial of any degree, coefficients in increasing degree.
fn horner(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

/// erfc for 0.84375 <= |x| < 28 (the caller reflects negative x).
fn erfc2(ix: u32, x: f64) -> f64 {
    use fdlibm::*;
    if ix < 0x3ff4_0000 {
        // |x| < 1.25
        let s = x.abs() - 1.0;
        return 1.0 - ERX - horner(&PA, s) / horner(&QA, s);
    }
    let x = x.abs();
    let s = 1.0 / (x * x);
    let (r, big_s) = if ix < 0x4006_db6d {
        // |x| < 1/0.35
        (horner(&RA, s), horner(&SA, s))
    } else {
        (horner(&RB, s), horner(&SB, s))
    };
    // z = x with the low 32 bits cleared, so z*z is exact and −x² = −z² + (z − x)(z + x).
    let z = f64::from_bits(x.to_bits() & 0xffff_ffff_0000_0000);
    (-z * z - 0.5625).exp() * ((z - x) * (z + x) + r / big_s).exp() / x
}

/// Complementary error function, < 1 ulp (fdlibm).
fn erfc(x: f64) -> f64 {
    use fdlibm::*;
    let hi = (x.to_bits() >> 32) as u32;
    let negative = hi >> 31 != 0;
    let ix = hi & 0x7fff_ffff;
    if ix >= 0x7ff0_0000 {
        // erfc(NaN) = NaN, erfc(+∞) = 0, erfc(−∞) = 2.
        return 2.0 * f64::from(u8::from(negative)) + 1.0 / x;
    }
    if ix < 0x3feb_0000 {
        // |x| < 0.84375
        if ix < 0x3c70_0000 {
            return 1.0 - x;
        }
        let z = x * x;
        let y = horner(&PP, z) / horner(&QQ, z);
        if negative || ix < 0x3fd0_0000 {
            return 1.0 - (x + x * y);
        }
        return 0.5 - (x - 0.5 + x * y);
    }
    if ix < 0x403c_0000 {
        // |x| < 28
        return if negative {
            2.0 - erfc2(ix, x)
        } else {
            erfc2(ix, x)
        };
    }
    if negative { 2.0 } else { 0.0 }
}

#[cfg(test)]
// The reference values are mpmath's, written to 17 digits on purpose.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    // Reference values from mpmath at 50 digits (ncdf, npdf, and findroot on ncdf), rounded
    // to 17 significant digits.
    #[test]
    fn pdf_known_values() {
        assert!(rel(phi(0.0), 0.398_942_280_401_432_68) < 1e-16);
        assert!(rel(phi(1.0), 0.241_970_724_519_143_35) < 2e-16);
        assert!(rel(phi(-3.5), 8.726_826_950_457_600_7e-4) < 1e-15);
        assert!(rel(phi(10.0), 7.694_598_626_706_419_3e-23) < 1e-14);
        assert_eq!(phi(f64::INFINITY), 0.0);
        assert_eq!(phi(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn cdf_known_values() {
        assert_eq!(cdf(0.0), 0.5);
        assert!(rel(cdf(1.0), 0.841_344_746_068_542_95) < 1e-15);
        assert!(rel(cdf(-1.0), 0.158_655_253_931_457_05) < 1e-15);
        assert!(rel(cdf(-5.0), 2.866_515_718_791_939_1e-7) < 1e-14);
        assert!(rel(cdf(-10.0), 7.619_853_024_160_526_1e-24) < 1e-14);
        assert!(rel(cdf(-30.0), 4.906_713_927_148_187_1e-198) < 1e-13);
        assert!(rel(cdf(2.5), 0.993_790_334_674_223_86) < 1e-15);
        assert_eq!(cdf(40.0), 1.0);
        assert_eq!(cdf(f64::NEG_INFINITY), 0.0);
        assert_eq!(cdf(f64::INFINITY), 1.0);
        assert!(cdf(f64::NAN).is_nan());
    }

    #[test]
    fn quantile_known_values() {
        assert_eq!(quantile(0.5), 0.0);
        let cases = [
            (0.975, 1.959_963_984_540_053_9),
            (0.025, -1.959_963_984_540_054_2),
            (0.1, -1.281_551_565_544_600_4),
            (0.3, -0.524_400_512_708_040_82),
            (1e-10, -6.361_340_902_404_056_2),
            (1e-300, -37.047_096_299_361_199),
            (0.999, 3.090_232_306_167_813_3),
            (0.075, -1.439_531_470_938_455_9),
        ];
        for (p, x) in cases {
            let got = quantile(p);
            assert!(rel(got, x) < 4e-16, "quantile({p}) = {got}, want {x}");
        }
        assert_eq!(quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(quantile(1.0), f64::INFINITY);
        assert!(quantile(-0.1).is_nan());
        assert!(quantile(1.1).is_nan());
        assert!(quantile(f64::NAN).is_nan());
    }

    #[test]
    fn quantile_inverts_cdf() {
        for k in 1..2000 {
            let p = k as f64 / 2000.0;
            let x = quantile(p);
            // Rounding x to a double moves Φ(x) by up to φ(x)·ulp(x), on top of ulp(p).
            let tol = 4.0 * f64::EPSILON * (p + phi(x) * x.abs());
            assert!((cdf(x) - p).abs() <= tol, "p={p}: {}", cdf(x) - p);
        }
        for e in 1..300 {
            let p = 10f64.powi(-e);
            let x = quantile(p);
            // In the tail dΦ/Φ ≈ |x|·dx, and ulp(x) ≈ |x|·ε.
            let tol = 4.0 * f64::EPSILON * (1.0 + x * x);
            assert!(rel(cdf(x), p) < tol, "p=1e-{e}: {}", rel(cdf(x), p));
        }
    }

    #[test]
    fn cdf_integral_matches_quadrature() {
        // ∫_a^b Φ by composite Simpson with many panels.
        let (a, b) = (-2.0_f64, 1.5_f64);
        let m = 20_000;
        let h = (b - a) / m as f64;
        let mut s = cdf(a) + cdf(b);
        for k in 1..m {
            let x = a + k as f64 * h;
            s += if k % 2 == 1 { 4.0 } else { 2.0 } * cdf(x);
        }
        let simpson = s * h / 3.0;
        assert!((cdf_integral(b) - cdf_integral(a) - simpson).abs() < 1e-13);
        assert_eq!(cdf_integral(f64::NEG_INFINITY), 0.0);
        assert!(cdf_integral(-8.0) > 0.0 && cdf_integral(-8.0) < 1e-16);
    }
}
