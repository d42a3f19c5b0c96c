//! `seqnet eval` and `seqnet data` end to end, running the built binary in temporary
//! folders. Downloads go to an HTTP server on 127.0.0.1 that the tests run themselves
//! (this machine, like CI, has no internet): good files, corrupt files, missing files
//! and a mirror whose transfer breaks off mid-way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

mod support;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::idx::{gz, idx_images, idx_labels};
use support::run::{fails, ok, ok_out_err, seqnet, seqnet_env, train_sample};

// ---------------------------------------------------------------------------------------
// Running the binary (tests/support), and what it leaves behind.

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// The local HTTP server (shared with the unit tests of src/data/fetch.rs).

#[path = "../src/data/http_test_server.rs"]
mod http_test_server;
use http_test_server::{Reply, Server};

// ---------------------------------------------------------------------------------------
// A tiny MNIST-format dataset (4×4 images), its four .gz files and their SHA-256 sums.

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// `n` grey `side`×`side` images with some ink.
fn images(n: usize, side: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..n * side * side).map(|i| (i * 37 % 256) as u8).collect();
    idx_images(n, side, side, &pixels)
}

/// `n` labels cycling 0..10.
fn labels(n: usize) -> Vec<u8> {
    idx_labels(&(0..n).map(|i| (i % 10) as u8).collect::<Vec<u8>>())
}

/// The four files, in [`FILES`] order: 20 training and 10 test images.
fn tiny_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (FILES[0], gz(&images(20, 4))),
        (FILES[1], gz(&labels(20))),
        (FILES[2], gz(&images(10, 4))),
        (FILES[3], gz(&labels(10))),
    ]
}

/// A `sha256sum`-style file for `files`, written into `dir`.
fn write_sums(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let mut text = String::new();
    for (name, bytes) in files {
        let sum: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&format!("{sum}  {name}\n"));
    }
    let path = dir.join("SHA256SUMS");
    std::fs::write(&path, text).expect("write sums");
    path
}

fn corrupt(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let last = b.len() - 1;
    b[last] ^= 0x55;
    b
}

fn assert_installed(dir: &Path, files: &[(&str, Vec<u8>)]) {
    let mut want: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(entries(dir), want, "exactly the four files, nothing else");
    for (name, bytes) in files {
        assert_eq!(
            &std::fs::read(dir.join(name)).expect("read"),
            bytes,
            "{name}"
        );
    }
    let s = seqnet::data::load_dir(dir, seqnet::data::Split::Official).expect("loads");
    assert_eq!(s.train.len(), 20);
    assert_eq!(s.train.shape, [1, 4, 4]);
    assert_eq!(s.test.as_ref().map(|t| t.len()), Some(10));
}

// ---------------------------------------------------------------------------------------
// seqnet data fetch / list

#[test]
fn fetch_from_a_good_mirror_installs_the_four_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files();
    let routes = files
        .iter()
        .map(|(n, b)| (format!("/good/{n}"), Reply::Body(b.clone())))
        .collect();
    let server = Server::start(routes);
    let sums = write_sums(tmp.path(), &files);
    let sums = sums.to_str().expect("utf-8");
    let dest = tmp.path().join("sets/mnist");
    let dest_s = dest.to_str().expect("utf-8");
    let good = server.url("good");
    let (out, err) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            dest_s,
            "--mirror",
            &good,
            "--checksums",
            sums,
        ],
    ));
    assert_installed(&dest, &files);
    assert!(out.contains("20 train / 10 test"), "{out}");
    assert!(out.contains("4 files downloaded"), "{out}");
    assert!(err.contains("SHA-256 verified"), "{err}");
    assert_eq!(server.requests().len(), 4);

    // Again: the files are there and verified; nothing is downloaded.
    let (out, _) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            dest_s,
            "--mirror",
            &good,
            "--checksums",
            sums,
        ],
    ));
    assert!(out.contains("0 files downloaded"), "{out}");
    assert_eq!(server.requests().len(), 4);

    // Without --dir: into the cache folder, where `data list` and the loader find it.
    let (out, _) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "MNIST",
            "--mirror",
            &good,
            "--checksums",
            sums,
            "--quiet",
        ],
    ));
    assert!(out.is_empty(), "--quiet prints nothing: {out}");
    let cached = tmp.path().join("cache/seqnet/mnist");
    assert_installed(&cached, &files);
    let (out, _) = ok_out_err(&seqnet(tmp.path(), &["data", "list"]));
    let line = out
        .lines()
        .find(|l| l.starts_with("mnist "))
        .expect("mnist line");
    assert!(line.contains("installed"), "{out}");
    assert!(line.contains(&*cached.to_string_lossy()), "{out}");
    assert!(out.contains("kmnist") && out.contains("not found"), "{out}");
    assert!(
        out.contains(&format!("* {}", cached.display())),
        "the used folder is marked:\n{out}"
    );
}

#[test]
fn fetch_falls_back_from_a_corrupt_mirror_and_one_that_breaks_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files();
    let mut routes = HashMap::new();
    for (i, (n, b)) in files.iter().enumerate() {
        routes.insert(format!("/good/{n}"), Reply::Body(b.clone()));
        routes.insert(format!("/corrupt/{n}"), Reply::Body(corrupt(b)));
        // /midway/: the first two files are fine, the third breaks off mid-transfer and
        // the fourth is missing.
        match i {
            0 | 1 => {
                routes.insert(format!("/midway/{n}"), Reply::Body(b.clone()));
            }
            2 => {
                routes.insert(format!("/midway/{n}"), Reply::CutOff(b.clone()));
            }
            _ => {}
        }
    }
    let server = Server::start(routes);
    let sums = write_sums(tmp.path(), &files);

    // A corrupt first mirror: every file comes from the second.
    let dest = tmp.path().join("a");
    let (_, err) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            dest.to_str().expect("utf-8"),
            "--mirror",
            &server.url("corrupt"),
            "--mirror",
            &server.url("good"),
            "--checksums",
            sums.to_str().expect("utf-8"),
        ],
    ));
    assert_installed(&dest, &files);
    assert_eq!(err.matches("SHA-256 mismatch").count(), 4, "{err}");

    // A mirror that fails mid-way: the first two files from it, the rest from the next.
    let dest = tmp.path().join("b");
    let before = server.requests().len();
    let (_, err) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            dest.to_str().expect("utf-8"),
            "--mirror",
            &server.url("midway"),
            "--mirror",
            &server.url("good"),
            "--checksums",
            sums.to_str().expect("utf-8"),
        ],
    ));
    assert_installed(&dest, &files);
    assert!(err.contains("broke off"), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
    let asked: Vec<String> = server.requests()[before..].to_vec();
    assert_eq!(
        asked,
        vec![
            format!("/midway/{}", FILES[0]),
            format!("/midway/{}", FILES[1]),
            format!("/midway/{}", FILES[2]),
            format!("/good/{}", FILES[2]),
            format!("/midway/{}", FILES[3]),
            format!("/good/{}", FILES[3]),
        ]
    );
}

#[test]
fn fetch_with_every_mirror_bad_fails_clearly_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files();
    let mut routes = HashMap::new();
    for (i, (n, b)) in files.iter().enumerate() {
        routes.insert(format!("/corrupt/{n}"), Reply::Body(corrupt(b)));
        // /partial/ has every file but the last, which breaks off.
        routes.insert(
            format!("/partial/{n}"),
            if i == 3 {
                Reply::CutOff(b.clone())
            } else {
                Reply::Body(b.clone())
            },
        );
    }
    let server = Server::start(routes);
    let sums = write_sums(tmp.path(), &files);
    let dest = tmp.path().join("new/mnist");
    let (corrupt_url, partial_url, missing_url) = (
        server.url("corrupt"),
        server.url("partial"),
        server.url("missing"),
    );
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            dest.to_str().expect("utf-8"),
            "--mirror",
            &corrupt_url,
            "--mirror",
            &partial_url,
            "--mirror",
            &missing_url,
            "--checksums",
            sums.to_str().expect("utf-8"),
        ],
    ));
    let last = FILES[3];
    assert!(err.contains("nothing was installed"), "{err}");
    for (url, why) in [
        (&corrupt_url, "SHA-256 mismatch"),
        (&partial_url, "the transfer broke off"),
        (&missing_url, "HTTP 404"),
    ] {
        let line = format!("{url}{last}: {why}");
        assert!(err.contains(&line), "no '{line}' in:\n{err}");
    }
    assert!(err.contains("3 files already downloaded"), "{err}");
    // No file and no folder left behind; nothing in the folder the run started in but
    // the checksums file.
    assert!(
        !tmp.path().join("new").exists(),
        "{:?}",
        entries(tmp.path())
    );
    assert_eq!(entries(tmp.path()), vec!["SHA256SUMS"]);

    // Into an existing folder: it is left as it was.
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).expect("mkdir");
    std::fs::write(existing.join("notes.txt"), b"mine").expect("write");
    fails(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            existing.to_str().expect("utf-8"),
            "--mirror",
            &partial_url,
            "--checksums",
            sums.to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(entries(&existing), vec!["notes.txt"]);
}

#[test]
fn fetch_checks_the_built_in_checksums_by_default() {
    // The tiny files are not MNIST's: with the published sizes and SHA-256, every file
    // is refused.
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tiny_files();
    let routes = files
        .iter()
        .map(|(n, b)| (format!("/fake/{n}"), Reply::Body(b.clone())))
        .collect();
    let server = Server::start(routes);
    let dest = tmp.path().join("mnist");
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "mnist",
            "--dir",
            dest.to_str().expect("utf-8"),
            "--mirror",
            &server.url("fake"),
        ],
    ));
    assert!(
        err.contains("but the file is 9912422 bytes"),
        "the published size of train-images-idx3-ubyte.gz:\n{err}"
    );
    assert!(!dest.exists());

    for (name, want) in [
        ("mnist-5k", "embedded"),
        ("cifar100", "mnist, fashion-mnist, kmnist, cifar10"),
    ] {
        let err = fails(&seqnet(tmp.path(), &["data", "fetch", name]));
        assert!(err.contains(want), "{err}");
    }
    let err = fails(&seqnet(
        tmp.path(),
        &["data", "fetch", "mnist", "--mirror", "ftp://example/"],
    ));
    assert!(err.contains("http:// or https://"), "{err}");
}

// ---------------------------------------------------------------------------------------
// seqnet eval

/// Two small models trained on the embedded sample, made once for all tests.
fn trained() -> &'static (PathBuf, PathBuf) {
    static MODELS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MODELS.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Earlier runs' models (an hour old or more) go; this run's are its own.
        for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if old
                && entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("cli_eval_fetch-")
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let root = tmp.join(format!("cli_eval_fetch-{}", std::process::id()));
        // A folder left by an earlier process with the same id holds runs that --out
        // would refuse to overwrite.
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("mkdir");
        let mut paths = Vec::new();
        for seed in ["1", "2"] {
            let out = root.join(format!("run{seed}"));
            let dest = out.to_str().expect("utf-8");
            let args = train_sample("500", &["--seed", seed, "--out", dest, "--quiet"]);
            ok(&seqnet(&root, &args));
            paths.push(out.join("final.safetensors"));
        }
        (paths[0].clone(), paths[1].clone())
    })
}

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn sum(v: &Value) -> u64 {
    match v {
        Value::Array(items) => items.iter().map(sum).sum(),
        Value::Number(n) => n.as_u64().expect("count"),
        _ => panic!("not counts: {v}"),
    }
}

/// The checks every report must pass, on `n` images.
fn check_report(v: &Value, n: u64) {
    let acc = v["accuracy"].as_f64().expect("accuracy");
    assert!((0.0..=1.0).contains(&acc), "{acc}");
    assert_eq!(v["images"], n);
    let per_class = v["per_class"].as_array().expect("per_class");
    assert_eq!(per_class.len(), 10);
    let images: u64 = per_class
        .iter()
        .map(|c| c["images"].as_u64().expect("images"))
        .sum();
    assert_eq!(images, n);
    let correct: u64 = per_class
        .iter()
        .map(|c| c["correct"].as_u64().expect("correct"))
        .sum();
    assert_eq!(correct, v["correct"].as_u64().expect("correct"));
    let confusion = v["confusion"].as_array().expect("confusion");
    assert_eq!(confusion.len(), 10);
    assert!(
        confusion
            .iter()
            .all(|r| r.as_array().map(Vec::len) == Some(10))
    );
    assert_eq!(sum(&v["confusion"]), n);
    let diagonal: u64 = (0..10)
        .map(|k| confusion[k][k].as_u64().expect("count"))
        .sum();
    assert_eq!(diagonal, correct);
    assert!((diagonal as f64 / n as f64 - acc).abs() < 1e-12);
    for (k, c) in per_class.iter().enumerate() {
        let row: u64 = sum(&confusion[k]);
        assert_eq!(row, c["images"].as_u64().expect("images"), "class {k}");
    }
}

#[test]
fn eval_one_model_reports_accuracy_per_class_and_confusion() {
    let (m1, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let m1s = m1.to_str().expect("utf-8");
    let (out, _) = ok_out_err(&seqnet(
        tmp.path(),
        &["eval", "--model", m1s, "--dataset", "mnist-5k", "--json"],
    ));
    let v = json(&out);
    check_report(&v, 1000);
    assert_eq!(v["of"], "model");
    assert_eq!(v["models"][0]["accuracy"], v["accuracy"]);
    assert!(v.get("ensemble").is_none());
    assert!(
        v["data"].as_str().expect("data").contains("embedded"),
        "{v}"
    );
    // Trained on 500 images for an epoch, the seed network is well above chance.
    assert!(v["accuracy"].as_f64().expect("accuracy") > 0.5, "{v}");

    // The same content as text.
    let (text, _) = ok_out_err(&seqnet(
        tmp.path(),
        &["eval", "--model", m1s, "--dataset", "mnist-5k"],
    ));
    let pct = format!("{:.2}%", 100.0 * v["accuracy"].as_f64().expect("accuracy"));
    assert!(text.contains(&format!("accuracy: {pct}")), "{text}");
    assert!(text.contains("per-class accuracy"), "{text}");
    assert!(
        text.contains("confusion matrix (rows: true class, columns: predicted class)"),
        "{text}"
    );
    // The matrix: a header of the ten classes, then ten rows of ten counts.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("confusion matrix"))
        .expect("matrix");
    let header: Vec<&str> = lines[at + 1].split_whitespace().collect();
    assert_eq!(header, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    for (k, line) in lines[at + 2..at + 12].iter().enumerate() {
        let cells: Vec<u64> = line
            .split_whitespace()
            .map(|c| c.parse().expect("count"))
            .collect();
        assert_eq!(cells[0], k as u64);
        assert_eq!(
            &cells[1..],
            &v["confusion"][k]
                .as_array()
                .expect("row")
                .iter()
                .map(|c| c.as_u64().expect("count"))
                .collect::<Vec<_>>()[..]
        );
    }

    // Without --dataset and with no MNIST installed: the embedded sample, and it says so.
    let (text, _) = ok_out_err(&seqnet(tmp.path(), &["eval", "--model", m1s]));
    assert!(
        text.contains("the embedded 5,000-image MNIST sample"),
        "{text}"
    );
    assert!(text.contains("test images: 1,000"), "{text}");
}

#[test]
fn eval_an_ensemble_reports_each_model_the_vote_and_the_average() {
    let (m1, m2) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (m1s, m2s) = (m1.to_str().expect("utf-8"), m2.to_str().expect("utf-8"));
    let single = |m: &str| {
        let (out, _) = ok_out_err(&seqnet(
            tmp.path(),
            &["eval", "--model", m, "--dataset", "mnist-5k", "--json"],
        ));
        json(&out)["accuracy"].as_f64().expect("accuracy")
    };
    let (a1, a2) = (single(m1s), single(m2s));
    let (out, _) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "eval",
            "--model",
            m1s,
            "--model",
            m2s,
            "--dataset",
            "mnist-5k",
            "--json",
        ],
    ));
    let v = json(&out);
    check_report(&v, 1000);
    assert_eq!(v["of"], "vote");
    assert_eq!(v["models"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["models"][0]["accuracy"].as_f64(), Some(a1));
    assert_eq!(v["models"][1]["accuracy"].as_f64(), Some(a2));
    let e = &v["ensemble"];
    assert_eq!(e["models"], 2);
    assert_eq!(e["vote"]["accuracy"], v["accuracy"]);
    for k in ["vote", "average"] {
        let acc = e[k]["accuracy"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&acc), "{k}: {acc}");
        let correct = e[k]["correct"].as_u64().expect("correct");
        assert!((correct as f64 / 1000.0 - acc).abs() < 1e-12);
    }
    assert!(
        e["tie_break"]
            .as_str()
            .expect("tie_break")
            .contains("highest averaged probability")
    );
    // Two models: every disagreement is a tie.
    assert_eq!(e["vote_ties"], e["disagreements"]);

    // Several files after one --model, as a shell's brace expansion writes them.
    let (text, _) = ok_out_err(&seqnet(
        tmp.path(),
        &["eval", "--model", m1s, m2s, "--dataset", "mnist-5k"],
    ));
    for needle in [
        "ensemble of 2",
        "plurality vote",
        "averaged probabilities",
        "confusion matrix (of the vote)",
    ] {
        assert!(text.contains(needle), "no '{needle}' in:\n{text}");
    }
}

#[test]
fn eval_on_the_validation_and_training_sets() {
    let (m1, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let m1s = m1.to_str().expect("utf-8");
    // `seqnet eval` of the first model on the embedded sample, with more arguments.
    let on_sample = |extra: &[&'static str]| {
        let mut a = vec!["eval", "--model", m1s, "--dataset", "mnist-5k"];
        a.extend_from_slice(extra);
        seqnet(tmp.path(), &a)
    };
    let report = |extra: &[&'static str]| {
        let mut a = extra.to_vec();
        a.push("--json");
        json(&ok_out_err(&on_sample(&a)).0)
    };
    // The embedded sample's 4,000 training images: 3,000 train and 1,000 validate in the
    // book's split, which --on validation implies.
    let val = report(&["--on", "validation"]);
    check_report(&val, 1000);
    assert_eq!(val["set"], "validation");
    let all_train = report(&["--on", "train"]);
    check_report(&all_train, 4000);
    assert_eq!(all_train["set"], "train");
    let book_train = report(&["--on", "train", "--split", "book"]);
    check_report(&book_train, 3000);
    // The book's training and validation sets divide the same 4,000 images.
    let correct = |v: &Value| v["correct"].as_u64().expect("correct");
    assert_eq!(correct(&book_train) + correct(&val), correct(&all_train));
    assert_eq!(report(&[])["set"], "test");

    let (text, _) = ok_out_err(&on_sample(&["--on", "validation"]));
    assert!(text.contains("validation images: 1,000"), "{text}");

    let err = fails(&on_sample(&["--on", "validation", "--split", "official"]));
    assert!(
        err.contains("--on validation") && err.contains("--split book"),
        "{err}"
    );

    // A dataset too small for the book's split: the message says why --on validation
    // cannot work on it, not just that the split failed.
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    for (name, bytes) in tiny_files() {
        std::fs::write(small.join(name), bytes).expect("write");
    }
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "eval",
            "--model",
            m1s,
            "--dataset",
            small.to_str().expect("utf-8"),
            "--on",
            "validation",
        ],
    ));
    assert!(
        err.contains("--on validation takes the validation set of the book's split")
            && err.contains("holds 20 images"),
        "{err}"
    );
}

/// Saves a network (from its spec) as a model file.
fn save_model(dir: &Path, name: &str, spec: &str, input: [usize; 3]) -> PathBuf {
    let net = seqnet::spec::build(spec, &input[..], 1).expect("network");
    let info = seqnet::io::model::ModelInfo::for_net(&net);
    let path = dir.join(name);
    seqnet::io::model::save(&path, &net, &info).expect("save");
    path
}

#[test]
fn eval_rejects_models_that_do_not_fit_the_data_or_each_other() {
    let (m1, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let small = save_model(
        tmp.path(),
        "small.safetensors",
        "Flatten() -> Linear(196, 10)",
        [1, 14, 14],
    );
    let small_s = small.to_str().expect("utf-8");
    let err = fails(&seqnet(
        tmp.path(),
        &["eval", "--model", small_s, "--dataset", "mnist-5k"],
    ));
    assert!(err.contains("1×14×14") && err.contains("1×28×28"), "{err}");
    assert!(err.contains("small.safetensors"), "{err}");

    let m1s = m1.to_str().expect("utf-8");
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "eval",
            "--model",
            m1s,
            "--model",
            small_s,
            "--dataset",
            "mnist-5k",
        ],
    ));
    assert!(err.contains("same images"), "{err}");
    assert!(err.contains(m1s) && err.contains(small_s), "{err}");
    assert!(err.contains("1×14×14") && err.contains("1×28×28"), "{err}");

    let five = save_model(
        tmp.path(),
        "five.safetensors",
        "Flatten() -> Linear(784, 5)",
        [1, 28, 28],
    );
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "eval",
            "--model",
            five.to_str().expect("utf-8"),
            "--dataset",
            "mnist-5k",
        ],
    ));
    assert!(
        err.contains("outputs 5 scores") && err.contains("10 classes"),
        "{err}"
    );

    let err = fails(&seqnet(tmp.path(), &["eval", "--dataset", "mnist-5k"]));
    assert!(err.contains("--model"), "{err}");
    let err = fails(&seqnet(
        tmp.path(),
        &["eval", "--model", "missing.safetensors"],
    ));
    assert!(err.contains("missing.safetensors"), "{err}");
}

#[test]
fn eval_on_a_safetensors_batch() {
    use safetensors::tensor::{Dtype, TensorView};
    let (m1, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, test) = seqnet::data::embedded::mnist_5k().expect("sample");
    let n = 40;
    let pixels: Vec<u8> = (0..n)
        .flat_map(|i| test.image_u8(i).expect("u8 levels").to_vec())
        .collect();
    let labels: Vec<u8> = test.labels[..n].iter().map(|&l| l as u8).collect();
    let tensors = vec![
        (
            "images",
            TensorView::new(Dtype::U8, vec![n, 1, 28, 28], &pixels).expect("images"),
        ),
        (
            "labels",
            TensorView::new(Dtype::U8, vec![n], &labels).expect("labels"),
        ),
    ];
    let path = tmp.path().join("batch.safetensors");
    let bytes = safetensors::serialize(tensors, None).expect("serialize");
    std::fs::write(&path, bytes).expect("write");
    let (out, _) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "eval",
            "--model",
            m1.to_str().expect("utf-8"),
            "--test-data",
            path.to_str().expect("utf-8"),
            "--json",
        ],
    ));
    let v = json(&out);
    check_report(&v, n as u64);
    assert!(
        v["data"]
            .as_str()
            .expect("data")
            .contains("batch.safetensors")
    );
}

/// The full MNIST test set, from the folder `SEQNET_DATA` names. Ignored by a plain
/// `cargo test`; `.ci/run` runs it with `--ignored` when the data is there.
#[test]
#[ignore = "needs SEQNET_DATA"]
fn eval_on_real_mnist_when_seqnet_data_is_set() {
    let dir = std::env::var_os("SEQNET_DATA")
        .map(PathBuf::from)
        .expect("SEQNET_DATA must name the folder of the full MNIST set");
    assert!(
        dir.is_dir(),
        "SEQNET_DATA={} is not a folder",
        dir.display()
    );
    let (m1, _) = trained();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, _) = ok_out_err(&seqnet_env(
        tmp.path(),
        &["eval", "--model", m1.to_str().expect("utf-8"), "--json"],
        &[("SEQNET_DATA", dir.as_path())],
    ));
    let v = json(&out);
    check_report(&v, 10_000);
    assert!(
        v["data"].as_str().expect("data").starts_with("MNIST from"),
        "{v}"
    );
    let counts: Vec<u64> = v["per_class"]
        .as_array()
        .expect("per_class")
        .iter()
        .map(|c| c["images"].as_u64().expect("images"))
        .collect();
    // MNIST's test set: 980 zeros, 1,135 ones, ..., 1,009 nines.
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

// ---------------------------------------------------------------------------------------
// seqnet data fetch cifar10, from a fake archive made here.

/// A ustar archive of `files` (as `tar` writes one), gzipped.
fn tar_gz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", bytes.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    gz(&out)
}

/// `n` CIFAR-10 records: label `i % 10`, pixels `i + k`.
fn cifar_records(n: usize) -> Vec<u8> {
    support::images::cifar_records(n, |i| (i % 10) as u8, |i, k| ((i + k) % 256) as u8)
}

#[test]
fn fetch_cifar10_checks_unpacks_and_trains_and_refuses_bad_archives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = "cifar-10-binary.tar.gz";
    let mut files: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|k| {
            (
                format!("cifar-10-batches-bin/data_batch_{k}.bin"),
                cifar_records(2),
            )
        })
        .collect();
    files.push((
        "cifar-10-batches-bin/test_batch.bin".into(),
        cifar_records(3),
    ));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let archive = tar_gz(&refs);
    // Cut inside the test file: whole gzip stream, truncated tar.
    let mut short_tar = refs.clone();
    short_tar.truncate(5);
    short_tar.push(("cifar-10-batches-bin/test_batch.bin", cifar_records(3)));
    let mut cut = {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&tar_gz(&short_tar)[..]),
            &mut raw,
        )
        .expect("gunzip");
        raw
    };
    cut.truncate(cut.len() - 1024 - 4000);
    let cut = gz(&cut);
    let mut routes = HashMap::new();
    routes.insert(format!("/good/{name}"), Reply::Body(archive.clone()));
    routes.insert(format!("/cut/{name}"), Reply::Body(cut.clone()));
    let server = Server::start(routes);
    let sums = |bytes: &[u8], file: &str| {
        let path = tmp.path().join(file);
        std::fs::write(&path, format!("{:x}  {name}\n", Sha256::digest(bytes))).expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let good_sums = sums(&archive, "good.sha256");
    let (out, err) = ok_out_err(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "cifar10",
            "--mirror",
            &server.url("good"),
            "--checksums",
            &good_sums,
        ],
    ));
    assert!(err.contains("SHA-256 verified"), "{err}");
    assert!(err.contains("unpacked into"), "{err}");
    assert!(out.contains("CIFAR-10 is in"), "{out}");
    assert!(out.contains("10 train / 3 test"), "{out}");
    assert!(out.contains("use it with --dataset cifar10"), "{out}");
    let (out, _) = ok_out_err(&seqnet(tmp.path(), &["data", "list"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("cifar10") && l.contains("installed")),
        "{out}"
    );
    ok(&seqnet(
        tmp.path(),
        &[
            "train",
            "--dataset",
            "cifar10",
            "--spec",
            "Conv2d(3, 4, 3) -> ReLU() -> Flatten() -> LazyLinear(10)",
            "--epochs",
            "1",
            "--out",
            "run",
        ],
    ));

    // The built-in checksum and size are the real archive's: the fake one is refused
    // and nothing is installed.
    let dest = tmp.path().join("other");
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "cifar10",
            "--dir",
            dest.to_str().expect("utf-8"),
            "--mirror",
            &server.url("good"),
        ],
    ));
    assert!(err.contains("170052171 bytes"), "{err}");
    assert!(!dest.exists());

    // A truncated archive (with a matching checksum) is named and not loaded.
    let cut_sums = sums(&cut, "cut.sha256");
    let err = fails(&seqnet(
        tmp.path(),
        &[
            "data",
            "fetch",
            "cifar10",
            "--dir",
            dest.to_str().expect("utf-8"),
            "--mirror",
            &server.url("cut"),
            "--checksums",
            &cut_sums,
        ],
    ));
    assert!(err.contains("cifar-10-binary.tar.gz"), "{err}");
    assert!(
        err.contains("it ends inside cifar-10-batches-bin/test_batch.bin"),
        "{err}"
    );
    assert!(err.contains("truncated or damaged"), "{err}");
}
