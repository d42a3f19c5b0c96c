//! `seqnet viz` and `seqnet export` end to end, in temporary folders, on a model trained
//! there for one epoch on 300 images of the embedded MNIST sample.

use std::path::{Path, PathBuf};

mod support;

use image::RgbImage;
use support::images::png;
use support::run::{fails, ok, seqnet, train_sample};

/// Trains the seed network for one epoch on 300 images into `dir/run`.
fn trained(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    let out = run.to_str().unwrap();
    ok(&seqnet(
        dir,
        &train_sample("300", &["--quiet", "--out", out]),
    ));
    run
}

/// Pixels that are neither white nor near-white background.
fn inked(img: &RgbImage) -> usize {
    img.pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count()
}

fn has_colour(img: &RgbImage, rgb: [u8; 3]) -> bool {
    img.pixels().any(|p| p.0 == rgb)
}

#[test]
fn viz_draws_every_picture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = trained(dir);
    let model = run.join("final.safetensors");
    let model = model.to_str().unwrap();

    // Filters: 20 kernels of 5×5 in one row; the first tile is coloured.
    ok(&seqnet(
        dir,
        &[
            "viz",
            "filters",
            "--model",
            model,
            "-o",
            "filters.png",
            "--threads",
            "1",
        ],
    ));
    let f = png(&dir.join("filters.png"));
    assert_eq!(f.dimensions(), (1160, 197));
    // Tile #0 (5×5 at 9 px a value) sits at x 16..61, y 80..125 (heading 64 + label 16).
    let tile_ink = (16..61)
        .flat_map(|x| (80..125).map(move |y| (x, y)))
        .filter(|&(x, y)| f.get_pixel(x, y).0 != [255, 255, 255])
        .count();
    assert!(
        tile_ink == 45 * 45,
        "the first filter tile is blank ({tile_ink} pixels)"
    );

    // Activations of a test image: the input and seven layers.
    ok(&seqnet(
        dir,
        &[
            "viz",
            "activations",
            "--model",
            model,
            "--dataset",
            "mnist-5k",
            "--index",
            "3",
            "-o",
            "act.png",
        ],
    ));
    let a = png(&dir.join("act.png"));
    assert_eq!(a.dimensions(), (1080, 890));
    assert!(
        inked(&a) > 20_000,
        "activations: {} inked pixels",
        inked(&a)
    );
    // The input digit: dark ink inside its 112-pixel box at (16, 80).
    let ink = (16..128)
        .flat_map(|x| (80..192).map(move |y| (x, y)))
        .filter(|&(x, y)| a.get_pixel(x, y).0[0] < 64)
        .count();
    assert!(ink > 300, "the input digit is missing ({ink} dark pixels)");

    // The same from an image file.
    let mut digit = image::GrayImage::from_pixel(60, 60, image::Luma([255]));
    for t in 0..40 {
        for w in 0..6 {
            digit.put_pixel(28 + w, 10 + t, image::Luma([0]));
        }
    }
    digit.save(dir.join("one.png")).unwrap();
    ok(&seqnet(
        dir,
        &[
            "viz",
            "activations",
            "--model",
            model,
            "--image",
            "one.png",
            "-o",
            "act1.png",
        ],
    ));
    assert_eq!(png(&dir.join("act1.png")).dimensions(), (1080, 890));

    // Curves: fixed size, the train-loss line and the test-accuracy line are drawn.
    ok(&seqnet(
        dir,
        &[
            "viz",
            "curves",
            "--run",
            run.to_str().unwrap(),
            "-o",
            "curves.png",
        ],
    ));
    let c = png(&dir.join("curves.png"));
    assert_eq!(c.dimensions(), (1000, 420));
    assert!(has_colour(&c, [31, 119, 180]), "no train-loss line");
    assert!(has_colour(&c, [44, 160, 44]), "no test-accuracy line");
    // Without -o it lands in the run folder.
    ok(&seqnet(
        dir,
        &["viz", "curves", "--run", run.to_str().unwrap()],
    ));
    assert!(run.join("curves.png").exists());

    // Confusion matrix: 10×10 cells of 48 px from (80, 92); the diagonal is dark.
    ok(&seqnet(
        dir,
        &[
            "viz",
            "confusion",
            "--model",
            model,
            "--dataset",
            "mnist-5k",
            "-o",
            "confusion.png",
        ],
    ));
    let m = png(&dir.join("confusion.png"));
    assert_eq!(m.dimensions(), (640, 624));
    // Every cell is shaded by its share of the row: the 100 cells hold several shades,
    // and a one-epoch model on 300 images still puts most of some row in one cell.
    let mut shades: Vec<[u8; 3]> = (0..100)
        .map(|i| {
            m.get_pixel(80 + 48 * (i % 10) + 3, 92 + 48 * (i / 10) + 3)
                .0
        })
        .collect();
    assert!(
        shades.iter().any(|p| p[0] < 60 && p[2] > 100),
        "no dark cell"
    );
    shades.sort_unstable();
    shades.dedup();
    assert!(shades.len() >= 3, "the cells have {} shades", shades.len());

    // Mistakes: at most 12, in rows of 10 → 2 rows of 130 px.
    ok(&seqnet(
        dir,
        &[
            "viz",
            "mistakes",
            "--model",
            model,
            "--dataset",
            "mnist-5k",
            "--max",
            "12",
            "-o",
            "mistakes.png",
        ],
    ));
    let k = png(&dir.join("mistakes.png"));
    assert_eq!(k.dimensions(), (998, 58 + 2 * 130 + 16));
    assert!(inked(&k) > 5_000);

    // The same command draws the same bytes.
    ok(&seqnet(
        dir,
        &[
            "viz",
            "confusion",
            "--model",
            model,
            "--dataset",
            "mnist-5k",
            "-o",
            "again.png",
        ],
    ));
    assert_eq!(
        std::fs::read(dir.join("confusion.png")).unwrap(),
        std::fs::read(dir.join("again.png")).unwrap()
    );
}

#[test]
fn viz_rejects_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let err = fails(&seqnet(
        dir,
        &["viz", "filters", "--model", "missing.safetensors"],
    ));
    assert!(err.contains("missing.safetensors"), "{err}");
    let err = fails(&seqnet(dir, &["viz", "curves", "--run", "."]));
    assert!(err.contains("metrics.jsonl"), "{err}");

    let run = trained(dir);
    let model = run.join("final.safetensors");
    let model = model.to_str().unwrap();
    let err = fails(&seqnet(
        dir,
        &["viz", "filters", "--model", model, "--layer", "1"],
    ));
    assert!(
        err.contains("layer 1 is ReLU(), not a convolution"),
        "{err}"
    );
    assert!(err.contains("convolution layers are: 0"), "{err}");
    let err = fails(&seqnet(
        dir,
        &["viz", "filters", "--model", model, "--layer", "7"],
    ));
    assert!(err.contains("layer 7 does not exist"), "{err}");
    let err = fails(&seqnet(
        dir,
        &[
            "viz",
            "activations",
            "--model",
            model,
            "--dataset",
            "mnist-5k",
            "--index",
            "1000",
        ],
    ));
    assert!(
        err.contains("--index 1000") && err.contains("0 to 999"),
        "{err}"
    );
    let err = fails(&seqnet(
        dir,
        &[
            "viz",
            "activations",
            "--model",
            model,
            "--image",
            "nope.png",
        ],
    ));
    assert!(err.contains("nope.png"), "{err}");
    let err = fails(&seqnet(
        dir,
        &["viz", "mistakes", "--model", model, "--max", "0"],
    ));
    assert!(err.contains("--max 0"), "{err}");
    assert!(!dir.join("filters.png").exists() && !dir.join("activations.png").exists());
}

#[test]
fn export_writes_an_onnx_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let err = fails(&seqnet(
        dir,
        &[
            "export",
            "--model",
            "missing.safetensors",
            "--onnx",
            "m.onnx",
        ],
    ));
    assert!(err.contains("missing.safetensors"), "{err}");

    let run = trained(dir);
    let model = run.join("final.safetensors");
    let out = seqnet(
        dir,
        &[
            "export",
            "--model",
            model.to_str().unwrap(),
            "--onnx",
            "m.onnx",
        ],
    );
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Conv, Relu, MaxPool, Flatten, Gemm, Relu, Gemm"),
        "{said}"
    );
    let bytes = std::fs::read(dir.join("m.onnx")).unwrap();
    // ir_version 8, then the producer name.
    assert_eq!(&bytes[..4], &[0x08, 0x08, 0x12, 0x06]);
    assert_eq!(&bytes[4..10], b"seqnet");
    let has = |s: &[u8]| bytes.windows(s.len()).any(|w| w == s);
    assert!(has(b"0.weight") && has(b"6.bias") && has(b"logits") && has(b"transB"));
    // 289,630 float parameters, 4 bytes each, plus the graph.
    assert!(
        bytes.len() > 289_630 * 4 && bytes.len() < 289_630 * 4 + 20_000,
        "{}",
        bytes.len()
    );
}
