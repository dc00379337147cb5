//! negdiff's integration tests, in one binary so that the heavy dependency tree links once.

mod common;
mod model_parity;
mod smollm2;
