//! The registry the forward pass consults at every hook site.

use std::fmt;

use crate::{Activation, BatchContext, CaptureSink, HookContext, HookError, HookPoint, HookSite};

/// A callback at one or more hook sites: reads the activation and returns it, possibly changed.
///
/// Returning the input unchanged is a pure observer; returning a new tensor of the same shape
/// replaces the activation for the rest of the forward pass. Hooks registered at the same site
/// run in registration order, each seeing the previous one's output.
pub trait Hook {
    /// A short name used in error messages.
    fn name(&self) -> &str;

    /// Called at `site` with the activation `[batch, pos, width]`.
    fn call(
        &mut self,
        site: HookSite,
        value: Activation,
        ctx: &HookContext<'_>,
    ) -> Result<Activation, HookError>;
}

/// Which sites a model offers, and their widths: the registry checks registrations against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLayout {
    /// Architecture name, for error messages.
    pub architecture: String,
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual-stream width.
    pub d_model: usize,
    /// MLP width (number of neurons per layer).
    pub d_mlp: usize,
    /// The points this architecture calls.
    pub points: Vec<HookPoint>,
}

impl SiteLayout {
    /// A layout for `n_layers` blocks offering `points`.
    pub fn new(
        architecture: impl Into<String>,
        n_layers: usize,
        d_model: usize,
        d_mlp: usize,
        points: Vec<HookPoint>,
    ) -> Self {
        SiteLayout {
            architecture: architecture.into(),
            n_layers,
            d_model,
            d_mlp,
            points,
        }
    }

    /// Checks that `site` exists in this model.
    pub fn check(&self, site: HookSite) -> Result<(), HookError> {
        if site.layer >= self.n_layers {
            return Err(HookError::LayerOutOfRange {
                site: site.to_string(),
                n_layers: self.n_layers,
                architecture: self.architecture.clone(),
            });
        }
        if !self.points.contains(&site.point) {
            return Err(HookError::PointNotAvailable {
                site: site.to_string(),
                architecture: self.architecture.clone(),
                available: self
                    .points
                    .iter()
                    .map(|p| p.suffix())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(())
    }

    /// The last-dimension width of the tensor at `site`.
    pub fn width(&self, site: HookSite) -> usize {
        if site.point.is_mlp_width() {
            self.d_mlp
        } else {
            self.d_model
        }
    }

    /// Every site of this model, layer by layer.
    pub fn all_sites(&self) -> Vec<HookSite> {
        (0..self.n_layers)
            .flat_map(|l| self.points.iter().map(move |&p| HookSite::new(l, p)))
            .collect()
    }
}

/// Handle to a registered hook, for [`HookRegistry::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(usize);

/// The hooks of one or more forward passes, indexed by site.
///
/// The lifetime lets hooks borrow the caller's state (a statistics accumulator, say) for as long
/// as the registry lives; drop the registry to get the borrow back.
pub struct HookRegistry<'a> {
    layout: SiteLayout,
    hooks: Vec<Option<Box<dyn Hook + 'a>>>,
    /// `slots[layer * N_POINTS + point]` lists the hook indices registered at that site, in order.
    slots: Vec<Vec<usize>>,
    active: usize,
}

const N_POINTS: usize = HookPoint::ALL.len();

impl<'a> HookRegistry<'a> {
    /// An empty registry for a model with this layout.
    pub fn new(layout: SiteLayout) -> Self {
        let slots = vec![Vec::new(); layout.n_layers * N_POINTS];
        HookRegistry {
            layout,
            hooks: Vec::new(),
            slots,
            active: 0,
        }
    }

    /// The layout registrations are checked against.
    pub fn layout(&self) -> &SiteLayout {
        &self.layout
    }

    /// Registers `hook` at every site in `sites` (checked first: nothing is registered if any is
    /// invalid).
    pub fn add(
        &mut self,
        sites: impl IntoIterator<Item = HookSite>,
        hook: Box<dyn Hook + 'a>,
    ) -> Result<HookId, HookError> {
        let sites: Vec<HookSite> = sites.into_iter().collect();
        for &site in &sites {
            self.layout.check(site)?;
        }
        let index = self.hooks.len();
        self.hooks.push(Some(hook));
        for site in sites {
            let slot = &mut self.slots[site.layer * N_POINTS + site.point.index()];
            if !slot.contains(&index) {
                slot.push(index);
                self.active += 1;
            }
        }
        Ok(HookId(index))
    }

    /// Registers a [`Capture`](crate::Capture) of `sites` (optionally only the given neuron
    /// columns) streaming into `sink`.
    pub fn add_capture<S: CaptureSink + 'a>(
        &mut self,
        sites: impl IntoIterator<Item = HookSite>,
        neurons: Option<Vec<usize>>,
        sink: S,
    ) -> Result<HookId, HookError> {
        let sites: Vec<HookSite> = sites.into_iter().collect();
        if let Some(neurons) = &neurons {
            for &site in &sites {
                let width = self.layout.width(site);
                if let Some(&bad) = neurons.iter().find(|&&n| n >= width) {
                    return Err(HookError::NeuronOutOfRange {
                        site: site.to_string(),
                        neuron: bad,
                        width,
                    });
                }
            }
        }
        self.add(sites, Box::new(crate::Capture::new(sink, neurons)))
    }

    /// Unregisters a hook and hands it back.
    pub fn remove(&mut self, id: HookId) -> Option<Box<dyn Hook + 'a>> {
        let hook = self.hooks.get_mut(id.0)?.take()?;
        for slot in &mut self.slots {
            let before = slot.len();
            slot.retain(|&i| i != id.0);
            self.active -= before - slot.len();
        }
        Some(hook)
    }

    /// Whether no hook is registered anywhere.
    pub fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Whether any hook is registered at `site`.
    #[inline]
    pub fn is_active(&self, site: HookSite) -> bool {
        self.active != 0
            && self
                .slots
                .get(site.layer * N_POINTS + site.point.index())
                .is_some_and(|s| !s.is_empty())
    }

    /// Runs the hooks at `site` in registration order. With none registered it returns `value`
    /// untouched, without any device work.
    #[inline]
    pub fn run(
        &mut self,
        site: HookSite,
        value: Activation,
        batch: &BatchContext,
    ) -> Result<Activation, HookError> {
        self.run_with_input(site, value, batch, None)
    }

    /// Like [`run`](Self::run), passing the site's input tensor to the hooks (see
    /// [`HookContext::input`]).
    pub fn run_with_input(
        &mut self,
        site: HookSite,
        mut value: Activation,
        batch: &BatchContext,
        input: Option<&Activation>,
    ) -> Result<Activation, HookError> {
        if !self.is_active(site) {
            return Ok(value);
        }
        let ctx = HookContext { batch, input };
        let slot = site.layer * N_POINTS + site.point.index();
        for k in 0..self.slots[slot].len() {
            let index = self.slots[slot][k];
            let Some(hook) = self.hooks[index].as_mut() else {
                continue;
            };
            let before = value.dims();
            value = hook.call(site, value, &ctx)?;
            let after = value.dims();
            if before != after {
                return Err(HookError::ShapeChanged {
                    site: site.to_string(),
                    before,
                    after,
                });
            }
        }
        Ok(value)
    }
}

impl fmt::Debug for HookRegistry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sites = Vec::new();
        for layer in 0..self.layout.n_layers {
            for point in HookPoint::ALL {
                let slot = &self.slots[layer * N_POINTS + point.index()];
                if !slot.is_empty() {
                    let names: Vec<&str> = slot
                        .iter()
                        .filter_map(|&i| self.hooks[i].as_ref().map(|h| h.name()))
                        .collect();
                    sites.push(format!("{}: {:?}", HookSite::new(layer, point), names));
                }
            }
        }
        f.debug_struct("HookRegistry")
            .field("architecture", &self.layout.architecture)
            .field("sites", &sites)
            .finish()
    }
}
