//! Images for predict: decode, grey, invert, fit and centre as MNIST digits were.
//!
//! MNIST's recipe (LeCun et al.): the NIST digits were size-normalised to fit a 20×20 box
//! preserving their aspect ratio, anti-aliased by that normalisation, then placed in a
//! 28×28 field so that their centre of mass sits at the centre of the field. The network
//! only ever saw digits prepared that way, white ink on black, so an arbitrary photo or
//! drawing is brought into the same form before it is classified.
//!
//! Measured on the MNIST test set, which these constants follow: the longer side of every
//! digit's ink is exactly 20 px, every digit peaks at 255, and the centre of mass, in
//! pixel-index coordinates (`Σ i·v / Σ v`), averages (14.0, 14.0) with a spread of ±0.5 px
//! (whole-pixel shifts).
//!
//! Decoding files ([`load_digit`]) needs the `image` feature (default); [`prepare_grey`],
//! on pixels decoded elsewhere (e.g. a browser canvas), is always there.

#[cfg(feature = "image")]
use std::path::Path;

#[cfg(feature = "image")]
use image::metadata::Orientation;
#[cfg(feature = "image")]
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};

use crate::{Error, Result};

#[cfg(feature = "image")]
/// Longest side accepted before decoding: larger images are refused from their header, so a
/// hostile or mistaken file cannot make us allocate gigabytes.
const MAX_SIDE: u32 = 8192;
#[cfg(feature = "image")]
/// Most pixels accepted before decoding (64 Mpixel, ~48 Mpixel phone photos still pass).
const MAX_PIXELS: u64 = 64 * 1024 * 1024;
/// Fewer grey levels than this between background and darkest ink means there is no digit,
/// only paper (or JPEG noise on it, which stays within a few levels).
const MIN_CONTRAST: u8 = 32;
/// A pixel is ink, for the bounding box, above this fraction of full ink. Lower levels are
/// anti-aliasing fringe, shadows and noise that would otherwise inflate the box.
const INK_LEVEL: f32 = 0.1;
/// MNIST fits digits in 20 px of a 28 px field; other fields keep the proportion.
const BOX_FRACTION: f64 = 20.0 / 28.0;

#[cfg(feature = "image")]
/// Loads an image file and returns C*H*W f32 values in [0, 1] (ink = 1, background = 0),
/// ready for a network taking `shape` = [C, H, W].
///
/// PNG and JPEG are read (the format is recognised from the contents, not the name); colour
/// becomes grey, transparent pixels become background, the EXIF orientation of photos is
/// applied. Then the pixels go through [`prepare_grey`]: an image already H×W is only
/// inverted if it is dark-on-light, any other is cropped to its ink, scaled into MNIST's
/// 20/28 box and centred by its centre of mass.
///
/// Errors name the file: it is missing or unreadable ([`Error::Io`]), not PNG/JPEG, corrupt
/// or truncated, larger than 8192 px a side, empty, or blank ([`Error::Input`]).
pub fn load_digit(path: &Path, shape: &[usize]) -> Result<Vec<f32>> {
    let (channels, height, width) = check_shape(shape)?;
    let (pixels, w, h) = decode_grey(path)?;
    let grey = prepare(&pixels, w, h, height, width)
        .map_err(|message| Error::Input(format!("{}: {message}", path.display())))?;
    Ok(replicate(grey, channels))
}

/// The same as [`load_digit`] from already-decoded 8-bit greyscale pixels (row-major,
/// `w*h`, any polarity), for tests and for callers with raw data.
///
/// An image of exactly H×W passes through unchanged apart from the inversion of a light
/// background, so MNIST's own pixels give MNIST's own values (`v / 255`).
pub fn prepare_grey(pixels: &[u8], w: usize, h: usize, shape: &[usize]) -> Result<Vec<f32>> {
    let (channels, height, width) = check_shape(shape)?;
    // u128: a w×h that overflows usize is still a count that does not match.
    let count = w as u128 * h as u128;
    if pixels.len() as u128 != count {
        return Err(Error::Input(format!(
            "{} grey pixels given for a {w}×{h} image, which has {count}; pass one byte per \
             pixel, row by row",
            pixels.len(),
        )));
    }
    let grey = prepare(pixels, w, h, height, width).map_err(Error::Input)?;
    Ok(replicate(grey, channels))
}

/// Splits `shape` into (C, H, W), accepting the grey and RGB inputs an image can feed.
fn check_shape(shape: &[usize]) -> Result<(usize, usize, usize)> {
    match *shape {
        [c @ (1 | 3), h, w]
            if h > 0 && w > 0 && crate::shape::checked_numel(&[c, h, w]).is_some() =>
        {
            Ok((c, h, w))
        }
        _ => Err(Error::Input(format!(
            "the network takes input {shape:?}, which an image cannot fill: images need \
             [C, H, W] with C = 1 (grey) or 3 (RGB) and H, W > 0 (at most {} values in \
             all), e.g. [1, 28, 28]",
            crate::shape::MAX_ELEMENTS_PER_IMAGE
        ))),
    }
}

/// Repeats the grey plane for a 3-channel network: a grey digit has R = G = B.
fn replicate(grey: Vec<f32>, channels: usize) -> Vec<f32> {
    if channels == 1 {
        grey
    } else {
        grey.repeat(channels)
    }
}

#[cfg(feature = "image")]
/// Decodes `path` to 8-bit grey, alpha flattened, orientation applied: (pixels, w, h).
fn decode_grey(path: &Path) -> Result<(Vec<u8>, usize, usize)> {
    let name = path.display();
    let reader = ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    // The contents decide the format, so a JPEG saved as .png still loads.
    let reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(Error::Input(format!(
            "{name}: not a PNG or JPEG image (neither its contents nor its name say so); \
             convert it to PNG or JPEG"
        )));
    }
    // `into_decoder` reads only the header, so the size is checked before any pixel
    // buffer is allocated.
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h).map_err(|message| Error::Input(format!("{name}: {message}")))?;
    // A damaged EXIF block should not refuse an image whose pixels are fine.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
    // Phones store photos sideways and record the rotation in EXIF; a digit lying on its
    // side is a different digit, or none.
    image.apply_orientation(orientation);
    let (w, h) = (image.width() as usize, image.height() as usize);
    let pixels = if image.color().has_alpha() {
        let grey_alpha = image.to_luma_alpha8();
        drop(image);
        let (luma, alpha): (Vec<u8>, Vec<u8>) =
            grey_alpha.pixels().map(|p| (p.0[0], p.0[1])).unzip();
        flatten_alpha(&luma, &alpha, w, h)
    } else {
        image.to_luma8().into_raw()
    };
    Ok((pixels, w, h))
}

#[cfg(feature = "image")]
/// Refuses empty and oversized images from their header.
fn check_dimensions(w: u32, h: u32) -> std::result::Result<(), String> {
    if w == 0 || h == 0 {
        return Err(format!(
            "the image is empty ({w}×{h} pixels); re-export the drawing"
        ));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "the image is {w}×{h} pixels, more than the {MAX_SIDE}×{MAX_SIDE} accepted; a \
             digit needs far fewer, so scale it down (to a few hundred pixels) first"
        ));
    }
    Ok(())
}

#[cfg(feature = "image")]
/// Turns the `image` crate's error into one that names the file and says what to do.
fn decode_error(path: &Path, error: ImageError) -> Error {
    let (advice, error) = match error {
        ImageError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            return Error::io(path, e);
        }
        // A file that ends early surfaces as an I/O error from inside the decoder; it is the
        // file's fault, not the system's.
        ImageError::IoError(e) => ("the image file is truncated", e.to_string()),
        ImageError::Unsupported(e) => ("cannot read this kind of image", e.to_string()),
        ImageError::Limits(e) => ("the image is too large to decode", e.to_string()),
        e => (
            "cannot decode the image, the file is corrupt or truncated",
            e.to_string(),
        ),
    };
    let remedy = if advice.contains("too large") {
        "scale it down first"
    } else {
        "export it again as an 8-bit PNG or JPEG"
    };
    // Some decoders end their messages with a newline, which would split ours.
    Error::Input(format!(
        "{}: {advice} ({}); {remedy}",
        path.display(),
        error.trim_end()
    ))
}

/// Composites grey+alpha over the background colour, so transparent pixels are background
/// whatever colour they happen to store (often black, which would read as ink).
///
/// The background is the colour of the opaque border when the border is mostly opaque (a
/// card with rounded, transparent corners). Otherwise the opaque pixels are the ink alone,
/// and the background is whichever of white or black contrasts with it: black ink on a
/// transparent canvas goes over white, white ink over black.
#[cfg(feature = "image")]
fn flatten_alpha(luma: &[u8], alpha: &[u8], w: usize, h: usize) -> Vec<u8> {
    if alpha.iter().all(|&a| a == u8::MAX) {
        return luma.to_vec();
    }
    let border = border_indices(w, h);
    let opaque_border: Vec<u8> = border
        .iter()
        .filter(|&&i| alpha[i] >= 128)
        .map(|&i| luma[i])
        .collect();
    let background = if opaque_border.len() * 2 > border.len() {
        median(&opaque_border)
    } else {
        let (sum, weight) = luma
            .iter()
            .zip(alpha)
            .fold((0u64, 0u64), |(s, t), (&l, &a)| {
                (s + u64::from(l) * u64::from(a), t + u64::from(a))
            });
        // Fully transparent: nothing to see; any colour gives the blank-image error.
        if weight > 0 && sum < 128 * weight {
            u8::MAX
        } else {
            0
        }
    };
    let bg = u32::from(background);
    luma.iter()
        .zip(alpha)
        .map(|(&l, &a)| {
            let (l, a) = (u32::from(l), u32::from(a));
            ((l * a + bg * (255 - a) + 127) / 255) as u8
        })
        .collect()
}

/// Indices of the pixels on the image's edge, each once.
fn border_indices(w: usize, h: usize) -> Vec<usize> {
    let mut indices = Vec::with_capacity(2 * (w + h));
    for y in 0..h {
        if y == 0 || y == h - 1 {
            indices.extend(y * w..(y + 1) * w);
        } else {
            indices.push(y * w);
            if w > 1 {
                indices.push(y * w + w - 1);
            }
        }
    }
    indices
}

/// The lower median of some grey levels (by histogram: the border of a big photo has tens
/// of thousands of pixels).
fn median(values: &[u8]) -> u8 {
    let mut histogram = [0usize; 256];
    for &v in values {
        histogram[usize::from(v)] += 1;
    }
    let middle = values.len().saturating_sub(1) / 2;
    let mut seen = 0;
    for (level, &count) in histogram.iter().enumerate() {
        seen += count;
        if seen > middle {
            return level as u8;
        }
    }
    0
}

/// The recipe proper, on validated grey pixels: `height*width` values in [0, 1].
fn prepare(
    pixels: &[u8],
    w: usize,
    h: usize,
    height: usize,
    width: usize,
) -> std::result::Result<Vec<f32>, String> {
    if w == 0 || h == 0 {
        return Err(format!(
            "the image is empty ({w}×{h} pixels); give a drawing of one digit"
        ));
    }
    // MNIST is white ink on black. The border is mostly background even when the digit
    // touches it, so its median tells paper from ink.
    let border: Vec<u8> = border_indices(w, h)
        .into_iter()
        .map(|i| pixels[i])
        .collect();
    let border_level = median(&border);
    let invert = border_level >= 128;
    let grey: Vec<u8> = if invert {
        pixels.iter().map(|&v| u8::MAX - v).collect()
    } else {
        pixels.to_vec()
    };
    let background = if invert {
        u8::MAX - border_level
    } else {
        border_level
    };
    let peak = grey.iter().copied().max().unwrap_or(0);
    let contrast = peak.saturating_sub(background);
    if contrast < MIN_CONTRAST {
        return Err(format!(
            "the image is blank: no ink stands out from the background (only {contrast} of \
             255 grey levels between them, at least {MIN_CONTRAST} needed); give a picture of \
             one digit, dark on light or light on dark"
        ));
    }

    // Same size as the network's input: taken to be prepared already (MNIST itself, or an
    // export of it), so its pixels must give the dataset's values and prediction.
    if (w, h) == (width, height) {
        return Ok(grey.iter().map(|&v| f32::from(v) / 255.0).collect());
    }

    // Paper is rarely pure white nor ink pure black (photos, pencil, JPEG): map the
    // background to 0 and the darkest ink to 1, as in MNIST, where background is exactly 0
    // and every digit peaks at 255. Then the ink threshold below is relative to the ink.
    let scale = 1.0 / f32::from(contrast);
    let level: Vec<f32> = grey
        .iter()
        .map(|&v| (f32::from(v.saturating_sub(background)) * scale).min(1.0))
        .collect();

    let (x0, y0, x1, y1) = ink_box(&level, w, h).ok_or_else(|| {
        "the image is blank: no pixel is dark enough to be ink; give a picture of one digit"
            .to_string()
    })?;
    let (bw, bh) = (x1 - x0, y1 - y0);
    let crop: Vec<f32> = (y0..y1)
        .flat_map(|y| level[y * w + x0..y * w + x1].iter().copied())
        .collect();

    // The longer side fills the box exactly, the shorter keeps the aspect ratio.
    let side = ((BOX_FRACTION * height.min(width) as f64).round() as usize).max(1);
    let long = bw.max(bh) as f64;
    let nw = ((bw as f64 * side as f64 / long).round() as usize).clamp(1, side);
    let nh = ((bh as f64 * side as f64 / long).round() as usize).clamp(1, side);
    let mut digit = resample(&crop, bw, bh, nw, nh);
    // Thin strokes lose intensity when averaged down, and MNIST digits all reach full ink.
    // Dividing by the peak also makes it exactly 1 despite rounding in the weights.
    let digit_peak = digit.iter().copied().fold(0.0f32, f32::max);
    if digit_peak > 0.0 {
        digit
            .iter_mut()
            .for_each(|v| *v = (*v / digit_peak).clamp(0.0, 1.0));
    }

    // Whole-pixel shift putting the centre of mass (in pixel indices, as measured on MNIST)
    // at (H/2, W/2), clamped so the digit stays in the field. Whole pixels, as MNIST did:
    // a sub-pixel shift would blur the digit once more.
    let (cx, cy) = centre_of_mass(&digit, nw, nh);
    let dx = shift(width as f64 / 2.0 - cx, width - nw);
    let dy = shift(height as f64 / 2.0 - cy, height - nh);
    let mut canvas = vec![0.0f32; height * width];
    for y in 0..nh {
        let row = (y + dy) * width + dx;
        canvas[row..row + nw].copy_from_slice(&digit[y * nw..(y + 1) * nw]);
    }
    Ok(canvas)
}

/// The half-open box (x0, y0, x1, y1) of the pixels above [`INK_LEVEL`].
fn ink_box(level: &[f32], w: usize, h: usize) -> Option<(usize, usize, usize, usize)> {
    let mut found: Option<(usize, usize, usize, usize)> = None;
    for y in 0..h {
        for x in 0..w {
            if level[y * w + x] > INK_LEVEL {
                found = Some(match found {
                    None => (x, y, x + 1, y + 1),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)),
                });
            }
        }
    }
    found
}

/// Centre of mass (x, y) in pixel indices; the geometric centre if there is no mass.
fn centre_of_mass(values: &[f32], w: usize, h: usize) -> (f64, f64) {
    let (mut mass, mut sx, mut sy) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let v = f64::from(values[y * w + x]);
            mass += v;
            sx += v * x as f64;
            sy += v * y as f64;
        }
    }
    if mass > 0.0 {
        (sx / mass, sy / mass)
    } else {
        ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0)
    }
}

/// The offset `wanted`, rounded to a whole pixel and kept within `0..=max`.
fn shift(wanted: f64, max: usize) -> usize {
    (wanted.round().max(0.0) as usize).min(max)
}

/// Resizes a `w`×`h` plane to `nw`×`nh`, one axis after the other.
fn resample(src: &[f32], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
    let columns = axis_weights(w, nw);
    let rows = axis_weights(h, nh);
    let mut across = vec![0.0f32; h * nw];
    for y in 0..h {
        let line = &src[y * w..(y + 1) * w];
        for (x, (first, weights)) in columns.iter().enumerate() {
            across[y * nw + x] = weights
                .iter()
                .zip(&line[*first..])
                .map(|(wt, v)| wt * v)
                .sum();
        }
    }
    let mut out = vec![0.0f32; nh * nw];
    for (y, (first, weights)) in rows.iter().enumerate() {
        for (k, wt) in weights.iter().enumerate() {
            let line = &across[(first + k) * nw..(first + k + 1) * nw];
            for (o, v) in out[y * nw..(y + 1) * nw].iter_mut().zip(line) {
                *o += wt * v;
            }
        }
    }
    out
}

/// For each of `n_out` output pixels along one axis, the first of the `n_in` input pixels
/// it draws from and their weights (summing to 1).
///
/// Shrinking averages the input area each output pixel covers, counting partly covered
/// pixels by their covered fraction: anti-aliased like MNIST's normalisation, with no ink
/// lost or moved. Enlarging (a digit drawn smaller than the box) interpolates linearly,
/// since area averaging would repeat pixels into blocks.
fn axis_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let ratio = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            if ratio >= 1.0 {
                let (start, end) = (o as f64 * ratio, (o + 1) as f64 * ratio);
                let first = (start.floor() as usize).min(n_in - 1);
                let last = (end.ceil() as usize).clamp(first + 1, n_in);
                let weights = (first..last)
                    .map(|i| {
                        let covered = end.min(i as f64 + 1.0) - start.max(i as f64);
                        (covered.max(0.0) / ratio) as f32
                    })
                    .collect();
                (first, weights)
            } else {
                let x = ((o as f64 + 0.5) * ratio - 0.5).clamp(0.0, (n_in - 1) as f64);
                let first = x.floor() as usize;
                let frac = (x - first as f64) as f32;
                if first + 1 < n_in {
                    (first, vec![1.0 - frac, frac])
                } else {
                    (first, vec![1.0])
                }
            }
        })
        .collect()
}

// Most cases encode their input as PNG or JPEG files.
#[cfg(all(test, feature = "image"))]
mod tests {
    use super::*;
    use image::{GrayImage, ImageBuffer, ImageEncoder, LumaA, Rgb, RgbImage, Rgba};

    const MNIST: [usize; 3] = [1, 28, 28];

    /// A w×h plane of `paper` with the `ink` rectangles [x0, x1) × [y0, y1) drawn on it.
    fn draw(
        w: usize,
        h: usize,
        paper: u8,
        ink: u8,
        rects: &[(usize, usize, usize, usize)],
    ) -> Vec<u8> {
        let mut pixels = vec![paper; w * h];
        for &(x0, y0, x1, y1) in rects {
            for y in y0..y1 {
                pixels[y * w + x0..y * w + x1].fill(ink);
            }
        }
        pixels
    }

    /// A "1" with a flag and a foot, black on white, 200 wide and 100 high: asymmetric, so
    /// its centre of mass is not its box's centre.
    fn big_one() -> Vec<u8> {
        draw(
            200,
            100,
            255,
            0,
            &[(95, 10, 107, 90), (80, 10, 95, 22), (85, 80, 120, 90)],
        )
    }

    /// Rows and columns holding any ink: (width, height) of the ink's bounding box.
    fn extent(out: &[f32], w: usize, h: usize) -> (usize, usize) {
        let cols: Vec<usize> = (0..w)
            .filter(|&x| (0..h).any(|y| out[y * w + x] > 0.0))
            .collect();
        let rows: Vec<usize> = (0..h)
            .filter(|&y| (0..w).any(|x| out[y * w + x] > 0.0))
            .collect();
        (
            cols.last().unwrap() - cols[0] + 1,
            rows.last().unwrap() - rows[0] + 1,
        )
    }

    /// Checks the output is an MNIST-style digit: in range, background 0, fits the 20 box
    /// with its longer side filling it, full ink somewhere, centred on (14, 14).
    fn assert_mnist_like(out: &[f32]) -> (usize, usize) {
        assert_eq!(out.len(), 28 * 28);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(out[0], 0.0, "corner must be background");
        let (ew, eh) = extent(out, 28, 28);
        assert!(ew <= 20 && eh <= 20, "ink {ew}×{eh} does not fit 20×20");
        assert_eq!(ew.max(eh), 20, "longer side must fill the box");
        let peak = out.iter().copied().fold(0.0, f32::max);
        assert!((peak - 1.0).abs() < 1e-6, "peak {peak}");
        let (cx, cy) = centre_of_mass(out, 28, 28);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "centre ({cx}, {cy})"
        );
        (ew, eh)
    }

    fn message(err: Error) -> String {
        err.to_string()
    }

    #[test]
    fn exact_size_passes_through_unchanged() {
        // MNIST-like: black background, grey anti-aliased stroke, off-centre on purpose.
        let mut pixels = vec![0u8; 28 * 28];
        for (i, p) in pixels.iter_mut().enumerate() {
            let (x, y) = (i % 28, i / 28);
            if (5..9).contains(&x) && (3..25).contains(&y) {
                *p = (37 * i % 256) as u8 | 1;
            }
        }
        let out = prepare_grey(&pixels, 28, 28, &MNIST).unwrap();
        let expected: Vec<f32> = pixels.iter().map(|&v| f32::from(v) / 255.0).collect();
        assert_eq!(out, expected);

        // The same pixels through a PNG file give the same values.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnist.png");
        GrayImage::from_raw(28, 28, pixels.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        assert_eq!(load_digit(&path, &MNIST).unwrap(), expected);
    }

    #[test]
    fn exact_size_light_background_is_only_inverted() {
        let pixels = draw(28, 28, 255, 0, &[(10, 4, 14, 24)]);
        let out = prepare_grey(&pixels, 28, 28, &MNIST).unwrap();
        let expected: Vec<f32> = pixels.iter().map(|&v| f32::from(255 - v) / 255.0).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn three_channels_replicate_grey() {
        let pixels = draw(28, 28, 0, 200, &[(10, 4, 14, 24)]);
        let grey = prepare_grey(&pixels, 28, 28, &MNIST).unwrap();
        let rgb = prepare_grey(&pixels, 28, 28, &[3, 28, 28]).unwrap();
        assert_eq!(rgb.len(), 3 * 784);
        for c in 0..3 {
            assert_eq!(&rgb[c * 784..(c + 1) * 784], &grey[..]);
        }
    }

    #[test]
    fn large_dark_on_light_digit_is_inverted_fitted_and_centred() {
        let out = prepare_grey(&big_one(), 200, 100, &MNIST).unwrap();
        let (ew, eh) = assert_mnist_like(&out);
        // 40×80 of ink becomes 10×20.
        assert_eq!((ew, eh), (10, 20));
    }

    #[test]
    fn large_square_is_centred_exactly() {
        let pixels = draw(200, 100, 255, 0, &[(20, 10, 90, 80)]);
        let out = prepare_grey(&pixels, 200, 100, &MNIST).unwrap();
        assert_mnist_like(&out);
        // A solid square scaled to 20×20: its centre of mass, 9.5, is moved to 14 by a
        // whole-pixel shift of round(4.5) = 5, so rows and columns 5..25 are all ink.
        for y in 0..28 {
            for x in 0..28 {
                let inside = (5..25).contains(&x) && (5..25).contains(&y);
                let expected = if inside { 1.0 } else { 0.0 };
                assert!((out[y * 28 + x] - expected).abs() < 1e-6, "({x}, {y})");
            }
        }
    }

    #[test]
    fn light_on_dark_is_not_inverted() {
        let pixels: Vec<u8> = big_one().iter().map(|&v| 255 - v).collect();
        let out = prepare_grey(&pixels, 200, 100, &MNIST).unwrap();
        assert_eq!(out, prepare_grey(&big_one(), 200, 100, &MNIST).unwrap());
    }

    #[test]
    fn grey_paper_and_ink_are_stretched_to_black_and_white() {
        // A photo-like digit: paper at 190, ink at 70.
        let pixels: Vec<u8> = big_one()
            .iter()
            .map(|&v| if v == 0 { 70 } else { 190 })
            .collect();
        let out = prepare_grey(&pixels, 200, 100, &MNIST).unwrap();
        assert_mnist_like(&out);
        let reference = prepare_grey(&big_one(), 200, 100, &MNIST).unwrap();
        for (a, b) in out.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn small_digit_is_enlarged() {
        // 6×8 of ink in a 40×40 image: scaled up to 15×20.
        let pixels = draw(40, 40, 255, 0, &[(3, 2, 9, 10)]);
        let out = prepare_grey(&pixels, 40, 40, &MNIST).unwrap();
        assert_eq!(assert_mnist_like(&out), (15, 20));
    }

    #[test]
    fn thin_strokes_keep_full_ink() {
        // An "L" of 2 px strokes, 100×200: shrunk tenfold, the strokes cover a fifth of a
        // pixel and would peak at 0.2 without the rescaling to full ink.
        let pixels = draw(
            300,
            300,
            255,
            0,
            &[(100, 50, 102, 250), (100, 248, 200, 250)],
        );
        let out = prepare_grey(&pixels, 300, 300, &MNIST).unwrap();
        assert_eq!(assert_mnist_like(&out), (10, 20));
    }

    #[test]
    fn other_field_sizes_keep_the_proportion() {
        let pixels = draw(100, 100, 255, 0, &[(10, 10, 90, 90)]);
        let out = prepare_grey(&pixels, 100, 100, &[1, 56, 56]).unwrap();
        assert_eq!(extent(&out, 56, 56), (40, 40));
        let (cx, cy) = centre_of_mass(&out, 56, 56);
        assert!((cx - 28.0).abs() <= 0.5 && (cy - 28.0).abs() <= 0.5);
    }

    #[test]
    fn digit_is_kept_inside_the_field() {
        // A heavy block in the top-left corner with thin arms along the top and left: the
        // centre of mass is near the block, so centring it would push the arms past the
        // right and bottom edges. The shift is clamped: the digit ends at the last pixel.
        let pixels = draw(
            240,
            240,
            255,
            0,
            &[(20, 20, 80, 80), (20, 20, 220, 22), (20, 20, 22, 220)],
        );
        let out = prepare_grey(&pixels, 240, 240, &MNIST).unwrap();
        assert_eq!(extent(&out, 28, 28), (20, 20));
        assert!(
            (0..28).any(|y| out[y * 28 + 27] > 0.0),
            "arm cut at the right"
        );
        assert!(
            (0..28).any(|x| out[27 * 28 + x] > 0.0),
            "arm cut at the bottom"
        );
        let (cx, cy) = centre_of_mass(&out, 28, 28);
        assert!(
            cx > 11.0 && cx < 14.0 && cy > 11.0 && cy < 14.0,
            "({cx}, {cy})"
        );
    }

    #[test]
    fn blank_images_are_refused() {
        for (pixels, w, h) in [
            (vec![255u8; 100 * 100], 100, 100),
            (vec![0u8; 28 * 28], 28, 28),
            // JPEG-like noise on white paper is still blank.
            (
                (0..100 * 100).map(|i| 250 - (i * 7 % 6) as u8).collect(),
                100,
                100,
            ),
        ] {
            let err = message(prepare_grey(&pixels, w, h, &MNIST).unwrap_err());
            assert!(err.contains("blank"), "{err}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let pixels = vec![0u8; 784];
        for shape in [&[2, 28, 28][..], &[28, 28], &[1, 0, 28], &[]] {
            let err = message(prepare_grey(&pixels, 28, 28, shape).unwrap_err());
            assert!(err.contains("C = 1 (grey) or 3 (RGB)"), "{err}");
        }
        let err = message(prepare_grey(&pixels, 28, 27, &MNIST).unwrap_err());
        assert!(
            err.contains("784 grey pixels given for a 28×27 image, which has 756"),
            "{err}"
        );
        let err = message(prepare_grey(&[], 0, 5, &MNIST).unwrap_err());
        assert!(err.contains("empty"), "{err}");
        assert!(check_dimensions(0, 10).unwrap_err().contains("empty"));
        assert!(check_dimensions(8192, 8192).is_ok());
        assert!(check_dimensions(8193, 10).unwrap_err().contains("8193×10"));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere.png");
        let err = load_digit(&path, &MNIST).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(message(err).contains("nowhere.png"));
    }

    #[test]
    fn corrupt_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"this is not a picture of a digit at all").unwrap();
        let err = message(load_digit(&garbage, &MNIST).unwrap_err());
        assert!(
            err.contains("garbage.png") && err.contains("corrupt"),
            "{err}"
        );

        let unknown = dir.path().join("digit.dat");
        std::fs::write(&unknown, b"\x01\x02\x03 nothing recognisable").unwrap();
        let err = message(load_digit(&unknown, &MNIST).unwrap_err());
        assert!(
            err.contains("digit.dat") && err.contains("not a PNG or JPEG"),
            "{err}"
        );

        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        let err = message(load_digit(&empty, &MNIST).unwrap_err());
        assert!(err.contains("empty.png"), "{err}");
    }

    #[test]
    fn truncated_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.png");
        GrayImage::from_raw(200, 100, big_one())
            .unwrap()
            .save(&whole)
            .unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        for (name, keep) in [("cut.png", bytes.len() / 2), ("header.png", 20)] {
            let cut = dir.path().join(name);
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let err = message(load_digit(&cut, &MNIST).unwrap_err());
            assert!(err.contains(name), "{err}");
        }

        let jpeg = dir.path().join("whole.jpg");
        GrayImage::from_raw(200, 100, big_one())
            .unwrap()
            .save(&jpeg)
            .unwrap();
        let bytes = std::fs::read(&jpeg).unwrap();
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        // A JPEG cut short may decode as grey padding or fail; either way, no panic, and a
        // failure names the file.
        if let Err(err) = load_digit(&cut, &MNIST) {
            assert!(message(err).contains("cut.jpg"));
        }
    }

    #[test]
    fn oversized_images_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        GrayImage::new(9000, 1).save(&path).unwrap();
        let err = message(load_digit(&path, &MNIST).unwrap_err());
        assert!(err.contains("wide.png") && err.contains("9000×1"), "{err}");
    }

    #[test]
    fn png_file_gives_the_same_as_raw_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.png");
        // Colour: an RGB file goes through luma.
        RgbImage::from_fn(200, 100, |x, y| {
            let v = big_one()[(y * 200 + x) as usize];
            Rgb([v, v, v])
        })
        .save(&path)
        .unwrap();
        let out = load_digit(&path, &MNIST).unwrap();
        assert_eq!(out, prepare_grey(&big_one(), 200, 100, &MNIST).unwrap());
    }

    #[test]
    fn transparent_background_is_background() {
        let dir = tempfile::tempdir().unwrap();
        let reference = prepare_grey(&big_one(), 200, 100, &MNIST).unwrap();
        let ink = big_one();
        // Black ink on transparent pixels that store black (a common encoding), and white
        // ink on transparent white: both are a digit, not a black or white square.
        for (name, ink_colour) in [("black.png", 0u8), ("white.png", 255u8)] {
            let path = dir.path().join(name);
            ImageBuffer::from_fn(200, 100, |x, y| {
                if ink[(y * 200 + x) as usize] == 0 {
                    Rgba([ink_colour, ink_colour, ink_colour, 255])
                } else {
                    Rgba([ink_colour, ink_colour, ink_colour, 0])
                }
            })
            .save(&path)
            .unwrap();
            assert_eq!(load_digit(&path, &MNIST).unwrap(), reference, "{name}");
        }
        // An opaque white card with transparent corners: the card is the background.
        let path = dir.path().join("card.png");
        ImageBuffer::from_fn(200, 100, |x, y| {
            let corner = !(5..195).contains(&x) && !(5..95).contains(&y);
            LumaA([ink[(y * 200 + x) as usize], if corner { 0 } else { 255 }])
        })
        .save(&path)
        .unwrap();
        assert_eq!(load_digit(&path, &MNIST).unwrap(), reference);
        // Entirely transparent: blank.
        let path = dir.path().join("clear.png");
        ImageBuffer::from_pixel(50, 50, LumaA([0u8, 0]))
            .save(&path)
            .unwrap();
        let err = message(load_digit(&path, &MNIST).unwrap_err());
        assert!(err.contains("clear.png") && err.contains("blank"), "{err}");
    }

    #[test]
    fn jpeg_works() {
        let dir = tempfile::tempdir().unwrap();
        // The contents decide the format: a JPEG named .png loads too.
        for name in ["one.jpg", "one-really-a-jpeg.png"] {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            image::codecs::jpeg::JpegEncoder::new_with_quality(file, 85)
                .write_image(&big_one(), 200, 100, image::ExtendedColorType::L8)
                .unwrap();
            let out = load_digit(&path, &MNIST).unwrap();
            let (ew, eh) = assert_mnist_like(&out);
            assert!(ew <= 11 && eh == 20, "{ew}×{eh}");
        }
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Stored lying on its side (80 wide, 40 high) with EXIF orientation 6, "rotate 90°
        // clockwise to display": displayed, it is 40 wide and 80 high.
        let mut stored = vec![255u8; 200 * 100];
        for y in 40..52 {
            for x in 60..140 {
                stored[y * 200 + x] = 0;
            }
        }
        // Minimal little-endian TIFF block: one IFD with one entry, Orientation (0x0112),
        // SHORT, count 1, value 6.
        let exif: Vec<u8> = [
            &b"II*\0"[..],
            &8u32.to_le_bytes(),
            &1u16.to_le_bytes(),
            &0x0112u16.to_le_bytes(),
            &3u16.to_le_bytes(),
            &1u32.to_le_bytes(),
            &6u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &0u32.to_le_bytes(),
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("photo.jpg");
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(file, 90);
        encoder.set_exif_metadata(exif).unwrap();
        encoder
            .write_image(&stored, 200, 100, image::ExtendedColorType::L8)
            .unwrap();
        let out = load_digit(&path, &MNIST).unwrap();
        let (ew, eh) = assert_mnist_like(&out);
        assert!(eh == 20 && ew <= 4, "{ew}×{eh}: orientation not applied");
    }

    #[test]
    fn area_weights_cover_the_input_once() {
        for (n_in, n_out) in [(100, 20), (7, 3), (3, 7), (20, 20), (1, 5), (5, 1)] {
            let weights = axis_weights(n_in, n_out);
            let mut coverage = vec![0.0f64; n_in];
            for (first, ws) in &weights {
                let total: f32 = ws.iter().sum();
                assert!((total - 1.0).abs() < 1e-5, "{n_in}->{n_out}: {total}");
                for (k, w) in ws.iter().enumerate() {
                    coverage[first + k] += f64::from(*w);
                }
            }
            if n_in >= n_out {
                // Shrinking spreads every input pixel fully: n_out / n_in each.
                for c in coverage {
                    assert!((c - n_out as f64 / n_in as f64).abs() < 1e-5);
                }
            }
        }
    }
}
