//! The training recipes against PyTorch: optimizers (AdamW, SGD with Nesterov momentum),
//! learning-rate schedules (StepLR, MultiStepLR, CosineAnnealingLR with and without a
//! LinearLR warm-up, OneCycleLR with cycle_momentum, LinearLR) and label smoothing.
//!
//! The fixtures, `tests/fixtures/recipes/*.safetensors`, are written by
//! `tests/fixtures/gen_recipe_fixtures.py` (see its header). Each `train_*` file is a
//! small CNN trained by PyTorch for two epochs of five mini-batches, in file order, from
//! fixed weights; here seqnet's library trains the same network on the same data with
//! the recipe the fixture names, and the test compares every step's learning rate,
//! momentum and loss and the final weights. `lr_schedules.safetensors` holds longer rate
//! sequences of schedulers stepped alone. Running these tests needs no Python.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use seqnet::data::Dataset;
use seqnet::layers::Init;
use seqnet::recipe::{OptimizerChoice, Recipe};
use seqnet::schedule::{Position, Schedule};
use seqnet::train::{Observer, TrainState};
use seqnet::{Result, Sequential};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recipes")
}

struct Fixture {
    name: String,
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn read(path: &Path) -> Fixture {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; generate the fixtures with /opt/torchenv/bin/python \
                 tests/fixtures/gen_recipe_fixtures.py",
                path.display()
            )
        });
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap_or_default();
        Fixture { name, bytes, meta }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    fn get(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .unwrap_or_else(|| panic!("{}: no metadata {key}", self.name))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> T {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{}: metadata {key} = {}", self.name, self.get(key)))
    }
}

fn f32s(view: &TensorView) -> Vec<f32> {
    assert_eq!(view.dtype(), Dtype::F32);
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn f64s(view: &TensorView) -> Vec<f64> {
    assert_eq!(view.dtype(), Dtype::F64);
    view.data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// A rate used in f32 (seqnet's) against PyTorch's Python float: equal to f32
/// rounding, |got − want| ≤ 2⁻²³·|want| (one f32 ulp) plus a floor for rates of 0.
fn assert_rate(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (f64::from(g) - w).abs();
        assert!(
            d <= f64::from(f32::EPSILON) * w.abs() + 1e-15,
            "{what}: step {i}: PyTorch {w:e}, seqnet {g:e} (difference {d:e}); all of PyTorch's: \
             {want:?}"
        );
    }
}

/// |got − want| ≤ 1e-5 · max|want| for every element: float32 rounding of the sums, as
/// in tests/pytorch_reference.rs and tests/cli.rs.
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

/// Every step's rate, momentum and loss, as the loop used them.
#[derive(Default)]
struct Recorder {
    lrs: Vec<f32>,
    momentums: Vec<f32>,
    losses: Vec<f32>,
}

impl Observer for Recorder {
    fn on_step(
        &mut self,
        _net: &mut Sequential,
        state: &TrainState,
        _steps: usize,
        loss: f32,
    ) -> Result<()> {
        self.lrs.push(state.optimizer.lr);
        self.momentums.push(state.optimizer.kind.momentum());
        self.losses.push(loss);
        Ok(())
    }
}

/// The recipe a fixture's metadata names, built with the library's types.
fn recipe_of(fx: &Fixture) -> Recipe {
    let optimizer = match fx.get("optimizer") {
        "SGD" => OptimizerChoice::Sgd,
        "Adam" => OptimizerChoice::Adam,
        "AdamW" => OptimizerChoice::AdamW,
        other => panic!("{}: optimizer {other}", fx.name),
    };
    let schedule = fx
        .meta
        .get("seqnet.schedule")
        .map_or(Schedule::CONSTANT, |s| {
            serde_json::from_str(s).unwrap_or_else(|e| panic!("{}: seqnet.schedule: {e}", fx.name))
        });
    let per_step = fx.get("per") == "step";
    assert_eq!(
        schedule.per_step(),
        per_step && fx.meta.contains_key("seqnet.schedule"),
        "{}: stepped per {} in PyTorch",
        fx.name,
        fx.get("per")
    );
    Recipe {
        epochs: fx.parse("epochs"),
        batch_size: fx.parse("batch_size"),
        optimizer,
        lr: fx.parse("lr"),
        momentum: fx.meta.get("momentum").map_or(0.0, |m| m.parse().unwrap()),
        nesterov: fx.meta.get("nesterov").is_some_and(|n| n == "true"),
        weight_decay: fx.parse("weight_decay"),
        l2: 0.0,
        expand: false,
        book_protocol: false,
        schedule,
        label_smoothing: fx.parse("label_smoothing"),
        patience: None,
        init: Init::PyTorch,
        shuffle: false,
        normalize: None,
        augment: None,
    }
}

/// The fixture's network with its initial weights, and its images.
fn net_and_data(fx: &Fixture) -> (Sequential, Dataset) {
    let st = fx.tensors();
    let images = st.tensor("images").unwrap();
    assert_eq!(images.dtype(), Dtype::U8);
    let labels: Vec<usize> = st
        .tensor("labels")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
        .collect();
    let shape = [1, 12, 12];
    let ds = Dataset::new_u8(&fx.name, images.data().to_vec(), labels, shape, 10).unwrap();
    let mut net = seqnet::spec::build(fx.get("seqnet.spec"), &shape, 0).unwrap();
    for (name, p) in net.named_params_mut() {
        let v = f32s(&st.tensor(&format!("param.{name}")).unwrap());
        p.value.data_mut().copy_from_slice(&v);
    }
    (net, ds)
}

fn train_fixtures() -> Vec<Fixture> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("{}: {e}", dir().display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("train_"))
        })
        .collect();
    files.sort();
    files.iter().map(|p| Fixture::read(p)).collect()
}

/// Every recipe of the fixtures, trained by seqnet's library: the same rate, momentum
/// and loss at every step, and the same weights after two epochs, as PyTorch.
#[test]
fn recipes_train_as_pytorch_over_two_epochs() {
    let fixtures = train_fixtures();
    let names: Vec<&str> = fixtures.iter().map(|f| f.name.as_str()).collect();
    for want in [
        "train_adamw",
        "train_sgd_nesterov",
        "train_steplr",
        "train_multisteplr",
        "train_cosine",
        "train_cosine_warmup_steps",
        "train_linear_warmup",
        "train_onecycle_sgd_nesterov",
        "train_onecycle_adamw",
        "train_label_smoothing",
    ] {
        assert!(
            names.contains(&want),
            "fixture {want} is missing: {names:?}"
        );
    }
    for fx in &fixtures {
        let recipe = recipe_of(fx);
        let (mut net, ds) = net_and_data(fx);
        let mut state = recipe.new_state(ds.len(), 0);
        let cfg = recipe.train_config();
        let mut rec = Recorder::default();
        seqnet::train::train(&mut net, &mut state, &ds, None, None, &cfg, &mut rec)
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name));

        let st = fx.tensors();
        let case = &fx.name;
        assert_rate(
            &format!("{case}: lr"),
            &rec.lrs,
            &f64s(&st.tensor("lrs").unwrap()),
        );
        assert_rate(
            &format!("{case}: momentum"),
            &rec.momentums,
            &f64s(&st.tensor("momentums").unwrap()),
        );
        let losses = f32s(&st.tensor("losses").unwrap());
        for (i, (g, w)) in rec.losses.iter().zip(&losses).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs(),
                "{case}: step {i}: loss {g}, PyTorch {w}"
            );
        }
        assert_eq!(rec.losses.len(), losses.len(), "{case}: steps");
        for (name, p) in net.named_params() {
            let want = f32s(&st.tensor(&format!("after.{name}")).unwrap());
            assert_close(&format!("{case}: {name}"), p.value.data(), &want);
        }
    }
}

/// Longer rate sequences: each scheduler stepped alone by PyTorch, against
/// [`Schedule::at`] at the same epochs or mini-batches.
#[test]
fn schedules_give_pytorchs_rates() {
    let fx = Fixture::read(&dir().join("lr_schedules.safetensors"));
    let st = fx.tensors();
    let mut cases: Vec<(&String, &String)> =
        fx.meta.iter().filter(|(k, _)| *k != "torch").collect();
    cases.sort();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    for (name, text) in cases {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let schedule: Schedule =
            serde_json::from_value(v["schedule"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let base = v["base_lr"].as_f64().unwrap() as f32;
        let epochs = v["epochs"].as_u64().unwrap() as usize;
        let steps = v["steps_per_epoch"].as_u64().unwrap() as usize;
        schedule.check(epochs, steps).unwrap();
        let per_step = v["per"] == "step";
        assert_eq!(schedule.per_step(), per_step && steps > 1, "{name}");
        let want_lr = f64s(&st.tensor(&format!("{name}.lr")).unwrap());
        let want_m = f64s(&st.tensor(&format!("{name}.momentum")).unwrap());
        let at = |i: usize| {
            let (epoch, step_in_epoch) = if per_step {
                (i / steps, i % steps)
            } else {
                (i, 0)
            };
            schedule.at(
                base,
                Position {
                    epoch,
                    step_in_epoch,
                    steps_per_epoch: steps,
                    epochs,
                },
            )
        };
        let rates: Vec<_> = (0..want_lr.len()).map(at).collect();
        let lrs: Vec<f32> = rates.iter().map(|r| r.lr).collect();
        assert_rate(&format!("{name}: lr"), &lrs, &want_lr);
        match rates[0].momentum {
            Some(_) => {
                let ms: Vec<f32> = rates.iter().map(|r| r.momentum.unwrap()).collect();
                assert_rate(&format!("{name}: momentum"), &ms, &want_m);
            }
            // The optimiser's own momentum, untouched (0.9 in the fixture).
            None => assert!(want_m.iter().all(|&m| m == 0.9), "{name}: {want_m:?}"),
        }
    }
}
