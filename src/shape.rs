//! The size arithmetic of convolution and pooling, and the sentences that explain it.
//!
//! Every formula here is PyTorch's:
//! `out = ⌊(in + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1`, written
//! `⌊(in + 2·padding − kernel) / stride⌋ + 1` for dilation 1, with `⌈…⌉` instead of
//! `⌊…⌋` under `ceil_mode`, in which case a last window that would start in the right
//! padding is dropped. Conv2d's padding='same' may pad one more after than before:
//! `in + before + after` then stands for `in + 2·padding`.

use crate::error::{Error, Result};

/// Largest number of f32 values one image may occupy in any layer (1 GiB).
/// Larger networks are almost certainly a typo (an extra zero) and would exhaust memory.
pub const MAX_ELEMENTS_PER_IMAGE: usize = 1 << 28;
/// Largest number of parameters one layer may hold (4 GiB of f32).
pub const MAX_PARAMS_PER_LAYER: usize = 1 << 30;

/// `[1, 28, 28]` as `1×28×28`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    parts.join("×")
}

/// Parses `1x28x28` (also `1×28×28`, `1,28,28`, `[1, 28, 28]` or `(1, 28, 28)`).
pub fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let cleaned = text
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    let dims: std::result::Result<Vec<usize>, _> = cleaned
        .split(['x', '×', ','])
        .map(|d| d.trim().parse::<usize>())
        .collect();
    match dims {
        Ok(d) if !d.is_empty() && d.iter().all(|&v| v > 0) => match checked_numel(&d) {
            Some(_) => Ok(d),
            None => Err(Error::Input(format!(
                "input shape '{text}' has more than {MAX_ELEMENTS_PER_IMAGE} values per \
                 image; check the sizes for a typo (MNIST is 1x28x28)"
            ))),
        },
        _ => Err(Error::Input(format!(
            "input shape '{text}' is not of the form C×H×W with positive whole numbers, \
             e.g. 1x28x28 for MNIST"
        ))),
    }
}

/// An input shape per image as a user typed it, and what was made of it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputShape {
    /// The shape of one image: `[1, 28, 28]`.
    pub dims: Vec<usize>,
    /// Set when the text had a batch dimension in front, as torchinfo's
    /// `input_size=(1, 1, 28, 28)`: it was dropped, and this says so.
    pub note: Option<String>,
}

/// [`parse_shape`] for the shape of a network's input: a four-dimensional `N×C×H×W`
/// (torchinfo's and PyTorch's habit of writing the batch too) loses its batch
/// dimension, with a note saying so.
pub fn parse_input_shape(text: &str) -> Result<InputShape> {
    let dims = parse_shape(text)?;
    if let [n, c, h, w] = dims[..] {
        return Ok(InputShape {
            dims: vec![c, h, w],
            note: Some(format!(
                "input shape {text} read as a batch of {n} of {c}×{h}×{w}: seqnet takes the \
                 shape of one image, C×H×W, so the batch dimension is dropped"
            )),
        });
    }
    Ok(InputShape { dims, note: None })
}

/// The output length of one spatial dimension of a convolution or pooling window,
/// with the arithmetic written out, e.g. `(28 + 2·0 − 5)/1 + 1 = 24`.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSize {
    pub out: usize,
    pub arithmetic: String,
    /// Input rows (or columns) at the end that no window reaches, when the stride does
    /// not divide the span: PyTorch leaves them out silently, as seqnet does, but says so.
    pub uncovered: usize,
}

/// Output length for input `len`, `kernel`, `stride`, `padding`; `None` when the
/// (padded) input is shorter than the kernel.
pub fn window_out(
    len: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil_mode: bool,
    show_padding: bool,
) -> Option<WindowSize> {
    window_out_dilated(
        len,
        kernel,
        stride,
        (padding, padding),
        1,
        ceil_mode,
        show_padding,
    )
}

/// [`window_out`] with `padding` (before, after) and `dilation`, e.g.
/// `(28 + 2·2 − 2·(3−1) − 1)/1 + 1 = 28`; `None` when the padded input is shorter than
/// the dilated kernel, d·(k−1) + 1.
pub fn window_out_dilated(
    len: usize,
    kernel: usize,
    stride: usize,
    (before, after): (usize, usize),
    dilation: usize,
    ceil_mode: bool,
    show_padding: bool,
) -> Option<WindowSize> {
    let padded = len.checked_add(before)?.checked_add(after)?;
    // The span of one window: d·(k−1) + 1 input values.
    let reach = match kernel {
        0 => 0,
        k => dilation.checked_mul(k - 1)?.checked_add(1)?,
    };
    if padded < reach || stride == 0 {
        return None;
    }
    let (padding, taps, kernel) = (before, kernel, reach);
    let span = padded - kernel;
    // Rounding can only matter with a stride above 1; that is when the brackets show.
    let rounds = stride > 1;
    let mut out = if ceil_mode {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    // PyTorch: with ceil_mode the last window must start inside the input or left padding.
    // (A start past usize::MAX is past the input too.)
    if ceil_mode
        && (out - 1)
            .checked_mul(stride)
            .is_none_or(|start| start >= len + padding)
    {
        out -= 1;
    }
    let pads = if before != after {
        format!("{len} + {before} + {after}")
    } else if show_padding || padding > 0 {
        format!("{len} + 2·{padding}")
    } else {
        len.to_string()
    };
    let inner = if dilation == 1 {
        format!("{pads} − {kernel}")
    } else {
        format!("{pads} − {dilation}·({taps}−1) − 1")
    };
    let arithmetic = if !rounds {
        format!("({inner})/{stride} + 1 = {out}")
    } else if ceil_mode {
        format!("⌈({inner})/{stride}⌉ + 1 = {out}")
    } else {
        format!("⌊({inner})/{stride}⌋ + 1 = {out}")
    };
    // The windows reach (out − 1)·stride + kernel values of the padded input; what lies
    // past them, less the right padding, is input no window sees.
    let reached = (out - 1).saturating_mul(stride).saturating_add(kernel);
    let uncovered = padded
        .saturating_sub(reached)
        .saturating_sub(after)
        .min(len);
    Some(WindowSize {
        out,
        arithmetic,
        uncovered,
    })
}

/// Explains a 2-D window: one formula when height and width agree, otherwise both,
/// and which input rows and columns no window covers.
pub fn explain_hw(h: &WindowSize, w: &WindowSize, same_inputs: bool) -> String {
    let left_out = |n: usize, one: &str, many: &str| match n {
        0 => String::new(),
        1 => format!(" (the last {one} is not covered)"),
        n => format!(" (the last {n} {many} are not covered)"),
    };
    if same_inputs {
        let note = left_out(h.uncovered, "row and column", "rows and columns");
        format!("{}{note}", h.arithmetic)
    } else {
        format!(
            "H: {}{}; W: {}{}",
            h.arithmetic,
            left_out(h.uncovered, "row", "rows"),
            w.arithmetic,
            left_out(w.uncovered, "column", "columns")
        )
    }
}

/// `a · b · c = product`, checking that the product stays allocatable.
pub fn product_explained(dims: &[usize]) -> Option<(usize, String)> {
    let mut total: usize = 1;
    for &d in dims {
        total = total.checked_mul(d)?;
    }
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    Some((total, format!("{} = {total}", parts.join(" · "))))
}

/// Checked element count of a per-image shape, bounded by [`MAX_ELEMENTS_PER_IMAGE`].
pub fn checked_numel(dims: &[usize]) -> Option<usize> {
    let mut total: usize = 1;
    for &d in dims {
        total = total.checked_mul(d)?;
    }
    (total <= MAX_ELEMENTS_PER_IMAGE).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_and_pool_arithmetic_match_the_book() {
        let c = window_out(28, 5, 1, 0, false, true).unwrap();
        assert_eq!(c.out, 24);
        assert_eq!(c.arithmetic, "(28 + 2·0 − 5)/1 + 1 = 24");
        let p = window_out(24, 2, 2, 0, false, false).unwrap();
        assert_eq!(p.out, 12);
        assert_eq!(p.arithmetic, "⌊(24 − 2)/2⌋ + 1 = 12");
        let odd = window_out(7, 2, 2, 0, false, false).unwrap();
        assert_eq!(odd.out, 3);
        assert_eq!(odd.arithmetic, "⌊(7 − 2)/2⌋ + 1 = 3");
    }

    /// MaxPool2d(5) on 24 floors to 4 windows, reaching 20 of the 24 rows: PyTorch's
    /// answer, explained.
    #[test]
    fn rows_no_window_covers_are_named() {
        let p = window_out(24, 5, 5, 0, false, false).unwrap();
        assert_eq!((p.out, p.uncovered), (4, 4));
        assert_eq!(
            explain_hw(&p, &p, true),
            "⌊(24 − 5)/5⌋ + 1 = 4 (the last 4 rows and columns are not covered)"
        );
        let even = window_out(24, 2, 2, 0, false, false).unwrap();
        assert_eq!(even.uncovered, 0);
        assert_eq!(explain_hw(&even, &even, true), "⌊(24 − 2)/2⌋ + 1 = 12");
        let one = window_out(7, 2, 2, 0, false, false).unwrap();
        assert_eq!(
            explain_hw(&one, &even, false),
            "H: ⌊(7 − 2)/2⌋ + 1 = 3 (the last row is not covered); W: ⌊(24 − 2)/2⌋ + 1 = 12"
        );
        // Padding: the windows may end in the right padding, covering the input.
        let padded = window_out(5, 2, 2, 1, false, false).unwrap();
        assert_eq!((padded.out, padded.uncovered), (3, 0));
    }

    #[test]
    fn ceil_mode_follows_pytorch() {
        // torch.nn.MaxPool2d(2, ceil_mode=True) on 7 -> 4; on 5 with k=3, s=2, p=1 -> 3.
        assert_eq!(window_out(7, 2, 2, 0, true, false).unwrap().out, 4);
        assert_eq!(window_out(5, 3, 2, 1, true, false).unwrap().out, 3);
        assert_eq!(window_out(4, 2, 2, 1, true, false).unwrap().out, 3);
        // the last window would start in the right padding: dropped (4 -> 3).
        assert_eq!(window_out(5, 2, 2, 1, true, false).unwrap().out, 3);
    }

    /// Dilation d spreads the kernel over d·(k−1) + 1 values; the d = 1 texts stay.
    #[test]
    fn dilation_and_uneven_padding_are_written_out() {
        let d = window_out_dilated(28, 3, 1, (2, 2), 2, false, true).unwrap();
        assert_eq!(d.out, 28);
        assert_eq!(d.arithmetic, "(28 + 2·2 − 2·(3−1) − 1)/1 + 1 = 28");
        // torch: Conv2d(1, 1, 3, stride=2, dilation=3) on 11 -> 3
        let s = window_out_dilated(11, 3, 2, (0, 0), 3, false, true).unwrap();
        assert_eq!((s.out, s.uncovered), (3, 0));
        assert_eq!(s.arithmetic, "⌊(11 + 2·0 − 3·(3−1) − 1)/2⌋ + 1 = 3");
        // padding='same' with kernel 4: 3 in all, 1 before and 2 after.
        let same = window_out_dilated(7, 4, 1, (1, 2), 1, false, true).unwrap();
        assert_eq!(same.out, 7);
        assert_eq!(same.arithmetic, "(7 + 1 + 2 − 4)/1 + 1 = 7");
        assert!(window_out_dilated(4, 3, 1, (0, 0), 2, false, true).is_none());
        assert_eq!(
            window_out_dilated(28, 5, 1, (0, 0), 1, false, true),
            window_out(28, 5, 1, 0, false, true)
        );
    }

    #[test]
    fn kernel_larger_than_input_is_none() {
        assert!(window_out(4, 5, 1, 0, false, true).is_none());
        assert!(window_out(4, 5, 1, 1, false, true).is_some());
    }

    #[test]
    fn shapes_parse_and_print() {
        assert_eq!(parse_shape("1x28x28").unwrap(), vec![1, 28, 28]);
        assert_eq!(parse_shape("[3, 32, 32]").unwrap(), vec![3, 32, 32]);
        assert_eq!(parse_shape("(1, 28, 28)").unwrap(), vec![1, 28, 28]);
        assert_eq!(parse_shape("1,28,28").unwrap(), vec![1, 28, 28]);
        let torchinfo = parse_input_shape("(1, 1, 28, 28)").unwrap();
        assert_eq!(torchinfo.dims, vec![1, 28, 28]);
        assert!(
            torchinfo
                .note
                .unwrap()
                .contains("batch dimension is dropped")
        );
        assert_eq!(parse_input_shape("1x28x28").unwrap().note, None);
        assert!(parse_shape("1x0x28").is_err());
        assert!(parse_shape("abc").is_err());
        // Sizes that overflow or could not be allocated are refused, not multiplied.
        let err = parse_shape("4294967296x4294967296x4294967296").unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        assert!(parse_shape("1x100000x100000").is_err());
        assert_eq!(fmt_shape(&[20, 12, 12]), "20×12×12");
    }
}
