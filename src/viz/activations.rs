//! One image's way through the network: the input, then every layer's output, drawn in
//! order with the layer and its shape, as `seqnet summary` lists them.

use plotters::style::text_anchor::{HPos, VPos};

use super::{BLACK_RGB, FRAME, GREY_TEXT, MARGIN, Picture, diverging, ink, max_abs, short};
use crate::error::{Error, Result};
use crate::io::model::Normalize;
use crate::layers::Pass;
use crate::sequential::Sequential;
use crate::shape::fmt_shape;
use crate::tensor::Tensor;

/// The picture's width.
const WIDTH: i32 = 1080;
/// Flat outputs up to this size are drawn as bars, longer ones as a strip of cells.
const MAX_BARS: usize = 100;

/// One block of the activations picture: the input or a layer's output for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerOutput {
    /// `input → 1×28×28` or `1 ReLU() → 20×24×24`: the layer and the shape it gives.
    pub title: String,
    /// The per-image shape.
    pub shape: Vec<usize>,
    /// The values, C·H·W in order.
    pub values: Vec<f32>,
}

/// Runs one image (`C·H·W` values, already normalised as the network expects) through
/// the network in Eval mode and returns, in order, the input and each layer's output
/// for that image.
pub fn layer_outputs(net: &mut Sequential, image: &[f32]) -> Result<Vec<LayerOutput>> {
    let input = net.input_shape().to_vec();
    let expected: usize = input.iter().product();
    if image.len() != expected {
        return Err(Error::Input(format!(
            "the network takes images shaped {} ({expected} values) but was given {} values",
            fmt_shape(&input),
            image.len()
        )));
    }
    let mut shape = vec![1];
    shape.extend_from_slice(&input);
    let mut x = Tensor::from_vec(&shape, image.to_vec())?;
    let mut out = vec![LayerOutput {
        title: format!("input → {}", fmt_shape(&input)),
        shape: input,
        values: image.to_vec(),
    }];
    for (i, layer) in net.layers_mut().iter_mut().enumerate() {
        x = layer.forward(&x, Pass::Infer);
        let per_image = x.shape()[1..].to_vec();
        out.push(LayerOutput {
            title: format!("{i} {} → {}", layer.repr(), fmt_shape(&per_image)),
            shape: per_image,
            values: x.data().to_vec(),
        });
    }
    Ok(out)
}

/// A drawn block: its height for the layout, and how to draw it.
enum Block {
    /// A three-channel input image in its colours, `scale` pixels per value.
    Colour { h: usize, w: usize, scale: u32 },
    /// `C` maps of `H × W`, each `scale` pixels per value.
    Maps {
        c: usize,
        h: usize,
        w: usize,
        scale: u32,
        cols: usize,
        grey: bool,
    },
    /// A flat vector as bars (class labels under them if `classes`).
    Bars { classes: bool },
    /// A long flat vector wrapped in rows of `cols` cells of `cell` pixels.
    Strip { cols: usize, cell: u32 },
}

const TITLE_H: i32 = 22;
const GAP: i32 = 4;
const BAR_H: i32 = 70;
const SPACING: i32 = 14;

fn plan(shape: &[usize], is_input: bool, is_last: bool) -> Block {
    let avail = (WIDTH - 2 * MARGIN) as usize;
    match *shape {
        [c, h, w] => {
            let side = h.max(w).max(1) as u32;
            let scale = if is_input {
                (112 / side).clamp(1, 6)
            } else {
                (56 / side).clamp(1, 6)
            };
            if is_input && c == 3 {
                return Block::Colour { h, w, scale };
            }
            let tile = w as u32 * scale;
            let fit = ((avail + GAP as usize) / (tile as usize + GAP as usize)).clamp(1, c.max(1));
            // As many rows as needed, evenly filled: 20 maps are 2 rows of 10, not 18 + 2.
            let cols = c.max(1).div_ceil(c.max(1).div_ceil(fit));
            Block::Maps {
                c,
                h,
                w,
                scale,
                cols,
                grey: is_input,
            }
        }
        _ => {
            let n: usize = shape.iter().product();
            if n <= MAX_BARS {
                Block::Bars {
                    classes: is_last && n <= 20,
                }
            } else {
                let cell = if n <= 2000 { 6 } else { 4 };
                Block::Strip {
                    cols: avail / cell as usize,
                    cell: cell as u32,
                }
            }
        }
    }
}

fn block_height(b: &Block, n: usize) -> i32 {
    TITLE_H
        + match b {
            Block::Colour { h, scale, .. } => *h as i32 * *scale as i32,
            Block::Maps {
                c, h, scale, cols, ..
            } => {
                let rows = c.div_ceil(*cols) as i32;
                rows * (*h as i32 * *scale as i32 + GAP) - GAP
            }
            Block::Bars { classes } => BAR_H + if *classes { 18 } else { 0 },
            Block::Strip { cols, cell } => n.div_ceil(*cols) as i32 * *cell as i32,
        }
}

/// Draws the input and every layer's output for one image (see [`layer_outputs`]).
/// `heading` says where the image came from; the prediction is added to it.
///
/// Feature maps (`C×H×W`) are grids of maps; flat outputs are bars (up to 100 values,
/// the last layer's labelled with the classes) or a strip of cells. Each block has its
/// own symmetric colour scale at its largest |value| (printed at its right). A grey
/// input is drawn as ink on paper, from its smallest to its largest value; an RGB input
/// in its colours, after undoing `normalize` (the normalisation `image` went through)
/// channel by channel.
pub fn activations(
    net: &mut Sequential,
    image: &[f32],
    normalize: Option<Normalize>,
    heading: &str,
) -> Result<Picture> {
    let outputs = layer_outputs(net, image)?;
    let last = outputs.len() - 1;
    let last_kind = net.output_kind();
    let final_values = &outputs[last].values;
    let prediction = if outputs[last].shape.len() == 1 && last > 0 {
        let t = Tensor::from_vec(&[1, final_values.len()], final_values.clone())?;
        let p = crate::loss::probabilities(&t, last_kind);
        let k = t.argmax_rows()[0];
        format!("; predicted {k} (p = {:.3})", p.data()[k])
    } else {
        String::new()
    };
    let blocks: Vec<Block> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| plan(&o.shape, i == 0, i == last && i > 0))
        .collect();
    let header = 58;
    let height = header
        + blocks
            .iter()
            .zip(&outputs)
            .map(|(b, o)| block_height(b, o.values.len()) + SPACING)
            .sum::<i32>()
        + MARGIN;
    let mut pic = Picture::new(WIDTH as u32, height as u32);
    pic.label(
        &format!("{heading}{prediction}"),
        (MARGIN, MARGIN - 4),
        16.0,
        BLACK_RGB,
    )?;
    pic.label(
        "each block: a layer's output for this image; colour: blue < 0 < red, scaled to the \
         block's largest |value|",
        (MARGIN, MARGIN + 18),
        12.0,
        GREY_TEXT,
    )?;
    let mut y = header;
    for (i, (block, o)) in blocks.iter().zip(&outputs).enumerate() {
        if let Block::Colour { h, w, scale } = *block {
            let stored = unnormalised(&o.values, normalize);
            draw_title(&mut pic, y, &o.title, &stored)?;
            let (tw, th) = (w as u32 * scale, h as u32 * scale);
            let top = y + TITLE_H;
            pic.image(MARGIN, top, &stored, [3, h, w], scale);
            pic.frame(MARGIN, top, tw, th, FRAME);
            let note = if normalize.is_some() {
                "in its colours, before normalisation"
            } else {
                "in its colours"
            };
            pic.label(note, (MARGIN + tw as i32 + 12, top), 12.0, GREY_TEXT)?;
        } else {
            draw_block(&mut pic, y, block, &o.title, &o.values, i == 0)?;
        }
        y += block_height(block, o.values.len()) + SPACING;
    }
    Ok(pic)
}

/// An RGB image (`3·H·W` values) as it was before `normalize`: `x·std + mean` per
/// channel. Values that still fall outside [0, 1] (an image normalised in a way the
/// model does not record) are stretched from their smallest to their largest, so the
/// picture shows its colours rather than clipped blocks.
fn unnormalised(values: &[f32], normalize: Option<Normalize>) -> Vec<f32> {
    let mut out = values.to_vec();
    if let Some(n) = normalize {
        let plane = (out.len() / 3).max(1);
        for (c, channel) in out.chunks_mut(plane).enumerate() {
            // One mean and std for every channel, or one per channel.
            let k = c.min(n.mean().len() - 1);
            let (mean, std) = (n.mean()[k], n.std()[k]);
            for v in channel {
                *v = *v * std + mean;
            }
        }
    }
    let (lo, hi) = range(&out);
    const SLACK: f32 = 1e-3;
    if lo < hi && (lo < -SLACK || hi > 1.0 + SLACK) {
        for v in &mut out {
            *v = (*v - lo) / (hi - lo);
        }
    }
    out
}

/// The smallest and largest finite value (`lo > hi` when there is none).
fn range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

/// A block's title, and the range of its values at the right.
fn draw_title(pic: &mut Picture, y: i32, title: &str, values: &[f32]) -> Result<()> {
    pic.label(title, (MARGIN, y), 14.0, BLACK_RGB)?;
    let (lo, hi) = range(values);
    let range = if lo <= hi {
        format!("values {} … {}", short(lo), short(hi))
    } else {
        String::new()
    };
    pic.text(
        &range,
        (WIDTH - MARGIN, y + 2),
        12.0,
        GREY_TEXT,
        HPos::Right,
        VPos::Top,
    )
}

fn draw_block(
    pic: &mut Picture,
    y: i32,
    block: &Block,
    title: &str,
    values: &[f32],
    is_input: bool,
) -> Result<()> {
    let m = max_abs(values);
    draw_title(pic, y, title, values)?;
    let (lo, hi) = range(values);
    let top = y + TITLE_H;
    match *block {
        // Drawn by `activations`, which knows the normalisation.
        Block::Colour { .. } => {}
        Block::Maps {
            c,
            h,
            w,
            scale,
            cols,
            grey,
        } => {
            let (tw, th) = (w as i32 * scale as i32, h as i32 * scale as i32);
            let plane = h * w;
            for ch in 0..c {
                let (r, col) = ((ch / cols) as i32, (ch % cols) as i32);
                let x = MARGIN + col * (tw + GAP);
                let yy = top + r * (th + GAP);
                let vals = &values[ch * plane..(ch + 1) * plane];
                if grey {
                    let span = if hi > lo { hi - lo } else { 1.0 };
                    pic.map(x, yy, vals, (h, w), scale, |v| ink((v - lo) / span));
                } else {
                    pic.map(x, yy, vals, (h, w), scale, |v| diverging(v / m));
                }
                pic.frame(x, yy, tw as u32, th as u32, FRAME);
            }
            if is_input {
                let x = MARGIN + cols.min(c) as i32 * (tw + GAP) + 12;
                pic.label("ink on paper: darker is larger", (x, top), 12.0, GREY_TEXT)?;
            }
        }
        Block::Bars { classes } => {
            let n = values.len().max(1) as i32;
            let slot = ((WIDTH - 2 * MARGIN) / n).min(40);
            let bar_w = (slot - (slot / 5).max(1)).max(1);
            let any_negative = values.iter().any(|&v| v < 0.0);
            let base = if any_negative {
                top + BAR_H / 2
            } else {
                top + BAR_H
            };
            let full = if any_negative { BAR_H / 2 } else { BAR_H };
            let best = values
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > values[b] { i } else { b });
            pic.fill(MARGIN, base, (n * slot) as u32, 1, FRAME);
            for (i, &v) in values.iter().enumerate() {
                let len = ((v.abs() / m) * full as f32).round() as i32;
                let x = MARGIN + i as i32 * slot;
                let colour = diverging(v / m);
                if v >= 0.0 {
                    pic.fill(x, base - len, bar_w as u32, len as u32, colour);
                } else {
                    pic.fill(x, base + 1, bar_w as u32, len as u32, colour);
                }
                if classes {
                    let c = if i == best { BLACK_RGB } else { GREY_TEXT };
                    pic.text(
                        &i.to_string(),
                        (x + bar_w / 2, top + BAR_H + 3),
                        13.0,
                        c,
                        HPos::Center,
                        VPos::Top,
                    )?;
                    if i == best {
                        let (yt, h) = if v >= 0.0 {
                            (base - len, len)
                        } else {
                            (base + 1, len)
                        };
                        pic.frame(x, yt, bar_w as u32, h.max(1) as u32, BLACK_RGB);
                    }
                }
            }
        }
        Block::Strip { cols, cell } => {
            let rows = values.len().div_ceil(cols);
            for (i, &v) in values.iter().enumerate() {
                let (r, c) = ((i / cols) as i32, (i % cols) as i32);
                pic.fill(
                    MARGIN + c * cell as i32,
                    top + r * cell as i32,
                    cell,
                    cell,
                    diverging(v / m),
                );
            }
            let w = (cols.min(values.len()) as u32) * cell;
            pic.frame(MARGIN, top, w, rows as u32 * cell, FRAME);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_layer_with_its_shape() {
        let mut net = crate::spec::build(
            "Conv2d(1, 3, 3) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(4)",
            &[1, 8, 8],
            0,
        )
        .unwrap();
        let img: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
        let outs = layer_outputs(&mut net, &img).unwrap();
        let titles: Vec<&str> = outs.iter().map(|o| o.title.as_str()).collect();
        assert_eq!(titles[0], "input → 1×8×8");
        assert_eq!(titles[2], "1 ReLU() → 3×6×6");
        assert_eq!(titles[4], "3 Flatten(start_dim=1, end_dim=-1) → 27");
        assert_eq!(outs[5].shape, vec![4]);
        let pic = activations(&mut net, &img, None, "test").unwrap();
        assert_eq!(pic.width(), WIDTH as u32);
        assert!(layer_outputs(&mut net, &img[..10]).is_err());
    }

    #[test]
    fn an_rgb_input_is_drawn_in_its_colours_before_normalisation() {
        let mut net = crate::spec::build(
            "Conv2d(3, 2, 3) -> Flatten() -> LazyLinear(2)",
            &[3, 8, 8],
            0,
        )
        .unwrap();
        // Orange (R 1.0, G 0.5, B 0.0) as stored, then normalised as CIFAR-10 is.
        let n = crate::data::cifar::normalize();
        let mut img: Vec<f32> = [1.0f32, 0.5, 0.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, 64))
            .collect();
        n.apply(&mut img);
        let pic = activations(&mut net, &img, Some(n), "test").unwrap();
        // The middle of the input tile: 8×8 values of 6×6 pixels, below the header (58)
        // and the block's title.
        let (x, y) = (MARGIN as u32 + 24, 58 + TITLE_H as u32 + 24);
        let (r, g, b) = pic.pixel(x, y);
        assert!(
            r >= 254 && g.abs_diff(128) <= 1 && b <= 1,
            "{:?}",
            (r, g, b)
        );
        // Without the normalisation, the normalised values are stretched to [0, 1]:
        // still red above green above blue, not grey.
        let pic = activations(&mut net, &img, None, "test").unwrap();
        let (r, g, b) = pic.pixel(x, y);
        assert!(r > g && g > b, "{:?}", (r, g, b));
    }
}
