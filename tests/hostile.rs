//! Hostile input, class by class: every path that reads outside data (IDX datasets,
//! batch files, model files, input tensors, images, specs, arguments) must answer a
//! broken, lying or absurd input with one error paragraph that names the file or the
//! argument and the problem, a non-zero exit code, and never a panic, a hang or an
//! out-of-memory.
//!
//! Each case runs the binary in a temporary folder under a 60-second watchdog (a hang
//! fails the test and the process is killed), and most also run through the library.
//! The regression cases found by fuzzing (fuzz/) are at the end.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use safetensors::tensor::{Dtype, TensorView};
use seqnet::data::idx;
use seqnet::io::{image as img, model};
use seqnet::spec;
use support::idx::{gz, idx_images, idx_labels};

/// The longest any single case may run: far more than any of them needs.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The largest count an IDX header can claim.
const MAX: usize = u32::MAX as usize;

// ---------------------------------------------------------------------------------------
// Running the binary

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `seqnet args` in `dir`, stdin from `stdin`, under the watchdog: a run still
/// going after [`WATCHDOG`] is killed and the test fails as a hang.
fn run_with_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = support::run::command(dir);
    cmd.args(args);
    let (output, elapsed) = support::run::watched(cmd, stdin, WATCHDOG);
    let (stdout, stderr) = support::run::text(&output);
    Run {
        status: output.status,
        stdout,
        stderr,
        elapsed,
    }
}

fn run(dir: &Path, args: &[&str]) -> Run {
    run_with_stdin(dir, args, None)
}

/// Asserts a clean failure: exit code 1 (not a panic's 101, not a signal such as the
/// OOM killer's), no panic message, one `error:` paragraph containing every needle.
/// Returns the message.
fn fails(what: &str, r: &Run, needles: &[&str]) -> String {
    let err = r.stderr.trim_end();
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: seqnet panicked:\n{err}"
    );
    assert!(
        !err.contains("memory allocation") && !err.contains("capacity overflow"),
        "{what}: allocation failure:\n{err}"
    );
    assert_eq!(
        r.status.code(),
        Some(1),
        "{what}: expected exit code 1, got {:?}\nstdout:\n{}\nstderr:\n{err}",
        r.status,
        r.stdout
    );
    // Warnings may come first; the error is the last paragraph and is the only one.
    let at = err
        .find("error: ")
        .unwrap_or_else(|| panic!("{what}: no 'error: ' line:\n{err}"));
    let message = &err[at..];
    assert_eq!(
        message.matches("error: ").count(),
        1,
        "{what}: more than one error paragraph:\n{err}"
    );
    assert!(
        !message.contains("\n\n"),
        "{what}: the error is not one paragraph:\n{message}"
    );
    for needle in needles {
        assert!(
            message.contains(needle),
            "{what}: expected '{needle}' in:\n{message}"
        );
    }
    message.to_string()
}

fn succeeds(what: &str, r: &Run) {
    assert!(
        r.status.success(),
        "{what}: seqnet failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        r.status,
        r.stdout,
        r.stderr
    );
}

/// A library call that must fail without panicking; returns the message.
fn lib_err<T, E: std::fmt::Display>(what: &str, f: impl FnOnce() -> Result<T, E>) -> String {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("{what}: the library panicked"));
    match r {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e.to_string(),
    }
}

fn has_all(what: &str, message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            message.contains(needle),
            "{what}: expected '{needle}' in:\n{message}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Making files

/// `n` 28×28 images with some ink, and labels cycling 0..10.
fn digits(n: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels = (0..n * 784).map(|i| ((i * 37) % 256) as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (pixels, labels)
}

/// The four standard files of a valid small dataset, by name.
fn valid_set() -> Vec<(&'static str, Vec<u8>)> {
    let (train_px, train_lab) = digits(20);
    let (test_px, test_lab) = digits(10);
    vec![
        ("train-images-idx3-ubyte", idx_images(20, 28, 28, &train_px)),
        ("train-labels-idx1-ubyte", idx_labels(&train_lab)),
        ("t10k-images-idx3-ubyte", idx_images(10, 28, 28, &test_px)),
        ("t10k-labels-idx1-ubyte", idx_labels(&test_lab)),
    ]
}

fn write_set(dir: &Path, files: &[(&str, Vec<u8>)]) {
    std::fs::create_dir_all(dir).expect("dataset folder");
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write dataset file");
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A safetensors file from (name, dtype, shape, bytes) and metadata.
fn safetensors_file(
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
    meta: &[(&str, &str)],
) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                TensorView::new(*d, s.clone(), b).expect("valid view"),
            )
        })
        .collect();
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // (safetensors 0.8 cannot serialise metadata without tensors: see
    // seqnet::io::safetensors_file::write_atomic.)
    safetensors::serialize(views, (!meta.is_empty()).then_some(meta)).expect("serialize")
}

/// A tiny valid model: 2×2 grey images, Flatten then Linear(4, 2).
const TINY_SPEC: &str = "Flatten() -> Linear(4, 2)";
const TINY_INPUT: &str = "1x2x2";

fn tiny_tensors() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
    vec![
        (
            "1.weight",
            Dtype::F32,
            vec![2, 4],
            f32_bytes(&[0.5, -0.5, 0.25, 0.0, 1.0, 0.0, -1.0, 0.5]),
        ),
        ("1.bias", Dtype::F32, vec![2], f32_bytes(&[0.1, -0.1])),
    ]
}

fn tiny_model() -> Vec<u8> {
    safetensors_file(
        &tiny_tensors(),
        &[("seqnet.spec", TINY_SPEC), ("seqnet.input", TINY_INPUT)],
    )
}

/// A valid 2×2 input batch of `n` images.
fn tiny_input(n: usize) -> Vec<u8> {
    safetensors_file(
        &[(
            "input",
            Dtype::F32,
            vec![n, 1, 2, 2],
            f32_bytes(&vec![0.5; n * 4]),
        )],
        &[],
    )
}

/// A PNG of a dark digit-like stroke on white, `w`×`h`.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut pixels = vec![255u8; (w * h) as usize];
    for y in h / 4..3 * h / 4 {
        let x = w / 2;
        pixels[(y * w + x) as usize] = 0;
    }
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_raw(w, h, pixels)
        .expect("pixels")
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A PNG signature and IHDR chunk (with a correct CRC) declaring `w`×`h` 8-bit grey, and
/// nothing after it: a header that lies about a huge image.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    // A few bytes of a (lying) IDAT chunk.
    out.extend_from_slice(&[0, 0, 0, 4, b'I', b'D', b'A', b'T', 1, 2, 3, 4, 0, 0, 0, 0]);
    out
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

// ---------------------------------------------------------------------------------------
// IDX datasets

/// A dataset folder with one broken file, through `seqnet train --dataset DIR`: the
/// error names the broken file and the problem.
#[test]
fn idx_datasets_with_one_broken_file_are_refused_by_train() {
    let (px, lab) = digits(20);
    let mut cut = idx_images(20, 28, 28, &px);
    cut.truncate(16 + 784 * 3 + 100);
    // 2^32 − 1 images of 28×28: 3.4 TB declared in a file of 16 KB.
    let billions = idx_images(MAX, 28, 28, &px);
    // 5 million images: under the 4 GiB cap, so the gzip is inflated and found short.
    let millions = idx_images(5_000_000, 28, 28, &px);
    let mut corrupt = gz(&idx_images(20, 28, 28, &px));
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[12..mid] {
        *b ^= 0x5a;
    }
    let whole = gz(&idx_images(20, 28, 28, &px));
    let mut bad_labels = lab.clone();
    bad_labels[7] = 10;
    let mut worse_labels = lab.clone();
    worse_labels[3] = 255;
    let mut zero_rows = idx_images(20, 28, 28, &px);
    zero_rows[8..12].copy_from_slice(&0u32.to_be_bytes());
    let mut zero_cols = idx_images(20, 28, 28, &px);
    zero_cols[12..16].copy_from_slice(&0u32.to_be_bytes());
    let (px10, _) = digits(10);
    let small_test = idx_images(10, 14, 56, &px10);

    // (case, file replaced, new name (None: same), bytes, expected in the message)
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "labels file as images",
            "train-images-idx3-ubyte",
            None,
            idx_labels(&lab),
            vec!["magic number 2049, expected 2051", "labels file"],
        ),
        (
            "images file as labels",
            "t10k-labels-idx1-ubyte",
            None,
            idx_images(10, 28, 28, &px[..7840]),
            vec!["magic number 2051, expected 2049", "images file"],
        ),
        (
            "truncated data",
            "train-images-idx3-ubyte",
            None,
            cut,
            vec!["truncated", "20 images", "holds 2452"],
        ),
        (
            "truncated header",
            "train-labels-idx1-ubyte",
            None,
            vec![0, 0, 8, 1, 0, 0],
            vec!["truncated header"],
        ),
        (
            "billions of images claimed, raw",
            "train-images-idx3-ubyte",
            None,
            billions.clone(),
            vec!["4294967295 images", "truncated"],
        ),
        (
            "billions of images claimed, gzipped",
            "train-images-idx3-ubyte",
            Some("train-images-idx3-ubyte.gz"),
            gz(&billions),
            vec!["4294967295 images", "4 GiB"],
        ),
        (
            "millions of images claimed, gzipped",
            "train-images-idx3-ubyte",
            Some("train-images-idx3-ubyte.gz"),
            gz(&millions),
            vec!["5000000 images", "decompresses to"],
        ),
        (
            "zero rows",
            "train-images-idx3-ubyte",
            None,
            zero_rows,
            vec!["declares 0 rows"],
        ),
        (
            "zero columns",
            "t10k-images-idx3-ubyte",
            None,
            zero_cols,
            vec!["declares 0 columns"],
        ),
        (
            "zero labels",
            "t10k-labels-idx1-ubyte",
            None,
            idx_labels(&[]),
            vec!["declares 0 labels"],
        ),
        (
            "fewer labels than images",
            "train-labels-idx1-ubyte",
            None,
            idx_labels(&lab[..15]),
            vec![
                "holds 15 labels",
                "holds 20 images",
                "do not belong together",
            ],
        ),
        (
            "label 10",
            "train-labels-idx1-ubyte",
            None,
            idx_labels(&bad_labels),
            vec!["label 10 (image 7)", "10 classes"],
        ),
        (
            "label 255",
            "train-labels-idx1-ubyte",
            None,
            idx_labels(&worse_labels),
            vec!["label 255 (image 3)"],
        ),
        (
            "corrupted gzip",
            "train-images-idx3-ubyte",
            Some("train-images-idx3-ubyte.gz"),
            corrupt,
            vec!["corrupt gzip data"],
        ),
        (
            "gzip cut short",
            "train-images-idx3-ubyte",
            Some("train-images-idx3-ubyte.gz"),
            whole[..whole.len() / 2].to_vec(),
            vec!["corrupt gzip data"],
        ),
        (
            "junk named .gz",
            "t10k-images-idx3-ubyte",
            Some("t10k-images-idx3-ubyte.gz"),
            b"<html>this is not gzip</html> or anything else".to_vec(),
            vec!["magic number"],
        ),
        (
            "binary junk named .gz",
            "t10k-labels-idx1-ubyte",
            Some("t10k-labels-idx1-ubyte.gz"),
            b"\x12\x34\x56\x78 junk junk junk".to_vec(),
            vec!["not gzip-compressed"],
        ),
        (
            "empty images file",
            "train-images-idx3-ubyte",
            None,
            Vec::new(),
            vec!["empty file (0 bytes)"],
        ),
        (
            "empty labels file",
            "t10k-labels-idx1-ubyte",
            None,
            Vec::new(),
            vec!["empty file (0 bytes)"],
        ),
        (
            "empty gzip",
            "t10k-labels-idx1-ubyte",
            Some("t10k-labels-idx1-ubyte.gz"),
            Vec::new(),
            vec!["empty file (0 bytes)"],
        ),
        (
            "gzip of nothing",
            "t10k-labels-idx1-ubyte",
            Some("t10k-labels-idx1-ubyte.gz"),
            gz(&[]),
            vec!["decompresses to nothing"],
        ),
        (
            "trailing bytes",
            "t10k-labels-idx1-ubyte",
            None,
            [idx_labels(&lab[..10]), vec![1, 2, 3]].concat(),
            vec!["3 bytes of trailing data"],
        ),
        (
            "test images of another size",
            "t10k-images-idx3-ubyte",
            None,
            small_test,
            vec!["14×56", "28×28"],
        ),
    ];

    let root = tempdir();
    for (i, (what, replaced, new_name, bytes, needles)) in cases.into_iter().enumerate() {
        let dir = root.path().join(format!("set{i}"));
        let files: Vec<(&str, Vec<u8>)> = valid_set()
            .into_iter()
            .filter(|(name, _)| *name != replaced)
            .chain(std::iter::once((
                new_name.unwrap_or(replaced),
                bytes.clone(),
            )))
            .collect();
        write_set(&dir, &files);
        let r = run(
            root.path(),
            &[
                "train",
                "--dataset",
                dir.to_str().expect("utf-8 path"),
                "--epochs",
                "1",
                "--quiet",
                "--out",
                "run",
            ],
        );
        let msg = fails(what, &r, &needles);
        // The message names the file at fault (the labels file for a count mismatch).
        let named = new_name.unwrap_or(replaced);
        let blamed = if what.contains("labels than") {
            "train-labels-idx1-ubyte"
        } else {
            named
        };
        assert!(
            msg.contains(blamed),
            "{what}: '{blamed}' not named in:\n{msg}"
        );
        assert!(
            r.elapsed < Duration::from_secs(30),
            "{what}: took {:?}",
            r.elapsed
        );

        // The same bytes through the library: Err naming the file, never a panic.
        // (Labels out of range are the dataset's to refuse, not the IDX reader's.)
        if !what.contains("labels than")
            && !what.contains("another size")
            && !what.starts_with("label ")
        {
            let is_labels = named.contains("labels");
            let msg = if is_labels {
                lib_err(what, || idx::labels_from_bytes(&bytes, named))
            } else {
                lib_err(what, || idx::images_from_bytes(&bytes, named))
            };
            assert!(msg.starts_with(named), "{what}: {msg}");
        }
    }
    // The valid set itself trains, so the cases above fail for their broken file only.
    let dir = root.path().join("valid");
    write_set(&dir, &valid_set());
    let r = run(
        root.path(),
        &[
            "train",
            "--dataset",
            dir.to_str().expect("utf-8 path"),
            "--spec",
            "Flatten() -> Linear(784, 10)",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "run",
        ],
    );
    succeeds("the valid set", &r);
}

/// The library readers on the worst claims: every one an error, found without reading
/// or allocating what the header declares.
#[test]
fn idx_library_readers_refuse_lying_headers() {
    let (px, lab) = digits(2);
    let name = "train-images-idx3-ubyte";
    let cases: Vec<(&str, Vec<u8>, bool, Vec<&str>)> = vec![
        (
            "2^32-1 images raw",
            idx_images(MAX, 28, 28, &px),
            true,
            vec!["truncated", "4294967295 images"],
        ),
        (
            "2^32-1 × 2^32-1 × 2^32-1 raw",
            idx_images(MAX, MAX, MAX, &px),
            true,
            vec!["truncated"],
        ),
        (
            "2^32-1 × 2^32-1 × 2^32-1 gzipped",
            gz(&idx_images(MAX, MAX, MAX, &px)),
            true,
            vec!["4 GiB"],
        ),
        (
            "2^32-1 labels gzipped",
            gz(&[&[0, 0, 8, 1][..], &u32::MAX.to_be_bytes(), &lab].concat()),
            false,
            vec!["decompresses to 2"],
        ),
        ("one byte", vec![0], true, vec!["too short"]),
        (
            "i32 IDX",
            [
                &[0, 0, 0x0c, 3][..],
                &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7],
            ]
            .concat(),
            true,
            vec!["i32", "only u8"],
        ),
    ];
    for (what, bytes, images, needles) in cases {
        let msg = if images {
            lib_err(what, || idx::images_from_bytes(&bytes, name))
        } else {
            lib_err(what, || idx::labels_from_bytes(&bytes, name))
        };
        assert!(msg.starts_with(name), "{what}: {msg}");
        has_all(what, &msg, &needles);
    }
}

/// A gzip bomb: a 1-image header followed by 256 MiB of zeros compressed to ~256 KB.
/// Reading stops a bounded amount past the declared size.
#[test]
fn idx_gzip_bomb_is_refused_after_a_bounded_read() {
    let mut raw = idx_images(1, 28, 28, &[0; 784]);
    raw.resize(raw.len() + (256 << 20), 0);
    let bomb = gz(&raw);
    drop(raw);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let start = Instant::now();
    let msg = lib_err("gzip bomb", || idx::images_from_bytes(&bomb, "bomb.gz"));
    has_all("gzip bomb", &msg, &["more than 1 MiB of trailing data"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Batch files (train --train-data)

#[test]
fn batch_files_are_checked() {
    let dir = tempdir();
    let images = |n: usize| vec![7u8; n * 4];
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "not safetensors",
            b"hello".to_vec(),
            vec!["not a readable safetensors file"],
        ),
        (
            "header length 2^60",
            [&(1u64 << 60).to_le_bytes()[..], b"{}"].concat(),
            vec!["not a readable safetensors file"],
        ),
        (
            "no labels",
            safetensors_file(&[("images", Dtype::U8, vec![2, 2, 2], images(2))], &[]),
            vec!["no tensor `labels`", "holds: images"],
        ),
        (
            "label 10",
            safetensors_file(
                &[
                    ("images", Dtype::U8, vec![2, 2, 2], images(2)),
                    ("labels", Dtype::U8, vec![2], vec![1, 10]),
                ],
                &[],
            ),
            vec!["label 10 (image 1)"],
        ),
        (
            "negative label",
            safetensors_file(
                &[
                    ("images", Dtype::U8, vec![2, 2, 2], images(2)),
                    (
                        "labels",
                        Dtype::I64,
                        vec![2],
                        [1i64, -3].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ),
                ],
                &[],
            ),
            vec!["label -3 (image 1) is negative"],
        ),
        (
            "f64 images",
            safetensors_file(
                &[
                    ("images", Dtype::F64, vec![1, 2, 2], vec![0; 32]),
                    ("labels", Dtype::U8, vec![1], vec![1]),
                ],
                &[],
            ),
            vec!["tensor `images` is F64"],
        ),
        (
            "NaN pixels",
            safetensors_file(
                &[
                    (
                        "images",
                        Dtype::F32,
                        vec![1, 2, 2],
                        f32_bytes(&[0.0, f32::NAN, 0.0, 0.0]),
                    ),
                    ("labels", Dtype::U8, vec![1], vec![1]),
                ],
                &[],
            ),
            vec!["NaN", "finite"],
        ),
        (
            "labels for another count",
            safetensors_file(
                &[
                    ("images", Dtype::U8, vec![2, 2, 2], images(2)),
                    ("labels", Dtype::U8, vec![3], vec![1, 2, 3]),
                ],
                &[],
            ),
            vec!["tensor `labels` has shape [3], expected [2]"],
        ),
        (
            "zero images",
            safetensors_file(
                &[
                    ("images", Dtype::U8, vec![0, 2, 2], Vec::new()),
                    ("labels", Dtype::U8, vec![0], Vec::new()),
                ],
                &[],
            ),
            vec!["at least 1"],
        ),
        (
            "bad classes metadata",
            safetensors_file(
                &[
                    ("images", Dtype::U8, vec![2, 2, 2], images(2)),
                    ("labels", Dtype::U8, vec![2], vec![0, 1]),
                ],
                &[("seqnet.classes", "lots")],
            ),
            vec!["seqnet.classes", "\"lots\""],
        ),
    ];
    for (i, (what, bytes, needles)) in cases.into_iter().enumerate() {
        let name = format!("batch{i}.safetensors");
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).expect("write batch");
        let r = run(
            dir.path(),
            &[
                "train",
                "--train-data",
                &name,
                "--spec",
                "Flatten() -> LazyLinear(10)",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                "run",
            ],
        );
        let mut all = needles.clone();
        all.push(&name);
        fails(what, &r, &all);
        let msg = lib_err(what, || seqnet::data::load_safetensors_batch(&path));
        has_all(what, &msg, &needles);
    }
}

// ---------------------------------------------------------------------------------------
// Model files (predict --model, summary --model)

#[test]
fn model_files_are_checked_by_predict_and_summary() {
    let dir = tempdir();
    std::fs::write(dir.path().join("digit.png"), png(2, 2)).expect("png");
    let valid = tiny_model();
    let with_meta = |tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], meta: &[(&str, &str)]| {
        safetensors_file(tensors, meta)
    };
    let spec_meta = [("seqnet.spec", TINY_SPEC), ("seqnet.input", TINY_INPUT)];
    let mut header_2_60 = (1u64 << 60).to_le_bytes().to_vec();
    header_2_60.extend_from_slice(b"{\"a\": 1}");
    let mut huge_header = (100u64 << 20).to_le_bytes().to_vec();
    huge_header.extend_from_slice(b"{\"__metadata__\": {}}");
    let mut not_json = 12u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"not json at!");
    let mut offsets_past_end = 60u64.to_le_bytes().to_vec();
    offsets_past_end
        .extend_from_slice(br#"{"1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8000]}}"#);
    let mut weight_t = tiny_tensors();
    weight_t[0].2 = vec![4, 2];
    // Extra and missing and mis-shaped, all at once.
    let mixed: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("1.weight", Dtype::F32, vec![4, 2], f32_bytes(&[0.0; 8])),
        ("2.weight", Dtype::F32, vec![1], f32_bytes(&[0.0])),
        ("extra", Dtype::F32, vec![2], f32_bytes(&[0.0; 2])),
    ];
    let as_dtype = |dtype: Dtype, size: usize| {
        let mut t = tiny_tensors();
        t[0] = ("1.weight", dtype, vec![2, 4], vec![0; 8 * size]);
        with_meta(&t, &spec_meta)
    };

    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "empty file",
            Vec::new(),
            vec!["not a readable safetensors file"],
        ),
        (
            "truncated",
            valid[..valid.len() / 2].to_vec(),
            vec!["not a readable safetensors file", "truncated"],
        ),
        (
            "truncated by 1 byte",
            valid[..valid.len() - 1].to_vec(),
            vec!["not a readable safetensors file"],
        ),
        (
            "header length 2^60",
            header_2_60,
            vec!["not a readable safetensors file"],
        ),
        (
            "header of 100 MiB declared in a small file",
            huge_header,
            vec!["not a readable safetensors file"],
        ),
        (
            "header not JSON",
            not_json,
            vec!["not a readable safetensors file"],
        ),
        (
            "offsets past the end",
            offsets_past_end,
            vec!["not a readable safetensors file"],
        ),
        (
            "a PyTorch pickle",
            b"PK\x03\x04 pytorch zip archive".to_vec(),
            vec!["not a readable safetensors file", "save_file"],
        ),
        (
            "f64 weight",
            as_dtype(Dtype::F64, 8),
            vec!["'1.weight' is F64", "F32"],
        ),
        (
            "f16 weight",
            as_dtype(Dtype::F16, 2),
            vec!["'1.weight' is F16", "F32"],
        ),
        (
            "i64 weight",
            as_dtype(Dtype::I64, 8),
            vec!["'1.weight' is I64", "F32"],
        ),
        (
            "transposed weight",
            with_meta(&weight_t, &spec_meta),
            vec!["tensor '1.weight' has shape 4×2 but the network needs 2×4"],
        ),
        (
            "missing, unexpected and mis-shaped together",
            with_meta(&mixed, &spec_meta),
            vec![
                "tensor '1.weight' has shape 4×2 but the network needs 2×4",
                "missing tensor '1.bias' of shape 2",
                "unexpected tensor '2.weight'",
                "unexpected tensor 'extra'",
            ],
        ),
        (
            "no tensors at all",
            {
                let header = serde_json::json!({ "__metadata__": {
                    "seqnet.spec": TINY_SPEC, "seqnet.input": TINY_INPUT } })
                .to_string();
                [&(header.len() as u64).to_le_bytes()[..], header.as_bytes()].concat()
            },
            vec!["the 0 f32 values the file holds"],
        ),
        (
            "no seqnet.spec",
            with_meta(&tiny_tensors(), &[("seqnet.input", TINY_INPUT)]),
            vec!["no 'seqnet.spec' metadata"],
        ),
        (
            "no metadata at all",
            safetensors::serialize(
                tiny_tensors()
                    .iter()
                    .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).expect("view")))
                    .collect::<Vec<_>>(),
                None,
            )
            .expect("serialize"),
            vec!["no 'seqnet.spec' metadata"],
        ),
        (
            "no seqnet.input",
            with_meta(&tiny_tensors(), &[("seqnet.spec", TINY_SPEC)]),
            vec!["no 'seqnet.input' metadata"],
        ),
        (
            "malformed seqnet.spec",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", "Flatten( -> Linear(4, 2)"),
                    ("seqnet.input", TINY_INPUT),
                ],
            ),
            vec!["metadata seqnet.spec does not build a network", "expected"],
        ),
        (
            "unknown layer in seqnet.spec",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", "Flatten() -> Bilinear(4, 2)"),
                    ("seqnet.input", TINY_INPUT),
                ],
            ),
            vec!["metadata seqnet.spec", "Bilinear"],
        ),
        (
            "malformed seqnet.input",
            with_meta(
                &tiny_tensors(),
                &[("seqnet.spec", TINY_SPEC), ("seqnet.input", "two by two")],
            ),
            vec!["metadata seqnet.input", "two by two"],
        ),
        (
            "zero seqnet.input",
            with_meta(
                &tiny_tensors(),
                &[("seqnet.spec", TINY_SPEC), ("seqnet.input", "0x2x2")],
            ),
            vec!["metadata seqnet.input", "0x2x2"],
        ),
        (
            "huge seqnet.input",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", TINY_SPEC),
                    ("seqnet.input", "4294967296x4294967296x4294967296"),
                ],
            ),
            vec!["metadata seqnet.input", "more than 268435456 values"],
        ),
        (
            "malformed seqnet.normalize",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", TINY_SPEC),
                    ("seqnet.input", TINY_INPUT),
                    ("seqnet.normalize", "0.1,0"),
                ],
            ),
            vec!["seqnet.normalize", "std > 0"],
        ),
        (
            "malformed seqnet.classes",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", TINY_SPEC),
                    ("seqnet.input", TINY_INPUT),
                    ("seqnet.classes", "[1, 2"),
                ],
            ),
            vec!["seqnet.classes is not a JSON list"],
        ),
        (
            "weights for another network",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", "Flatten() -> Linear(4, 3)"),
                    ("seqnet.input", TINY_INPUT),
                ],
            ),
            vec!["15 parameters", "the 10 f32 values the file holds"],
        ),
        (
            "weights for another, smaller network",
            with_meta(
                &tiny_tensors(),
                &[
                    ("seqnet.spec", "Flatten() -> Linear(4, 1)"),
                    ("seqnet.input", TINY_INPUT),
                ],
            ),
            vec![
                "tensor '1.weight' has shape 2×4 but the network needs 1×4",
                "tensor '1.bias' has shape 2 but the network needs 1",
            ],
        ),
        (
            "spec for another input",
            with_meta(
                &tiny_tensors(),
                &[("seqnet.spec", TINY_SPEC), ("seqnet.input", "1x3x3")],
            ),
            vec![
                "metadata seqnet.spec does not build a network",
                "Linear(9, 2)",
            ],
        ),
        (
            // A 200-byte file whose spec declares 1.07 billion parameters: refused before
            // any of them is allocated.
            "a tiny file declaring a huge network",
            with_meta(
                &tiny_tensors(),
                &[
                    (
                        "seqnet.spec",
                        "Flatten() -> Linear(4, 32768) -> Linear(32768, 32768)",
                    ),
                    ("seqnet.input", TINY_INPUT),
                ],
            ),
            vec![
                "the 10 f32 values the file holds",
                "layer 1 Linear(in_features=4, out_features=32768",
            ],
        ),
    ];

    for (i, (what, bytes, needles)) in cases.into_iter().enumerate() {
        let name = format!("model{i}.safetensors");
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).expect("write model");
        let mut all = needles.clone();
        all.push(&name);
        let r = run(dir.path(), &["predict", "--model", &name, "digit.png"]);
        fails(&format!("predict: {what}"), &r, &all);
        let r = run(dir.path(), &["summary", "--model", &name]);
        fails(&format!("summary: {what}"), &r, &all);
        let msg = lib_err(what, || model::load(&path));
        has_all(what, &msg, &needles);
        let msg = lib_err(what, || model::load_bytes(&path, &bytes));
        has_all(what, &msg, &needles);
    }

    // The tiny model itself loads and predicts; so the cases fail for their fault only.
    std::fs::write(dir.path().join("tiny.safetensors"), &valid).expect("write");
    succeeds(
        "summary of the valid model",
        &run(dir.path(), &["summary", "--model", "tiny.safetensors"]),
    );
    succeeds(
        "predict with the valid model",
        &run(
            dir.path(),
            &["predict", "--model", "tiny.safetensors", "digit.png"],
        ),
    );

    // Not a file at all.
    let r = run(
        dir.path(),
        &["predict", "--model", "missing.safetensors", "digit.png"],
    );
    fails(
        "missing model",
        &r,
        &["missing.safetensors", "No such file"],
    );
    std::fs::create_dir(dir.path().join("folder.safetensors")).expect("mkdir");
    let r = run(dir.path(), &["summary", "--model", "folder.safetensors"]);
    fails("model is a folder", &r, &["folder.safetensors"]);
}

/// A model whose spec asks for absurd padding and kernels: small weights, but a forward
/// pass of hundreds of gigabytes. predict refuses it before running it.
#[test]
fn models_whose_forward_pass_is_absurd_are_refused_by_predict() {
    let dir = tempdir();
    std::fs::write(dir.path().join("digit.png"), png(28, 28)).expect("png");
    // 500×500 kernel, padding 500: 250,001 parameters (1 MB), but im2col would hold
    // 250,000 × 529 × 529 values (280 GB) per image.
    let k = 500usize;
    let spec = format!("Conv2d(1, 1, kernel_size={k}, padding={k})");
    let bytes = safetensors_file(
        &[
            (
                "0.weight",
                Dtype::F32,
                vec![1, 1, k, k],
                f32_bytes(&vec![0.0; k * k]),
            ),
            ("0.bias", Dtype::F32, vec![1], f32_bytes(&[0.0])),
        ],
        &[("seqnet.spec", &spec), ("seqnet.input", "1x28x28")],
    );
    std::fs::write(dir.path().join("wide.safetensors"), &bytes).expect("write");
    let r = run(
        dir.path(),
        &["predict", "--model", "wide.safetensors", "digit.png"],
    );
    fails(
        "absurd forward pass",
        &r,
        &["wide.safetensors", "per image", "kernel size"],
    );
    // Building the network already refuses a layer this expensive, so summary explains
    // why instead of printing it.
    fails(
        "summary of the absurd model",
        &run(dir.path(), &["summary", "--model", "wide.safetensors"]),
        &[
            "wide.safetensors",
            "multiply-adds per image",
            "layer 0 Conv2d",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Input tensors (predict --input)

#[test]
fn predict_input_tensors_are_checked() {
    let dir = tempdir();
    std::fs::write(dir.path().join("m.safetensors"), tiny_model()).expect("write");
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "wrong image size",
            safetensors_file(
                &[("input", Dtype::F32, vec![2, 1, 3, 3], f32_bytes(&[0.0; 18]))],
                &[],
            ),
            vec!["has shape 2×1×3×3", "N×1×2×2"],
        ),
        (
            "no channel dimension",
            safetensors_file(
                &[("input", Dtype::F32, vec![2, 2, 2], f32_bytes(&[0.0; 8]))],
                &[],
            ),
            vec!["has shape 2×2×2", "N×1×2×2"],
        ),
        (
            "scalar",
            safetensors_file(&[("input", Dtype::F32, vec![], f32_bytes(&[0.0]))], &[]),
            vec!["tensor 'input' has shape", "N×1×2×2"],
        ),
        (
            "no images",
            safetensors_file(&[("input", Dtype::F32, vec![0, 1, 2, 2], Vec::new())], &[]),
            vec!["holds no images"],
        ),
        (
            "f64",
            safetensors_file(&[("input", Dtype::F64, vec![1, 1, 2, 2], vec![0; 32])], &[]),
            vec!["tensor 'input' is F64", "f32"],
        ),
        (
            "u8",
            safetensors_file(&[("input", Dtype::U8, vec![1, 1, 2, 2], vec![0; 4])], &[]),
            vec!["tensor 'input' is U8"],
        ),
        (
            "no input tensor",
            safetensors_file(
                &[("x", Dtype::F32, vec![1, 1, 2, 2], f32_bytes(&[0.0; 4]))],
                &[],
            ),
            vec!["no tensor named 'input'", "it holds: x"],
        ),
        (
            "empty safetensors",
            safetensors_file(&[], &[]),
            vec!["no tensor named 'input'", "it holds: nothing"],
        ),
        (
            "not safetensors",
            b"input = [1, 2, 3]".to_vec(),
            vec!["not a readable safetensors file"],
        ),
        (
            "header length 2^60",
            (1u64 << 60).to_le_bytes().to_vec(),
            vec!["not a readable safetensors file"],
        ),
    ];
    for (i, (what, bytes, needles)) in cases.into_iter().enumerate() {
        let name = format!("x{i}.safetensors");
        std::fs::write(dir.path().join(&name), &bytes).expect("write input");
        let mut all = needles.clone();
        all.push(&name);
        let r = run(
            dir.path(),
            &[
                "predict",
                "--model",
                "m.safetensors",
                "--input",
                &name,
                "--output",
                "y.safetensors",
            ],
        );
        fails(what, &r, &all);
        assert!(
            !dir.path().join("y.safetensors").exists(),
            "{what}: output written on error"
        );
    }
    // The valid input predicts, in chunks or not: the same output.
    std::fs::write(dir.path().join("ok.safetensors"), tiny_input(3)).expect("write");
    succeeds(
        "valid input",
        &run(
            dir.path(),
            &[
                "predict",
                "--model",
                "m.safetensors",
                "--input",
                "ok.safetensors",
                "--output",
                "y.safetensors",
            ],
        ),
    );
    let y = std::fs::read(dir.path().join("y.safetensors")).expect("output");
    let y = safetensors::SafeTensors::deserialize(&y).expect("output parses");
    assert_eq!(y.tensor("logits").expect("logits").shape(), &[3, 2]);
    // Neither both nor neither of images and --input.
    let r = run(dir.path(), &["predict", "--model", "m.safetensors"]);
    fails("no inputs", &r, &["give either image files"]);
}

// ---------------------------------------------------------------------------------------
// Images (predict IMAGE)

#[test]
fn images_are_checked() {
    let dir = tempdir();
    std::fs::write(dir.path().join("m.safetensors"), tiny_model()).expect("write");
    let good = png(40, 40);
    let cases: Vec<(&str, &str, Vec<u8>, Vec<&str>)> = vec![
        ("zero bytes", "empty.png", Vec::new(), vec![]),
        (
            "zero bytes, no extension",
            "empty",
            Vec::new(),
            vec!["not a PNG or JPEG"],
        ),
        (
            "text",
            "note.png",
            b"this is a digit, honest".to_vec(),
            vec![],
        ),
        (
            "text, no extension",
            "note",
            b"this is a digit".to_vec(),
            vec!["not a PNG or JPEG"],
        ),
        (
            "truncated png",
            "cut.png",
            good[..good.len() / 2].to_vec(),
            vec![],
        ),
        (
            "png cut after its header",
            "header.png",
            good[..40].to_vec(),
            vec![],
        ),
        (
            "100000×100000 png header",
            "huge.png",
            png_header(100_000, 100_000),
            vec!["100000×100000", "scale it down"],
        ),
        (
            "9000×10 png header",
            "wide.png",
            png_header(9000, 10),
            vec!["9000×10"],
        ),
        ("0×0 png header", "zero.png", png_header(0, 0), vec![]),
        (
            "jpeg magic then junk",
            "photo.jpg",
            [&[0xff, 0xd8, 0xff, 0xe0][..], b"junk junk junk"].concat(),
            vec![],
        ),
        (
            "blank white image",
            "blank.png",
            {
                let mut out = std::io::Cursor::new(Vec::new());
                image::GrayImage::from_pixel(20, 20, image::Luma([255]))
                    .write_to(&mut out, image::ImageFormat::Png)
                    .expect("encode");
                out.into_inner()
            },
            vec!["blank"],
        ),
    ];
    for (what, name, bytes, needles) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).expect("write image");
        let mut all = needles.clone();
        all.push(name);
        let r = run(dir.path(), &["predict", "--model", "m.safetensors", name]);
        fails(what, &r, &all);
        let msg = lib_err(what, || img::load_digit(&path, &[1, 28, 28]));
        has_all(what, &msg, &all);
    }
    // A folder where an image should be.
    std::fs::create_dir(dir.path().join("dir.png")).expect("mkdir");
    fails(
        "a folder",
        &run(
            dir.path(),
            &["predict", "--model", "m.safetensors", "dir.png"],
        ),
        &["dir.png"],
    );
    // Raw pixels that do not match their declared size, and shapes images cannot fill.
    let msg = lib_err("pixel count", || {
        img::prepare_grey(&[0; 10], 4, 4, &[1, 28, 28])
    });
    has_all("pixel count", &msg, &["10 grey pixels", "4×4"]);
    let msg = lib_err("huge w×h", || {
        img::prepare_grey(&[0; 10], usize::MAX, 2, &[1, 28, 28])
    });
    has_all("huge w×h", &msg, &["10 grey pixels"]);
    for shape in [&[1, 0, 28][..], &[2, 28, 28], &[784], &[]] {
        let msg = lib_err("shape", || img::prepare_grey(&[0; 4], 2, 2, shape));
        has_all("shape", &msg, &["an image cannot fill"]);
    }
}

// ---------------------------------------------------------------------------------------
// Specs (summary SPEC, train --spec, and the library)

#[test]
fn hostile_specs_are_refused_with_a_located_message() {
    let dir = tempdir();
    let deep = format!("Conv2d(1, 2, {}5{})", "(".repeat(5000), ")".repeat(5000));
    let deep_seq = format!("{}ReLU(){}", "Sequential(".repeat(200), ")".repeat(200));
    let many = "Tanh,".repeat(10_001);
    let cases: Vec<(&str, String, Vec<&str>)> =
        vec![
        (
            "unclosed bracket",
            "Conv2d(1, 20, 5 -> ReLU()".into(),
            vec!["line 1, column", "expected ')'"],
        ),
        ("extra bracket", "Conv2d(1, 20, 5)) -> ReLU()".into(), vec!["line 1, column"]),
        ("stray bracket", "ReLU() ] Tanh()".into(), vec!["line 1, column"]),
        ("unclosed string", "Conv2d(1, 20, 5, padding='same)".into(), vec!["line 1"]),
        ("unknown layer", "Conv3d(1, 20, 5)".into(), vec!["Conv3d"]),
        ("misspelt layer", "Conv2D(1, 20, 5)".into(), vec!["did you mean Conv2d"]),
        ("unknown argument", "Conv2d(1, 20, 5, strides=2)".into(), vec!["did you mean 'stride'"]),
        ("empty", "".into(), vec!["spec"]),
        ("only separators", " -> , # nothing".into(), vec!["spec"]),
        (
            "Linear(10**12, 10**12)",
            "Flatten() -> Linear(10**12, 10**12)".into(),
            vec!["line 1"],
        ),
        (
            "Linear(1e12 as an int)",
            "Flatten() -> Linear(784, 1000000000000)".into(),
            vec!["more than seqnet allocates for one layer"],
        ),
        (
            "Conv2d(1, 10**9, 5)",
            "Conv2d(1, 1000000000, 5)".into(),
            vec!["too large"],
        ),
        (
            "integer beyond 64 bits",
            "Conv2d(1, 99999999999999999999999999, 5)".into(),
            vec!["does not fit in a 64-bit integer"],
        ),
        (
            "negative size",
            "Conv2d(1, -20, 5)".into(),
            vec!["out_channels must be at least 1"],
        ),
        (
            "zero kernel",
            "Conv2d(1, 20, 0)".into(),
            vec!["kernel_size must be at least 1"],
        ),
        (
            "stride 0",
            "MaxPool2d(2, stride=0)".into(),
            vec!["stride must be at least 1"],
        ),
        (
            "kernel larger than the input",
            "Conv2d(1, 20, 29)".into(),
            vec!["larger than the input"],
        ),
        (
            "padding 2^62",
            "Conv2d(1, 1, 3, padding=4611686018427387904)".into(),
            vec!["layer 0"],
        ),
        (
            "pool padding 2^62",
            "MaxPool2d(3, stride=9223372036854775807, padding=4611686018427387903, ceil_mode=True)"
                .into(),
            vec!["layer 0"],
        ),
        (
            "several layers each under the per-layer limit",
            "Flatten() -> Linear(784, 32768) -> Linear(32768, 32768)".into(),
            vec!["more than the 1073741824 seqnet allocates for one network"],
        ),
        ("dropout p = 1", "Dropout(1.0)".into(), vec!["p"]),
        ("dropout p = -0.1", "Dropout(-0.1)".into(), vec!["p"]),
        ("dropout p = 1e999", "Dropout(1e999)".into(), vec!["finite"]),
        ("dropout p = nan", "Dropout(nan)".into(), vec!["Dropout"]),
        ("softmax dim 5", "Flatten() -> Softmax(dim=5)".into(), vec!["dim"]),
        ("NUL byte", "Conv2d(1,\u{0}20, 5)".into(), vec!["line 1"]),
        ("escape sequence", "ReLU() \u{1b}[31mTanh()".into(), vec!["line 1"]),
        ("bidi override", "ReLU() \u{202e}Tanh()".into(), vec!["U+202E"]),
        (
            "bidi override in a string",
            "Conv2d(1, 2, 3, padding='\u{202e}same')".into(),
            vec!["padding expects"],
        ),
        (
            "deeply nested tuples",
            deep,
            vec!["nested more than 32 deep"],
        ),
        ("deeply nested Sequential", deep_seq, vec!["nested Sequential"]),
        ("10,001 layers", many, vec!["more than 10000 layers"]),
        (
            "non-ASCII digits",
            "Conv2d(١, 20, 5)".into(),
            vec!["line 1"],
        ),
    ];
    for (what, text, needles) in cases {
        // Through the library, with a located, typed error.
        let msg = lib_err(what, || spec::build(&text, &[1, 28, 28], 0));
        has_all(what, &msg, &needles);
        // Through the binary: as an argument when it fits in one, else on stdin.
        let r = if text.len() < 100_000 && !text.contains('\0') {
            run(dir.path(), &["summary", &text, "--input", "1x28x28"])
        } else {
            run_with_stdin(dir.path(), &["summary", "-"], Some(text.as_bytes()))
        };
        let msg = fails(what, &r, &needles);
        // Control characters are shown visibly, never written to the terminal raw.
        assert!(
            !msg.chars().any(|c| c.is_control() && c != '\n'),
            "{what}: raw control character in:\n{msg:?}"
        );
        assert!(
            !msg.contains('\u{202e}'),
            "{what}: raw bidi override in {msg:?}"
        );
    }
}

/// A megabyte of spec: refused by its length, quickly, from the library and from
/// standard input (an argument that long does not reach a program on Linux).
#[test]
fn a_megabyte_of_spec_is_refused_by_its_length() {
    let text = "ReLU() -> ".repeat(110_000) + "ReLU(";
    assert!(text.len() > 1 << 20);
    let start = Instant::now();
    let msg = lib_err("1 MB spec", || spec::build(&text, &[1, 28, 28], 0));
    has_all("1 MB spec", &msg, &["seqnet reads at most 65536 bytes"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let msg = lib_err("1 MB parse", || spec::parse(&text));
    has_all("1 MB parse", &msg, &["65536"]);
    let dir = tempdir();
    let r = run_with_stdin(dir.path(), &["summary", "-"], Some(text.as_bytes()));
    fails("1 MB spec on stdin", &r, &["65536"]);
    // Not UTF-8 on stdin.
    let r = run_with_stdin(dir.path(), &["summary", "-"], Some(b"ReLU() \xff\xfe"));
    fails("invalid UTF-8 on stdin", &r, &["standard input"]);
}

// ---------------------------------------------------------------------------------------
// Arguments

#[test]
fn bad_arguments_are_refused_by_name() {
    let dir = tempdir();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--dataset",
            "mnist-5k",
            "--limit",
            "50",
            "--quiet",
            "--out",
            "run",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "batch size 0",
            train(&["--batch-size", "0"]),
            vec!["--batch-size 0"],
        ),
        ("lr nan", train(&["--lr", "nan"]), vec!["--lr NaN"]),
        ("lr inf", train(&["--lr", "inf"]), vec!["--lr inf"]),
        ("lr -inf", train(&["--lr=-inf"]), vec!["--lr"]),
        ("lr 0", train(&["--lr", "0"]), vec!["--lr 0", "positive"]),
        (
            "lr -0.1",
            train(&["--lr", "-0.1"]),
            vec!["--lr -0.1", "positive"],
        ),
        (
            "lr 1e39 (f32 overflow)",
            train(&["--lr", "1e39"]),
            vec!["--lr"],
        ),
        ("lr words", train(&["--lr", "fast"]), vec!["--lr"]),
        (
            "lr-decay 0",
            train(&["--lr-decay", "0"]),
            vec!["--lr-decay 0"],
        ),
        (
            "momentum -1",
            train(&["--momentum", "-1"]),
            vec!["--momentum -1"],
        ),
        (
            "momentum nan",
            train(&["--momentum", "NaN"]),
            vec!["--momentum"],
        ),
        (
            "weight decay inf",
            train(&["--weight-decay", "inf"]),
            vec!["--weight-decay"],
        ),
        ("l2 -1", train(&["--l2", "-1"]), vec!["--l2"]),
        ("threads 0", train(&["--threads", "0"]), vec!["--threads 0"]),
        ("epochs 0", train(&["--epochs", "0"]), vec!["--epochs 0"]),
        ("epochs -1", train(&["--epochs=-1"]), vec!["--epochs"]),
        (
            "limit 0",
            [
                "train",
                "--dataset",
                "mnist-5k",
                "--limit",
                "0",
                "--quiet",
                "--out",
                "run",
            ]
            .map(String::from)
            .to_vec(),
            vec!["--limit 0"],
        ),
        (
            "normalize one number",
            train(&["--normalize", "0.1"]),
            vec!["0.1"],
        ),
        (
            "normalize std 0",
            train(&["--normalize", "0.1,0"]),
            vec!["0.1,0"],
        ),
        (
            "dropout 1.0",
            train(&["--spec", "Flatten() -> Dropout(1.0) -> Linear(784, 10)"]),
            vec!["Dropout", "p"],
        ),
        (
            "dropout -0.5",
            train(&["--spec", "Flatten() -> Dropout(p=-0.5) -> Linear(784, 10)"]),
            vec!["Dropout", "p"],
        ),
        (
            "dataset not there",
            [
                "train",
                "--dataset",
                "no/such/folder",
                "--quiet",
                "--out",
                "run",
            ]
            .map(String::from)
            .to_vec(),
            vec!["no/such/folder"],
        ),
        (
            "train data not there",
            vec![
                "train".into(),
                "--train-data".into(),
                "nope.safetensors".into(),
                "--quiet".into(),
            ],
            vec!["nope.safetensors"],
        ),
        (
            "summary --input 0x28x28",
            vec![
                "summary".into(),
                "ReLU()".into(),
                "--input".into(),
                "0x28x28".into(),
            ],
            vec!["0x28x28", "positive"],
        ),
        (
            "summary --input -1x28x28",
            vec!["summary".into(), "ReLU()".into(), "--input=-1x28x28".into()],
            vec!["-1x28x28"],
        ),
        (
            "summary --input empty",
            vec!["summary".into(), "ReLU()".into(), "--input=".into()],
            vec!["input shape"],
        ),
        (
            "summary --input overflowing",
            vec![
                "summary".into(),
                "ReLU()".into(),
                "--input".into(),
                "4294967296x4294967296x4294967296".into(),
            ],
            vec!["4294967296x4294967296x4294967296", "more than"],
        ),
        (
            "summary --input 1x100000x100000",
            vec![
                "summary".into(),
                "Conv2d(1, 20, 5)".into(),
                "--input".into(),
                "1x100000x100000".into(),
            ],
            vec!["1x100000x100000", "more than"],
        ),
        (
            "summary two sources",
            vec![
                "summary".into(),
                "ReLU()".into(),
                "--net".into(),
                "seed".into(),
            ],
            vec!["exactly one network"],
        ),
        (
            "summary unknown preset",
            vec!["summary".into(), "--net".into(), "nope".into()],
            vec!["nope"],
        ),
    ];
    for (what, args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(dir.path(), &args);
        // clap's own usage errors exit with 2 and print "error:" too; the rest exit 1.
        if r.status.code() == Some(2) {
            assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
            has_all(what, &r.stderr, &needles);
        } else {
            fails(what, &r, &needles);
        }
    }
}

// ---------------------------------------------------------------------------------------
// No hang, no out-of-memory: the worst claims finish quickly

/// The largest claims each input class can make, run one after another under the
/// watchdog: each must fail within seconds, not after reading or allocating what it
/// declares.
#[test]
fn the_worst_claims_finish_quickly() {
    let dir = tempdir();
    let (px, lab) = digits(20);
    let (test_px, test_lab) = digits(10);
    let set = |name: &str, train_images: Vec<u8>| {
        let d = dir.path().join(name);
        write_set(
            &d,
            &[
                ("train-images-idx3-ubyte.gz", train_images),
                ("train-labels-idx1-ubyte", idx_labels(&lab)),
                ("t10k-images-idx3-ubyte", idx_images(10, 28, 28, &test_px)),
                ("t10k-labels-idx1-ubyte", idx_labels(&test_lab)),
            ],
        );
        d.to_string_lossy().into_owned()
    };
    let raw_claim = set("raw", idx_images(MAX, MAX, MAX, &px));
    let gz_claim = set("gz", gz(&idx_images(5_000_000, 28, 28, &px)));
    std::fs::write(
        dir.path().join("huge-spec.safetensors"),
        safetensors_file(
            &tiny_tensors(),
            &[
                (
                    "seqnet.spec",
                    "Flatten() -> Linear(4, 32768) -> Linear(32768, 32768) -> Linear(32768, 32768)",
                ),
                ("seqnet.input", TINY_INPUT),
            ],
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("huge-header.safetensors"),
        [&(u64::MAX - 7).to_le_bytes()[..], b"{}"].concat(),
    )
    .expect("write");
    std::fs::write(dir.path().join("m.safetensors"), tiny_model()).expect("write");
    std::fs::write(dir.path().join("huge.png"), png_header(u32::MAX, u32::MAX)).expect("write");

    let worst: Vec<Vec<&str>> = vec![
        vec!["train", "--dataset", &raw_claim, "--quiet", "--out", "r1"],
        vec!["train", "--dataset", &gz_claim, "--quiet", "--out", "r2"],
        vec!["summary", "--model", "huge-spec.safetensors"],
        vec!["predict", "--model", "huge-spec.safetensors", "huge.png"],
        vec!["summary", "--model", "huge-header.safetensors"],
        vec!["predict", "--model", "m.safetensors", "huge.png"],
        vec![
            "summary",
            "Flatten() -> Linear(784, 32768) -> Linear(32768, 32768) -> Linear(32768, 32768)",
        ],
    ];
    for args in worst {
        let r = run(dir.path(), &args);
        fails(&format!("{args:?}"), &r, &[]);
        assert!(
            r.elapsed < Duration::from_secs(20),
            "{args:?} took {:?}",
            r.elapsed
        );
    }
}

// ---------------------------------------------------------------------------------------
// Regressions found by fuzzing (fuzz/): each input once crashed a target.

/// The property the spec fuzz target checks: a network built under a parameter budget
/// never holds more than the budget, and its canonical spec reads back.
#[test]
fn spec_budget_is_checked_before_allocating() {
    let budget = 1 << 16;
    let limit = "the test's budget";
    let msg = lib_err("over budget", || {
        spec::build_within(
            "Conv2d(1, 64, 5) -> Conv2d(64, 64, 5)",
            &[1, 28, 28],
            0,
            budget,
            limit,
        )
    });
    // 1,664 parameters in layer 0, 102,464 in layer 1.
    has_all(
        "over budget",
        &msg,
        &["layer 1 Conv2d(64, 64", "104128 parameters", limit],
    );
    let net = spec::build_within("Conv2d(1, 64, 5)", &[1, 28, 28], 0, budget, limit)
        .expect("within the budget");
    assert_eq!(net.num_params(), 64 * 25 + 64);
    // Lazy layers are counted on the shape they receive.
    let msg = lib_err("lazy over budget", || {
        spec::build_within(
            "Flatten() -> LazyLinear(100)",
            &[1, 28, 28],
            0,
            budget,
            limit,
        )
    });
    has_all("lazy over budget", &msg, &["78500 parameters"]);
    // Exactly the budget is fine; bias=False counts no bias.
    spec::build_within(
        "Flatten() -> Linear(784, 10, bias=False)",
        &[1, 28, 28],
        0,
        7840,
        limit,
    )
    .expect("exactly the budget");
}

/// Found by the spec target (fuzz/corpus/spec/regression-planned-params-overflow): the
/// parameter count of a Conv2d with a kernel of 10^18 and 10^7 output channels
/// overflowed u128 while the budget was checked.
#[test]
fn spec_budget_survives_absurd_sizes() {
    for text in [
        "Conv2d(1, 10500001, 1050000000000000000, 10)",
        "Conv2d(3, 9223372036854775807, (9223372036854775807, 9223372036854775807))",
        "LazyConv2d(9223372036854775807, 9223372036854775807)",
        "Flatten() -> Linear(2352, 9223372036854775807)",
        "Flatten() -> LazyLinear(9223372036854775807, bias=False)",
    ] {
        for input in [&[3, 28, 28][..], &[1, 28, 28], &[2352]] {
            let msg = lib_err(text, || {
                spec::build_within(text, input, 0, 1 << 22, "the budget")
            });
            assert!(msg.starts_with("layer "), "{text}: {msg}");
            lib_err(text, || spec::build(text, input, 0));
        }
        let dir = tempdir();
        fails(
            text,
            &run(dir.path(), &["summary", text, "--input", "3x28x28"]),
            &["layer "],
        );
    }
}

/// A model file's weights are counted against its spec before the network is built:
/// the network can never hold more values than the file.
#[test]
fn model_loading_allocates_no_more_than_the_file_holds() {
    let path = Path::new("m.safetensors");
    let m = model::load_bytes(path, &tiny_model()).expect("tiny model loads");
    assert_eq!(m.net.num_params(), 10);
    let msg = lib_err("fewer values than the spec", || {
        model::load_bytes(
            path,
            &safetensors_file(
                &tiny_tensors()[..1],
                &[("seqnet.spec", TINY_SPEC), ("seqnet.input", TINY_INPUT)],
            ),
        )
    });
    has_all(
        "fewer values",
        &msg,
        &["m.safetensors", "the 8 f32 values the file holds"],
    );
}

/// Hand-made inputs once fed to the fuzz targets, kept for the record (see fuzz/README.md
/// for the crashes each target found and the files under fuzz/corpus).
#[test]
fn fuzz_seed_corpus_inputs_never_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let targets = std::fs::read_dir(&corpus).unwrap_or_else(|e| {
        panic!(
            "the fuzz seed corpus {} cannot be read ({e}); it is part of the repository",
            corpus.display()
        )
    });
    let mut seen = 0;
    for target in targets.flatten() {
        let name = target.file_name().to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(target.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).expect("read corpus file");
            let run = std::panic::catch_unwind(|| match name.as_str() {
                "idx" => {
                    let _ = idx::images_from_bytes(&bytes, "f");
                    let _ = idx::labels_from_bytes(&bytes, "f");
                }
                "spec" if bytes.len() >= 3 => {
                    let shape = [
                        1 + usize::from(bytes[0] % 3),
                        1 + usize::from(bytes[1] % 32),
                        1 + usize::from(bytes[2] % 32),
                    ];
                    if let Ok(text) = std::str::from_utf8(&bytes[3..]) {
                        let _ = spec::to_layers(text);
                        let _ = spec::build_within(text, &shape, 0, 1 << 22, "budget");
                    }
                }
                "model" => {
                    let _ = model::load_bytes(Path::new("f"), &bytes);
                }
                _ => {}
            });
            assert!(run.is_ok(), "{} panicked", file.display());
            seen += 1;
        }
    }
    assert!(seen > 0, "no corpus files under {}", corpus.display());
}
