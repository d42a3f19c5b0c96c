//! Folders of images, torchvision's `ImageFolder` convention: `DIR/CLASS/…/FILE.png`.
//!
//! - **Classes** are the subfolders' names, sorted (by code point, as Python's
//!   `sorted`); an image's label is its class's index in that order.
//! - **Files** are every PNG or JPEG (by extension, any case: `.png`, `.jpg`, `.jpeg`)
//!   under a class folder, subfolders included, sorted by folder then name, so the order
//!   is the same on every machine. Other files (a `README.txt`, `.DS_Store`, a `.bmp`)
//!   are skipped and the run says how many, naming one; a class folder with no PNG or
//!   JPEG at all is an error.
//! - **Channels**: every image is converted to RGB, 3 channels, as torchvision's loader
//!   does (`Image.convert("RGB")`, alpha dropped), whatever the file holds; `--grey`
//!   gives 1 channel instead, as `transforms.Grayscale()` does (Pillow's
//!   `L = (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`, ITU-R 601-2 luma).
//! - **Size**: all images must have one size, unless `--resize HxW` scales each to H×W
//!   as `transforms.Resize((H, W))` does on a Pillow image: bilinear, antialiased when
//!   shrinking (Pillow's triangle filter widened by the scale factor, 8-bit results).
//! - **Split**: `DIR/train/` and `DIR/test/` (or `DIR/val/`) are the training and test
//!   sets when both are there, each a folder of class subfolders (the test classes must
//!   be among the training ones; labels follow the training folder's). Otherwise the
//!   folder is split: of each class, a fraction of the files ([`FolderOptions::holdout`],
//!   0.2 by default) drawn with a fixed seed ([`HOLDOUT_SEED`]) is held out for test, at
//!   least one when the class has two or more. The draw depends only on the file list, so
//!   every run and every evaluation of the same folder holds out the same files; the
//!   model records it (`seqnet.split` = `holdout 0.2`) and `seqnet eval` makes the same
//!   split again.
//!
//! Pixels are stored as u8 levels, read as `v / 255` like torchvision's `ToTensor()`; no
//! normalisation unless the run asks for one (`--normalize`).

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};

use super::{Dataset, FolderOptions, Splits, data_err, thousands};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The seed of the hold-out draw: fixed, so the split is the same for every run.
pub const HOLDOUT_SEED: u64 = 0;

/// Longest side and most pixels decoded: larger files are refused from their header.
const MAX_SIDE: u32 = 8192;
const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// The extensions read (lower case).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The subfolders' names, sorted.
fn subfolders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        // Symbolic links to folders count, as os.scandir's is_dir() follows them.
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Every file under `dir`, sorted by folder then name.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            dirs.push(path);
        } else {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    out.extend(files);
    for d in dirs {
        files_under(&d, out)?;
    }
    Ok(())
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

/// The image files of each class (in `classes` order) under `root`, and the other files
/// skipped.
struct Listing {
    files: Vec<(PathBuf, usize)>,
    skipped: Vec<PathBuf>,
}

fn list(root: &Path, classes: &[String], folders: &[String]) -> Result<Listing> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for name in folders {
        let label = classes.iter().position(|c| c == name).ok_or_else(|| {
            data_err(
                &root.join(name),
                format!(
                    "is a class folder of the test set, but the training set has no class \
                     {name:?} (its classes are {}); the test classes must be training classes",
                    classes.join(", ")
                ),
            )
        })?;
        let mut all = Vec::new();
        files_under(&root.join(name), &mut all)?;
        let before = files.len();
        for f in all {
            if is_image(&f) {
                files.push((f, label));
            } else {
                skipped.push(f);
            }
        }
        if files.len() == before {
            return Err(data_err(
                &root.join(name),
                format!(
                    "the class folder {name:?} holds no PNG or JPEG file (.png, .jpg, .jpeg); \
                     put its images there, or remove the folder so that it is not a class"
                ),
            ));
        }
    }
    Ok(Listing { files, skipped })
}

/// Decodes one file into `channels` (1 or 3) planes of u8, `(pixels, w, h)`.
fn decode(path: &Path, channels: usize) -> Result<(Vec<u8>, usize, usize)> {
    let name = path.display();
    let unreadable = |why: String| {
        Error::Input(format!(
            "{name}: cannot be read as an image ({why}); the file is damaged or not really a \
             PNG/JPEG: replace it, or move it out of the folder"
        ))
    };
    let reader = ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(unreadable("its contents are not PNG or JPEG".into()));
    }
    let decoder = reader
        .into_decoder()
        .map_err(|e| unreadable(e.to_string()))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS
    {
        return Err(Error::Input(format!(
            "{name}: the image is {w}×{h} pixels; seqnet reads images of 1 to {MAX_SIDE} \
             pixels a side; scale it first, or move it out of the folder"
        )));
    }
    let image = DynamicImage::from_decoder(decoder).map_err(|e| unreadable(e.to_string()))?;
    let (w, h) = (w as usize, h as usize);
    let rgb = image.to_rgb8().into_raw();
    let planes = if channels == 1 {
        rgb.chunks_exact(3)
            .map(|p| {
                // Pillow's convert("L").
                let l = u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471;
                ((l + 0x8000) >> 16) as u8
            })
            .collect()
    } else {
        let mut planes = vec![0u8; 3 * w * h];
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planes[c * w * h + i] = p[c];
            }
        }
        planes
    };
    Ok((planes, w, h))
}

/// Pillow's resampling weights for one axis, as `ImagingResample` computes them with the
/// bilinear (triangle) filter: for each output index, the first input index and the
/// fixed-point weights (22 fractional bits).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    const PRECISION_BITS: u32 = 32 - 8 - 2;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle filter's support is 1
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncates towards zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut weights: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) * ss).abs();
                    if t < 1.0 { 1.0 - t } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                for w in &mut weights {
                    *w /= total;
                }
            }
            let fixed = weights
                .iter()
                .map(|&w| {
                    let v = w * f64::from(1u32 << PRECISION_BITS);
                    (if w < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

/// One 8-bit pass of Pillow's resampling: `get(i)` is input sample `i` of the line.
fn resample_line(coeffs: &[(usize, Vec<i32>)], get: impl Fn(usize) -> u8, out: &mut [u8]) {
    const PRECISION_BITS: u32 = 32 - 8 - 2;
    for (o, (start, weights)) in out.iter_mut().zip(coeffs) {
        let mut ss: i64 = 1 << (PRECISION_BITS - 1);
        for (k, &w) in weights.iter().enumerate() {
            ss += i64::from(get(start + k)) * i64::from(w);
        }
        *o = (ss >> PRECISION_BITS).clamp(0, 255) as u8;
    }
}

/// Resizes one u8 plane of `w`×`h` to `ow`×`oh` as Pillow's `resize((ow, oh),
/// Image.BILINEAR)` does: horizontally, then vertically, each pass rounded to 8 bits.
pub fn resize_plane(plane: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    if (w, h) == (ow, oh) {
        return plane.to_vec();
    }
    let horizontal = if w == ow {
        plane.to_vec()
    } else {
        let coeffs = coefficients(w, ow);
        let mut out = vec![0u8; ow * h];
        for y in 0..h {
            let row = &plane[y * w..(y + 1) * w];
            resample_line(&coeffs, |i| row[i], &mut out[y * ow..(y + 1) * ow]);
        }
        out
    };
    if h == oh {
        return horizontal;
    }
    let coeffs = coefficients(h, oh);
    let mut out = vec![0u8; ow * oh];
    let mut column = vec![0u8; oh];
    for x in 0..ow {
        resample_line(&coeffs, |i| horizontal[i * ow + x], &mut column);
        for (y, &v) in column.iter().enumerate() {
            out[y * ow + x] = v;
        }
    }
    out
}

/// One image file as a network trained on an image folder takes it: decoded to `C` = 1
/// (grey) or 3 (RGB) channels, scaled to H×W as `--resize` does, values `v / 255`, for
/// `shape` = `[C, H, W]`. `seqnet predict` uses it for such models.
pub fn load_image(path: &Path, shape: &[usize]) -> Result<Vec<f32>> {
    let &[c, h, w] = shape else {
        return Err(Error::Input(format!(
            "a model taking {shape:?} does not take images; it needs [C, H, W]"
        )));
    };
    if c != 1 && c != 3 {
        return Err(Error::Input(format!(
            "the model takes {c} channels; image files give 1 (grey) or 3 (RGB)"
        )));
    }
    let (planes, iw, ih) = decode(path, c)?;
    let mut out = Vec::with_capacity(c * h * w);
    for plane in planes.chunks_exact(iw * ih) {
        out.extend(
            resize_plane(plane, iw, ih, w, h)
                .into_iter()
                .map(|v| f32::from(v) / 255.0),
        );
    }
    Ok(out)
}

/// One image's planes, its width and height, and whether it was resized.
type Decoded = (Vec<u8>, usize, usize, bool);

/// The images' pixels, labels, `[c, h, w]`, and whether any was resized.
type ReadImages = (Vec<u8>, Vec<usize>, [usize; 3], bool);

/// The images of `files`, decoded in parallel, as `(pixels, labels, [c, h, w])`.
fn read_images(
    files: &[(PathBuf, usize)],
    channels: usize,
    resize: Option<(usize, usize)>,
) -> Result<ReadImages> {
    use rayon::prelude::*;
    let decoded: Vec<Result<Decoded>> = files
        .par_iter()
        .map(|(path, _)| {
            let (planes, w, h) = decode(path, channels)?;
            Ok(match resize {
                Some((oh, ow)) if (oh, ow) != (h, w) => {
                    let mut out = Vec::with_capacity(channels * oh * ow);
                    for plane in planes.chunks_exact(w * h) {
                        out.extend(resize_plane(plane, w, h, ow, oh));
                    }
                    (out, ow, oh, true)
                }
                _ => (planes, w, h, false),
            })
        })
        .collect();
    let mut pixels = Vec::new();
    let mut first: Option<(usize, usize, usize)> = None;
    let mut resized = false;
    for (k, d) in decoded.into_iter().enumerate() {
        let (planes, w, h, r) = d?;
        resized |= r;
        match first {
            None => first = Some((w, h, k)),
            Some((fw, fh, fk)) if (fw, fh) != (w, h) => {
                return Err(Error::Input(format!(
                    "the images have different sizes: {} is {fw}×{fh} (width×height), {} is \
                     {w}×{h}; a network takes one size, so give one with --resize HxW (e.g. \
                     --resize {fh}x{fw}), which scales every image to it (bilinear, as \
                     torchvision's Resize)",
                    files[fk].0.display(),
                    files[k].0.display()
                )));
            }
            _ => {}
        }
        pixels.extend(planes);
    }
    let (w, h, _) = first.unwrap_or((0, 0, 0));
    let labels = files.iter().map(|&(_, l)| l).collect();
    Ok((pixels, labels, [channels, h, w], resized))
}

/// The held-out files of a single folder: per class, `round(n × fraction)` files drawn
/// with [`HOLDOUT_SEED`] (at least one of two or more, never all), in file order.
fn holdout(files: &[(PathBuf, usize)], classes: usize, fraction: f32) -> Vec<bool> {
    let mut rng = Rng::new(HOLDOUT_SEED);
    let mut held = vec![false; files.len()];
    for class in 0..classes {
        let mut members: Vec<usize> = (0..files.len()).filter(|&i| files[i].1 == class).collect();
        let n = members.len();
        let mut k = (n as f64 * f64::from(fraction)).round() as usize;
        if n >= 2 && fraction > 0.0 {
            k = k.clamp(1, n - 1);
        } else {
            k = 0;
        }
        rng.shuffle(&mut members);
        for &i in &members[..k] {
            held[i] = true;
        }
    }
    held
}

/// Which test folder a folder has: `test`, else `val`, when `train` is there too.
fn split_folders(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let train = dir.join("train");
    if !train.is_dir() {
        return None;
    }
    ["test", "val"]
        .iter()
        .map(|t| dir.join(t))
        .find(|t| t.is_dir())
        .map(|t| (train, t))
}

/// The split recorded for a folder without train/test folders.
pub fn holdout_name(fraction: f32) -> String {
    format!("holdout {fraction}")
}

/// Loads an image folder as the [module documentation](self) says; only the test images
/// when `test_only`. `dataset` is what [`Splits::dataset`] records.
pub fn load(dir: &Path, options: &FolderOptions, test_only: bool) -> Result<Splits> {
    let channels = if options.grey { 1 } else { 3 };
    let dataset = dir.display().to_string();
    let (train_root, test_root) = match split_folders(dir) {
        Some((train, test)) => (train, Some(test)),
        None => (dir.to_path_buf(), None),
    };
    let classes = subfolders(&train_root)?;
    if classes.is_empty() {
        return Err(data_err(
            &train_root,
            "has no class folders: an image folder holds one subfolder per class, each \
             holding that class's PNG or JPEG images (DIR/cat/1.png, DIR/dog/2.png, …), as \
             torchvision's ImageFolder reads",
        ));
    }
    let mut notes = Vec::new();
    let mut note_skipped = |listing: &Listing| {
        if let Some(first) = listing.skipped.first() {
            notes.push(format!(
                "skipped {} file{} that {} not PNG or JPEG (e.g. {})",
                listing.skipped.len(),
                if listing.skipped.len() == 1 { "" } else { "s" },
                if listing.skipped.len() == 1 {
                    "is"
                } else {
                    "are"
                },
                first.display()
            ));
        }
    };
    let (train_files, test_files, split) = match &test_root {
        Some(test_root) => {
            let test_classes = subfolders(test_root)?;
            let train = if test_only {
                Vec::new()
            } else {
                let l = list(&train_root, &classes, &classes)?;
                note_skipped(&l);
                l.files
            };
            let l = list(test_root, &classes, &test_classes)?;
            note_skipped(&l);
            (train, l.files, None)
        }
        None => {
            let l = list(&train_root, &classes, &classes)?;
            note_skipped(&l);
            let fraction = options.holdout;
            let held = holdout(&l.files, classes.len(), fraction);
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for (f, h) in l.files.into_iter().zip(held) {
                if h {
                    test.push(f)
                } else if !test_only {
                    train.push(f)
                }
            }
            (train, test, Some(holdout_name(fraction)))
        }
    };
    let resize = options.resize;
    let (test_px, test_labels, test_shape, r1) = read_images(&test_files, channels, resize)?;
    let (train_px, train_labels, train_shape, r2) = read_images(&train_files, channels, resize)?;
    // Said only when some image changed size (eval asks for the model's size always).
    let resized = r1 || r2;
    if !train_files.is_empty() && !test_files.is_empty() && train_shape != test_shape {
        return Err(Error::Input(format!(
            "the images have different sizes: {} is {}×{} (width×height), {} is {}×{}; a \
             network takes one size, so give one with --resize HxW (e.g. --resize {}x{}), \
             which scales every image to it (bilinear, as torchvision's Resize)",
            train_files[0].0.display(),
            train_shape[2],
            train_shape[1],
            test_files[0].0.display(),
            test_shape[2],
            test_shape[1],
            train_shape[1],
            train_shape[2],
        )));
    }
    let shape = if train_files.is_empty() {
        test_shape
    } else {
        train_shape
    };
    let name = dir
        .file_name()
        .map_or("images".into(), |n| n.to_string_lossy().into_owned());
    let n_classes = classes.len();
    let make = |px: Vec<u8>, labels: Vec<usize>, part: &str| {
        if labels.is_empty() {
            // An empty set of the images' shape (shape checks need non-zero sides).
            let fallback = if shape.contains(&0) {
                [channels, 1, 1]
            } else {
                shape
            };
            return Dataset::new_u8(
                format!("{name} {part}"),
                Vec::new(),
                Vec::new(),
                fallback,
                n_classes,
            );
        }
        Dataset::new_u8(format!("{name} {part}"), px, labels, shape, n_classes)
    };
    let train = make(train_px, train_labels, "train")?;
    let test = make(test_px, test_labels, "test")?;
    let mut how = vec![format!(
        "{} class{}",
        n_classes,
        if n_classes == 1 { "" } else { "es" }
    )];
    how.push(format!(
        "{} {}×{}{}",
        if channels == 1 { "grey" } else { "RGB" },
        shape[1],
        shape[2],
        if resized { " (resized)" } else { "" }
    ));
    if test_only {
        how.push(format!("{} test", thousands(test.len())));
    } else {
        how.push(format!(
            "{} train / {} test",
            thousands(train.len()),
            thousands(test.len())
        ));
    }
    match (&split, &test_root) {
        (Some(s), _) => how.push(format!("{s} of each class, seed {HOLDOUT_SEED}")),
        (None, Some(t)) => how.push(format!(
            "test from {}",
            t.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        )),
        _ => {}
    }
    let mut source = format!("images from {} ({})", dir.display(), how.join(", "));
    for n in notes {
        source.push_str(&format!("; note: {n}"));
    }
    Ok(Splits {
        train,
        val: None,
        test: Some(test),
        source,
        dataset,
        classes: Some(classes),
        normalize: None,
        split,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a PNG of `w`×`h`, RGB when `rgb`, pixel values from `f(x, y, c)`.
    pub(crate) fn png(path: &Path, w: u32, h: u32, rgb: bool, f: impl Fn(u32, u32, u32) -> u8) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        if rgb {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([f(x, y, 0), f(x, y, 1), f(x, y, 2)])
            });
            img.save(path).expect("save png");
        } else {
            let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y, 0)]));
            img.save(path).expect("save png");
        }
    }

    fn opts() -> FolderOptions {
        FolderOptions::default()
    }

    #[test]
    fn data_images_classes_sorted_files_sorted_rgb_planes_and_holdout() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        for (class, n) in [("dog", 5), ("cat", 5), ("ant", 1)] {
            for i in 0..n {
                png(
                    &d.join(class).join(format!("{i}.png")),
                    4,
                    2,
                    true,
                    |x, y, c| (i * 10 + x + 4 * y + 100 * c) as u8,
                );
            }
        }
        std::fs::write(d.join("cat/notes.txt"), "hello").expect("write");
        let s = load(d, &opts(), false).expect("load");
        assert_eq!(
            s.classes.as_deref().map(|c| c.join(",")),
            Some("ant,cat,dog".into())
        );
        assert_eq!(s.train.shape, [3, 2, 4]);
        // 20 % of 5 is 1 per class; the single ant stays in training.
        assert_eq!(
            (s.train.len(), s.test.as_ref().map(|t| t.len())),
            (9, Some(2))
        );
        assert_eq!(s.split.as_deref(), Some("holdout 0.2"));
        assert_eq!(s.train.labels[0], 0);
        assert_eq!(s.test.as_ref().map(|t| t.labels.clone()), Some(vec![1, 2]));
        // Planes: R then G then B, rows within.
        let img = s.train.image_u8(0).expect("u8");
        assert_eq!((img[0], img[5], img[8], img[16 + 7]), (0, 5, 100, 207));
        assert!(
            s.source
                .contains("note: skipped 1 file that is not PNG or JPEG"),
            "{}",
            s.source
        );
        assert!(s.source.contains("notes.txt"), "{}", s.source);
        // The same folder splits the same way again; the test part alone agrees.
        let again = load(d, &opts(), true).expect("again");
        assert_eq!(
            again.test.as_ref().map(|t| t.labels.clone()),
            s.test.as_ref().map(|t| t.labels.clone())
        );
        assert_eq!(
            values(again.test.as_ref().expect("t")),
            values(s.test.as_ref().expect("t"))
        );
        assert_eq!(again.train.len(), 0);
    }

    fn values(ds: &Dataset) -> Vec<u8> {
        (0..ds.len())
            .flat_map(|i| ds.image_u8(i).expect("u8").to_vec())
            .collect()
    }

    #[test]
    fn data_images_train_and_test_folders_grey_and_resize() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        for part in ["train", "val"] {
            for class in ["a", "b"] {
                png(
                    &d.join(part).join(class).join("x.png"),
                    6,
                    3,
                    true,
                    |x, _, c| (x * 40 + c) as u8,
                );
            }
        }
        let grey = FolderOptions {
            grey: true,
            resize: Some((2, 3)),
            ..opts()
        };
        let s = load(d, &grey, false).expect("load");
        assert_eq!(s.train.shape, [1, 2, 3]);
        assert_eq!(
            (s.train.len(), s.test.as_ref().map(|t| t.len())),
            (2, Some(2))
        );
        assert_eq!(s.split, None);
        assert!(s.source.contains("test from val"), "{}", s.source);
        // Grey from Pillow's formula first, then resized (as Grayscale after Resize gives
        // within rounding; torchvision users put either first).
        let l = |v: u32| ((v * 19595 + (v + 1) * 38470 + (v + 2) * 7471 + 0x8000) >> 16) as u8;
        let grey: Vec<u8> = (0..3).flat_map(|_| (0..6).map(|x| l(40 * x))).collect();
        assert_eq!(grey[..2], [l(0), l(40)]);
        let want = resize_plane(&grey, 6, 3, 3, 2);
        assert_eq!(s.train.image_u8(0), Some(&want[..]));
    }

    #[test]
    fn data_images_resize_matches_pillow_bilinear() {
        // Pillow 13.0.0: Image.frombytes("L", (5, 3), bytes(range(0, 150, 10)))
        //   .resize((3, 2), Image.BILINEAR) and .resize((8, 5), Image.BILINEAR).
        let src: Vec<u8> = (0..15).map(|v| v * 10).collect();
        assert_eq!(resize_plane(&src, 5, 3, 3, 2), PILLOW_DOWN.to_vec());
        assert_eq!(resize_plane(&src, 5, 3, 8, 5), PILLOW_UP.to_vec());
        // (i·37 + 11) mod 256 over 7×9, to 4×3: uneven factors, both axes shrinking.
        let noise: Vec<u8> = (0..63u32).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        assert_eq!(resize_plane(&noise, 7, 9, 4, 3), PILLOW_NOISE.to_vec());
    }

    // Printed by tests/fixtures/pillow_resize.py (Pillow 13.0.0).
    const PILLOW_DOWN: [u8; 6] = [23, 39, 55, 85, 101, 117];
    const PILLOW_UP: [u8; 40] = [
        0, 4, 11, 17, 23, 29, 36, 40, 20, 24, 31, 37, 43, 49, 56, 60, 50, 54, 61, 67, 73, 79, 86,
        90, 80, 84, 91, 97, 103, 109, 116, 120, 100, 104, 111, 117, 123, 129, 136, 140,
    ];
    const PILLOW_NOISE: [u8; 12] = [34, 92, 160, 218, 42, 100, 168, 226, 50, 108, 176, 201];

    #[test]
    fn data_images_errors_name_the_file_and_say_what_to_do() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        // No class folders.
        std::fs::write(d.join("a.png"), b"x").expect("write");
        let err = load(d, &opts(), false).unwrap_err().to_string();
        assert!(err.contains("has no class folders"), "{err}");
        // An empty class.
        std::fs::create_dir(d.join("empty")).expect("mkdir");
        png(&d.join("full/1.png"), 2, 2, false, |_, _, _| 9);
        png(&d.join("full/2.png"), 2, 2, false, |_, _, _| 9);
        std::fs::write(d.join("empty/readme.txt"), b"x").expect("write");
        let err = load(d, &opts(), false).unwrap_err().to_string();
        assert!(
            err.contains("the class folder \"empty\" holds no PNG or JPEG"),
            "{err}"
        );
        std::fs::remove_dir_all(d.join("empty")).expect("rm");
        // Mixed sizes: both files named with their sizes, and --resize suggested.
        png(&d.join("full/3.png"), 3, 2, false, |_, _, _| 9);
        png(&d.join("other/1.png"), 2, 2, false, |_, _, _| 9);
        let err = load(d, &opts(), false).unwrap_err().to_string();
        assert!(err.contains("different sizes"), "{err}");
        assert!(
            err.contains("is 2×2") && err.contains("3.png is 3×2"),
            "{err}"
        );
        assert!(err.contains("--resize"), "{err}");
        assert!(
            load(
                d,
                &FolderOptions {
                    resize: Some((2, 2)),
                    ..opts()
                },
                false
            )
            .is_ok()
        );
        // A corrupt file is named.
        std::fs::write(d.join("full/3.png"), b"\x89PNG\r\n\x1a\nnot really").expect("write");
        let err = load(d, &opts(), false).unwrap_err().to_string();
        assert!(err.contains("3.png: cannot be read as an image"), "{err}");
        // A test class the training set lacks.
        let t = d.join("split");
        png(&t.join("train/a/1.png"), 2, 2, false, |_, _, _| 1);
        png(&t.join("test/b/1.png"), 2, 2, false, |_, _, _| 1);
        let err = load(&t, &opts(), false).unwrap_err().to_string();
        assert!(err.contains("the training set has no class \"b\""), "{err}");
    }
}
