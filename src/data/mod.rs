//! Datasets: IDX files, the embedded MNIST sample, named datasets and splits.
//!
//! ```
//! // Without any dataset installed this is the embedded 5,000-image MNIST sample.
//! let (train, test) = seqnet::data::embedded::mnist_5k()?;
//! assert_eq!((train.len(), test.len()), (4000, 1000));
//! let (x, y) = train.batch(&[0, 1, 2]);
//! assert_eq!(x.shape(), &[3, 1, 28, 28]);
//! assert!(y.iter().all(|&label| label < 10));
//! # Ok::<(), seqnet::Error>(())
//! ```
//!
//! [`load`] finds MNIST, Fashion-MNIST or KMNIST on disk ([`resolve_named`] says where it
//! looks) and splits it as PyTorch does ([`Split::Official`]) or as Nielsen's book does
//! ([`Split::Book`]).

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod embedded;
pub mod expand;
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(all(test, feature = "fetch"))]
pub(crate) mod http_test_server;
pub mod idx;
#[cfg(feature = "image")]
pub mod image_folder;
pub mod named;

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::model::Normalize;
use crate::tensor::Tensor;

pub use batch::load_safetensors_batch;
pub use expand::expand_book;
#[cfg(feature = "fetch")]
pub use fetch::{Fetcher, fetch};
pub use named::{KNOWN_NAMES, STANDARD_FILES, cache_dir, resolve_named, search_path};

/// Number of classes of MNIST, Fashion-MNIST and KMNIST.
pub const MNIST_CLASSES: usize = 10;

/// Pixel storage: u8 grey levels (scaled by 1/255 when read) or f32 values used as they are.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// Grey levels 0–255, read as `v as f32 / 255.0` (0 → 0.0, 255 → exactly 1.0): a
    /// quarter of the memory of f32 (MNIST's 60,000 training images are 47 MB).
    U8(Vec<u8>),
    /// Values used as they are.
    F32(Vec<f32>),
}

impl Pixels {
    /// Number of stored values (`len() × C × H × W` of the dataset holding them).
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// True if no values are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the values in `range`, in the same storage.
    fn slice(&self, range: Range<usize>) -> Pixels {
        match self {
            Pixels::U8(v) => Pixels::U8(v[range].to_vec()),
            Pixels::F32(v) => Pixels::F32(v[range].to_vec()),
        }
    }

    /// Splits off the values from `at` on, as [`Vec::split_off`].
    fn split_off(&mut self, at: usize) -> Pixels {
        match self {
            Pixels::U8(v) => Pixels::U8(v.split_off(at)),
            Pixels::F32(v) => Pixels::F32(v.split_off(at)),
        }
    }

    /// Writes the values in `range` into `dst` as f32 (`dst.len() == range.len()`).
    fn write_f32(&self, range: Range<usize>, dst: &mut [f32]) {
        match self {
            Pixels::U8(v) => {
                for (d, &p) in dst.iter_mut().zip(&v[range]) {
                    *d = grey(p);
                }
            }
            Pixels::F32(v) => dst.copy_from_slice(&v[range]),
        }
    }
}

/// A u8 grey level as f32 in [0, 1]. Division, not multiplication by 1/255, so that 255
/// maps to exactly 1.0 (and every level to the nearest f32 of `p / 255`).
#[inline]
fn grey(p: u8) -> f32 {
    p as f32 / 255.0
}

/// Images and their labels, all in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len() × C × H × W` values, image after image, each NCHW-ordered as in
    /// [`Tensor`]. u8 sources (IDX files, the embedded sample, u8 batch files) are kept as
    /// u8 grey levels and read as levels divided by 255, in [0, 1]; f32 sources are kept
    /// as they are.
    pub pixels: Pixels,
    /// One label per image, each `< classes`.
    pub labels: Vec<usize>,
    /// The shape of one image: `[C, H, W]`.
    pub shape: [usize; 3],
    /// The number of classes (labels run from 0 to `classes - 1`).
    pub classes: usize,
    /// A short name for messages, e.g. `"mnist train"`.
    pub name: String,
}

impl Dataset {
    /// A dataset of f32 values from its parts, checking that the sizes agree and that
    /// every label is a class.
    pub fn new(
        name: impl Into<String>,
        images: Vec<f32>,
        labels: Vec<usize>,
        shape: [usize; 3],
        classes: usize,
    ) -> Result<Self> {
        Self::from_parts(name.into(), Pixels::F32(images), labels, shape, classes)
    }

    /// A dataset of u8 grey levels (read as levels / 255, in [0, 1]) from its parts,
    /// checking as [`Dataset::new`] does.
    pub fn new_u8(
        name: impl Into<String>,
        images: Vec<u8>,
        labels: Vec<usize>,
        shape: [usize; 3],
        classes: usize,
    ) -> Result<Self> {
        Self::from_parts(name.into(), Pixels::U8(images), labels, shape, classes)
    }

    fn from_parts(
        name: String,
        pixels: Pixels,
        labels: Vec<usize>,
        shape: [usize; 3],
        classes: usize,
    ) -> Result<Self> {
        check_parts(pixels.len(), &labels, shape, classes)
            .map_err(|m| Error::Input(format!("dataset {name}: {m}")))?;
        Ok(Dataset {
            pixels,
            labels,
            shape,
            classes,
            name,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image: C × H × W.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    fn range(&self, i: usize) -> Range<usize> {
        let per = self.image_len();
        i * per..(i + 1) * per
    }

    /// The values of image `i` as f32 (panics if `i >= len()`, like slice indexing):
    /// borrowed from f32 storage, converted (levels / 255) from u8 storage.
    pub fn image(&self, i: usize) -> Cow<'_, [f32]> {
        match &self.pixels {
            Pixels::F32(v) => Cow::Borrowed(&v[self.range(i)]),
            Pixels::U8(v) => Cow::Owned(v[self.range(i)].iter().map(|&p| grey(p)).collect()),
        }
    }

    /// The grey levels of image `i` if the storage is u8, `None` if it is f32 (panics if
    /// `i >= len()`, like slice indexing).
    pub fn image_u8(&self, i: usize) -> Option<&[u8]> {
        match &self.pixels {
            Pixels::U8(v) => Some(&v[self.range(i)]),
            Pixels::F32(_) => None,
        }
    }

    /// Gathers the images at `indices` into an `[n, C, H, W]` tensor, with their labels
    /// (u8 levels divided by 255). Panics if an index is out of range (indices come from
    /// the caller's own permutation of `0..len()`, so one out of range is a bug, not bad
    /// data).
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Vec<usize>) {
        let [c, h, w] = self.shape;
        let per = self.image_len();
        let mut x = Tensor::zeros(&[indices.len(), c, h, w]);
        for (dst, &i) in x.data_mut().chunks_exact_mut(per.max(1)).zip(indices) {
            self.pixels.write_f32(self.range(i), dst);
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (x, labels)
    }

    /// A copy of the images in `range`, in order and in the same storage (panics if the
    /// range is out of bounds).
    pub fn subset(&self, range: Range<usize>) -> Dataset {
        let per = self.image_len();
        Dataset {
            pixels: self.pixels.slice(range.start * per..range.end * per),
            labels: self.labels[range.clone()].to_vec(),
            shape: self.shape,
            classes: self.classes,
            name: format!("{} [{}..{}]", self.name, range.start, range.end),
        }
    }

    /// A copy of the images at `indices`, in that order and in the same storage (panics
    /// if one is out of range).
    pub fn select(&self, indices: &[usize]) -> Dataset {
        fn gather<T: Copy>(v: &[T], per: usize, indices: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(indices.len() * per);
            for &i in indices {
                out.extend_from_slice(&v[i * per..(i + 1) * per]);
            }
            out
        }
        let per = self.image_len();
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(gather(v, per, indices)),
            Pixels::F32(v) => Pixels::F32(gather(v, per, indices)),
        };
        Dataset {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            classes: self.classes,
            name: self.name.clone(),
        }
    }

    /// Splits into the first `at` images and the rest, without copying the first part
    /// (MNIST's training images are 47 MB as u8, 188 MB as f32). `at` is clamped to
    /// `len()`.
    pub fn split_at(mut self, at: usize) -> (Dataset, Dataset) {
        let at = at.min(self.len());
        let rest = Dataset {
            pixels: self.pixels.split_off(at * self.image_len()),
            labels: self.labels.split_off(at),
            shape: self.shape,
            classes: self.classes,
            name: self.name.clone(),
        };
        (self, rest)
    }

    /// How many images of each class there are.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        counts
    }

    /// A dataset of u8 grey levels, kept as u8 (read as levels / 255, in [0, 1]); errors
    /// are messages for the caller to attach to a file.
    pub(crate) fn from_u8(
        name: String,
        pixels: Vec<u8>,
        labels: &[u8],
        shape: [usize; 3],
        classes: usize,
    ) -> std::result::Result<Dataset, String> {
        let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        // The checks of new_u8, with the message left for the caller to place.
        check_parts(pixels.len(), &labels, shape, classes)?;
        Ok(Dataset {
            pixels: Pixels::U8(pixels),
            labels,
            shape,
            classes,
            name,
        })
    }
}

fn check_parts(
    values: usize,
    labels: &[usize],
    shape: [usize; 3],
    classes: usize,
) -> std::result::Result<(), String> {
    let per: usize = shape.iter().product();
    if per == 0 {
        return Err(format!(
            "image shape [{}, {}, {}] has a zero dimension",
            shape[0], shape[1], shape[2]
        ));
    }
    if classes == 0 {
        return Err("0 classes".into());
    }
    if values != labels.len().saturating_mul(per) {
        return Err(format!(
            "{} labels need {} image values ({} × {}×{}×{}), but there are {values}",
            labels.len(),
            labels.len().saturating_mul(per),
            labels.len(),
            shape[0],
            shape[1],
            shape[2]
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        return Err(bad_label(i, l as u64, classes));
    }
    Ok(())
}

pub(crate) fn bad_label(index: usize, label: u64, classes: usize) -> String {
    format!(
        "label {label} (image {index}) is not a class: there are {classes} classes, \
         labelled 0 to {}",
        classes - 1
    )
}

/// How to divide a dataset's files into training, validation and test sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Split {
    /// The files as published: all 60,000 training images train, the 10,000 test images
    /// test (as torchvision's `MNIST(train=True/False)`).
    #[default]
    Official,
    /// Nielsen's book (`mnist_loader.py`): the first 50,000 training images train, the
    /// rest (the last 10,000) validate, the 10,000 test images test.
    Book,
}

/// The images the book's split trains on; the training images after these validate.
pub const BOOK_TRAIN: usize = 50_000;

/// A dataset divided for training.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training images.
    pub train: Dataset,
    /// Validation images, if the split has them ([`Split::Book`]).
    pub val: Option<Dataset>,
    /// Test images, if the source has them.
    pub test: Option<Dataset>,
    /// Where the data came from, for people: e.g. "MNIST from /data/mnist (60,000 train
    /// / 10,000 test)".
    pub source: String,
    /// Which data it is, for the record (a model file's `seqnet.dataset`): a name —
    /// `mnist`, `fashion-mnist`, `kmnist`, or `mnist-5k` for the embedded sample — or the
    /// folder or file it was read from.
    pub dataset: String,
    /// The class names, when the data has them (an image folder's subfolders, CIFAR-10's
    /// classes): recorded in the model (`seqnet.classes`), printed by predict.
    pub classes: Option<Vec<String>>,
    /// The normalisation this data is used with unless the run gives one (CIFAR-10's
    /// per-channel means and stds; none for the others).
    pub normalize: Option<Normalize>,
    /// The split to record, when it is not the recipe's `official` or `book`: an image
    /// folder's hold-out (`holdout 0.2`).
    pub split: Option<String>,
}

/// How an image folder ([`image_folder`], `image` feature) is read: the options that
/// `--resize`, `--grey` and `--holdout` give.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FolderOptions {
    /// Scale every image to `(height, width)`; `None`: all must have one size.
    pub resize: Option<(usize, usize)>,
    /// One grey channel instead of RGB.
    pub grey: bool,
    /// The fraction of each class held out for test when the folder has no `train/` and
    /// `test/` (or `val/`) folders.
    pub holdout: f32,
}

impl FolderOptions {
    /// How to read an image folder for a model taking `input` (`[C, H, W]`) that was
    /// trained with the split `split` (its `seqnet.split`): scaled to H×W, grey when C is
    /// 1, and the hold-out fraction it was trained with, so that an evaluation sees the
    /// images the run held out.
    pub fn for_model(input: &[usize], split: Option<&str>) -> FolderOptions {
        let mut o = FolderOptions::default();
        if let [c, h, w] = *input {
            o.grey = c == 1;
            o.resize = Some((h, w));
        }
        if let Some(f) = split
            .and_then(|s| s.strip_prefix("holdout "))
            .and_then(|f| f.parse::<f32>().ok())
        {
            o.holdout = f;
        }
        o
    }
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            resize: None,
            grey: false,
            holdout: 0.2,
        }
    }
}

/// `60000` → `"60,000"`: counts as the messages and reports print them.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Splits {
    /// "60,000 train / 10,000 test", or with "/ 10,000 validation" between them.
    pub fn counts(&self) -> String {
        let mut parts = vec![format!("{} train", thousands(self.train.len()))];
        if let Some(v) = &self.val {
            parts.push(format!("{} validation", thousands(v.len())));
        }
        if let Some(t) = &self.test {
            parts.push(format!("{} test", thousands(t.len())));
        }
        parts.join(" / ")
    }
}

fn data_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads an images file and its labels file into a dataset, checking that they belong
/// together.
fn read_pair(images: &Path, labels: &Path, name: String, classes: usize) -> Result<Dataset> {
    let (img, lab) = rayon::join(|| idx::read_images(images), || idx::read_labels(labels));
    join_pair(img?, &lab?, (images, labels), name, classes)
}

/// Images and labels read from the files `names` (images, labels) as one dataset,
/// checking that they belong together.
fn join_pair(
    img: idx::IdxImages,
    lab: &[u8],
    (images, labels): (&Path, &Path),
    name: String,
    classes: usize,
) -> Result<Dataset> {
    if img.n != lab.len() {
        return Err(data_err(
            labels,
            format!(
                "holds {} labels, but {} holds {} images: the two files do not belong \
                 together (or one of them is from another version of the dataset)",
                lab.len(),
                images.display(),
                img.n
            ),
        ));
    }
    Dataset::from_u8(name, img.pixels, lab, [1, img.h, img.w], classes)
        .map_err(|m| data_err(labels, m))
}

/// A pair of IDX files already in memory (gzipped or not), checked as the files of a
/// folder are: the browser page reads the files a user opens this way. `images_name` and
/// `labels_name` are what messages call them; labels must be below 10, as in MNIST.
pub fn pair_from_bytes(
    images: &[u8],
    images_name: &Path,
    labels: &[u8],
    labels_name: &Path,
    name: String,
) -> Result<Dataset> {
    let img = idx::images_from_bytes(images, images_name)?;
    let lab = idx::labels_from_bytes(labels, labels_name)?;
    join_pair(img, &lab, (images_name, labels_name), name, MNIST_CLASSES)
}

/// Loads the four standard IDX files in `dir` (gzipped or not; see [`STANDARD_FILES`])
/// and splits them. Labels must be below 10, as in MNIST, Fashion-MNIST and KMNIST.
pub fn load_dir(dir: impl AsRef<Path>, split: Split) -> Result<Splits> {
    load_any_dir(dir.as_ref(), split, Parts::All)
}

/// A folder that is not a named dataset: named after itself in messages.
fn load_any_dir(dir: &Path, split: Split, parts: Parts) -> Result<Splits> {
    let label = format!("MNIST-format data from {}", dir.display());
    let set = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string());
    load_dir_as(dir, split, &label, &set, &dir.display().to_string(), parts)
}

/// Which files a caller needs: all of them, or only the test pair (`seqnet eval`, which
/// should neither wait for nor fail on training files it does not use).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    All,
    TestOnly,
}

/// [`load_dir`] with the words the `source` and the dataset names use, and the
/// [`Splits::dataset`] to record.
fn load_dir_as(
    dir: &Path,
    split: Split,
    label: &str,
    set: &str,
    dataset: &str,
    parts: Parts,
) -> Result<Splits> {
    let files = named::standard_files(dir).map_err(|missing| {
        let expected: Vec<String> = STANDARD_FILES.iter().map(|f| format!("{f}[.gz]")).collect();
        data_err(
            dir,
            if !dir.exists() {
                "no such folder".to_string()
            } else if !dir.is_dir() {
                "not a folder: a dataset is a folder holding the four IDX files".to_string()
            } else {
                format!(
                    "missing {}; a dataset folder holds the four IDX files {}",
                    missing.join(", "),
                    expected.join(", ")
                )
            },
        )
    })?;
    let [train_images, train_labels, test_images, test_labels] = files;
    if parts == Parts::TestOnly {
        let test = read_pair(
            &test_images,
            &test_labels,
            format!("{set} test"),
            MNIST_CLASSES,
        )?;
        let source = format!("{label} ({} test)", thousands(test.len()));
        // No training image was read: an empty training set of the test's shape.
        let (train, test) = test.split_at(0);
        return Ok(Splits {
            train,
            val: None,
            test: Some(test),
            source,
            dataset: dataset.to_string(),
            classes: None,
            normalize: None,
            split: None,
        });
    }
    let (train, test) = rayon::join(
        || {
            read_pair(
                &train_images,
                &train_labels,
                format!("{set} train"),
                MNIST_CLASSES,
            )
        },
        || {
            read_pair(
                &test_images,
                &test_labels,
                format!("{set} test"),
                MNIST_CLASSES,
            )
        },
    );
    let (train, test) = (train?, test?);
    if train.shape != test.shape {
        return Err(data_err(
            &test_images,
            format!(
                "images are {}×{}, but the training images in {} are {}×{}",
                test.shape[1],
                test.shape[2],
                train_images.display(),
                train.shape[1],
                train.shape[2]
            ),
        ));
    }
    let (train, val, how) = match split {
        Split::Official => (train, None, ""),
        Split::Book => {
            if train.len() <= BOOK_TRAIN {
                return Err(data_err(
                    &train_images,
                    format!(
                        "holds {} images, but the book's split trains on the first {} and \
                         validates on the rest, so it needs at least {}; use the official \
                         split instead",
                        train.len(),
                        thousands(BOOK_TRAIN),
                        thousands(BOOK_TRAIN + 1)
                    ),
                ));
            }
            let (mut train, mut val) = train.split_at(BOOK_TRAIN);
            train.name = format!("{set} train");
            val.name = format!("{set} validation");
            (train, Some(val), ", the book's split")
        }
    };
    let mut splits = Splits {
        train,
        val,
        test: Some(test),
        source: String::new(),
        dataset: dataset.to_string(),
        classes: None,
        normalize: None,
        split: None,
    };
    splits.source = format!("{label} ({}{how})", splits.counts());
    Ok(splits)
}

/// Loads a dataset by name or folder:
///
/// - `None`: MNIST if [`resolve_named`] finds it, else the embedded 5,000-image sample
///   (and `source` says so, and how to install MNIST);
/// - `Some("mnist-5k")`: the embedded sample ([`embedded::mnist_5k`]);
/// - `Some("mnist" | "fashion-mnist" | "kmnist")`: found by [`resolve_named`], or an
///   error listing every folder searched;
/// - anything else: a folder holding the four IDX files ([`load_dir`]).
///
/// `data_dir` is searched first for named sets. With [`Split::Book`], the embedded
/// sample's 4,000 training images split 3,000 train / 1,000 validation.
pub fn load(name_or_dir: Option<&str>, data_dir: Option<&Path>, split: Split) -> Result<Splits> {
    load_with(name_or_dir, data_dir, split, &FolderOptions::default())
}

/// [`load`], with `folder` saying how an image folder is read. Besides the sources
/// [`load`] lists, `name_or_dir` may be `cifar10` ([`cifar`]), a folder holding
/// CIFAR-10's `.bin` files, or a folder of class folders of images ([`image_folder`]).
pub fn load_with(
    name_or_dir: Option<&str>,
    data_dir: Option<&Path>,
    split: Split,
    folder: &FolderOptions,
) -> Result<Splits> {
    load_in_with(
        name_or_dir,
        data_dir,
        split,
        &named::SearchEnv::process(),
        Parts::All,
        folder,
    )
}

/// [`load`]'s test set alone, and where it came from. An IDX folder's training files
/// are not read (the embedded sample is one file, split after a shuffle, so it is).
pub fn load_test_set(
    name_or_dir: Option<&str>,
    data_dir: Option<&Path>,
) -> Result<(Dataset, String)> {
    let splits = load_test_splits(name_or_dir, data_dir)?;
    let test = splits.test.expect("every dataset source has a test set");
    Ok((test, splits.source))
}

/// [`load_test_set`] as [`Splits`] (with an empty training set), which also say which
/// data it is ([`Splits::dataset`]).
pub fn load_test_splits(name_or_dir: Option<&str>, data_dir: Option<&Path>) -> Result<Splits> {
    load_test_splits_with(name_or_dir, data_dir, &FolderOptions::default())
}

/// [`load_test_splits`], with `folder` saying how an image folder is read (for a
/// hold-out split, the same `holdout` the model was trained with gives the same test
/// images).
pub fn load_test_splits_with(
    name_or_dir: Option<&str>,
    data_dir: Option<&Path>,
    folder: &FolderOptions,
) -> Result<Splits> {
    load_in_with(
        name_or_dir,
        data_dir,
        Split::Official,
        &named::SearchEnv::process(),
        Parts::TestOnly,
        folder,
    )
}

#[cfg(test)]
fn load_in(
    name_or_dir: Option<&str>,
    data_dir: Option<&Path>,
    split: Split,
    env: &named::SearchEnv,
    parts: Parts,
) -> Result<Splits> {
    load_in_with(
        name_or_dir,
        data_dir,
        split,
        env,
        parts,
        &FolderOptions::default(),
    )
}

/// The book's split is MNIST's; other data has its own training and test sets.
fn refuse_book(split: Split, what: &str, path: &Path) -> Result<()> {
    if split == Split::Book {
        return Err(data_err(
            path,
            format!(
                "--split book is the book's MNIST split (50,000 train / 10,000 validation); \
                 {what} trains on its training images and tests on its test images: leave \
                 --split out"
            ),
        ));
    }
    Ok(())
}

fn load_in_with(
    name_or_dir: Option<&str>,
    data_dir: Option<&Path>,
    split: Split,
    env: &named::SearchEnv,
    parts: Parts,
    folder: &FolderOptions,
) -> Result<Splits> {
    named::check_data_dir(data_dir)?;
    match name_or_dir {
        None => {
            let search = named::search(named::MNIST, data_dir, env);
            match search.found {
                Some(dir) => load_named_dir(&dir, named::MNIST, split, parts),
                None => {
                    let mut s = embedded_splits(split)?;
                    s.source = format!(
                        "{}; MNIST was not found (looked in {}). Install it with `seqnet data \
                         fetch mnist`, or point --data-dir or $SEQNET_DATA at a folder holding \
                         its four files",
                        s.source,
                        search
                            .tried
                            .iter()
                            .map(|t| t.dir.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    Ok(s)
                }
            }
        }
        Some(text) => {
            let key = named::normalise(text);
            if key == embedded::NAME {
                return embedded_splits(split);
            }
            if cifar::is_name(&key) {
                refuse_book(split, "CIFAR-10", Path::new(cifar::NAME))?;
                return cifar::load_named(data_dir, env, parts == Parts::TestOnly);
            }
            if let Some(name) = named::known(&key) {
                let search = named::search(name, data_dir, env);
                return match search.found {
                    Some(dir) => load_named_dir(&dir, name, split, parts),
                    None => Err(search.not_found_error()),
                };
            }
            let dir = Path::new(text);
            if !dir.exists() {
                return Err(data_err(
                    dir,
                    format!(
                        "no such folder, and not a dataset name (the names are {}, {}, {})",
                        KNOWN_NAMES.join(", "),
                        cifar::NAME,
                        embedded::NAME
                    ),
                ));
            }
            if cifar::looks_like(dir) {
                refuse_book(split, "CIFAR-10", dir)?;
                return cifar::load_dir(dir, parts == Parts::TestOnly, &dir.display().to_string());
            }
            if dir.is_dir() && named::standard_files(dir).is_err() && has_subfolder(dir) {
                refuse_book(split, "an image folder", dir)?;
                return load_image_folder(dir, folder, parts);
            }
            load_any_dir(dir, split, parts)
        }
    }
}

/// True if `dir` has a subfolder: an image folder's classes (or train/test).
fn has_subfolder(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| e.path().is_dir()))
        .unwrap_or(false)
}

#[cfg(feature = "image")]
fn load_image_folder(dir: &Path, folder: &FolderOptions, parts: Parts) -> Result<Splits> {
    image_folder::load(dir, folder, parts == Parts::TestOnly)
}

#[cfg(not(feature = "image"))]
fn load_image_folder(dir: &Path, _: &FolderOptions, _: Parts) -> Result<Splits> {
    Err(data_err(
        dir,
        "holds subfolders, as a folder of class folders of images would, but this seqnet \
         was built without the image feature, which reads PNG and JPEG; build it with the \
         default features",
    ))
}

fn load_named_dir(dir: &Path, name: &str, split: Split, parts: Parts) -> Result<Splits> {
    let label = format!("{} from {}", named::title(name), dir.display());
    load_dir_as(dir, split, &label, name, name, parts)
}

/// The embedded sample, split as `split` asks.
fn embedded_splits(split: Split) -> Result<Splits> {
    let (train, test) = embedded::mnist_5k()?;
    let (train, val, how) = match split {
        Split::Official => (train, None, ""),
        Split::Book => {
            let (mut train, mut val) = train.split_at(embedded::TRAIN - embedded::TEST);
            train.name = format!("{} train", embedded::NAME);
            val.name = format!("{} validation", embedded::NAME);
            (train, Some(val), ", the book's split scaled down")
        }
    };
    let mut splits = Splits {
        train,
        val,
        test: Some(test),
        source: String::new(),
        dataset: embedded::NAME.to_string(),
        classes: None,
        normalize: None,
        split: None,
    };
    splits.source = format!(
        "the embedded 5,000-image MNIST sample ({}{how})",
        splits.counts()
    );
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::idx::tests::{gz, idx_images, idx_labels};
    use super::*;

    /// Files opened in the browser: the same dataset as from a folder, and the same
    /// message when the labels are not the images'.
    #[test]
    fn a_pair_from_bytes_is_checked_as_files_are() {
        let images = include_bytes!("../../assets/mnist-5k/images-idx3-ubyte.gz");
        let labels = include_bytes!("../../assets/mnist-5k/labels-idx1-ubyte.gz");
        let (i, l) = (Path::new("img.gz"), Path::new("lab.gz"));
        let ds = pair_from_bytes(images, i, labels, l, "mine".into()).unwrap();
        assert_eq!((ds.len(), ds.shape), (5000, [1, 28, 28]));
        // Three labels, uncompressed: magic 2049, count 3.
        let three = [0u8, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3];
        let err = pair_from_bytes(images, i, &three, l, "mine".into()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("lab.gz: holds 3 labels, but img.gz holds 5000 images"),
            "{msg}"
        );
        // Labels given as images: the IDX reader names the file and what it found.
        assert!(pair_from_bytes(labels, i, labels, l, "mine".into()).is_err());
    }
    use std::path::PathBuf;

    /// Every value of `ds` as f32, image after image: what `batch` over all of it gives.
    pub(crate) fn values(ds: &Dataset) -> Vec<f32> {
        (0..ds.len())
            .flat_map(|i| ds.image(i).into_owned())
            .collect()
    }

    /// Writes a tiny MNIST-format folder: `n_train` and `n_test` 3×2 images.
    pub(crate) fn write_set(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let suffix = if gzip { ".gz" } else { "" };
        let enc = |b: Vec<u8>| if gzip { gz(&b) } else { b };
        for (stem, n) in [("train", n_train), ("t10k", n_test)] {
            let pixels: Vec<u8> = (0..n * 6).map(|i| (i % 256) as u8).collect();
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            std::fs::write(
                dir.join(format!("{stem}-images-idx3-ubyte{suffix}")),
                enc(idx_images(n, 3, 2, &pixels)),
            )
            .expect("write");
            std::fs::write(
                dir.join(format!("{stem}-labels-idx1-ubyte{suffix}")),
                enc(idx_labels(&labels)),
            )
            .expect("write");
        }
    }

    #[test]
    fn data_dataset_batch_gathers_nchw_images_and_labels() {
        let images: Vec<f32> = (0..4 * 2 * 3).map(|v| v as f32).collect();
        let ds = Dataset::new("t", images, vec![0, 1, 2, 1], [2, 1, 3], 3).expect("dataset");
        assert_eq!((ds.len(), ds.image_len()), (4, 6));
        let (x, y) = ds.batch(&[3, 0]);
        assert_eq!(x.shape(), &[2, 2, 1, 3]);
        assert_eq!(&x.data()[..6], &[18.0, 19.0, 20.0, 21.0, 22.0, 23.0]);
        assert_eq!(&x.data()[6..], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(y, vec![1, 0]);
        let sub = ds.subset(1..3);
        assert_eq!(sub.labels, vec![1, 2]);
        assert_eq!(sub.image(0)[0], 6.0);
        let (a, b) = ds.clone().split_at(3);
        assert_eq!((a.len(), b.len(), b.image(0)[0]), (3, 1, 18.0));
        assert_eq!(ds.class_counts(), vec![1, 2, 1]);
        let (x, y) = ds.batch(&[]);
        assert_eq!((x.shape(), y.len()), (&[0, 2, 1, 3][..], 0));
        // f32 storage lends its values and has no grey levels.
        assert!(matches!(ds.image(1), Cow::Borrowed(_)));
        assert_eq!(ds.image_u8(1), None);
    }

    #[test]
    fn data_dataset_u8_storage_reads_levels_over_255_and_stays_u8() {
        // Every grey level, in 4 images of 2×1×32, reads bit for bit as `v as f32 / 255.0`.
        let levels: Vec<u8> = (0..=255).collect();
        let ds =
            Dataset::new_u8("t", levels.clone(), vec![0, 1, 2, 1], [2, 1, 32], 3).expect("dataset");
        assert_eq!((ds.len(), ds.image_len()), (4, 64));
        assert_eq!(ds.pixels, Pixels::U8(levels.clone()));
        let want: Vec<f32> = levels.iter().map(|&v| v as f32 / 255.0).collect();
        let (x, y) = ds.batch(&[0, 1, 2, 3]);
        assert_eq!(x.shape(), &[4, 2, 1, 32]);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(x.data()), bits(&want));
        assert_eq!((x.data()[0], x.data()[255]), (0.0, 1.0));
        assert_eq!(y, vec![0, 1, 2, 1]);
        let (x, y) = ds.batch(&[3, 0]);
        assert_eq!(bits(&x.data()[..64]), bits(&want[192..]));
        assert_eq!(bits(&x.data()[64..]), bits(&want[..64]));
        assert_eq!(y, vec![1, 0]);
        // image converts; image_u8 lends the levels.
        assert!(matches!(ds.image(2), Cow::Owned(_)));
        assert_eq!(bits(&ds.image(2)), bits(&want[128..192]));
        assert_eq!(ds.image_u8(2), Some(&levels[128..192]));
        // subset, select and split_at keep u8 storage.
        let sub = ds.subset(1..3);
        assert_eq!(sub.labels, vec![1, 2]);
        assert_eq!(sub.pixels, Pixels::U8(levels[64..192].to_vec()));
        let sel = ds.select(&[3, 1]);
        assert_eq!(sel.labels, vec![1, 1]);
        assert_eq!(sel.image_u8(0), Some(&levels[192..]));
        assert_eq!(sel.image_u8(1), Some(&levels[64..128]));
        let (a, b) = ds.clone().split_at(3);
        assert_eq!((a.len(), b.len()), (3, 1));
        assert_eq!(a.pixels, Pixels::U8(levels[..192].to_vec()));
        assert_eq!(b.pixels, Pixels::U8(levels[192..].to_vec()));
        assert_eq!(ds.class_counts(), vec![1, 2, 1]);
        let (x, y) = ds.batch(&[]);
        assert_eq!((x.shape(), y.len()), (&[0, 2, 1, 32][..], 0));
        // The same checks as new.
        let err = Dataset::new_u8("t", vec![0; 5], vec![0, 1], [1, 1, 3], 10).unwrap_err();
        assert!(err.to_string().contains("need 6 image values"), "{err}");
        let err = Dataset::new_u8("t", vec![0; 6], vec![0, 10], [1, 1, 3], 10).unwrap_err();
        assert!(err.to_string().contains("label 10 (image 1)"), "{err}");
    }

    #[test]
    fn data_dataset_new_checks_labels_and_sizes() {
        let err = Dataset::new("t", vec![0.0; 6], vec![0, 10], [1, 1, 3], 10).unwrap_err();
        assert!(
            err.to_string()
                .contains("label 10 (image 1) is not a class"),
            "{err}"
        );
        let err = Dataset::new("t", vec![0.0; 5], vec![0, 1], [1, 1, 3], 10).unwrap_err();
        assert!(err.to_string().contains("need 6 image values"), "{err}");
    }

    #[test]
    fn data_load_dir_reads_raw_and_gzipped_sets_with_both_splits() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for gzip in [false, true] {
            let dir = tmp.path().join(if gzip { "gz" } else { "raw" });
            write_set(&dir, 50_003, 7, gzip);
            let s = load_dir(&dir, Split::Official).expect("official");
            assert_eq!(s.train.len(), 50_003);
            assert_eq!(s.train.shape, [1, 3, 2]);
            assert!(s.val.is_none());
            let test = s.test.as_ref().expect("test set");
            assert_eq!(test.len(), 7);
            assert_eq!(test.labels[..3], [0, 1, 2]);
            assert_eq!(s.train.image(0)[1], 1.0 / 255.0);
            assert_eq!(s.train.image_u8(1), Some(&[6, 7, 8, 9, 10, 11][..]));
            assert!(s.source.contains("50,003 train / 7 test"), "{}", s.source);

            let b = load_dir(&dir, Split::Book).expect("book");
            let val = b.val.as_ref().expect("validation set");
            assert_eq!((b.train.len(), val.len()), (50_000, 3));
            assert_eq!(val.labels, vec![0, 1, 2]); // images 50000.. have labels 0, 1, 2
            assert_eq!(values(val), values(&s.train)[50_000 * 6..]);
            assert!(matches!(val.pixels, Pixels::U8(_)));
            assert!(b.source.contains("50,000 train / 3 validation / 7 test"));
        }
    }

    #[test]
    fn data_book_split_needs_more_than_50000_training_images() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_set(tmp.path(), 50_000, 2, false);
        let err = load_dir(tmp.path(), Split::Book).unwrap_err().to_string();
        assert!(err.contains("holds 50000 images"), "{err}");
        assert!(err.contains("at least 50,001"), "{err}");
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn data_load_dir_rejects_mismatched_or_invalid_pairs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Count mismatch: a property of the pair, so it is found by load_dir and named
        // on the labels file, with the images file in the message.
        let dir = tmp.path().join("mismatch");
        write_set(&dir, 5, 2, false);
        std::fs::write(
            dir.join("train-labels-idx1-ubyte"),
            idx_labels(&[1, 2, 3, 4]),
        )
        .expect("write");
        let err = load_dir(&dir, Split::Official).unwrap_err().to_string();
        assert!(
            err.contains("train-labels-idx1-ubyte: holds 4 labels"),
            "{err}"
        );
        assert!(
            err.contains("train-images-idx3-ubyte holds 5 images"),
            "{err}"
        );

        // A label of 10 in a 10-class set.
        let dir = tmp.path().join("label10");
        write_set(&dir, 5, 2, true);
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte.gz"),
            gz(&idx_labels(&[3, 10])),
        )
        .expect("write");
        let err = load_dir(&dir, Split::Official).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte.gz"), "{err}");
        assert!(err.contains("label 10 (image 1) is not a class: there are 10 classes"));

        // Test images of another size.
        let dir = tmp.path().join("sizes");
        write_set(&dir, 5, 2, false);
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte"),
            idx_images(2, 2, 3, &[0; 12]),
        )
        .expect("write");
        let err = load_dir(&dir, Split::Official).unwrap_err().to_string();
        assert!(
            err.contains("images are 2×3, but the training images"),
            "{err}"
        );

        // A missing file is named.
        let dir = tmp.path().join("missing");
        write_set(&dir, 5, 2, false);
        std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).expect("rm");
        let err = load_dir(&dir, Split::Official).unwrap_err().to_string();
        assert!(err.contains("missing t10k-labels-idx1-ubyte[.gz]"), "{err}");
        let err = load_dir(tmp.path().join("nowhere"), Split::Official).unwrap_err();
        assert!(err.to_string().contains("no such folder"), "{err}");
    }

    #[test]
    fn data_load_falls_back_to_the_embedded_sample_and_says_so() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = named::SearchEnv::isolated(tmp.path());
        let s = load_in(None, None, Split::Official, &env, Parts::All).expect("embedded");
        assert_eq!(
            (s.train.len(), s.test.as_ref().map(|t| t.len())),
            (4000, Some(1000))
        );
        assert!(
            s.source
                .starts_with("the embedded 5,000-image MNIST sample")
        );
        assert!(s.source.contains("seqnet data fetch mnist"), "{}", s.source);
        let b = load_in(Some("mnist-5k"), None, Split::Book, &env, Parts::All).expect("embedded");
        assert_eq!(b.counts(), "3,000 train / 1,000 validation / 1,000 test");

        // Once MNIST is in a searched place, it is used.
        write_set(&tmp.path().join("cache/seqnet/mnist"), 12, 3, true);
        let s = load_in(None, None, Split::Official, &env, Parts::All).expect("found");
        assert_eq!(s.train.len(), 12);
        assert!(s.source.starts_with("MNIST from "), "{}", s.source);
        assert_eq!(s.train.name, "mnist train");
    }

    #[test]
    fn data_load_named_missing_set_lists_every_place_searched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = named::SearchEnv::isolated(tmp.path());
        let given = tmp.path().join("given");
        let fashion_err = || {
            load_in(
                Some("Fashion-MNIST"),
                Some(&given),
                Split::Official,
                &env,
                Parts::All,
            )
            .unwrap_err()
            .to_string()
        };
        let err = fashion_err();
        assert!(err.contains("--data-dir folder does not exist"), "{err}");
        std::fs::create_dir(&given).expect("mkdir");
        let err = fashion_err();
        for place in named::search(named::FASHION, Some(&given), &env).tried {
            assert!(err.contains(&*place.dir.to_string_lossy()), "{err}");
        }
        assert!(err.contains("seqnet data fetch fashion-mnist"), "{err}");
        assert!(err.contains("--dataset DIR"), "{err}");

        let err = load_in(Some("no/such/dir"), None, Split::Official, &env, Parts::All)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such folder, and not a dataset name"),
            "{err}"
        );
    }

    #[test]
    fn data_load_takes_a_folder_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_set(tmp.path(), 4, 2, false);
        let env = named::SearchEnv::isolated(tmp.path());
        let dir = tmp.path().to_string_lossy().into_owned();
        let s = load_in(Some(&dir), None, Split::Official, &env, Parts::All).expect("folder");
        assert_eq!(s.train.len(), 4);
        assert!(
            s.source.starts_with("MNIST-format data from"),
            "{}",
            s.source
        );
    }

    /// The test set alone reads only the test files: a corrupt training file does not
    /// stop an evaluation, though it stops a training run.
    #[test]
    fn data_test_set_alone_skips_the_training_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_set(tmp.path(), 4, 3, false);
        std::fs::write(tmp.path().join("train-images-idx3-ubyte"), b"corrupt").expect("write");
        let env = named::SearchEnv::isolated(tmp.path());
        let dir = tmp.path().to_string_lossy().into_owned();
        assert!(load_in(Some(&dir), None, Split::Official, &env, Parts::All).is_err());
        let s = load_in(Some(&dir), None, Split::Official, &env, Parts::TestOnly).expect("test");
        assert_eq!(s.test.as_ref().map(Dataset::len), Some(3));
        assert_eq!(s.train.len(), 0);
        assert!(s.source.ends_with("(3 test)"), "{}", s.source);
    }

    #[test]
    fn data_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(60_000), "60,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    /// The real MNIST, from the folder `SEQNET_DATA` names (the four files). Ignored by a
    /// plain `cargo test`; `.ci/run` runs it with `--ignored` when the data is there.
    #[test]
    #[ignore = "needs SEQNET_DATA"]
    fn data_real_mnist_when_seqnet_data_is_set() {
        let dir = std::env::var_os("SEQNET_DATA")
            .expect("SEQNET_DATA must name the folder of the full MNIST set");
        let dir = PathBuf::from(dir);
        let s = load_dir(&dir, Split::Official).expect("MNIST");
        let test = s.test.as_ref().expect("test set");
        assert_eq!((s.train.len(), test.len()), (60_000, 10_000));
        assert_eq!(s.train.shape, [1, 28, 28]);
        assert_eq!(s.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(test.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
        assert!(matches!(s.train.pixels, Pixels::U8(_)));
        let images = values(&s.train);
        assert!(images.iter().all(|v| (0.0..=1.0).contains(v)));
        let mean = images.iter().map(|&v| v as f64).sum::<f64>() / images.len() as f64;
        assert!((mean - 0.1307).abs() < 0.001, "mean {mean}");

        let b = load_dir(&dir, Split::Book).expect("MNIST, book split");
        let val = b.val.as_ref().expect("validation");
        assert_eq!(
            (b.train.len(), val.len(), b.test.as_ref().map(|t| t.len())),
            (50_000, 10_000, Some(10_000))
        );
        assert_eq!(b.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(val.labels[..], s.train.labels[50_000..]);

        // The resolver finds it through $SEQNET_DATA (passed explicitly, not via the
        // process environment, so no test races another).
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut env = named::SearchEnv::isolated(tmp.path());
        env.set("SEQNET_DATA", &dir);
        let found = named::search(named::MNIST, None, &env).found;
        assert_eq!(found.as_deref(), Some(dir.as_path()));
    }
}
