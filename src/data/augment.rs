//! Random augmentation of training images, as torchvision's transforms do it:
//! `RandomAffine(degrees, translate, scale)` for digits, `RandomCrop(size, padding)` and
//! `RandomHorizontalFlip(p)` for photographs.
//!
//! ```
//! use seqnet::data::augment::Augment;
//!
//! // What `seqnet train --augment` picks for grey [1, 28, 28] images, and for RGB ones:
//! let grey = Augment::default_for([1, 28, 28])?;
//! assert_eq!(
//!     grey.to_string(),
//!     "RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), interpolation=bilinear)"
//! );
//! let rgb = Augment::default_for([3, 32, 32])?;
//! assert_eq!(rgb.to_string(), "RandomCrop(32, padding=4), RandomHorizontalFlip(p=0.5)");
//!
//! // Written as in a torchvision tutorial (the `transforms.` prefix is optional), or short.
//! let a = Augment::parse("transforms.RandomAffine(15, translate=(0.1, 0.2))", [1, 28, 28])?;
//! assert_eq!(a, Augment::parse("affine(degrees=15, translate=(0.1, 0.2))", [1, 28, 28])?);
//! # Ok::<(), seqnet::Error>(())
//! ```
//!
//! **When and where.** Only training images are augmented, never validation or test
//! images. Each image is transformed on its own, from its stored pixels (grey levels /
//! 255, in [0, 1]) before any normalisation, so the fill of the area shifted in is 0:
//! black, as in torchvision (where the transforms come before `Normalize`).
//!
//! **Drawn afresh every epoch, reproducibly.** The random parameters of image `i` in epoch
//! `e` are a pure function of (the run's seed, `e`, `i`) ([`EpochAugment::draw`]): not of
//! the thread that happens to prepare it, nor of the images drawn before it. So a run is
//! bitwise the same on any number of threads, and a resumed run draws what the
//! uninterrupted one would have drawn, with nothing more in the checkpoint than the epoch.
//!
//! **Semantics.** For fixed parameters the result is torchvision's, to float rounding
//! (checked against `torchvision.transforms.functional.affine`, `pad`, `crop` and
//! `hflip` by `tests/torchvision_reference.rs`):
//! - `RandomAffine`: angle uniform in `[-degrees, degrees]` (F.affine's angle, clockwise
//!   on screen); shifts uniform in `[-translate·W, translate·W]` and `[-translate·H,
//!   translate·H]`, rounded to whole pixels (as torchvision rounds them); scale uniform
//!   in `scale`; all about the image's centre. Bilinear by default (torchvision's
//!   default is nearest: write `interpolation=nearest` to get it). As torchvision with
//!   `fill=0`, a pixel sampled partly outside the image is darkened by the share of its
//!   bilinear weights that fell outside.
//! - `RandomCrop(size, padding=p)`: zero padding of `p` pixels on every side, then a crop
//!   back to the image's size at an offset uniform in `0..=2p` each way (so `size` must
//!   be the image's own, and may be left out).
//! - `RandomHorizontalFlip(p)`: mirror left–right with probability `p`.
//!
//! Several transforms apply in the order affine, crop, flip, whatever order they are
//! written in; they compose into one resampling, with no intermediate image.

use std::fmt;

use rayon::prelude::*;

use super::{Dataset, Pixels};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// How [`RandomAffine`] reads between pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Weighted mean of the four nearest pixels (torchvision's `BILINEAR`).
    Bilinear,
    /// The nearest pixel, ties to even (torchvision's `NEAREST`, its default).
    Nearest,
}

/// torchvision's `RandomAffine(degrees, translate, scale, interpolation)`, without shear.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomAffine {
    /// The angle in degrees is uniform in `[degrees.0, degrees.1]`.
    pub degrees: (f32, f32),
    /// The largest shift as a fraction of (width, height); `None`: no shift.
    pub translate: Option<(f32, f32)>,
    /// The scale factor is uniform in `[scale.0, scale.1]`; `None`: 1.
    pub scale: Option<(f32, f32)>,
    pub interpolation: Interpolation,
}

/// torchvision's `RandomCrop(size, padding)` with zero padding, cropping back to the
/// image's own size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    /// (height, width): the image's.
    pub size: (usize, usize),
    /// Zero pixels added on every side before cropping.
    pub padding: usize,
}

/// The augmentation of a run: any of an affine transform, a padded crop and a flip,
/// applied in that order. `Copy` and `const`-constructible, so that a preset's recipe can
/// hold one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    pub affine: Option<RandomAffine>,
    pub crop: Option<RandomCrop>,
    /// `RandomHorizontalFlip(p)`: the probability of a flip.
    pub hflip: Option<f32>,
}

impl Augment {
    /// The usual digit augmentation (MNIST tutorials' `RandomAffine(degrees=10,
    /// translate=(0.1, 0.1), scale=(0.9, 1.1))`), bilinear.
    pub const DIGITS: RandomAffine = RandomAffine {
        degrees: (-10.0, 10.0),
        translate: Some((0.1, 0.1)),
        scale: Some((0.9, 1.1)),
        interpolation: Interpolation::Bilinear,
    };

    /// The padding of a bare `crop`: CIFAR-10's usual `RandomCrop(32, padding=4)`.
    pub const CROP_PADDING: usize = 4;

    /// What `--augment` alone means for images of `shape`: [`Augment::DIGITS`] for one
    /// channel (digits must not be mirrored), a crop with padding 4 and a flip with
    /// probability 0.5 for three (photographs). Other channel counts must name their
    /// transforms.
    pub fn default_for(shape: [usize; 3]) -> Result<Augment> {
        let [c, h, w] = shape;
        match c {
            1 => Ok(Augment {
                affine: Some(Self::DIGITS),
                crop: None,
                hflip: None,
            }),
            3 => Ok(Augment {
                affine: None,
                crop: Some(RandomCrop {
                    size: (h, w),
                    padding: Self::CROP_PADDING,
                }),
                hflip: Some(0.5),
            }),
            _ => Err(Error::Input(format!(
                "augmentation: with {c}-channel images there is no default augmentation (it \
                 is RandomAffine for 1 channel, RandomCrop and RandomHorizontalFlip for 3); \
                 name the transforms, e.g. --augment \"affine(degrees=10, translate=(0.1, \
                 0.1))\" or --augment \"crop(padding=4), flip\""
            ))),
        }
    }

    /// Reads an augmentation for images of `shape` (`[C, H, W]`): `auto` (or nothing)
    /// for [`Augment::default_for`], `none` for no augmentation (`Ok(None)`), or a
    /// comma-separated list of transforms written as torchvision's constructors, with
    /// their argument names and order, or by short names: `affine` (RandomAffine), `crop`
    /// (RandomCrop), `flip` or `hflip` (RandomHorizontalFlip). A bare `affine` is
    /// [`Augment::DIGITS`], a bare `crop` pads by 4, a bare `flip` has p = 0.5. Errors
    /// say what was wrong and what to write instead.
    pub fn parse(text: &str, shape: [usize; 3]) -> Result<Option<Augment>> {
        let bad = |msg: String| Error::Input(format!("augmentation \"{text}\": {msg}"));
        let trimmed = text.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "" | "auto" | "default" | "true" => return Self::default_for(shape).map(Some),
            "none" | "off" | "false" => return Ok(None),
            _ => {}
        }
        let mut body = trimmed;
        // A pasted transforms.Compose([...]) or a bare list [...].
        let lower = body.to_ascii_lowercase();
        for prefix in ["transforms.compose(", "t.compose(", "compose("] {
            if lower.starts_with(prefix) && body.ends_with(')') {
                body = body[prefix.len()..body.len() - 1].trim();
                break;
            }
        }
        if body.starts_with('[') && body.ends_with(']') {
            body = body[1..body.len() - 1].trim();
        }
        let mut out = Augment {
            affine: None,
            crop: None,
            hflip: None,
        };
        for item in split_top(body).map_err(bad)? {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (name, args) = match item.find('(') {
                Some(k) if item.ends_with(')') => (&item[..k], Some(&item[k + 1..item.len() - 1])),
                Some(_) => return Err(bad(format!("`{item}` does not end with `)`"))),
                None => (item, None),
            };
            // transforms.RandomAffine, T.RandomAffine, v2.RandomAffine: the class name.
            let name = name.trim();
            let short = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
            let twice = |what: &str| bad(format!("{what} is given twice; give it once"));
            match short.as_str() {
                "affine" | "randomaffine" => {
                    if out.affine.is_some() {
                        return Err(twice("RandomAffine"));
                    }
                    out.affine = Some(match args {
                        None => Self::DIGITS,
                        Some(a) => parse_affine(a).map_err(bad)?,
                    });
                }
                "crop" | "randomcrop" => {
                    if out.crop.is_some() {
                        return Err(twice("RandomCrop"));
                    }
                    out.crop = Some(parse_crop(args.unwrap_or(""), shape).map_err(bad)?);
                }
                "flip" | "hflip" | "randomhorizontalflip" => {
                    if out.hflip.is_some() {
                        return Err(twice("RandomHorizontalFlip"));
                    }
                    out.hflip = Some(parse_flip(args.unwrap_or("")).map_err(bad)?);
                }
                _ => {
                    return Err(bad(format!(
                        "`{name}` is not a transform seqnet knows; it knows RandomAffine \
                         (affine), RandomCrop (crop) and RandomHorizontalFlip (flip), e.g. \
                         --augment \"affine(degrees=10, translate=(0.1, 0.1), scale=(0.9, \
                         1.1))\" or --augment \"crop(padding=4), flip\", and --augment alone \
                         picks one by the number of channels"
                    )));
                }
            }
        }
        if out.affine.is_none() && out.crop.is_none() && out.hflip.is_none() {
            return Err(bad(
                "no transform given; write e.g. --augment affine, or --augment none for no \
                 augmentation"
                    .into(),
            ));
        }
        out.check(shape).map_err(|e| match e {
            Error::Input(m) => bad(m),
            e => e,
        })?;
        Ok(Some(out))
    }

    /// Checks the ranges, and that a crop's size is the images' (`[C, H, W]`).
    pub fn check(&self, shape: [usize; 3]) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        if let Some(a) = &self.affine {
            let (lo, hi) = a.degrees;
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return bad(format!(
                    "RandomAffine degrees ({lo}, {hi}) must be finite with the first ≤ the \
                     second, e.g. degrees=10 for [-10, 10]"
                ));
            }
            if let Some((x, y)) = a.translate
                && !((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y))
            {
                return bad(format!(
                    "RandomAffine translate ({x}, {y}) must be fractions of the width and \
                     height, each between 0 and 1, e.g. translate=(0.1, 0.1)"
                ));
            }
            if let Some((lo, hi)) = a.scale
                && !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi)
            {
                return bad(format!(
                    "RandomAffine scale ({lo}, {hi}) must be positive with the first ≤ the \
                     second, e.g. scale=(0.9, 1.1)"
                ));
            }
        }
        if let Some(c) = &self.crop {
            let (h, w) = (shape[1], shape[2]);
            if c.size != (h, w) {
                return bad(format!(
                    "RandomCrop size ({}, {}) is not the images' {h}×{w}: seqnet pads and \
                     crops back to the image's own size (as RandomCrop(32, padding=4) on \
                     32×32 images); leave the size out, e.g. crop(padding=4)",
                    c.size.0, c.size.1
                ));
            }
            if c.padding > MAX_PADDING {
                return bad(format!(
                    "RandomCrop padding {} is more than {MAX_PADDING}; the usual is 4",
                    c.padding
                ));
            }
        }
        if let Some(p) = self.hflip
            && !(0.0..=1.0).contains(&p)
        {
            return bad(format!(
                "RandomHorizontalFlip p={p} must be a probability, between 0 and 1"
            ));
        }
        Ok(())
    }

    /// This augmentation for epoch `epoch` (0 for the first) of a run whose augmentation
    /// key is `key` ([`key`]).
    pub fn for_epoch(self, key: u64, epoch: usize) -> EpochAugment {
        EpochAugment {
            augment: self,
            key,
            epoch: epoch as u64,
        }
    }
}

/// Padding beyond this is refused (it would crop mostly zeros, and keeps index
/// arithmetic far from overflow).
const MAX_PADDING: usize = 1 << 12;

impl fmt::Display for Augment {
    /// torchvision's constructors, comma-separated, in the order they apply; what
    /// [`Augment::parse`] reads back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(a) = &self.affine {
            let (lo, hi) = a.degrees;
            let mut s = if lo == -hi {
                format!("RandomAffine(degrees={hi}")
            } else {
                format!("RandomAffine(degrees=({lo}, {hi})")
            };
            if let Some((x, y)) = a.translate {
                s.push_str(&format!(", translate=({x}, {y})"));
            }
            if let Some((lo, hi)) = a.scale {
                s.push_str(&format!(", scale=({lo}, {hi})"));
            }
            s.push_str(match a.interpolation {
                Interpolation::Bilinear => ", interpolation=bilinear)",
                Interpolation::Nearest => ", interpolation=nearest)",
            });
            parts.push(s);
        }
        if let Some(c) = &self.crop {
            let size = if c.size.0 == c.size.1 {
                c.size.0.to_string()
            } else {
                format!("({}, {})", c.size.0, c.size.1)
            };
            parts.push(format!("RandomCrop({size}, padding={})", c.padding));
        }
        if let Some(p) = self.hflip {
            parts.push(format!("RandomHorizontalFlip(p={p})"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// The key of a run's augmentation draws, from its seed (a stream of its own: the
/// shuffling and the initial weights draw from the same seed).
pub fn key(seed: u64) -> u64 {
    mix(seed ^ 0xA06_3E47_D1CE_5EED)
}

/// SplitMix64's finaliser: a bijection of u64 whose outputs look independent for
/// neighbouring inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One epoch's augmentation: the draws of every image are fixed by (key, epoch, image
/// index), whoever computes them and in whatever order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochAugment {
    pub augment: Augment,
    pub key: u64,
    pub epoch: u64,
}

/// The random parameters of one image's affine transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    /// Degrees, as `torchvision.transforms.functional.affine`'s `angle`.
    pub angle: f64,
    /// Whole pixels (x right, y down), as F.affine's `translate`.
    pub translate: (i64, i64),
    pub scale: f64,
}

impl AffineParams {
    /// No change.
    pub const IDENTITY: AffineParams = AffineParams {
        angle: 0.0,
        translate: (0, 0),
        scale: 1.0,
    };

    /// torchvision's `_get_inverse_affine_matrix` with the centre at the image's centre
    /// and no shear: the map from an output pixel to where it is read in the input, both
    /// relative to the centre, as `[a, b, c, d, e, f]` for `x' = a x + b y + c`,
    /// `y' = d x + e y + f`. Computed in f64, then rounded to f32 as torchvision does.
    pub fn inverse_matrix(&self) -> [f32; 6] {
        let rot = self.angle.to_radians();
        let (sin, cos) = rot.sin_cos();
        let (tx, ty) = (self.translate.0 as f64, self.translate.1 as f64);
        let mut m = [cos, sin, 0.0, -sin, cos, 0.0].map(|v| v / self.scale);
        m[2] += m[0] * -tx + m[1] * -ty;
        m[5] += m[3] * -tx + m[4] * -ty;
        m.map(|v| v as f32)
    }
}

/// Everything drawn for one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    pub affine: Option<AffineParams>,
    pub interpolation: Interpolation,
    /// The crop's offset from the unpadded image, `(top, left) − padding`: output pixel
    /// (y, x) reads (y + dy, x + dx), zero outside.
    pub crop: (isize, isize),
    /// Mirror left–right (after the crop).
    pub flip: bool,
}

impl Draw {
    /// No change.
    pub const IDENTITY: Draw = Draw {
        affine: None,
        interpolation: Interpolation::Bilinear,
        crop: (0, 0),
        flip: false,
    };
}

impl EpochAugment {
    /// The parameters of image `index` (its index in the training set) for images of
    /// `shape`: a pure function of the key, the epoch and `index`.
    pub fn draw(&self, index: usize, shape: [usize; 3]) -> Draw {
        let [_, h, w] = shape;
        let seed = mix(mix(self.key ^ mix(self.epoch)) ^ index as u64);
        let mut rng = Rng::new(seed);
        let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform_f64();
        let a = self.augment;
        // Drawn in torchvision's order: angle, shifts, scale.
        let affine = a.affine.map(|p| {
            let angle = uniform(p.degrees.0 as f64, p.degrees.1 as f64);
            let translate = p.translate.map_or((0, 0), |(fx, fy)| {
                let (mx, my) = (fx as f64 * w as f64, fy as f64 * h as f64);
                (
                    uniform(-mx, mx).round_ties_even() as i64,
                    uniform(-my, my).round_ties_even() as i64,
                )
            });
            let scale = p
                .scale
                .map_or(1.0, |(lo, hi)| uniform(lo as f64, hi as f64));
            AffineParams {
                angle,
                translate,
                scale,
            }
        });
        let crop = a.crop.map_or((0, 0), |c| {
            let span = 2 * c.padding + 1;
            let top = rng.below(span) as isize;
            let left = rng.below(span) as isize;
            (top - c.padding as isize, left - c.padding as isize)
        });
        let flip = a.hflip.is_some_and(|p| rng.uniform_f64() < p as f64);
        Draw {
            affine,
            interpolation: a
                .affine
                .map_or(Interpolation::Bilinear, |p| p.interpolation),
            crop,
            flip,
        }
    }

    /// Writes the augmented images `indices` of `ds` into `out` (`indices.len()` images
    /// of `ds.image_len()` values each, grey levels / 255 as [`Dataset::batch`] reads
    /// them), one image per task on the current rayon pool.
    pub fn write_batch(&self, ds: &Dataset, indices: &[usize], out: &mut [f32]) {
        let per = ds.image_len().max(1);
        let shape = ds.shape;
        out.par_chunks_exact_mut(per)
            .zip(indices.par_iter())
            .for_each(|(dst, &i)| {
                let draw = self.draw(i, shape);
                let range = i * per..(i + 1) * per;
                match &ds.pixels {
                    Pixels::U8(v) => draw.apply(&v[range], shape, dst),
                    Pixels::F32(v) => draw.apply(&v[range], shape, dst),
                }
            });
    }
}

/// A stored pixel, read as f32 the way [`Dataset::batch`] reads it.
pub trait Pixel: Copy + Sync {
    fn value(self) -> f32;
}

impl Pixel for u8 {
    #[inline]
    fn value(self) -> f32 {
        // As data::grey: division, so that 255 is exactly 1.
        self as f32 / 255.0
    }
}

impl Pixel for f32 {
    #[inline]
    fn value(self) -> f32 {
        self
    }
}

impl Draw {
    /// Writes the transformed image `src` (`[C, H, W]` values) into `dst` (as many). Each
    /// output pixel goes back through the flip, the crop and the affine map to where it
    /// reads the input; outside the input it is 0.
    pub fn apply<P: Pixel>(&self, src: &[P], shape: [usize; 3], dst: &mut [f32]) {
        let [c, h, w] = shape;
        let plane = h * w;
        assert!(
            src.len() == c * plane && dst.len() == c * plane,
            "image size"
        );
        let m = self.affine.map(|a| a.inverse_matrix());
        // Output pixel (y, x) relative to the centre, and back to input pixel units:
        // torchvision's grid (`_gen_affine_grid`) and grid_sample's align_corners=False.
        let (half_w, half_h) = (w as f32 * 0.5, h as f32 * 0.5);
        let (back_x, back_y) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
        let (dy, dx) = self.crop;
        for ch in 0..c {
            let s = &src[ch * plane..(ch + 1) * plane];
            let d = &mut dst[ch * plane..(ch + 1) * plane];
            for y in 0..h {
                let row = &mut d[y * w..(y + 1) * w];
                let yc = y as isize + dy;
                for (x, out) in row.iter_mut().enumerate() {
                    let xf = if self.flip { w - 1 - x } else { x };
                    let xc = xf as isize + dx;
                    *out = if yc < 0 || xc < 0 || yc >= h as isize || xc >= w as isize {
                        0.0 // the crop's zero padding
                    } else {
                        let (yc, xc) = (yc as usize, xc as usize);
                        match &m {
                            None => s[yc * w + xc].value(),
                            Some(m) => {
                                let (px, py) = (xc as f32 - half_w + 0.5, yc as f32 - half_h + 0.5);
                                let ix = m[0] * px + m[1] * py + m[2] + back_x;
                                let iy = m[3] * px + m[4] * py + m[5] + back_y;
                                match self.interpolation {
                                    Interpolation::Bilinear => bilinear(s, h, w, ix, iy),
                                    Interpolation::Nearest => nearest(s, h, w, ix, iy),
                                }
                            }
                        }
                    };
                }
            }
        }
    }
}

/// grid_sample's bilinear read with zero padding, times the same read of an all-ones
/// mask: what torchvision's `_apply_grid_transform` gives with `fill=0` (the image with
/// a channel of ones appended, sampled, then `img * mask + (1 − mask) * fill`).
#[inline]
fn bilinear<P: Pixel>(s: &[P], h: usize, w: usize, ix: f32, iy: f32) -> f32 {
    if !(ix > -1.0 && iy > -1.0 && ix < w as f32 && iy < h as f32) {
        return 0.0; // all four neighbours outside (also catches NaN)
    }
    // floor() for values in (-1, w): a cast truncates towards 0, so negative values are
    // -1. (f32::floor is a libm call on baseline x86-64, twice per pixel.)
    let floor = |v: f32| if v < 0.0 { -1 } else { v as isize };
    let (x0, y0) = (floor(ix), floor(iy));
    let (fx, fy) = (ix - x0 as f32, iy - y0 as f32);
    let (mut value, mut mask) = (0.0f32, 0.0f32);
    for (yy, wy) in [(y0, 1.0 - fy), (y0 + 1, fy)] {
        if yy < 0 || yy >= h as isize {
            continue;
        }
        for (xx, wx) in [(x0, 1.0 - fx), (x0 + 1, fx)] {
            if xx < 0 || xx >= w as isize {
                continue;
            }
            let weight = wx * wy;
            value += weight * s[yy as usize * w + xx as usize].value();
            mask += weight;
        }
    }
    value * mask
}

/// grid_sample's nearest read (ties to even) with zero padding; with `fill=0` the mask
/// changes nothing.
#[inline]
fn nearest<P: Pixel>(s: &[P], h: usize, w: usize, ix: f32, iy: f32) -> f32 {
    let (x, y) = (ix.round_ties_even(), iy.round_ties_even());
    if x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32 {
        s[y as usize * w + x as usize].value()
    } else {
        0.0
    }
}

/// Splits at the commas outside brackets; unbalanced brackets are an error.
fn split_top(text: &str) -> std::result::Result<Vec<&str>, String> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, ch) in text.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("an unmatched `{ch}` at character {}", i + 1));
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a bracket is not closed".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// An argument's value: a number, a pair, or a word (None, True, bilinear, 'constant').
#[derive(Debug, PartialEq)]
enum Value {
    Num(f64),
    Pair(f64, f64),
    Word(String),
}

fn value(text: &str) -> Option<Value> {
    let t = text.trim();
    if (t.starts_with('(') && t.ends_with(')')) || (t.starts_with('[') && t.ends_with(']')) {
        let nums: Vec<Option<f64>> = t[1..t.len() - 1]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().ok())
            .collect();
        return match nums[..] {
            [Some(a)] => Some(Value::Num(a)),
            [Some(a), Some(b)] => Some(Value::Pair(a, b)),
            _ => None,
        };
    }
    if let Ok(v) = t.parse::<f64>() {
        return Some(Value::Num(v));
    }
    let word = t
        .trim_matches(|c| c == '\'' || c == '"')
        .to_ascii_lowercase();
    let word = word.strip_prefix("interpolationmode.").unwrap_or(&word);
    (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| Value::Word(word.to_string()))
}

/// `(name, value)` for every argument, positional ones named by `names` (torchvision's
/// order).
fn arguments(
    text: &str,
    transform: &str,
    names: &[&'static str],
) -> std::result::Result<Vec<(&'static str, Value)>, String> {
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    let all = names.join(", ");
    let mut named = false; // after a name=value, as in Python, no positional argument
    for (pos, arg) in split_top(text)?.into_iter().enumerate() {
        let arg = arg.trim();
        if arg.is_empty() {
            continue;
        }
        let (key, val) = match arg.split_once('=') {
            Some((k, v)) => {
                named = true;
                (k.trim(), v)
            }
            None => match names.get(pos) {
                Some(k) if !named => (*k, arg),
                _ => {
                    return Err(format!(
                        "{transform} argument `{arg}`: give it by name ({all})"
                    ));
                }
            },
        };
        let Some(&name) = names.iter().find(|n| **n == key) else {
            return Err(format!(
                "{transform} has no argument `{key}`; its arguments are {all}"
            ));
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("{transform} argument {name} is given twice"));
        }
        let Some(v) = value(val) else {
            return Err(format!(
                "{transform} argument {name}={} is not a number, a pair (a, b) or a name",
                val.trim()
            ));
        };
        out.push((name, v));
    }
    Ok(out)
}

fn is_none(v: &Value) -> bool {
    matches!(v, Value::Word(w) if w == "none")
}

fn is_zero(v: &Value) -> bool {
    matches!(v, Value::Num(z) if *z == 0.0)
        || matches!(v, Value::Pair(a, b) if *a == 0.0 && *b == 0.0)
}

fn parse_affine(args: &str) -> std::result::Result<RandomAffine, String> {
    const NAMES: [&str; 7] = [
        "degrees",
        "translate",
        "scale",
        "shear",
        "interpolation",
        "fill",
        "center",
    ];
    let mut a = RandomAffine {
        degrees: (0.0, 0.0),
        translate: None,
        scale: None,
        interpolation: Interpolation::Bilinear,
    };
    for (name, v) in arguments(args, "RandomAffine", &NAMES)? {
        match (name, v) {
            ("degrees", Value::Num(d)) if d >= 0.0 => a.degrees = (-d as f32, d as f32),
            ("degrees", Value::Pair(lo, hi)) => a.degrees = (lo as f32, hi as f32),
            ("degrees", v) => {
                return Err(format!(
                    "RandomAffine degrees={v:?} is not a number ≥ 0 (degrees=10: between -10 \
                     and 10) nor a pair (degrees=(-5, 20))"
                ));
            }
            ("translate", Value::Pair(x, y)) => a.translate = Some((x as f32, y as f32)),
            ("translate", Value::Num(t)) => a.translate = Some((t as f32, t as f32)),
            ("translate", v) if is_none(&v) => a.translate = None,
            ("scale", Value::Pair(lo, hi)) => a.scale = Some((lo as f32, hi as f32)),
            ("scale", v) if is_none(&v) => a.scale = None,
            ("shear", v) if is_none(&v) || is_zero(&v) => {}
            ("shear", _) => {
                return Err(
                    "RandomAffine shear is not supported by seqnet; leave it out".to_string(),
                );
            }
            ("interpolation", Value::Word(w)) if w == "bilinear" => {
                a.interpolation = Interpolation::Bilinear;
            }
            ("interpolation", Value::Word(w)) if w == "nearest" => {
                a.interpolation = Interpolation::Nearest;
            }
            ("fill", v) if is_zero(&v) => {}
            ("fill", _) => {
                return Err("RandomAffine fill must be 0 (black); leave it out".to_string());
            }
            ("center", v) if is_none(&v) => {}
            ("center", _) => {
                return Err(
                    "RandomAffine center: seqnet turns about the image's centre; leave center \
                     out"
                    .to_string(),
                );
            }
            (name, v) => {
                let hint = match name {
                    "translate" => "a pair of fractions, e.g. translate=(0.1, 0.1)",
                    "scale" => "a pair, e.g. scale=(0.9, 1.1)",
                    _ => "bilinear or nearest",
                };
                return Err(format!("RandomAffine {name}={v:?} should be {hint}"));
            }
        }
    }
    Ok(a)
}

fn parse_crop(args: &str, shape: [usize; 3]) -> std::result::Result<RandomCrop, String> {
    const NAMES: [&str; 5] = ["size", "padding", "pad_if_needed", "fill", "padding_mode"];
    let whole = |v: f64| (v >= 0.0 && v.fract() == 0.0 && v <= 1e9).then_some(v as usize);
    let mut c = RandomCrop {
        size: (shape[1], shape[2]),
        padding: Augment::CROP_PADDING,
    };
    for (name, v) in arguments(args, "RandomCrop", &NAMES)? {
        match (name, v) {
            ("size", Value::Num(s)) if whole(s).is_some() => c.size = (s as usize, s as usize),
            ("size", Value::Pair(a, b)) if whole(a).is_some() && whole(b).is_some() => {
                c.size = (a as usize, b as usize);
            }
            ("padding", Value::Num(p)) if whole(p).is_some() => c.padding = p as usize,
            ("padding", v) if is_none(&v) => c.padding = 0,
            ("pad_if_needed", Value::Word(_)) => {} // the size is the image's: nothing to pad
            ("fill", v) if is_zero(&v) => {}
            ("fill", _) => {
                return Err("RandomCrop fill must be 0 (black); leave it out".to_string());
            }
            ("padding_mode", Value::Word(m)) if m == "constant" => {}
            ("padding_mode", Value::Word(m)) => {
                return Err(format!(
                    "RandomCrop padding_mode '{m}': seqnet pads with zeros only \
                     (padding_mode='constant'); leave it out"
                ));
            }
            (name, v) => {
                let hint = match name {
                    "size" => "the image's size, or left out",
                    "padding" => "one whole number of pixels for every side, e.g. padding=4",
                    _ => "as torchvision's",
                };
                return Err(format!("RandomCrop {name}={v:?} should be {hint}"));
            }
        }
    }
    Ok(c)
}

fn parse_flip(args: &str) -> std::result::Result<f32, String> {
    let mut p = 0.5;
    for (_, v) in arguments(args, "RandomHorizontalFlip", &["p"])? {
        match v {
            Value::Num(v) => p = v as f32,
            v => {
                return Err(format!(
                    "RandomHorizontalFlip p={v:?} should be a probability, e.g. p=0.5"
                ));
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: [usize; 3] = [1, 28, 28];

    fn affine_draw(angle: f64, translate: (i64, i64), scale: f64) -> Draw {
        Draw {
            affine: Some(AffineParams {
                angle,
                translate,
                scale,
            }),
            ..Draw::IDENTITY
        }
    }

    fn ramp(shape: [usize; 3]) -> Vec<u8> {
        (0..shape.iter().product::<usize>())
            .map(|i| (i * 37 % 251 + 1) as u8)
            .collect()
    }

    fn run<P: Pixel>(d: &Draw, src: &[P], shape: [usize; 3]) -> Vec<f32> {
        let mut out = vec![f32::NAN; src.len()];
        d.apply(src, shape, &mut out);
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn augment_identity_parameters_give_the_input_back_exactly() {
        for shape in [GREY, [3, 5, 7], [2, 6, 4]] {
            let src = ramp(shape);
            let want: Vec<f32> = src.iter().map(|&p| p as f32 / 255.0).collect();
            for d in [
                Draw::IDENTITY,
                affine_draw(0.0, (0, 0), 1.0),
                Draw {
                    interpolation: Interpolation::Nearest,
                    ..affine_draw(0.0, (0, 0), 1.0)
                },
            ] {
                assert_eq!(bits(&run(&d, &src, shape)), bits(&want), "{d:?} {shape:?}");
            }
            // f32 storage too: values as they are.
            let f: Vec<f32> = src.iter().map(|&p| p as f32 * 0.01 - 1.0).collect();
            assert_eq!(
                bits(&run(&affine_draw(0.0, (0, 0), 1.0), &f, shape)),
                bits(&f)
            );
        }
    }

    #[test]
    fn augment_whole_pixel_translation_shifts_exactly_and_fills_with_zero() {
        let shape = [2, 6, 9];
        let [c, h, w] = shape;
        let src = ramp(shape);
        for (tx, ty) in [(2, 0), (0, -3), (-1, 2), (4, 5), (9, 0)] {
            for interp in [Interpolation::Bilinear, Interpolation::Nearest] {
                let d = Draw {
                    interpolation: interp,
                    ..affine_draw(0.0, (tx, ty), 1.0)
                };
                let got = run(&d, &src, shape);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let (sx, sy) = (x as i64 - tx, y as i64 - ty);
                            let want = if (0..w as i64).contains(&sx) && (0..h as i64).contains(&sy)
                            {
                                src[ch * h * w + sy as usize * w + sx as usize] as f32 / 255.0
                            } else {
                                0.0
                            };
                            let g = got[ch * h * w + y * w + x];
                            assert_eq!(
                                g.to_bits(),
                                want.to_bits(),
                                "t=({tx}, {ty}) ({ch}, {y}, {x})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// F.affine's angle turns clockwise on screen: by 90°, output (y, x) is input
    /// (H − 1 − x, y): the transpose, flipped left–right.
    #[test]
    fn augment_a_90_degree_rotation_is_a_transpose_and_flip() {
        for size in [6, 7, 28] {
            let shape = [1, size, size];
            let src = ramp(shape);
            for interp in [Interpolation::Bilinear, Interpolation::Nearest] {
                let d = Draw {
                    interpolation: interp,
                    ..affine_draw(90.0, (0, 0), 1.0)
                };
                let got = run(&d, &src, shape);
                for y in 0..size {
                    for x in 0..size {
                        let want = src[(size - 1 - x) * size + y] as f32 / 255.0;
                        let g = got[y * size + x];
                        assert!((g - want).abs() < 1e-5, "{size} ({y}, {x}): {g} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn augment_scale_about_the_centre_keeps_the_centre_and_fills_black() {
        // An all-white odd image scaled by 0.5: the centre pixel stays white, the corners
        // read from outside the image and are black.
        let shape = [1, 9, 9];
        let src = vec![255u8; 81];
        let got = run(&affine_draw(0.0, (0, 0), 0.5), &src, shape);
        assert_eq!(got[4 * 9 + 4], 1.0);
        assert_eq!(got[0], 0.0);
        assert_eq!(got[80], 0.0);
        // Bilinear at the border, with fill 0: value × in-image weight (torchvision's
        // mask). Scale 2 at x = 0 reads x' = (0 − 4)/2 + 4 = 2: inside, exact.
        let got = run(&affine_draw(0.0, (0, 0), 2.0), &src, shape);
        assert!(got.iter().all(|&v| v == 1.0), "{got:?}");
        // Half a pixel out: shift by a whole pixel and scale by 1 − ε is not exact; take
        // a sample half outside: value 1 · weight 0.5, times mask 0.5 = 0.25.
        let v = bilinear(&src, 9, 9, -0.5, 4.0);
        assert_eq!(v, 0.25);
        assert_eq!(bilinear(&src, 9, 9, 3.25, 4.0), 1.0);
        assert_eq!(bilinear(&src, 9, 9, -1.0, 4.0), 0.0);
        assert_eq!(bilinear(&src, 9, 9, f32::NAN, 4.0), 0.0);
        assert_eq!(nearest(&src, 9, 9, -0.5, 4.0), 1.0); // -0.5 rounds to even: -0
        assert_eq!(nearest(&src, 9, 9, 8.5, 4.0), 1.0); // 8.5 rounds to 8
        assert_eq!(nearest(&src, 9, 9, 9.5, 4.0), 0.0);
    }

    #[test]
    fn augment_flip_twice_is_the_identity_and_crop_with_zero_offset_too() {
        let shape = [3, 5, 8];
        let [c, h, w] = shape;
        let src = ramp(shape);
        let flip = Draw {
            flip: true,
            ..Draw::IDENTITY
        };
        let once = run(&flip, &src, shape);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let i = ch * h * w + y * w;
                    assert_eq!(once[i + x], src[i + w - 1 - x] as f32 / 255.0);
                }
            }
        }
        let twice = run(&flip, &once, shape);
        let want: Vec<f32> = src.iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(bits(&twice), bits(&want));
        // A crop at offset (0, 0) from the unpadded image: the image.
        assert_eq!(bits(&run(&Draw::IDENTITY, &src, shape)), bits(&want));
    }

    #[test]
    fn augment_crop_offsets_shift_in_zero_padding() {
        let shape = [2, 4, 5];
        let [c, h, w] = shape;
        let src = ramp(shape);
        for (dy, dx) in [(-4, -4), (4, 4), (-1, 3), (2, 0), (-4, 4)] {
            for flip in [false, true] {
                let d = Draw {
                    crop: (dy, dx),
                    flip,
                    ..Draw::IDENTITY
                };
                let got = run(&d, &src, shape);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let xf = if flip { w - 1 - x } else { x };
                            let (sy, sx) = (y as isize + dy, xf as isize + dx);
                            let inside =
                                (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                            let want = if inside {
                                src[ch * h * w + sy as usize * w + sx as usize] as f32 / 255.0
                            } else {
                                0.0
                            };
                            assert_eq!(got[ch * h * w + y * w + x], want, "({dy}, {dx}) {flip}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn augment_draws_are_a_pure_function_of_key_epoch_and_index() {
        let aug = Augment {
            affine: Some(Augment::DIGITS),
            crop: Some(RandomCrop {
                size: (28, 28),
                padding: 2,
            }),
            hflip: Some(0.5),
        };
        let e0 = aug.for_epoch(key(1), 0);
        // Same inputs, same draw, in any order.
        let forward: Vec<Draw> = (0..50).map(|i| e0.draw(i, GREY)).collect();
        let backward: Vec<Draw> = (0..50).rev().map(|i| e0.draw(i, GREY)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        // Different images, epochs and seeds draw differently.
        assert_ne!(forward[0], forward[1]);
        assert_ne!(forward[3], aug.for_epoch(key(1), 1).draw(3, GREY));
        assert_ne!(forward[3], aug.for_epoch(key(2), 0).draw(3, GREY));
        // The ranges hold, and are covered.
        let draws: Vec<Draw> = (0..5000).map(|i| e0.draw(i, GREY)).collect();
        let affine: Vec<AffineParams> = draws.iter().map(|d| d.affine.unwrap()).collect();
        let angles = affine.iter().map(|a| a.angle);
        assert!(angles.clone().all(|a| (-10.0..10.0).contains(&a)));
        assert!(angles.clone().any(|a| a < -9.5) && angles.clone().any(|a| a > 9.5));
        // 0.1 × 28 = 2.8 pixels: shifts of -3..=3 (±3 only from ±2.5..2.8).
        let shifts: std::collections::BTreeSet<i64> =
            affine.iter().map(|a| a.translate.0).collect();
        assert_eq!(
            shifts.into_iter().collect::<Vec<_>>(),
            vec![-3, -2, -1, 0, 1, 2, 3]
        );
        assert!(affine.iter().all(|a| (0.9..1.1).contains(&a.scale)));
        let crops: std::collections::BTreeSet<isize> = draws.iter().map(|d| d.crop.0).collect();
        assert_eq!(crops.into_iter().collect::<Vec<_>>(), vec![-2, -1, 0, 1, 2]);
        let flips = draws.iter().filter(|d| d.flip).count();
        assert!((2300..2700).contains(&flips), "{flips}");
    }

    #[test]
    fn augment_batches_are_the_images_augmented_one_by_one_on_any_pool() {
        let shape = [3, 6, 5];
        let n = 40;
        let pixels: Vec<u8> = (0..n * 90).map(|i| (i * 7 % 256) as u8).collect();
        let ds = Dataset::new_u8("t", pixels, vec![0; n], shape, 10).unwrap();
        let aug = Augment::default_for(shape).unwrap().for_epoch(key(9), 3);
        let indices: Vec<usize> = (0..n).rev().step_by(3).collect();
        let batch = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; indices.len() * 90];
            pool.install(|| aug.write_batch(&ds, &indices, &mut out));
            out
        };
        let one = batch(1);
        assert_eq!(bits(&one), bits(&batch(3)));
        for (k, &i) in indices.iter().enumerate() {
            let mut want = vec![0.0; 90];
            aug.draw(i, shape)
                .apply(ds.image_u8(i).unwrap(), shape, &mut want);
            assert_eq!(bits(&one[k * 90..(k + 1) * 90]), bits(&want));
        }
    }

    #[test]
    fn augment_defaults_by_channel_count() {
        let a = Augment::default_for(GREY).unwrap();
        assert_eq!(
            (a.affine, a.crop, a.hflip),
            (Some(Augment::DIGITS), None, None)
        );
        let a = Augment::default_for([3, 32, 32]).unwrap();
        assert_eq!(
            (a.affine, a.crop, a.hflip),
            (
                None,
                Some(RandomCrop {
                    size: (32, 32),
                    padding: 4
                }),
                Some(0.5)
            )
        );
        let e = Augment::default_for([2, 8, 8]).unwrap_err().to_string();
        assert!(
            e.contains("2-channel") && e.contains("crop(padding=4), flip"),
            "{e}"
        );
        assert_eq!(Augment::parse("auto", GREY).unwrap(), Some(a_grey()));
        assert_eq!(Augment::parse(" ", GREY).unwrap(), Some(a_grey()));
        assert_eq!(Augment::parse("None", GREY).unwrap(), None);
        assert_eq!(Augment::parse("off", GREY).unwrap(), None);
    }

    fn a_grey() -> Augment {
        Augment::default_for(GREY).unwrap()
    }

    #[test]
    fn augment_parses_torchvision_text_and_short_names_and_prints_back() {
        let rgb = [3, 32, 32];
        let cases: [(&str, [usize; 3], &str); 9] = [
            (
                "affine",
                GREY,
                "RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), interpolation=bilinear)",
            ),
            (
                "RandomAffine(degrees=15)",
                GREY,
                "RandomAffine(degrees=15, interpolation=bilinear)",
            ),
            (
                "transforms.RandomAffine(degrees=(-5, 20), translate=(0.1, 0.2), scale=(0.8, 1.2), interpolation=InterpolationMode.NEAREST, fill=0)",
                GREY,
                "RandomAffine(degrees=(-5, 20), translate=(0.1, 0.2), scale=(0.8, 1.2), interpolation=nearest)",
            ),
            (
                "affine(10, 0.1)",
                GREY,
                "RandomAffine(degrees=10, translate=(0.1, 0.1), interpolation=bilinear)",
            ),
            (
                "crop, flip",
                rgb,
                "RandomCrop(32, padding=4), RandomHorizontalFlip(p=0.5)",
            ),
            (
                "T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])",
                rgb,
                "RandomCrop(32, padding=4), RandomHorizontalFlip(p=0.5)",
            ),
            ("hflip(p=0.25)", rgb, "RandomHorizontalFlip(p=0.25)"),
            (
                "flip, crop(padding=2, padding_mode='constant')",
                [1, 20, 28],
                "RandomCrop((20, 28), padding=2), RandomHorizontalFlip(p=0.5)",
            ),
            (
                "affine(degrees=5), crop(padding=1)",
                GREY,
                "RandomAffine(degrees=5, interpolation=bilinear), RandomCrop(28, padding=1)",
            ),
        ];
        for (text, shape, want) in cases {
            let a = Augment::parse(text, shape)
                .unwrap()
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(a.to_string(), want, "{text}");
            assert_eq!(Augment::parse(want, shape).unwrap(), Some(a), "{want}");
        }
    }

    #[test]
    fn augment_bad_text_is_a_clear_error() {
        let cases = [
            ("rotate(10)", "`rotate` is not a transform seqnet knows"),
            (
                "affine(degree=10)",
                "RandomAffine has no argument `degree`; its arguments are degrees",
            ),
            ("affine(degrees=-3)", "is not a number ≥ 0"),
            ("affine(translate=(0.1, 2))", "each between 0 and 1"),
            (
                "affine(scale=1.1)",
                "should be a pair, e.g. scale=(0.9, 1.1)",
            ),
            ("affine(scale=(1.1, 0.9))", "first ≤ the second"),
            ("affine(degrees=10, shear=5)", "shear is not supported"),
            ("affine(10, fill=255)", "fill must be 0"),
            ("affine(10, interpolation=bicubic)", "bilinear or nearest"),
            ("affine(degrees=10", "a bracket is not closed"),
            ("affine(degrees=10))", "unmatched `)`"),
            ("affine, affine", "RandomAffine is given twice"),
            ("affine(degrees=1, degrees=2)", "degrees is given twice"),
            (
                "affine(degrees=abc%)",
                "is not a number, a pair (a, b) or a name",
            ),
            (
                "crop(24, padding=4)",
                "RandomCrop size (24, 24) is not the images' 28×28",
            ),
            ("crop(padding=(2, 3))", "one whole number of pixels"),
            ("crop(padding=1.5)", "one whole number of pixels"),
            ("crop(padding_mode='reflect')", "pads with zeros only"),
            ("crop(padding=100000)", "more than 4096"),
            ("flip(p=2)", "must be a probability"),
            ("flip(p=maybe)", "should be a probability"),
            ("affine(10, scale=(0.9, 1.1), 0.1)", "give it by name"),
            (",", "no transform given"),
        ];
        for (text, want) in cases {
            let msg = match std::panic::catch_unwind(|| Augment::parse(text, GREY)) {
                Ok(Ok(a)) => panic!("{text}: accepted as {a:?}"),
                Ok(Err(e)) => e.to_string(),
                Err(_) => panic!("{text}: panicked"),
            };
            assert!(
                msg.starts_with(&format!("augmentation \"{text}\": ")),
                "{msg}"
            );
            assert!(
                msg.contains(want),
                "{text}: {msg}\n  does not contain: {want}"
            );
        }
    }
}
