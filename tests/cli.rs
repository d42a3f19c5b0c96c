//! The `seqnet` binary end to end, in temporary folders: summary, predict on files
//! PyTorch wrote, training steps against PyTorch's, and bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod support;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use support::run::{fails, message, ok, ok_out_err, seqnet, train_sample};

const SEED_SPEC: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> ReLU() -> Linear(100, 10)";

const SEED_REPR: &str = "Sequential(
  (0): Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Linear(in_features=2880, out_features=100, bias=True)
  (5): ReLU()
  (6): Linear(in_features=100, out_features=10, bias=True)
)";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(name)
}

fn f32s(view: &TensorView) -> Vec<f32> {
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// |got − want| ≤ 1e-5 · max|want| for every element (float32 rounding of sums).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let (mut worst, mut first_bad) = (0f32, None);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        worst = worst.max(d);
        if d > 1e-5 * scale && first_bad.is_none() {
            first_bad = Some((i, *g, *w));
        }
    }
    if let Some((i, g, w)) = first_bad {
        panic!("{what}: index {i}: expected {w}, got {g}; max difference {worst} (scale {scale})");
    }
}

#[test]
fn summary_explains_the_seed_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&seqnet(
        dir.path(),
        &["summary", SEED_SPEC, "--input", "1x28x28"],
    ));
    for needle in [
        "(28 + 2·0 − 5)/1 + 1 = 24",
        "⌊(24 − 2)/2⌋ + 1 = 12",
        "20 · 12 · 12 = 2880",
        "in_features inferred: 2880",
        "289,630",
    ] {
        assert!(out.contains(needle), "summary lacks '{needle}':\n{out}");
    }
    // PyTorch's own print(model), pasted verbatim, is the same network.
    let from_repr = ok(&seqnet(
        dir.path(),
        &["summary", SEED_REPR, "--input", "1x28x28"],
    ));
    assert!(from_repr.contains("289,630"), "{from_repr}");
    let preset = ok(&seqnet(dir.path(), &["summary", "--net", "seed"]));
    assert!(preset.contains("289,630"));
    // The table fits 100 columns; --json keeps every cell whole.
    for text in [&out, &preset] {
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }
}

#[test]
fn summary_evaluates_the_arithmetic_of_pasted_pytorch_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&seqnet(
        dir.path(),
        &[
            "summary",
            "--spec",
            "nn.Conv2d(1, 32, kernel_size=3, padding=3//2), nn.ReLU(), nn.MaxPool2d(2), \
             nn.Flatten(), nn.Linear(32 * 14 * 14, 10)",
        ],
    ));
    // 32·(9 + 1) + 10·(6272 + 1) parameters.
    assert!(out.contains("63,050"), "{out}");
    assert!(out.contains("32 · 14 · 14 = 6272"), "{out}");
    let err = fails(&seqnet(
        dir.path(),
        &[
            "summary",
            "--spec",
            "nn.Flatten(), nn.Linear(28 * 28 / 2, 10)",
        ],
    ));
    assert!(
        err.contains("Linear: in_features = 28 * 28 / 2: '/' is true division"),
        "{err}"
    );
    assert!(
        err.contains("\n                          ^^^^^^^^^^^\n"),
        "{err}"
    );
}

#[test]
fn summary_json_has_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&seqnet(dir.path(), &["summary", SEED_SPEC, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_params"], 289_630);
    assert_eq!(v["layers"][3]["output_shape"], serde_json::json!([2880]));
    assert_eq!(v["layers"][0]["arithmetic"], "(28 + 2·0 − 5)/1 + 1 = 24");
    assert_eq!(v["macs_per_image"], 588_520);
}

#[test]
fn wrong_sizes_are_rejected_with_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&seqnet(
        dir.path(),
        &[
            "summary",
            "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(800, 100)",
        ],
    ));
    assert!(err.contains("layer 4 Linear(in_features=800"), "{err}");
    assert!(err.contains("2880 = 20 × 12 × 12"), "{err}");
    assert!(
        err.contains("use Linear(2880, 100) or LazyLinear(100)"),
        "{err}"
    );
    let err = fails(&seqnet(dir.path(), &["summary", "Conv2d(1, 20, 29)"]));
    assert!(
        err.contains("kernel height 29 is larger than the input height 28"),
        "{err}"
    );
    let err = fails(&seqnet(
        dir.path(),
        &["summary", "Conv2d(1, 20, 5, stride=0)"],
    ));
    assert!(err.contains("stride"), "{err}");
    let err = fails(&seqnet(
        dir.path(),
        &[
            "summary",
            "Linear(784, 100000) -> Linear(100000, 100000)",
            "--input",
            "784",
        ],
    ));
    assert!(err.contains("more than seqnet allocates"), "{err}");
    let err = fails(&seqnet(
        dir.path(),
        &["summary", "Conv2d(1, 20, 5 -> ReLU()"],
    ));
    assert!(err.contains('^'), "a syntax error shows a caret: {err}");
}

#[test]
fn predict_reproduces_pytorch_logits_on_pytorch_written_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("y.safetensors");
    ok(&seqnet(
        dir.path(),
        &[
            "predict",
            "--model",
            fixture("predict_model.safetensors").to_str().unwrap(),
            "--input",
            fixture("predict_input.safetensors").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    ));
    let got_bytes = std::fs::read(&out).unwrap();
    let got = SafeTensors::deserialize(&got_bytes).unwrap();
    let want_bytes = std::fs::read(fixture("predict_expected.safetensors")).unwrap();
    let want = SafeTensors::deserialize(&want_bytes).unwrap();
    for name in ["logits", "probabilities"] {
        let (g, w) = (got.tensor(name).unwrap(), want.tensor(name).unwrap());
        assert_eq!(g.shape(), w.shape(), "{name} shape");
        assert_close(name, &f32s(&g), &f32s(&w));
    }
}

#[test]
fn predict_rejects_bad_inputs_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("predict_model.safetensors");
    let model = model.to_str().unwrap();
    // Wrong shape: 1×12×12 images for a 1×28×28 model.
    let x = dir.path().join("x.safetensors");
    let data = vec![0u8; 2 * 144 * 4];
    let view = TensorView::new(Dtype::F32, vec![2, 1, 12, 12], &data).unwrap();
    std::fs::write(&x, safetensors::serialize([("input", view)], None).unwrap()).unwrap();
    let err = fails(&seqnet(
        dir.path(),
        &[
            "predict",
            "--model",
            model,
            "--input",
            "x.safetensors",
            "--output",
            "y.safetensors",
        ],
    ));
    assert!(
        err.contains("2×1×12×12") && err.contains("1×28×28"),
        "{err}"
    );
    // Not a safetensors file.
    std::fs::write(dir.path().join("junk.safetensors"), b"not a model").unwrap();
    let err = fails(&seqnet(
        dir.path(),
        &["predict", "--model", "junk.safetensors", "a.png"],
    ));
    assert!(
        err.contains("junk.safetensors") && err.contains("safetensors"),
        "{err}"
    );
    // A missing image.
    let err = fails(&seqnet(
        dir.path(),
        &["predict", "--model", model, "missing.png"],
    ));
    assert!(err.contains("missing.png"), "{err}");
    // A model whose weights are NaN (a diverged run): an error, not "0 (NaN%)".
    let mut net = seqnet::spec::build("Flatten() -> Linear(784, 10)", &[1, 28, 28], 1).unwrap();
    for (_, p) in net.named_params_mut() {
        p.value.data_mut().fill(f32::NAN);
    }
    let info = seqnet::io::model::ModelInfo::for_net(&net);
    seqnet::io::model::save(&dir.path().join("nan.safetensors"), &net, &info).unwrap();
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * y % 256) as u8]))
        .save(dir.path().join("digit.png"))
        .unwrap();
    let err = fails(&seqnet(
        dir.path(),
        &["predict", "--model", "nan.safetensors", "digit.png"],
    ));
    assert!(
        err.contains("not a number") && err.contains("digit.png"),
        "{err}"
    );
    assert!(
        !dir.path().join("y.safetensors").exists(),
        "no output written on error"
    );
}

/// Writes the model and batch files a user would make from the PyTorch fixture, trains
/// with the binary, and compares the final weights with PyTorch's.
fn training_matches(fixture_name: &str, optimizer_args: &[&str]) {
    training_matches_at(&fixture(fixture_name), optimizer_args, true);
}

/// [`training_matches`] for the fixture at `path`; `with_lr` adds the fixture's `--lr`
/// (the recipe fixtures give their own in `seqnet.args`).
fn training_matches_at(path: &Path, optimizer_args: &[&str], with_lr: bool) {
    let fixture_name = path.file_name().unwrap().to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let fx = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta: HashMap<String, String> = meta.metadata().clone().unwrap();

    let mut params = Vec::new();
    let mut after = HashMap::new();
    for (name, view) in fx.tensors() {
        if let Some(p) = name.strip_prefix("param.") {
            params.push((p.to_string(), view));
        } else if let Some(p) = name.strip_prefix("after.") {
            after.insert(p.to_string(), f32s(&view));
        }
    }
    let model_meta: HashMap<String, String> = [
        ("seqnet.spec".to_string(), meta["seqnet.spec"].clone()),
        ("seqnet.input".to_string(), meta["seqnet.input"].clone()),
    ]
    .into();
    std::fs::write(
        dir.path().join("m.safetensors"),
        safetensors::serialize(params, Some(model_meta)).unwrap(),
    )
    .unwrap();
    let batch = [
        ("images", fx.tensor("images").unwrap()),
        ("labels", fx.tensor("labels").unwrap()),
    ];
    std::fs::write(
        dir.path().join("b.safetensors"),
        safetensors::serialize(batch, None).unwrap(),
    )
    .unwrap();

    let mut args = vec![
        "train",
        "--model",
        "m.safetensors",
        "--train-data",
        "b.safetensors",
        "--epochs",
        &meta["epochs"],
        "--batch-size",
        &meta["batch_size"],
        "--no-shuffle",
        "--out",
        "run",
        "--quiet",
    ];
    if with_lr {
        args.extend(["--lr", &meta["lr"]]);
    }
    if !optimizer_args.contains(&"--schedule") {
        // PyTorch's steps are at a constant learning rate; seqnet's default recipe
        // (seed's) would multiply it by 0.6 after each epoch.
        args.extend(["--lr-decay", "1"]);
    }
    args.extend_from_slice(optimizer_args);
    ok(&seqnet(dir.path(), &args));

    let out = std::fs::read(dir.path().join("run/final.safetensors")).unwrap();
    let got = SafeTensors::deserialize(&out).unwrap();
    assert_eq!(got.names().len(), after.len(), "same parameters");
    for (name, want) in &after {
        assert_close(
            &format!("{fixture_name}: {name}"),
            &f32s(&got.tensor(name).unwrap()),
            want,
        );
    }
    // The per-epoch mean loss matches the mean of PyTorch's step losses.
    let losses = f32s(&fx.tensor("losses").unwrap());
    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    let epochs: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let per_epoch = losses.len() / epochs.len();
    for (e, m) in epochs.iter().enumerate() {
        let want: f64 = losses[e * per_epoch..(e + 1) * per_epoch]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / per_epoch as f64;
        let got = m["train_loss"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "epoch {e}: loss {got} vs PyTorch {want}"
        );
    }
}

#[test]
fn sgd_training_steps_match_pytorch() {
    training_matches(
        "train_sgd.safetensors",
        &["--momentum", "0.9", "--weight-decay", "0.001"],
    );
}

#[test]
fn adam_training_steps_match_pytorch() {
    training_matches("train_adam.safetensors", &["--optimizer", "adam"]);
}

/// Each recipe of tests/fixtures/recipes (AdamW, Nesterov, every --schedule, label
/// smoothing), given as the `seqnet train` options its fixture names, trains as PyTorch
/// did: the options reach the library as meant.
#[test]
fn recipe_options_train_as_pytorch() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recipes");
    let mut checked = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let Some(args) = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("seqnet.args").cloned())
        else {
            continue;
        };
        let args: Vec<&str> = args.split_whitespace().collect();
        training_matches_at(&path, &args, false);
        checked += 1;
    }
    assert!(checked >= 10, "{checked} recipe fixtures");
}

#[test]
fn training_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--batch-size", "0"], "--batch-size 0"),
        (vec!["--lr", "nan"], "--lr"),
        (vec!["--lr", "-1"], "--lr"),
        (vec!["--epochs", "0"], "--epochs 0"),
        (
            vec!["--augment", "rotate(10)"],
            "augmentation \"rotate(10)\": `rotate` is not a transform seqnet knows",
        ),
        (vec!["--augment", "crop(padding=1.5)"], "one whole number"),
        (vec!["--threads", "0"], "--threads 0"),
        (vec!["--net", "book-cnn"], "book-relu"),
        (
            vec![
                "--spec",
                "Conv2d(1, 20, 5) -> Dropout(1.5) -> Flatten() -> LazyLinear(10)",
            ],
            "p = 1.5",
        ),
        (vec!["--dataset", "no/such/folder"], "no/such/folder"),
        (
            vec!["--data-dir", "no/such/folder"],
            "--data-dir folder does not exist",
        ),
        (vec!["--net", "book-relux"], "did you mean 'book-relu'?"),
        (
            vec!["--model", "m.safetensors", "--init", "book"],
            "--init draws new weights",
        ),
        (
            vec!["--momentum", "0", "--nesterov"],
            "--nesterov needs a momentum above 0",
        ),
        (
            vec!["--optimizer", "adam", "--nesterov"],
            "--nesterov is SGD's",
        ),
        (vec!["--schedule", "multistep"], "needs --milestones"),
        (
            vec!["--schedule", "multistep", "--milestones", "5,3"],
            "must increase",
        ),
        (vec!["--schedule", "step"], "needs --step-size"),
        (
            vec!["--milestones", "3"],
            "--milestones is an option of --schedule multistep",
        ),
        (
            vec!["--schedule", "cosine", "--max-lr", "0.1"],
            "--max-lr is an option of --schedule onecycle, but this run's schedule is \
             --schedule cosine",
        ),
        (
            vec!["--schedule", "linear-warmup"],
            "needs --warmup-epochs or --warmup-steps",
        ),
        (
            vec![
                "--schedule",
                "cosine",
                "--warmup-epochs",
                "5",
                "--epochs",
                "5",
            ],
            "warm up for fewer",
        ),
        (
            vec!["--schedule", "onecycle", "--momentum", "0.9"],
            "cycles the momentum",
        ),
        (
            vec!["--schedule", "onecycle", "--pct-start", "1.5"],
            "--pct-start 1.5",
        ),
        (
            vec!["--lr-decay", "0.5", "--schedule", "cosine"],
            "--lr-decay",
        ),
        (vec!["--label-smoothing", "1.5"], "--label-smoothing 1.5"),
        (vec!["--patience", "0"], "--patience 0"),
        (vec!["--patience", "3"], "no validation set"),
    ] {
        let mut full = vec!["train", "--dataset", "mnist-5k", "--quiet", "--out", "run"];
        if args[0] == "--dataset" {
            full.truncate(1);
            full.extend(["--quiet", "--out", "run"]);
        }
        full.extend(&args);
        let err = fails(&seqnet(dir.path(), &full));
        assert!(
            err.contains(needle),
            "{args:?}: expected '{needle}' in:\n{err}"
        );
    }
}

#[test]
fn a_short_training_run_on_the_embedded_sample_saves_a_usable_model() {
    let dir = tempfile::tempdir().unwrap();
    let args = train_sample(
        "800",
        &["--out", "run", "--json", "--save", "copy.safetensors"],
    );
    let out = ok(&seqnet(dir.path(), &args));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one epoch object and a final one:\n{out}");
    let acc = lines[0]["test_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.5,
        "one epoch on 800 images should beat chance by far: {acc}"
    );
    for f in [
        "run/final.safetensors",
        "run/metrics.jsonl",
        "run/config.json",
        "copy.safetensors",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    // The model predicts the sample digit the run wrote.
    let sample = std::fs::read_dir(dir.path().join("run"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("sample-"))
        .expect("a sample digit");
    let out = ok(&seqnet(
        dir.path(),
        &[
            "predict",
            "--model",
            "run/final.safetensors",
            sample.path().to_str().unwrap(),
        ],
    ));
    assert!(out.contains('%'), "{out}");
}

/// The seed network given as text trains exactly as `--net seed` does (one default
/// recipe, not a hidden second one), and every run says its recipe in one line.
#[test]
fn a_network_given_as_text_trains_with_the_seed_recipe_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--dataset",
        "mnist-5k",
        "--epochs",
        "2",
        "--limit",
        "64",
        "--threads",
        "1",
    ];
    let mut weights = Vec::new();
    for (out, net) in [("a", ["--net", "seed"]), ("b", ["--spec", SEED_SPEC])] {
        let mut args = vec!["train", "--out", out];
        args.extend_from_slice(&net);
        args.extend_from_slice(&common);
        let (_, err) = ok_out_err(&seqnet(dir.path(), &args));
        let line = message(&err, "recipe (").unwrap_or_else(|| panic!("no recipe line:\n{err}"));
        assert!(
            line.contains(
                "SGD momentum 0.9, lr 0.03 ×0.6 per epoch, batch 32, 2 epochs, weight decay 0, \
                 L2 λ 0, init pytorch, official split; data mnist-5k, 64 training images"
            ),
            "{line}"
        );
        let config = std::fs::read_to_string(dir.path().join(out).join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["lr_decay"], 0.6);
        assert_eq!(config["dataset"], "mnist-5k");
        assert_eq!(config["split"], "official");
        let bytes = std::fs::read(dir.path().join(out).join("final.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        let all: Vec<Vec<f32>> = names.iter().map(|n| f32s(&st.tensor(n).unwrap())).collect();
        weights.push(all);
    }
    assert!(
        weights[0] == weights[1],
        "--spec trained differently from --net seed"
    );
}

/// runs/latest names the newest run, so `--model runs/latest/final.safetensors` works
/// after a run with the default folder; the closing hint is a command that runs.
#[test]
fn runs_latest_links_the_newest_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = ok_out_err(&seqnet(dir.path(), &train_sample("32", &[])));
    // Under `cargo test` the binary sees cargo's CARGO_PKG_NAME, as under `cargo run`;
    // `--release` when it is the release build (`cargo test --release`).
    let release = if cfg!(debug_assertions) {
        ""
    } else {
        " --release"
    };
    assert!(
        err.contains(&format!(
            "try it:  cargo run{release} -- predict --model runs/"
        )),
        "{err}"
    );
    let out = ok(&seqnet(
        dir.path(),
        &["summary", "--model", "runs/latest/final.safetensors"],
    ));
    assert!(out.contains("289,630"), "{out}");
}

/// A learning rate far too large is named, whether the run ends at chance (a warning,
/// exit 0) or the loss stops being a number (the run stops, its files kept).
#[test]
fn a_learning_rate_far_too_large_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = train_sample("500", &[]);
    let mut args = base.clone();
    args.extend(["--lr", "10", "--out", "ten"]);
    let (_, err) = ok_out_err(&seqnet(dir.path(), &args));
    let warning =
        message(&err, "warning: after epoch 1").unwrap_or_else(|| panic!("no warning:\n{err}"));
    assert!(warning.contains("chance level"), "{warning}");
    assert!(warning.contains("--lr 10;"), "{warning}");
    assert!(dir.path().join("ten/final.safetensors").exists());

    let mut args = base.to_vec();
    args.extend(["--lr", "1e6", "--out", "huge"]);
    let err = fails(&seqnet(dir.path(), &args));
    assert!(err.contains("the loss is NaN"), "{err}");
    assert!(err.contains("--lr 1e6;"), "{err}");
    assert!(dir.path().join("huge/config.json").exists());

    // A loss that grows far past its start but stays finite (Adam's steps are bounded
    // by lr, so the weights grow without overflowing): a warning naming --lr, not
    // silence.
    let mut args = base.to_vec();
    args.extend(["--optimizer", "adam", "--lr", "100", "--out", "adam"]);
    let (_, err) = ok_out_err(&seqnet(dir.path(), &args));
    let warning =
        message(&err, "warning: after epoch 1").unwrap_or_else(|| panic!("no warning:\n{err}"));
    assert!(warning.contains("the training loss is "), "{warning}");
    assert!(warning.contains("far above the 2.30"), "{warning}");
    assert!(
        warning.contains("--lr 100; try --lr 10 (a tenth)"),
        "{warning}"
    );
    // Under OneCycle the rate to lower is its peak, --max-lr.
    let mut args = base.to_vec();
    args.extend([
        "--optimizer",
        "adam",
        "--schedule",
        "onecycle",
        "--max-lr",
        "1000",
        "--out",
        "cycle",
    ]);
    let (_, err) = ok_out_err(&seqnet(dir.path(), &args));
    assert!(
        err.contains("this run has --max-lr 1000") && err.contains("try --max-lr 100 (a tenth)"),
        "{err}"
    );
}

/// --patience ends a run whose validation accuracy stops improving, says so, and
/// --json tells; the recipe line and config.json record it with the other new options.
#[test]
fn patience_stops_early_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A rate too small to move any weight: the validation accuracy stays where it is.
    let args = [
        "train",
        "--dataset",
        "mnist-5k",
        "--split",
        "book",
        "--limit",
        "200",
        "--epochs",
        "6",
        "--lr",
        "1e-20",
        "--patience",
        "2",
        "--nesterov",
        "--label-smoothing",
        "0.05",
        "--out",
        "run",
        "--json",
    ];
    let (out, err) = ok_out_err(&seqnet(dir.path(), &args));
    let stopped = message(&err, "stopped early").unwrap_or_default();
    assert!(
        stopped.contains(
            "stopped early after epoch 3 of 6: the validation accuracy has not improved for 2 \
             epochs (--patience 2); its best was"
        ),
        "{err}"
    );
    assert!(stopped.contains("at epoch 1 (best.safetensors)"), "{err}");
    let line = message(&err, "recipe (").unwrap();
    assert!(
        line.contains("SGD Nesterov momentum 0.9, lr 1e-20 ×0.6 per epoch")
            && line.contains("label smoothing 0.05")
            && line.contains("early stopping after 2 epochs without a better validation accuracy"),
        "{line}"
    );
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["stopped_early"], true, "{out}");
    assert_eq!(last["epochs"], 3, "{out}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["patience"], 2);
    assert_eq!(config["nesterov"], true);
    assert_eq!(config["label_smoothing"], 0.05);
    assert_eq!(config["schedule"]["kind"], "exponential");
    assert_eq!(
        config["recipe"].as_str(),
        line.split(": ")
            .nth(1)
            .map(|r| r.split("; data").next().unwrap())
    );
    // Resuming the finished run finds nothing to do.
    let (_, err) = ok_out_err(&seqnet(dir.path(), &["train", "--resume", "run"]));
    assert!(err.contains("stopped early after epoch 3"), "{err}");
}

/// A model file records its training data; eval and viz say which data they score and
/// warn when the model has seen those images (an MNIST model on the embedded sample,
/// whose "test" images are MNIST training images).
#[test]
fn scores_on_images_the_model_trained_on_are_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    ok(&seqnet(
        dir.path(),
        &train_sample("200", &["--out", "r", "--quiet"]),
    ));
    let bytes = std::fs::read(dir.path().join("r/final.safetensors")).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: HashMap<String, String> = meta.metadata().clone().unwrap();
    assert_eq!(meta["seqnet.dataset"], "mnist-5k");
    assert_eq!(meta["seqnet.split"], "official");
    assert_eq!(meta["seqnet.train_images"], "200");
    // The sample's own test images were not trained on.
    let (out, err) = ok_out_err(&seqnet(
        dir.path(),
        &[
            "eval",
            "--model",
            "r/final.safetensors",
            "--dataset",
            "mnist-5k",
        ],
    ));
    assert!(!err.contains("warning"), "{err}");
    assert!(
        out.contains("data: the embedded 5,000-image MNIST sample"),
        "{out}"
    );
    // The same weights, recorded as trained on MNIST.
    meta.insert("seqnet.dataset".into(), "mnist".into());
    let st = SafeTensors::deserialize(&bytes).unwrap();
    std::fs::write(
        dir.path().join("m.safetensors"),
        safetensors::serialize(st.tensors(), Some(meta)).unwrap(),
    )
    .unwrap();
    // MNIST is not installed here, so eval falls back to the embedded sample.
    let (out, err) = ok_out_err(&seqnet(dir.path(), &["eval", "--model", "m.safetensors"]));
    assert!(out.contains("MNIST was not found"), "{out}");
    assert!(
        err.starts_with("warning: m.safetensors: the model was trained on MNIST")
            && err.contains("has seen them"),
        "{err}"
    );
    let (_, err) = ok_out_err(&seqnet(
        dir.path(),
        &[
            "viz",
            "confusion",
            "--model",
            "m.safetensors",
            "-o",
            "c.png",
        ],
    ));
    assert!(err.contains("data: the test set of the embedded"), "{err}");
    assert!(
        err.contains("warning: the model was trained on MNIST"),
        "{err}"
    );
}

/// Every `seqnet train` option that takes a value says its default and gives an
/// example; an option from another tool is translated.
#[test]
fn train_options_say_their_default_and_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(&seqnet(dir.path(), &["train", "--help"]));
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        // An option's first line is indented less than its description (which may
        // itself have a line starting with `--`, wrapped).
        let indent = line.len() - line.trim_start().len();
        let head = line.trim_start();
        if indent <= 6 && (head.starts_with("--") || head.starts_with("-h,")) {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    let mut checked = 0;
    for b in &blocks {
        let head = b.lines().next().unwrap().trim();
        if !head.contains('<') || head.starts_with("--resume") {
            continue;
        }
        checked += 1;
        let flat = b.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("e.g."), "no example: {flat}");
        assert!(
            flat.to_lowercase().contains("default"),
            "no default: {flat}"
        );
    }
    assert!(checked >= 20, "{help}");

    let err = fails(&seqnet(dir.path(), &["train", "--lr-schedule", "0.5"]));
    assert!(
        err.contains("tip: seqnet's option for --lr-schedule is --schedule (step,"),
        "{err}"
    );
}

#[test]
fn summary_of_a_preset_shows_its_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&seqnet(dir.path(), &["summary", "--net", "book-relu"]));
    assert!(
        out.contains("recipe of `seqnet train --net book-relu`"),
        "{out}"
    );
    assert!(out.contains("L2 λ 0.1"), "{out}");
    let recipe = &out[out.find("recipe of").unwrap()..];
    assert!(recipe.lines().all(|l| l.chars().count() <= 100), "{out}");
    let json = ok(&seqnet(dir.path(), &["summary", "--net", "seed", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["recipe"]
            .as_str()
            .unwrap()
            .contains("lr 0.03 ×0.6 per epoch"),
        "{json}"
    );
}

#[test]
fn every_preset_trains_briefly_under_its_own_protocol() {
    let dir = tempfile::tempdir().unwrap();
    for preset in seqnet::presets::all() {
        let out_dir = format!("run-{}", preset.name);
        let out = ok(&seqnet(
            dir.path(),
            &train_sample(
                "60",
                &["--net", preset.name, "--quiet", "--json", "--out", &out_dir],
            ),
        ));
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        if preset.recipe.book_protocol {
            // The book's protocol: a validation split, and the test accuracy at the best
            // validation epoch.
            assert!(
                last["test_accuracy_at_best_val"].is_number(),
                "{}: {out}",
                preset.name
            );
            assert!(
                dir.path().join(&out_dir).join("best.safetensors").exists(),
                "{}",
                preset.name
            );
        }
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(&out_dir).join("config.json")).unwrap(),
        )
        .unwrap();
        let expected_images = if preset.recipe.expand { 300 } else { 60 };
        assert_eq!(config["train_images"], expected_images, "{}", preset.name);
        assert_eq!(
            config["init"],
            if preset.recipe.init == seqnet::Init::Book {
                "book"
            } else {
                "pytorch"
            },
            "{}",
            preset.name
        );
    }
}

/// A resumed run keeps the initialisation it was started with, even where the preset's
/// recipe says otherwise (a preset may change between versions). Here the recorded init
/// is rewritten to `pytorch` and the checkpoint removed, so the resumed run starts over:
/// it must start from PyTorch's weights, as recorded, not the preset's book ones.
#[test]
fn resume_keeps_the_recorded_initialisation() {
    let dir = tempfile::tempdir().unwrap();
    let args = train_sample("20", &["--net", "book-relu", "--quiet", "--out", "run"]);
    let largest_first_weight = || {
        let model = std::fs::read(dir.path().join("run").join("final.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&model).unwrap();
        let w = f32s(&st.tensor("0.weight").unwrap());
        w.iter().fold(0f32, |m, v| m.max(v.abs()))
    };
    ok(&seqnet(dir.path(), &args));
    let config_path = dir.path().join("run").join("config.json");
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap()
    };
    let mut config = read();
    assert_eq!(config["init"], "book");
    // The book's N(0, 1/125) for 20 filters of 5×5 before a 2×2 pool: some of the 500
    // weights lie beyond PyTorch's bound 1/√25 = 0.2 (two SGD steps at η 0.03 move them
    // far less than the margins used here).
    assert!(largest_first_weight() > 0.22, "{}", largest_first_weight());
    config["init"] = "pytorch".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    std::fs::remove_file(dir.path().join("run").join("checkpoint.safetensors")).unwrap();
    ok(&seqnet(
        dir.path(),
        &["train", "--resume", "run", "--quiet"],
    ));
    assert_eq!(read()["init"], "pytorch");
    assert!(largest_first_weight() < 0.21, "{}", largest_first_weight());
}

/// A run's results are never overwritten: a second run with the same --out is refused,
/// default folders of runs started in the same second get their own names, --resume
/// refuses options that would change the run, a finished run resumes to nothing, and a
/// bad --save path fails before training.
#[test]
fn runs_are_never_overwritten_and_resume_keeps_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let base = train_sample(
        "40",
        &[
            "--spec",
            "Conv2d(1, 2, 5) -> MaxPool2d(4) -> Flatten() -> LazyLinear(10)",
            "--quiet",
        ],
    );
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    ok(&seqnet(dir.path(), &with(&base, &["--out", "run"])));
    let final_path = dir.path().join("run/final.safetensors");
    let first = std::fs::read(&final_path).unwrap();
    let pngs = std::fs::read_dir(dir.path().join("run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".png"))
        .count();
    assert_eq!(pngs, 1, "a --quiet run still leaves its sample digit");

    let err = fails(&seqnet(
        dir.path(),
        &with(&base, &["--out", "run", "--seed", "2"]),
    ));
    assert!(err.contains("already holds a run"), "{err}");
    assert!(err.contains("--resume run"), "{err}");

    let err = fails(&seqnet(
        dir.path(),
        &["train", "--resume", "run", "--epochs", "3", "--lr", "9"],
    ));
    assert!(
        err.contains("--epochs 3") && err.contains("--lr 9"),
        "{err}"
    );
    // Typed, even at its default value, an option is refused: the run may differ.
    let err = fails(&seqnet(
        dir.path(),
        &["train", "--resume", "run", "--seed", "1"],
    ));
    assert!(err.contains("--seed 1"), "{err}");
    let (_, said) = support::run::ok_out_err(&seqnet(
        dir.path(),
        &[
            "train",
            "--resume",
            "run",
            "--threads",
            "1",
            "--save",
            "copy.safetensors",
        ],
    ));
    assert!(said.contains("already finished its 1 epoch"), "{said}");
    let copy = std::fs::read(dir.path().join("copy.safetensors")).unwrap();
    assert_eq!(copy, first, "--save on a finished run copies its model");
    assert_eq!(
        std::fs::read(&final_path).unwrap(),
        first,
        "final model rewritten"
    );

    for _ in 0..3 {
        ok(&seqnet(dir.path(), &base));
    }
    let runs = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "latest")
        .count();
    assert_eq!(runs, 3, "three default runs, three folders");
    assert!(dir.path().join("runs/latest/final.safetensors").exists());

    let err = fails(&seqnet(
        dir.path(),
        &with(
            &base,
            &["--out", "saved", "--save", "no/such/folder/m.safetensors"],
        ),
    ));
    assert!(err.contains("no/such/folder"), "{err}");
    assert!(!dir.path().join("saved").exists(), "failed before training");
}

/// `bench --warmup 0` times from the first step (no step is no divergence).
#[test]
fn bench_without_warmup() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&seqnet(
        dir.path(),
        &[
            "bench",
            "--net",
            "seed",
            "--dataset",
            "mnist-5k",
            "--images",
            "20",
            "--batch-size",
            "10",
            "--warmup",
            "0",
            "--infer-images",
            "10",
            "--threads",
            "1",
        ],
    ));
    assert!(out.contains("train_img_per_s"), "{out}");
    let err = fails(&seqnet(
        dir.path(),
        &["bench", "--images", "0", "--infer-images", "0"],
    ));
    assert!(err.contains("nothing to measure"), "{err}");
}

/// `bench --per-layer` on two threads: the shares are of CPU time (the layer times are
/// summed over the threads), so together they stay within 100 %; without an inference
/// pass the inference columns are empty, not the training times again.
#[test]
fn bench_per_layer_shares_are_of_cpu_time() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&seqnet(
        dir.path(),
        &[
            "bench",
            "--net",
            "seed",
            "--dataset",
            "mnist-5k",
            "--images",
            "200",
            "--batch-size",
            "10",
            "--warmup",
            "20",
            "--infer-images",
            "0",
            "--threads",
            "2",
            "--per-layer",
            "--json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let layers = report["layers"].as_array().unwrap();
    let train_share: f64 = layers
        .iter()
        .map(|l| l["train_share"].as_f64().unwrap())
        .sum();
    assert!(
        train_share > 0.0 && train_share <= 1.0,
        "shares sum to {train_share}: {out}"
    );
    for l in layers {
        assert_eq!(l["infer_us"].as_f64(), Some(0.0), "{out}");
    }
}

/// `--augment` alone picks RandomAffine for MNIST's grey digits and says so in the recipe
/// line and config.json.
#[test]
fn augment_alone_picks_the_affine_default_for_grey_digits_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let args = train_sample("64", &["--augment", "--out", "run"]);
    let (_, err) = ok_out_err(&seqnet(dir.path(), &args));
    let want = "augmented by RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), \
                interpolation=bilinear)";
    let line = message(&err, "recipe (").unwrap_or_default();
    assert!(line.contains(want), "{err}");
    let config = std::fs::read_to_string(dir.path().join("run/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["args"]["augment"], "auto");
    assert!(
        config["augment"]
            .as_str()
            .unwrap()
            .starts_with("RandomAffine(degrees=10")
    );
}
