//! The GGUF reader against the Python `gguf` package (what transformers uses).

use negdiff_model::ModelError;
use negdiff_model::weights::gguf::{GgmlType, GgufFile, GgufValue};

use crate::common::{fixture, read_tensors};

#[test]
fn every_supported_type_dequantises_like_gguf_py() {
    let file = GgufFile::open(&fixture("gguf/quants.gguf.bin")).unwrap();
    let expected = read_tensors(&fixture("gguf/quants_expected.safetensors"));
    assert_eq!(expected.len(), 8);
    for (name, exp) in &expected {
        let got = file.tensor_f32(name).unwrap();
        assert_eq!(got.shape, exp.shape, "{name}");
        // Bit-identical: same formulas, same f32 rounding, no fused multiply-add.
        for (i, (a, b)) in got.data.iter().zip(&exp.f32).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{name}[{i}]: {a} vs {b}");
        }
    }
}

#[test]
fn metadata_of_every_type_is_read() {
    let file = GgufFile::open(&fixture("gguf/quants.gguf.bin")).unwrap();
    assert_eq!(file.get("test.u32"), Some(&GgufValue::U32(7)));
    assert_eq!(file.get("test.i32"), Some(&GgufValue::I32(-7)));
    assert_eq!(file.get("test.f32"), Some(&GgufValue::F32(0.5)));
    assert_eq!(file.get("test.f64"), Some(&GgufValue::F64(0.25)));
    assert_eq!(file.get("test.u64"), Some(&GgufValue::U64(1 << 40)));
    assert_eq!(file.get("test.bool"), Some(&GgufValue::Bool(true)));
    assert_eq!(
        file.get("test.string").and_then(|v| v.as_str()),
        Some("héllo")
    );
    let strings: Vec<&str> = file
        .get("test.strings")
        .and_then(|v| v.as_array())
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(strings, ["a", "bb", ""]);
    assert_eq!(
        file.get("test.array")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
        Some(3)
    );
}

#[test]
fn unsupported_tensor_type_is_a_typed_error_naming_file_and_tensor() {
    let path = fixture("gguf/quants.gguf.bin");
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.info("q4_k").unwrap().ggml_type, GgmlType::Other(12));
    match file.tensor_f32("q4_k") {
        Err(ModelError::UnsupportedDtype {
            path: p,
            name,
            dtype,
        }) => {
            assert_eq!(p, path);
            assert_eq!(name, "q4_k");
            assert_eq!(dtype, "Q4_K");
        }
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
}
