//! Pictures of a network and its training, as PNG files: convolution filters, every
//! layer's activations for one image, training curves, the confusion matrix and the
//! misclassified digits. `seqnet viz` draws them from the command line.
//!
//! Everything is drawn into an in-memory RGB buffer: charts with [`plotters`]' bitmap
//! backend, text with [`ab_glyph`] from DejaVu Sans, embedded in the library (see
//! `assets/fonts/LICENSE.txt`), so no display, system font or fontconfig is needed and
//! the same inputs give the same bytes on every machine.
//!
//! Colours:
//! - weights and activations use a diverging blue–white–red scale, symmetric around 0:
//!   white is 0, full red is `+m` and full blue is `−m`, where `m` is the largest
//!   magnitude in the picture (filters) or in the block (activations), printed beside it;
//! - grey input images (MNIST's digits) are drawn as dark ink on white paper, RGB ones
//!   (CIFAR-10, image folders) in their colours;
//! - the confusion matrix shades each cell by its share of the row (the true class).
//!
//! ```no_run
//! // After each epoch of a run: redraw the curves next to metrics.jsonl.
//! seqnet::viz::curves_png("runs/seed/metrics.jsonl", "runs/seed/curves.png")?;
//! # Ok::<(), seqnet::Error>(())
//! ```

mod activations;
mod augment;
mod classify;
mod curves;
mod filters;

pub use activations::{LayerOutput, activations, layer_outputs};
pub use augment::augmented;
pub use classify::{MISTAKES_COLUMNS, Mistake, confusion, confusion_matrix, mistakes};
pub use curves::{CURVES_SIZE, EpochPoint, curves, curves_png, read_metrics};
pub use filters::{FilterSlices, conv_layers, filters};

use std::path::Path;
use std::sync::{Once, OnceLock};

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::error::{Error, Result};

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core), under the Bitstream Vera licence.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name the embedded font is registered under with plotters; its charts
/// ask for "sans-serif" by default, so they use it too.
pub(crate) const FAMILY: &str = "sans-serif";

/// The outer margin of every picture, in pixels.
pub(crate) const MARGIN: i32 = 16;

/// An RGB colour.
pub type Rgb = (u8, u8, u8);

pub(crate) const BLACK_RGB: Rgb = (0, 0, 0);
pub(crate) const GREY_TEXT: Rgb = (90, 90, 90);
pub(crate) const FRAME: Rgb = (170, 170, 170);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail for the embedded file: the unit test `font_loads` parses it.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A drawing error (plotters' errors cannot happen on an in-memory buffer unless the
/// font is unusable) as the library's error.
pub(crate) fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::Input(format!("drawing the picture: {e}"))
}

/// An RGB picture, white until drawn on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Picture {
    /// A white `width × height` picture.
    pub fn new(width: u32, height: u32) -> Self {
        register_font();
        Picture {
            width,
            height,
            rgb: vec![255; width as usize * height as usize * 3],
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, row by row, 3 bytes (R, G, B) each.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// The colour at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }

    /// The picture as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
            .write_image(
                &self.rgb,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::Input(format!("encoding the PNG: {e}")))?;
        Ok(out)
    }

    /// Writes the picture as a PNG file, atomically (a viewer never sees half a file,
    /// which matters when `train --plot` redraws the curves every epoch).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::safetensors_file::write_bytes_atomic(path.as_ref(), &self.to_png()?)
    }

    /// The whole picture as a plotters drawing area.
    pub(crate) fn area(&mut self) -> DrawingArea<BitMapBackend<'_>, Shift> {
        BitMapBackend::with_buffer(&mut self.rgb, (self.width, self.height)).into_drawing_area()
    }

    /// Fills a rectangle, clipped to the picture.
    pub(crate) fn fill(&mut self, x: i32, y: i32, w: u32, h: u32, c: Rgb) {
        let x0 = x.max(0) as u32;
        let y0 = y.max(0) as u32;
        let x1 = ((x as i64 + w as i64).max(0) as u64).min(self.width as u64) as u32;
        let y1 = ((y as i64 + h as i64).max(0) as u64).min(self.height as u64) as u32;
        for yy in y0..y1 {
            let row = yy as usize * self.width as usize;
            for xx in x0..x1 {
                let i = (row + xx as usize) * 3;
                self.rgb[i] = c.0;
                self.rgb[i + 1] = c.1;
                self.rgb[i + 2] = c.2;
            }
        }
    }

    /// A one-pixel outline just outside the rectangle.
    pub(crate) fn frame(&mut self, x: i32, y: i32, w: u32, h: u32, c: Rgb) {
        self.fill(x - 1, y - 1, w + 2, 1, c);
        self.fill(x - 1, y + h as i32, w + 2, 1, c);
        self.fill(x - 1, y, 1, h, c);
        self.fill(x + w as i32, y, 1, h, c);
    }

    /// A `rows × cols` map of values, each value a `scale × scale` square coloured by
    /// `colour`, with its top-left corner at (x, y).
    pub(crate) fn map(
        &mut self,
        x: i32,
        y: i32,
        values: &[f32],
        (rows, cols): (usize, usize),
        scale: u32,
        colour: impl Fn(f32) -> Rgb,
    ) {
        for r in 0..rows {
            for c in 0..cols {
                let v = values[r * cols + c];
                self.fill(
                    x + (c as u32 * scale) as i32,
                    y + (r as u32 * scale) as i32,
                    scale,
                    scale,
                    colour(v),
                );
            }
        }
    }

    /// An image as seqnet stores it (`C·H·W` values, intensities in [0, 1]) with its
    /// top-left corner at (x, y), each value a `scale × scale` square: three channels
    /// (R, G, B planes) in their colours, any other number as the mean of its channels
    /// in ink on paper (see [`ink`]), as MNIST's digits are drawn.
    pub(crate) fn image(
        &mut self,
        x: i32,
        y: i32,
        values: &[f32],
        [c, h, w]: [usize; 3],
        scale: u32,
    ) {
        let plane = h * w;
        if c == 3 {
            let level = |v: f32| {
                if v.is_finite() {
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                } else {
                    0
                }
            };
            for p in 0..plane {
                let rgb = (
                    level(values[p]),
                    level(values[plane + p]),
                    level(values[2 * plane + p]),
                );
                let (px, py) = ((p % w) as u32 * scale, (p / w) as u32 * scale);
                self.fill(x + px as i32, y + py as i32, scale, scale, rgb);
            }
        } else {
            let mean: Vec<f32> = (0..plane)
                .map(|p| (0..c).map(|ch| values[ch * plane + p]).sum::<f32>() / c.max(1) as f32)
                .collect();
            self.map(x, y, &mean, (h, w), scale, ink);
        }
    }

    /// Draws `text` at `size` pixels (the font's ascent to descent) with its anchor
    /// (`h`, `v`) at (x, y). Glyphs are laid out with their advances and kerning and
    /// rasterised, anti-aliased, by ab_glyph, then blended onto the picture.
    pub(crate) fn text(
        &mut self,
        text: &str,
        (x, y): (i32, i32),
        size: f64,
        c: Rgb,
        h: HPos,
        v: VPos,
    ) -> Result<()> {
        let scale = PxScale::from(size as f32);
        let font = font().as_scaled(scale);
        let width = advance(text, size);
        let x0 = match h {
            HPos::Left => x as f32,
            HPos::Center => x as f32 - width / 2.0,
            HPos::Right => x as f32 - width,
        };
        let baseline = match v {
            VPos::Top => y as f32 + font.ascent(),
            VPos::Center => y as f32 + (font.ascent() + font.descent()) / 2.0,
            VPos::Bottom => y as f32 + font.descent(),
        };
        // Whole-pixel pen positions keep the output independent of where a label lands.
        let (mut pen, baseline) = (x0.round(), baseline.round());
        let mut prev = None;
        for ch in text.chars() {
            let id = font.glyph_id(ch);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    self.blend(
                        b.min.x as i32 + gx as i32,
                        b.min.y as i32 + gy as i32,
                        c,
                        cov,
                    );
                });
            }
            pen += font.h_advance(id);
            prev = Some(id);
        }
        Ok(())
    }

    /// Mixes `c` into the pixel at (x, y) with opacity `a` (ignored outside the picture).
    fn blend(&mut self, x: i32, y: i32, c: Rgb, a: f32) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let a = a.clamp(0.0, 1.0);
        let i = (y as usize * self.width as usize + x as usize) * 3;
        for (k, v) in [c.0, c.1, c.2].into_iter().enumerate() {
            let d = self.rgb[i + k] as f32;
            self.rgb[i + k] = (d + (v as f32 - d) * a).round() as u8;
        }
    }

    /// Left-aligned text whose top is at (x, y).
    pub(crate) fn label(&mut self, text: &str, at: (i32, i32), size: f64, c: Rgb) -> Result<()> {
        self.text(text, at, size, c, HPos::Left, VPos::Top)
    }
}

/// The embedded font, parsed once.
fn font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    PARSED.get_or_init(|| {
        FontRef::try_from_slice(FONT)
            .expect("the embedded DejaVu Sans parses (unit test font_loads)")
    })
}

/// The advance width of `text` at `size`, with kerning.
fn advance(text: &str, size: f64) -> f32 {
    let font = font().as_scaled(PxScale::from(size as f32));
    let mut w = 0.0;
    let mut prev = None;
    for ch in text.chars() {
        let id = font.glyph_id(ch);
        if let Some(p) = prev {
            w += font.kern(p, id);
        }
        w += font.h_advance(id);
        prev = Some(id);
    }
    w
}

/// The width in pixels of `text` drawn at `size`.
pub(crate) fn text_width(text: &str, size: f64) -> u32 {
    advance(text, size).ceil() as u32
}

fn lerp_stops(stops: &[(f32, Rgb)], t: f32) -> Rgb {
    let t = if t.is_finite() { t } else { 0.0 };
    let t = t.clamp(stops[0].0, stops[stops.len() - 1].0);
    for pair in stops.windows(2) {
        let ((a, ca), (b, cb)) = (pair[0], pair[1]);
        if t <= b {
            let f = if b > a { (t - a) / (b - a) } else { 0.0 };
            let mix = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * f).round() as u8;
            return (mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2));
        }
    }
    stops[stops.len() - 1].1
}

/// Blue–white–red for `t` in [−1, 1] (ColorBrewer's RdBu, reversed so that positive
/// is red); values outside are clamped.
pub fn diverging(t: f32) -> Rgb {
    const STOPS: [(f32, Rgb); 5] = [
        (-1.0, (33, 102, 172)),
        (-0.5, (103, 169, 207)),
        (0.0, (247, 247, 247)),
        (0.5, (239, 138, 98)),
        (1.0, (178, 24, 43)),
    ];
    lerp_stops(&STOPS, t)
}

/// White to dark blue for `t` in [0, 1] (ColorBrewer's Blues).
pub fn blues(t: f32) -> Rgb {
    const STOPS: [(f32, Rgb); 5] = [
        (0.0, (247, 251, 255)),
        (0.25, (198, 219, 239)),
        (0.5, (107, 174, 214)),
        (0.75, (33, 113, 181)),
        (1.0, (8, 48, 107)),
    ];
    lerp_stops(&STOPS, t)
}

/// Ink on paper for `t` in [0, 1]: 0 is white, 1 is black.
pub fn ink(t: f32) -> Rgb {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let g = (255.0 * (1.0 - t)).round() as u8;
    (g, g, g)
}

/// The largest magnitude of `values`, ignoring non-finite ones; 1 if all are 0, so a
/// scale divided by it stays finite.
pub(crate) fn max_abs(values: &[f32]) -> f32 {
    let m = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    if m > 0.0 { m } else { 1.0 }
}

/// A number with about three significant digits: `0.432`, `3.21`, `12.3`, `1520`.
pub(crate) fn short(v: f32) -> String {
    // Thresholds just below the powers of ten, so 0.99996 prints as 1.00, not 1.000.
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 99.95 {
        format!("{v:.0}")
    } else if a >= 9.995 {
        format!("{v:.1}")
    } else if a >= 0.9995 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// A horizontal colour bar for the diverging scale at ±`m`, with its three labels below:
/// `−m`, `0`, `+m`. Takes `width × 30` pixels.
pub(crate) fn diverging_bar(
    pic: &mut Picture,
    (x, y): (i32, i32),
    width: u32,
    m: f32,
) -> Result<()> {
    let h = 10;
    for i in 0..width {
        let t = 2.0 * (i as f32 + 0.5) / width as f32 - 1.0;
        pic.fill(x + i as i32, y, 1, h, diverging(t));
    }
    pic.frame(x, y, width, h, FRAME);
    let ty = y + h as i32 + 3;
    pic.text(
        &format!("−{}", short(m)),
        (x, ty),
        12.0,
        GREY_TEXT,
        HPos::Left,
        VPos::Top,
    )?;
    pic.text(
        "0",
        (x + width as i32 / 2, ty),
        12.0,
        GREY_TEXT,
        HPos::Center,
        VPos::Top,
    )?;
    pic.text(
        &format!("+{}", short(m)),
        (x + width as i32, ty),
        12.0,
        GREY_TEXT,
        HPos::Right,
        VPos::Top,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_loads() {
        assert!(FontRef::try_from_slice(FONT).is_ok());
        assert!(plotters::style::register_font("seqnet-test", FontStyle::Normal, FONT).is_ok());
        assert!(text_width("seqnet", 16.0) > 30);
    }

    #[test]
    fn colour_scales_are_symmetric_and_clamped() {
        assert_eq!(diverging(0.0), (247, 247, 247));
        assert_eq!(diverging(1.0), (178, 24, 43));
        assert_eq!(diverging(-7.0), (33, 102, 172));
        assert_eq!(diverging(f32::NAN), diverging(0.0));
        assert_eq!(ink(0.0), (255, 255, 255));
        assert_eq!(ink(1.0), (0, 0, 0));
        assert_eq!(blues(0.0), (247, 251, 255));
    }

    #[test]
    fn text_is_drawn_and_deterministic() {
        let draw = || {
            let mut p = Picture::new(120, 40);
            p.label("seqnet 0.1", (4, 4), 16.0, BLACK_RGB).unwrap();
            p
        };
        let (a, b) = (draw(), draw());
        assert_eq!(a, b);
        assert!(a.rgb().iter().any(|&v| v < 128), "no dark text pixel");
        let png = a.to_png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.4321), "0.432");
        assert_eq!(short(3.214), "3.21");
        assert_eq!(short(-12.34), "-12.3");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(-0.99996), "-1.00");
    }
}
