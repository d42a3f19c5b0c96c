//! Layers that treat every image of a batch on its own (convolution, pooling, the
//! activations, Flatten) expose a per-image step, so that [`crate::Sequential`] can carry
//! each image through a whole stretch of them — conv → ReLU → pool → conv → … — in one
//! parallel task, instead of meeting the other threads after every layer.
//!
//! Why: the book's networks are small. At mini-batch 10 a layer's share of the batch is
//! tens of microseconds of work, so a thread barrier per layer and per pass costs a
//! noticeable part of a step, and an image's activations, which fit in a core's cache,
//! went out to memory between layers. One region per stretch removes both (measured in
//! BENCHMARKS.md).
//!
//! Every per-image step is the same computation in either schedule, and what is summed
//! over images (parameter gradients) is summed afterwards in image order, so results do
//! not depend on the schedule or the thread count.
//!
//! A layer whose per-image step needs a few figures of the whole batch first
//! (BatchNorm's statistics, and in backward its sums of dL/dy) *gathers* them: a
//! per-image step takes each image's share where the image is already in cache, at the
//! end of the task that carried it through the layers before, and the layer *reduces*
//! the shares in image order before its own per-image step runs. The stretch then runs
//! as one parallel task per image up to each such layer, and the threads meet there
//! only for the reduction.
//!
//! The layers that run per image (a test below holds this list to the registry):
//! Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm1d,
//! BatchNorm2d, ReLU, LeakyReLU, GELU, SiLU, ELU, Sigmoid, Tanh, Softmax, LogSoftmax,
//! Identity and Flatten.
//! Linear multiplies the whole batch at once (one matrix product); Dropout and Dropout2d
//! draw their masks in one stream over the batch. They run on the batch, between
//! stretches.
//!
//! This machinery is the crate's own: its steps write through raw per-image slots, and
//! only seqnet's layers, whose steps keep to their image, may use it. A layer written
//! outside the crate runs on the whole batch.

use std::marker::PhantomData;

use rayon::prelude::*;

use super::Pass;
use crate::tensor::Tensor;

/// A layer's per-image steps, as [`Layer::per_image`] hands them to
/// [`crate::Sequential`]. Only layers of this crate can make one.
pub struct PerImage<'a>(pub(crate) &'a mut dyn ImageWise);

impl<'a> PerImage<'a> {
    pub(crate) fn of(layer: &'a mut dyn ImageWise) -> Self {
        PerImage(layer)
    }
}

/// A layer whose forward and backward passes are independent per image.
pub(crate) trait ImageWise {
    /// Readies a forward pass over `n` images (sizing the per-image state, packing
    /// weights) and returns the step for one image. Unless `pass` is Infer, the step
    /// saves what backward needs.
    fn forward_images(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_>;

    /// Readies the backward pass of the last forward, whose batch had `n` images (a
    /// different `n` panics: the per-image state belongs to that forward), and returns
    /// the step for one image: dL/d(output) in, dL/d(input) out (when asked for),
    /// parameter-gradient terms kept per image until [`ImageWise::finish_backward`].
    fn backward_images(&mut self, n: usize, need_input_grad: bool) -> Box<dyn ImageStep + '_>;

    /// Adds the per-image parameter-gradient terms of the last backward into the
    /// gradients, in image order (so the sums do not depend on the thread count).
    fn finish_backward(&mut self) {}

    /// Values per image of the output (forward) — the size of `dst` in a forward step.
    fn output_len(&self) -> usize;

    /// Whether a forward in `pass` gathers figures of the whole batch before its
    /// per-image step: then [`ImageWise::gather_forward`]'s step runs over every image's
    /// input, [`ImageWise::reduce_forward`] follows, and only then
    /// [`ImageWise::forward_images`].
    fn gathers_forward(&self, _pass: Pass) -> bool {
        false
    }

    /// Readies the gathering for a forward over `n` images and returns the step that
    /// takes one image's share: `src` is the image's input, there is no `dst`.
    fn gather_forward(&mut self, _n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
        Box::new(NoStep)
    }

    /// Combines the images' shares of the forward, in image order.
    fn reduce_forward(&mut self) {}

    /// Whether backward gathers sums of dL/d(output) over the batch before its
    /// per-image step (the last forward decides).
    fn gathers_backward(&self) -> bool {
        false
    }

    /// [`ImageWise::gather_forward`] for backward: `src` is one image's dL/d(output).
    fn gather_backward(&mut self, _n: usize) -> Box<dyn ImageStep + '_> {
        Box::new(NoStep)
    }

    /// Combines the images' shares of the backward, in image order.
    fn reduce_backward(&mut self) {}
}

/// The gathering step of a layer that gathers nothing.
struct NoStep;

impl ImageStep for NoStep {
    unsafe fn run(&self, _: usize, _: &[f32], _: Option<&mut [f32]>) {}
}

/// One image's share of a pass: `src` (the image's input, or its output gradient) to
/// `dst` (its output, or its input gradient; `None` when no input gradient is wanted).
pub(crate) trait ImageStep: Sync {
    /// # Safety
    /// Image `i` must not be in any other call at the same time: the step writes image
    /// `i`'s slot of the layer's per-image state without a lock. Each `i < n` is run at
    /// most once per pass. (`src` and `dst` are ordinary slices: a wrong length panics.)
    unsafe fn run(&self, i: usize, src: &[f32], dst: Option<&mut [f32]>);
}

/// Disjoint per-image slots of one mutable buffer (`n` slots of `len` values), handed
/// to parallel tasks that each touch only their own image's slot.
pub(crate) struct Slots<'a, T> {
    ptr: *mut T,
    len: usize,
    n: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a Slots only gives out one image's slot per call, under `get`'s contract.
unsafe impl<T: Send> Send for Slots<'_, T> {}
unsafe impl<T: Send> Sync for Slots<'_, T> {}

impl<'a, T> Slots<'a, T> {
    /// Slots of `len` values over `buf` (whose length is a multiple of `len`).
    pub(crate) fn new(buf: &'a mut [T], len: usize) -> Self {
        let n = buf.len().checked_div(len).unwrap_or(0);
        Slots {
            ptr: buf.as_mut_ptr(),
            len,
            n,
            _borrow: PhantomData,
        }
    }

    /// Image `i`'s slot.
    ///
    /// # Safety
    /// No other reference to slot `i` may be alive while the returned one is.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get(&self, i: usize) -> &'a mut [T] {
        assert!(i < self.n, "image {i} of a batch of {}", self.n);
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.len), self.len) }
    }
}

/// Runs `step` over `n` images of `src` (`src_len` values each) into `dst` (`dst_len`
/// each, or `None`), images in parallel: a single layer's batch pass.
pub(crate) fn run_batch(
    step: &dyn ImageStep,
    n: usize,
    src: &[f32],
    src_len: usize,
    dst: Option<&mut [f32]>,
    dst_len: usize,
) {
    debug_assert!(src.len() >= n * src_len);
    let dst = dst.map(|d| Slots::new(d, dst_len));
    (0..n).into_par_iter().for_each(|i| {
        let s = &src[i * src_len..(i + 1) * src_len];
        // SAFETY: each i is one task, and runs once.
        unsafe { step.run(i, s, dst.as_ref().map(|d| d.get(i))) }
    });
}

/// A layer's batch `forward_into` through its [`ImageWise`] steps; `out` gets
/// `out_shape` per image.
pub(crate) fn forward_batch(
    layer: &mut dyn ImageWise,
    inp: &Tensor,
    out: &mut Tensor,
    out_shape: &[usize],
    pass: Pass,
) {
    let n = inp.batch();
    super::recycle_batch(out, n, out_shape);
    let (src_len, dst_len) = (inp.len() / n.max(1), layer.output_len());
    if layer.gathers_forward(pass) {
        let gather = layer.gather_forward(n, pass);
        run_batch(&*gather, n, inp.data(), src_len, None, 0);
        drop(gather);
        layer.reduce_forward();
    }
    let step = layer.forward_images(n, pass);
    run_batch(
        &*step,
        n,
        inp.data(),
        src_len,
        Some(out.data_mut()),
        dst_len,
    );
}

/// The backward counterpart of [`forward_batch`]; `dinp` gets `in_shape` per image.
pub(crate) fn backward_batch(
    layer: &mut dyn ImageWise,
    dout: &Tensor,
    dinp: Option<&mut Tensor>,
    in_shape: &[usize],
) {
    let n = dout.batch();
    let in_len: usize = in_shape.iter().product();
    let dinp = dinp.map(|d| {
        super::recycle_batch(d, n, in_shape);
        d.data_mut()
    });
    let dout_len = dout.len() / n.max(1);
    if layer.gathers_backward() {
        let gather = layer.gather_backward(n);
        run_batch(&*gather, n, dout.data(), dout_len, None, 0);
        drop(gather);
        layer.reduce_backward();
    }
    {
        let step = layer.backward_images(n, dinp.is_some());
        run_batch(&*step, n, dout.data(), dout_len, dinp, in_len);
    }
    layer.finish_backward();
}

#[cfg(test)]
mod tests {
    /// The module doc's list of per-image layers, as written above.
    fn documented() -> Vec<&'static str> {
        let doc = include_str!("image_wise.rs");
        let start = doc.find("holds this list to the registry):").unwrap();
        let end = start + doc[start..].find("\n//! Linear").unwrap();
        doc[start..end]
            .split_once("):")
            .unwrap()
            .1
            .split(|c: char| c == ',' || c.is_whitespace() || c == '/' || c == '!' || c == '.')
            .filter(|w| !w.is_empty() && *w != "and")
            .collect()
    }

    #[test]
    fn the_doc_names_exactly_the_layers_that_run_per_image() {
        let mut listed = documented();
        listed.sort_unstable();
        let mut per_image = Vec::new();
        for entry in crate::layers::registry::layers() {
            let mut net = [vec![1, 6, 6], vec![6]]
                .into_iter()
                .find_map(|input| crate::spec::build(entry.example, &input, 0).ok())
                .unwrap_or_else(|| panic!("{} does not build", entry.example));
            if net.layers_mut()[0].per_image().is_some() {
                // Lazy layers become the layer they stand for.
                per_image.push(entry.name.strip_prefix("Lazy").unwrap_or(entry.name));
            }
        }
        per_image.sort_unstable();
        per_image.dedup();
        assert_eq!(
            listed, per_image,
            "update the list in image_wise.rs's module doc"
        );
    }
}
