//! Hook sites and the hook mechanism that negdiff's forward passes call.
//!
//! Every architecture in `negdiff-model` calls [`HookRegistry::run`] at a fixed set of named
//! sites (named like TransformerLens: `blocks.{i}.mlp.hook_pre` is the neuron
//! pre-activation). A site nobody registered a hook for costs one table lookup; a hook can
//! read the tensor ([`Capture`] streams it to a [`CaptureSink`]) or replace it (the
//! interventions of `negdiff-interventions` are hooks).
//!
//! ```
//! use negdiff_hooks::{HookPoint, HookSite, HookRegistry, SiteLayout};
//!
//! let site: HookSite = "blocks.3.mlp.hook_pre".parse().unwrap();
//! assert_eq!(site, HookSite::new(3, HookPoint::MlpPre));
//! assert_eq!(site.to_string(), "blocks.3.mlp.hook_pre");
//!
//! // A registry for a 4-layer model; registering beyond layer 3 is an error, not a no-op.
//! // Hooks may borrow the caller's state (here `seen`) for as long as the registry lives.
//! let mut seen = 0usize;
//! let layout = SiteLayout::new("llama", 4, 64, 256, HookPoint::ALL.to_vec());
//! let mut hooks = HookRegistry::new(layout);
//! hooks
//!     .add_capture([site], None, |batch: &negdiff_hooks::CapturedBatch<'_>| {
//!         seen += batch.n_valid();
//!         Ok(())
//!     })
//!     .unwrap();
//! assert!(hooks.add_capture(["blocks.4.mlp.hook_pre".parse().unwrap()], None, |_: &negdiff_hooks::CapturedBatch<'_>| Ok(())).is_err());
//! ```

mod capture;
mod context;
mod error;
mod registry;
mod site;

pub use capture::{Capture, CaptureSink, CapturedBatch};
pub use context::{BatchContext, HookContext};
pub use error::HookError;
pub use registry::{Hook, HookId, HookRegistry, SiteLayout};
pub use site::{HookPoint, HookSite};

/// The tensor type every hook site carries: `[batch, pos, width]`, f32.
pub type Activation = burn::tensor::Tensor<3>;
