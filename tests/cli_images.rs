//! Your own images and CIFAR-10 end to end: a folder of class folders of PNGs made here,
//! trained on by an RGB network, summarised, evaluated and predicted with; CIFAR-10's
//! binary files made here, trained on by name and by folder.

use std::path::Path;

mod support;

use support::images::png;
use support::run::{fails, message, ok, ok_out_err, seqnet};

/// The RGB network: 3×32×32 in, 16 maps of 16×16 before the classifier.
const RGB_SPEC: &str = "Conv2d(3, 16, 3, padding=1) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
                        Linear(16*16*16, 10)";

/// Four epochs of [`RGB_SPEC`] on the folder `pics` into `run`: enough to tell
/// [`write_folder`]'s red from its blue on every image.
const TRAIN_PICS: [&str; 13] = [
    "train",
    "--spec",
    RGB_SPEC,
    "--dataset",
    "pics",
    "--epochs",
    "4",
    "--batch-size",
    "4",
    "--lr",
    "0.01",
    "--out",
    "run",
];

/// A small deterministic noise in 0..40.
fn noise(k: u32) -> u8 {
    ((k.wrapping_mul(2_654_435_761) >> 24) % 40) as u8
}

/// `n` 32×32 RGB PNGs per class: reddish "apple", bluish "sky" (with noise).
fn write_folder(dir: &Path, n: u32) {
    for (class, rgb) in [("apple", [200u8, 40, 40]), ("sky", [40u8, 60, 210])] {
        let folder = dir.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let k = i * 4096 + y * 64 + x * 2;
                image::Rgb([
                    rgb[0].saturating_add(noise(k)),
                    rgb[1].saturating_add(noise(k + 1)),
                    rgb[2].saturating_sub(noise(k + 7)),
                ])
            });
            img.save(folder.join(format!("{i:02}.png"))).unwrap();
        }
    }
}

#[test]
fn an_rgb_network_trains_on_a_folder_of_pngs_and_predicts_its_images() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("pics"), 10);
    std::fs::write(dir.path().join("pics/apple/notes.txt"), "not an image").unwrap();

    // The summary takes the input shape from the images.
    let (out, err) = ok_out_err(&seqnet(
        dir.path(),
        &["summary", RGB_SPEC, "--dataset", "pics"],
    ));
    assert!(err.contains("input 3×32×32 from images from pics"), "{err}");
    assert!(out.contains("3×32×32"), "{out}");
    assert!(out.contains("16×16×16"), "{out}");

    let (out, err) = ok_out_err(&seqnet(
        dir.path(),
        &[&TRAIN_PICS[..], &["--json"]].concat(),
    ));
    // The data line, wrapped at 100 columns.
    let data = message(&err, "data: ").unwrap_or_default();
    assert!(
        data.contains("2 classes, RGB 32×32, 16 train / 4 test, holdout 0.2 of each class"),
        "{err}"
    );
    assert!(
        data.contains("skipped 1 file that is not PNG or JPEG"),
        "{err}"
    );
    assert!(err.lines().all(|l| l.chars().count() <= 100), "{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let acc = last["test_accuracy"].as_f64().unwrap_or(0.0);
    assert!(acc == 1.0, "red against blue is easy: {acc}\n{out}");

    // The model file records the data and the hold-out; eval makes the same split.
    let out = ok(&seqnet(
        dir.path(),
        &[
            "eval",
            "--model",
            "run/final.safetensors",
            "--dataset",
            "pics",
            "--json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["images"].as_u64(), Some(4), "{out}");

    // predict takes an RGB image file and names the class.
    let out = ok(&seqnet(
        dir.path(),
        &[
            "predict",
            "--model",
            "run/final.safetensors",
            "pics/sky/03.png",
            "pics/apple/07.png",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("pics/sky/03.png: sky ("), "{out}");
    assert!(lines[1].starts_with("pics/apple/07.png: apple ("), "{out}");
}

/// Pixels whose red and blue differ by more than 60: none in a grey picture, all of
/// [`write_folder`]'s.
fn coloured_pixels(path: &Path) -> usize {
    png(path)
        .pixels()
        .filter(|p| p[0].abs_diff(p[2]) > 60)
        .count()
}

#[test]
fn viz_mistakes_draws_rgb_images_in_their_colours() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("pics"), 10);
    // The same images under each other's class names: a model that tells red from blue
    // gets every one of them wrong.
    for (from, to) in [("apple", "sky"), ("sky", "apple")] {
        let target = dir.path().join("swapped").join(to);
        std::fs::create_dir_all(&target).unwrap();
        for entry in std::fs::read_dir(dir.path().join("pics").join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
    ok(&seqnet(dir.path(), &TRAIN_PICS));
    let (_, err) = ok_out_err(&seqnet(
        dir.path(),
        &[
            "viz",
            "mistakes",
            "--model",
            "run/final.safetensors",
            "--dataset",
            "swapped",
        ],
    ));
    assert!(err.contains("wrote mistakes.png"), "{err}");
    // Each mistake is 32×32 values drawn 2×2 pixels each, all coloured.
    let coloured = coloured_pixels(&dir.path().join("mistakes.png"));
    assert!(coloured >= 64 * 64, "{coloured} coloured pixels");
    // An image file is prepared as predict prepares it for this model (scaled, not made
    // a digit), and the input drawn in its colours: 32×32 values of 3×3 pixels below the
    // 58-pixel header and the block's 22-pixel title, 16 pixels from the left.
    ok(&seqnet(
        dir.path(),
        &[
            "viz",
            "activations",
            "--model",
            "run/final.safetensors",
            "--image",
            "pics/apple/00.png",
        ],
    ));
    let middle = *png(&dir.path().join("activations.png")).get_pixel(16 + 48, 58 + 22 + 48);
    assert!(middle[0] > 150 && middle[2] < 100, "apple red: {middle:?}");
}

#[test]
fn image_folder_options_and_mistakes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("pics"), 3);
    // A network for grey images on RGB data: the error says so.
    let err = fails(&seqnet(
        dir.path(),
        &[
            "train",
            "--spec",
            "Conv2d(1, 4, 3) -> Flatten() -> LazyLinear(2)",
            "--dataset",
            "pics",
            "--epochs",
            "1",
            "--out",
            "a",
        ],
    ));
    assert!(err.contains("3×32×32"), "{err}");
    // --grey and --resize give 1×8×8 images.
    let (_, err) = ok_out_err(&seqnet(
        dir.path(),
        &[
            "train",
            "--spec",
            "Flatten() -> Linear(64, 2)",
            "--dataset",
            "pics",
            "--grey",
            "--resize",
            "8x8",
            "--holdout",
            "0.34",
            "--epochs",
            "1",
            "--out",
            "b",
        ],
    ));
    let data = message(&err, "data: ").unwrap_or_default();
    assert!(data.contains("grey 8×8 (resized)"), "{err}");
    assert!(data.contains("4 train / 2 test, holdout 0.34"), "{err}");
    let err = fails(&seqnet(
        dir.path(),
        &["train", "--dataset", "pics", "--resize", "8", "--out", "c"],
    ));
    assert!(err.contains("--resize '8' is not HxW"), "{err}");
    let err = fails(&seqnet(
        dir.path(),
        &["train", "--dataset", "pics", "--holdout", "1", "--out", "c"],
    ));
    assert!(err.contains("--holdout 1 must be a fraction"), "{err}");
    // Mixed sizes name two files and suggest --resize.
    image::RgbImage::new(20, 10)
        .save(dir.path().join("pics/sky/odd.png"))
        .unwrap();
    let err = fails(&seqnet(
        dir.path(),
        &["train", "--dataset", "pics", "--out", "d"],
    ));
    assert!(err.contains("odd.png is 20×10"), "{err}");
    assert!(err.contains("is 32×32"), "{err}");
    assert!(err.contains("--resize HxW"), "{err}");
    // The book's split is MNIST's.
    let err = fails(&seqnet(
        dir.path(),
        &[
            "train",
            "--dataset",
            "pics",
            "--split",
            "book",
            "--out",
            "e",
        ],
    ));
    assert!(
        err.contains("--split book is the book's MNIST split"),
        "{err}"
    );
}

/// `n` CIFAR-10 records with labels `i % 2`: class 0 reddish, class 1 bluish.
fn cifar_records(n: usize) -> Vec<u8> {
    support::images::cifar_records(
        n,
        |i| (i % 2) as u8,
        |i, k| {
            // Red is the first of the three planes.
            let base: u8 = if (i % 2 == 0) == (k < 1024) { 200 } else { 40 };
            base.saturating_add(noise((i * 5000 + k) as u32))
        },
    )
}

fn write_cifar(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), cifar_records(4)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_records(6)).unwrap();
}

#[test]
fn cifar10_trains_by_name_and_by_folder_with_its_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    // By name: the cache folder the tests' XDG_CACHE_HOME points at.
    let err = fails(&seqnet(
        dir.path(),
        &["train", "--dataset", "cifar10", "--out", "x"],
    ));
    assert!(err.contains("CIFAR-10 not found"), "{err}");
    assert!(err.contains("seqnet data fetch cifar10"), "{err}");
    write_cifar(&dir.path().join("cache/seqnet/cifar10/cifar-10-batches-bin"));
    let (out, err) = ok_out_err(&seqnet(
        dir.path(),
        &[
            "train",
            "--spec",
            RGB_SPEC,
            "--dataset",
            "cifar10",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--lr",
            "0.01",
            "--out",
            "run",
            "--json",
        ],
    ));
    let data = message(&err, "data: ").unwrap_or_default();
    assert!(data.contains("CIFAR-10 from"), "{err}");
    assert!(data.contains("20 train / 6 test"), "{err}");
    let recipe = message(&err, "recipe (").unwrap_or_default();
    assert!(
        recipe.contains("pixels (x − (0.4914, 0.4822, 0.4465))/(0.247, 0.2435, 0.2616)"),
        "{err}"
    );
    assert!(out.contains("test_accuracy"), "{out}");
    // The model records the per-channel normalisation and the class names; eval reads
    // the test file alone.
    let out = ok(&seqnet(
        dir.path(),
        &[
            "eval",
            "--model",
            "run/final.safetensors",
            "--dataset",
            "cifar10",
        ],
    ));
    assert!(out.contains("airplane"), "{out}");
    // By folder, with the files directly in it.
    write_cifar(&dir.path().join("flat"));
    ok(&seqnet(
        dir.path(),
        &[
            "train",
            "--spec",
            RGB_SPEC,
            "--dataset",
            "flat",
            "--epochs",
            "1",
            "--out",
            "run2",
        ],
    ));
    // A truncated file is named.
    std::fs::write(dir.path().join("flat/data_batch_2.bin"), vec![0u8; 5000]).unwrap();
    let err = fails(&seqnet(
        dir.path(),
        &[
            "train",
            "--spec",
            RGB_SPEC,
            "--dataset",
            "flat",
            "--out",
            "run3",
        ],
    ));
    assert!(err.contains("data_batch_2.bin: is 5,000 bytes"), "{err}");
}
