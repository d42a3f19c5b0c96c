//! Tensor: a shape and contiguous row-major f32 data. Batches are NCHW, as in PyTorch,
//! so a `[N, C, H, W]` tensor stores image n, channel c, row y, column x at
//! `((n * C + c) * H + y) * W + x`.

use crate::error::{Error, Result};

/// A dense f32 tensor in row-major (C) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros. PyTorch: `torch.zeros(shape)`.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// Wraps `data` with `shape`; the element counts must agree.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let want: usize = shape.iter().product();
        if want != data.len() {
            return Err(Error::Input(format!(
                "a tensor of shape {} holds {want} values, but {} were given",
                crate::shape::fmt_shape(shape),
                data.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Gives the tensor the shape `shape`, keeping the allocations of both its shape and
    /// its data: the values are stale, for a caller that overwrites every one. Layers
    /// call it on the buffers they keep from step to step, so that a training step
    /// allocates nothing once the first is done.
    pub fn reuse_as(&mut self, shape: &[usize]) {
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(shape.iter().product(), 0.0);
    }

    /// [`Tensor::reuse_as`] for `n` images of `per_image` shape.
    pub fn reuse_as_batch(&mut self, n: usize, per_image: &[usize]) {
        self.shape.clear();
        self.shape.push(n);
        self.shape.extend_from_slice(per_image);
        self.data
            .resize(n * per_image.iter().product::<usize>(), 0.0);
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The batch size: the first dimension.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// The same data with a new shape of equal element count. PyTorch: `x.reshape(shape)`.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let want: usize = shape.iter().product();
        if want != self.data.len() {
            return Err(Error::Input(format!(
                "cannot reshape {} ({} values) to {} ({want} values)",
                crate::shape::fmt_shape(&self.shape),
                self.data.len(),
                crate::shape::fmt_shape(shape)
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Image `n` of a batch, as a slice of `len() / batch()` values.
    pub fn item(&self, n: usize) -> &[f32] {
        let per = self.data.len() / self.batch().max(1);
        &self.data[n * per..(n + 1) * per]
    }

    /// Index of the largest value in each row of a `[N, K]` tensor.
    pub fn argmax_rows(&self) -> Vec<usize> {
        let n = self.batch();
        (0..n)
            .map(|i| {
                let row = self.item(i);
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                best
            })
            .collect()
    }
}

impl Default for Tensor {
    /// An empty tensor of shape `[0]`.
    fn default() -> Self {
        Tensor::zeros(&[0])
    }
}
