//! The [`Intervention`] trait and how interventions become hooks.

use burn::tensor::Tensor;
use negdiff_hooks::{Hook, HookContext, HookError, HookId, HookRegistry, HookSite};

use crate::InterventionError;

/// An edit of activations at one or more hook sites. Implement this to add your own.
///
/// `apply` receives the activation `[batch, pos, width]` at a site listed by `sites` and returns
/// its replacement (same shape). At `mlp.hook_act`, `ctx.input` holds the pre-activation, so
/// activation-function swaps can see `x`. Padding positions may be edited freely: they never
/// reach a real token.
///
/// ```
/// use burn::tensor::Tensor;
/// use negdiff_hooks::{HookContext, HookSite};
/// use negdiff_interventions::{Intervention, InterventionError};
///
/// /// Doubles the whole residual stream entering block 0.
/// struct DoubleResid;
///
/// impl Intervention for DoubleResid {
///     fn name(&self) -> String { "double-resid".into() }
///     fn sites(&self) -> Vec<HookSite> { vec!["blocks.0.hook_resid_pre".parse().unwrap()] }
///     fn apply(&self, _site: HookSite, x: Tensor<3>, _ctx: &HookContext<'_>)
///         -> Result<Tensor<3>, InterventionError> {
///         Ok(x.mul_scalar(2.0))
///     }
/// }
/// ```
pub trait Intervention {
    /// A name recorded in results.
    fn name(&self) -> String;

    /// The sites this intervention edits.
    fn sites(&self) -> Vec<HookSite>;

    /// Returns the edited activation for `site`.
    fn apply(
        &self,
        site: HookSite,
        value: Tensor<3>,
        ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError>;
}

impl<T: Intervention + ?Sized> Intervention for &T {
    fn name(&self) -> String {
        (**self).name()
    }
    fn sites(&self) -> Vec<HookSite> {
        (**self).sites()
    }
    fn apply(
        &self,
        site: HookSite,
        value: Tensor<3>,
        ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        (**self).apply(site, value, ctx)
    }
}

impl<T: Intervention + ?Sized> Intervention for Box<T> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn sites(&self) -> Vec<HookSite> {
        (**self).sites()
    }
    fn apply(
        &self,
        site: HookSite,
        value: Tensor<3>,
        ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        (**self).apply(site, value, ctx)
    }
}

/// Adapts an [`Intervention`] to the hook registry.
struct InterventionHook<I> {
    intervention: I,
    name: String,
}

impl<I: Intervention> Hook for InterventionHook<I> {
    fn name(&self) -> &str {
        &self.name
    }

    fn call(
        &mut self,
        site: HookSite,
        value: Tensor<3>,
        ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, HookError> {
        self.intervention
            .apply(site, value, ctx)
            .map_err(|e| match e {
                InterventionError::Hook(h) => h,
                other => HookError::failed(self.name.clone(), site, other.to_string()),
            })
    }
}

/// Registers `intervention` at all its sites. Sites are checked against the model: an unknown
/// layer or point is an error here, never a silent no-op. An intervention with no sites (an
/// empty neuron set) registers nothing and is exactly the identity.
pub fn attach<'a>(
    hooks: &mut HookRegistry<'a>,
    intervention: impl Intervention + 'a,
) -> Result<Option<HookId>, InterventionError> {
    let sites = intervention.sites();
    if sites.is_empty() {
        return Ok(None);
    }
    let name = intervention.name();
    let id = hooks.add(sites, Box::new(InterventionHook { intervention, name }))?;
    Ok(Some(id))
}

/// Several interventions applied in order at every site any of them lists.
pub struct Compose<'a> {
    parts: Vec<Box<dyn Intervention + 'a>>,
}

impl<'a> Compose<'a> {
    /// Applies `parts` in the given order.
    pub fn new(parts: Vec<Box<dyn Intervention + 'a>>) -> Self {
        Compose { parts }
    }
}

impl Intervention for Compose<'_> {
    fn name(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join("+")
    }

    fn sites(&self) -> Vec<HookSite> {
        let mut sites: Vec<HookSite> = self.parts.iter().flat_map(|p| p.sites()).collect();
        sites.sort();
        sites.dedup();
        sites
    }

    fn apply(
        &self,
        site: HookSite,
        mut value: Tensor<3>,
        ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        for part in &self.parts {
            if part.sites().contains(&site) {
                value = part.apply(site, value, ctx)?;
            }
        }
        Ok(value)
    }
}
