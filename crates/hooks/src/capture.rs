//! Streaming activations from the device to a consumer, batch by batch.

use burn::tensor::{Int, Tensor, TensorData};

use crate::{Activation, Hook, HookContext, HookError, HookSite};

/// One site's activations for one batch, on the host, with what is needed to skip padding.
#[derive(Debug, Clone, Copy)]
pub struct CapturedBatch<'a> {
    /// Where the values come from.
    pub site: HookSite,
    /// Row-major `[batch, pos, width]` values (padding positions included).
    pub data: &'a [f32],
    /// Number of sequences.
    pub batch_size: usize,
    /// Padded length.
    pub seq_len: usize,
    /// Number of columns: the site's width, or the number of captured neurons.
    pub width: usize,
    /// Real length of each sequence; positions at or beyond it are padding.
    pub lengths: &'a [usize],
    /// The neuron index of each column when a subset was captured; `None` = all columns.
    pub neurons: Option<&'a [usize]>,
}

impl<'a> CapturedBatch<'a> {
    /// The `width` values of sequence `b` at position `pos`.
    pub fn row(&self, b: usize, pos: usize) -> &'a [f32] {
        let start = (b * self.seq_len + pos) * self.width;
        &self.data[start..start + self.width]
    }

    /// Every real (non-padding) token as `(sequence, position, values)`, in batch order.
    pub fn rows(&self) -> impl Iterator<Item = (usize, usize, &'a [f32])> + '_ {
        self.lengths
            .iter()
            .enumerate()
            .flat_map(move |(b, &len)| (0..len).map(move |pos| (b, pos, self.row(b, pos))))
    }

    /// Number of real tokens.
    pub fn n_valid(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// The consumer of captured activations. Implemented for closures
/// `FnMut(&CapturedBatch) -> Result<(), HookError>`.
pub trait CaptureSink {
    /// Receives one site's values for one batch.
    fn consume(&mut self, batch: &CapturedBatch<'_>) -> Result<(), HookError>;
}

impl<F> CaptureSink for F
where
    F: FnMut(&CapturedBatch<'_>) -> Result<(), HookError>,
{
    fn consume(&mut self, batch: &CapturedBatch<'_>) -> Result<(), HookError> {
        self(batch)
    }
}

/// A hook that copies the activation (or some of its columns) to the host and hands it to a
/// [`CaptureSink`]. It never changes the activation.
pub struct Capture<S> {
    sink: S,
    neurons: Option<Vec<usize>>,
    /// Device copy of `neurons`, made on first use and reused.
    index: Option<Tensor<1, Int>>,
}

impl<S: CaptureSink> Capture<S> {
    /// Captures all columns (`neurons = None`) or only the listed ones, in the listed order.
    pub fn new(sink: S, neurons: Option<Vec<usize>>) -> Self {
        Capture {
            sink,
            neurons,
            index: None,
        }
    }

    /// The sink, to read its results after the run.
    pub fn into_sink(self) -> S {
        self.sink
    }
}

impl<S: CaptureSink> Hook for Capture<S> {
    fn name(&self) -> &str {
        "capture"
    }

    fn call(
        &mut self,
        site: HookSite,
        value: Activation,
        ctx: &HookContext<'_>,
    ) -> Result<Activation, HookError> {
        let [batch_size, seq_len, full_width] = value.dims();
        let selected = match &self.neurons {
            None => value.clone(),
            Some(neurons) => {
                if let Some(&bad) = neurons.iter().find(|&&n| n >= full_width) {
                    return Err(HookError::NeuronOutOfRange {
                        site: site.to_string(),
                        neuron: bad,
                        width: full_width,
                    });
                }
                let index = self.index.get_or_insert_with(|| {
                    let ids: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
                    let n = ids.len();
                    Tensor::from_data(TensorData::new(ids, [n]), ctx.batch.device())
                });
                value.clone().select(2, index.clone())
            }
        };
        let width = selected.dims()[2];
        let data: Vec<f32> =
            selected
                .try_into_vec_as::<f32>()
                .map_err(|e| HookError::Readback {
                    site: site.to_string(),
                    message: e.to_string(),
                })?;
        let batch = CapturedBatch {
            site,
            data: &data,
            batch_size,
            seq_len,
            width,
            lengths: ctx.batch.lengths(),
            neurons: self.neurons.as_deref(),
        };
        self.sink.consume(&batch)?;
        Ok(value)
    }
}
