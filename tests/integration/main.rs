//! negdiff's integration tests, in one binary so that the heavy dependency tree links once.

mod bad_input;
mod benchmarks;
mod common;
#[cfg(feature = "wgpu")]
mod device_parity;
mod gguf_reader;
mod hub_cache;
mod interventions;
mod model_parity;
mod packing;
mod scoring;
mod smollm2;
