//! The kernels of a convolution layer, enlarged, on the diverging scale.

use plotters::style::text_anchor::{HPos, VPos};

use super::{
    BLACK_RGB, FRAME, GREY_TEXT, MARGIN, Picture, diverging, diverging_bar, max_abs, text_width,
};
use crate::error::{Error, Result};
use crate::layers::LayerDesc;
use crate::sequential::Sequential;

/// How a filter that reads several input channels (`in_channels > 1`) is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FilterSlices {
    /// One row per filter: its kernel slice for every input channel, side by side.
    #[default]
    Each,
    /// One tile per filter: the mean of its slices over the input channels.
    Mean,
}

/// The indices of the network's convolution layers.
pub fn conv_layers(net: &Sequential) -> Vec<usize> {
    net.layers()
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.describe(), LayerDesc::Conv2d { .. }))
        .map(|(i, _)| i)
        .collect()
}

fn list(indices: &[usize]) -> String {
    let parts: Vec<String> = indices.iter().map(|i| i.to_string()).collect();
    parts.join(", ")
}

/// The widest a picture is made before the tiles shrink.
const MAX_WIDTH: i32 = 1200;

/// Draws every kernel of convolution layer `layer` (default: the first convolution).
///
/// All tiles share one colour scale, symmetric around 0 at the layer's largest
/// |weight|, so filters can be compared. With `in_channels > 1`, [`FilterSlices`] says
/// whether each input channel's slice is drawn or their mean.
pub fn filters(net: &Sequential, layer: Option<usize>, slices: FilterSlices) -> Result<Picture> {
    let convs = conv_layers(net);
    let index = match layer {
        None => *convs.first().ok_or_else(|| {
            Error::Input(format!(
                "the network has no convolution layer to draw (it is {})",
                net.spec()
            ))
        })?,
        Some(i) if i >= net.layers().len() => {
            return Err(Error::Input(format!(
                "layer {i} does not exist: the network has {} layers (0–{}); its \
                 convolution layers are: {}",
                net.layers().len(),
                net.layers().len().saturating_sub(1),
                if convs.is_empty() {
                    "none".into()
                } else {
                    list(&convs)
                }
            )));
        }
        Some(i) if !convs.contains(&i) => {
            return Err(Error::Input(format!(
                "layer {i} is {}, not a convolution; its convolution layers are: {}",
                net.layers()[i].repr(),
                if convs.is_empty() {
                    "none".into()
                } else {
                    list(&convs)
                }
            )));
        }
        Some(i) => i,
    };
    let conv = &net.layers()[index];
    let weight = conv
        .params()
        .into_iter()
        .find(|(name, _)| *name == "weight")
        .map(|(_, p)| &p.value)
        .ok_or_else(|| Error::Input(format!("layer {index} has no weight")))?;
    let &[oc, ic, kh, kw] = weight.shape() else {
        return Err(Error::Input(format!(
            "layer {index}: expected a 4-D convolution weight, found shape {:?}",
            weight.shape()
        )));
    };
    let w = weight.data();
    let m = max_abs(w);
    let per_filter = ic * kh * kw;
    let each = slices == FilterSlices::Each && ic > 1;
    let lines = heading(index, &conv.repr(), (oc, ic, kh, kw), slices);

    // Tiles: the kernels, enlarged so that a tile is about `target` pixels.
    let k = kh.max(kw) as u32;
    let target = if each { 40 } else { 72 };
    let mut scale = (target / k).clamp(2, 24);
    let header = 64; // title, subtitle
    let footer = 44; // colour bar
    let (width, height);
    if each {
        // One row per filter: "#i" then ic slices.
        let label_w = 44;
        let gap = 4;
        let mut tile_w = kw as u32 * scale;
        while scale > 1 && label_w + ic as i32 * (tile_w as i32 + gap) > MAX_WIDTH - 2 * MARGIN {
            scale -= 1;
            tile_w = kw as u32 * scale;
        }
        let tile_h = kh as u32 * scale;
        let col_header = 18;
        let content_w = label_w + ic as i32 * (tile_w as i32 + gap);
        width = (2 * MARGIN + content_w).max(heading_width(&lines)).max(300);
        let row_h = tile_h as i32 + gap;
        height = header + col_header + oc as i32 * row_h + footer + MARGIN;
        let mut pic = Picture::new(width as u32, height as u32);
        draw_heading(&mut pic, &lines)?;
        let top = header + col_header;
        for c in 0..ic {
            let x = MARGIN + label_w + c as i32 * (tile_w as i32 + gap) + tile_w as i32 / 2;
            if ic <= 16 || c % 2 == 0 || tile_w >= 24 {
                pic.text(
                    &format!("in {c}"),
                    (x, header + 2),
                    11.0,
                    GREY_TEXT,
                    HPos::Center,
                    VPos::Top,
                )?;
            }
        }
        for f in 0..oc {
            let y = top + f as i32 * row_h;
            pic.text(
                &format!("#{f}"),
                (MARGIN + label_w - 8, y + tile_h as i32 / 2),
                12.0,
                BLACK_RGB,
                HPos::Right,
                VPos::Center,
            )?;
            for c in 0..ic {
                let x = MARGIN + label_w + c as i32 * (tile_w as i32 + gap);
                let start = f * per_filter + c * kh * kw;
                pic.map(x, y, &w[start..start + kh * kw], (kh, kw), scale, |v| {
                    diverging(v / m)
                });
                pic.frame(x, y, tile_w, tile_h, FRAME);
            }
        }
        diverging_bar(&mut pic, (MARGIN, height - MARGIN - 30), 240, m)?;
        return Ok(pic);
    }

    // One tile per filter (in_channels = 1, or the mean over the input channels).
    let tiles: Vec<Vec<f32>> = (0..oc)
        .map(|f| {
            let filt = &w[f * per_filter..(f + 1) * per_filter];
            (0..kh * kw)
                .map(|p| (0..ic).map(|c| filt[c * kh * kw + p]).sum::<f32>() / ic as f32)
                .collect()
        })
        .collect();
    // The mean of slices is smaller than the slices: scale its colours to its own max.
    let m_tiles = if ic > 1 { max_abs(&tiles.concat()) } else { m };
    let gap = 12;
    let label_h = 16;
    let mut tile_w = kw as u32 * scale;
    let cell_w = |tw: u32| (tw as i32).max(28) + gap;
    while scale > 2 && oc as i32 * cell_w(tile_w) > MAX_WIDTH - 2 * MARGIN && tile_w > 48 {
        scale -= 1;
        tile_w = kw as u32 * scale;
    }
    let tile_h = kh as u32 * scale;
    let cols = ((MAX_WIDTH - 2 * MARGIN + gap) / cell_w(tile_w)).clamp(1, oc as i32);
    let rows = (oc as i32 + cols - 1) / cols;
    width = (2 * MARGIN + cols * cell_w(tile_w) - gap)
        .max(heading_width(&lines))
        .max(300);
    let row_h = label_h + tile_h as i32 + gap;
    height = header + rows * row_h + footer + MARGIN;
    let mut pic = Picture::new(width as u32, height as u32);
    draw_heading(&mut pic, &lines)?;
    for (f, tile) in tiles.iter().enumerate() {
        let (r, c) = (f as i32 / cols, f as i32 % cols);
        let x = MARGIN + c * cell_w(tile_w);
        let y = header + r * row_h;
        pic.text(
            &format!("#{f}"),
            (x + tile_w as i32 / 2, y),
            12.0,
            BLACK_RGB,
            HPos::Center,
            VPos::Top,
        )?;
        pic.map(x, y + label_h, tile, (kh, kw), scale, |v| {
            diverging(v / m_tiles)
        });
        pic.frame(x, y + label_h, tile_w, tile_h, FRAME);
    }
    diverging_bar(&mut pic, (MARGIN, height - MARGIN - 30), 240, m_tiles)?;
    Ok(pic)
}

/// The two heading lines: the layer, and what the tiles are.
fn heading(
    index: usize,
    repr: &str,
    (oc, ic, kh, kw): (usize, usize, usize, usize),
    slices: FilterSlices,
) -> [String; 2] {
    let what = match (ic, slices) {
        (1, _) => format!("{oc} filters of {kh}×{kw}"),
        (_, FilterSlices::Each) => {
            format!(
                "{oc} filters of {ic}×{kh}×{kw}: one row per filter, one tile per input channel"
            )
        }
        (_, FilterSlices::Mean) => {
            format!(
                "{oc} filters of {ic}×{kh}×{kw}, each drawn as the mean of its {ic} input channels"
            )
        }
    };
    [
        format!("layer {index}  {repr}"),
        format!("{what}; colour: weight, blue < 0 < red"),
    ]
}

/// The width the heading needs.
fn heading_width(lines: &[String; 2]) -> i32 {
    let w = text_width(&lines[0], 16.0).max(text_width(&lines[1], 13.0));
    w as i32 + 2 * MARGIN
}

fn draw_heading(pic: &mut Picture, lines: &[String; 2]) -> Result<()> {
    pic.label(&lines[0], (MARGIN, MARGIN - 4), 16.0, BLACK_RGB)?;
    pic.label(&lines[1], (MARGIN, MARGIN + 20), 13.0, GREY_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Sequential {
        crate::spec::build(
            "Conv2d(1, 4, 3) -> ReLU() -> Conv2d(4, 6, 3) -> Flatten() -> LazyLinear(10)",
            &[1, 12, 12],
            0,
        )
        .unwrap()
    }

    #[test]
    fn first_conv_by_default_and_every_slice() {
        let n = net();
        assert_eq!(conv_layers(&n), vec![0, 2]);
        let a = filters(&n, None, FilterSlices::Each).unwrap();
        let b = filters(&n, Some(0), FilterSlices::Each).unwrap();
        assert_eq!(a, b);
        let each = filters(&n, Some(2), FilterSlices::Each).unwrap();
        let mean = filters(&n, Some(2), FilterSlices::Mean).unwrap();
        assert!(
            each.height() > mean.height(),
            "6 rows of slices vs one row of means"
        );
    }

    #[test]
    fn refuses_layers_that_are_not_convolutions() {
        let n = net();
        let e = filters(&n, Some(1), FilterSlices::Each)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 1 is ReLU(), not a convolution"), "{e}");
        assert!(e.contains("0, 2"), "{e}");
        let e = filters(&n, Some(9), FilterSlices::Each)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 9 does not exist"), "{e}");
        let flat = crate::spec::build("Flatten() -> Linear(4, 2)", &[1, 2, 2], 0).unwrap();
        let e = filters(&flat, None, FilterSlices::Each)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no convolution layer"), "{e}");
    }
}
