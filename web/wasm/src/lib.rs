//! seqnet in the browser: the bindings the page (web/src/) calls. Every computation is
//! the seqnet library's own (spec parser, summary, training step, safetensors, IDX,
//! `prepare_grey`); this file only converts to and from what JavaScript passes, as JSON
//! strings and byte arrays. Errors come back as the library's messages, the same text the
//! CLI prints after `error: `.

use std::path::Path;

use seqnet::data::{Dataset, embedded};
use seqnet::evaluate::Misfit;
use seqnet::io::model::{self, ModelInfo, TrainedOn};
use seqnet::layers::Layer;
use seqnet::recipe::{OptimizerChoice, Recipe};
use seqnet::summary::Summary;
use seqnet::train::{self, StepBuffers, TrainState, accumulate_gradients};
use seqnet::{Mode, Sequential, Tensor};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

/// Rust panics go to the console with their message (the worker also catches the
/// exception and posts it to the page).
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The shape arithmetic table of `spec` for images of shape `input` (e.g. "1x28x28"), as
/// `seqnet summary --json` gives it plus the rendered text table; an error is the
/// library's message with line, column and caret.
#[wasm_bindgen]
pub fn summarize(spec: &str, input: &str) -> Result<String, JsError> {
    let shape = seqnet::shape::parse_input_shape(input).map_err(js_err)?;
    let net = seqnet::spec::build(spec, &shape.dims, 0).map_err(js_err)?;
    let summary = Summary::of(&net);
    let mut v = serde_json::to_value(&summary).map_err(js_err)?;
    v["text"] = summary.render().into();
    v["canonical"] = net.spec().into();
    Ok(v.to_string())
}

/// The presets: name, spec, input and recipe, for the menu.
#[wasm_bindgen]
pub fn presets() -> String {
    let list: Vec<Value> = seqnet::presets::all()
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "spec": p.spec,
                "input": p.input,
                "recipe": recipe_json(&p.recipe),
                "describe": p.recipe.describe(p.recipe.init_name()),
            })
        })
        .collect();
    Value::Array(list).to_string()
}

fn recipe_json(r: &Recipe) -> Value {
    json!({
        "optimizer": r.optimizer.name(),
        "lr": r.lr,
        "batch_size": r.batch_size,
        "epochs": r.epochs,
    })
}

/// The test set's images for the draw test and the activation picker: `count` images
/// from `start` of the embedded sample's test part, as u8 grey levels, with labels.
#[wasm_bindgen]
pub fn sample_test_images(start: usize, count: usize) -> Result<String, JsError> {
    let (_, test) = embedded::mnist_5k().map_err(js_err)?;
    let end = (start + count).min(test.len());
    let images: Vec<Vec<u8>> = (start..end)
        .map(|i| test.image_u8(i).map(<[u8]>::to_vec).unwrap_or_default())
        .collect();
    Ok(json!({"images": images, "labels": &test.labels[start..end]}).to_string())
}

/// A training session: data, network, recipe and where the run is. The worker owns one
/// and calls [`Session::run_steps`] in short slices, so that pause and resume are just
/// not calling it, and messages get through between slices.
#[wasm_bindgen]
pub struct Session {
    train: Option<Dataset>,
    test: Option<Dataset>,
    dataset: String,
    net: Option<Sequential>,
    info: Option<ModelInfo>,
    recipe: Recipe,
    state: Option<TrainState>,
    bufs: StepBuffers,
    idx: Vec<usize>,
    seed: u64,
    /// The training set of the run when `limit` cut it short.
    train_run: Option<Dataset>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl Session {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Session {
        Session {
            train: None,
            test: None,
            dataset: String::new(),
            net: None,
            info: None,
            recipe: Recipe::CUSTOM,
            state: None,
            bufs: StepBuffers::default(),
            idx: Vec::new(),
            seed: 1,
            train_run: None,
        }
    }

    /// The embedded 5,000-image sample (4,000 training, 1,000 test), as `seqnet train
    /// --dataset mnist-5k` uses it.
    pub fn use_embedded(&mut self) -> Result<String, JsError> {
        let (train, test) = embedded::mnist_5k().map_err(js_err)?;
        self.set_data(train, test, embedded::NAME.to_string())
    }

    /// The user's own IDX files (gzipped or not): training images and labels, test images
    /// and labels, with the names they had, for messages.
    #[allow(clippy::too_many_arguments)]
    pub fn use_idx(
        &mut self,
        train_images: &[u8],
        train_images_name: &str,
        train_labels: &[u8],
        train_labels_name: &str,
        test_images: &[u8],
        test_images_name: &str,
        test_labels: &[u8],
        test_labels_name: &str,
    ) -> Result<String, JsError> {
        let train = seqnet::data::pair_from_bytes(
            train_images,
            Path::new(train_images_name),
            train_labels,
            Path::new(train_labels_name),
            "train".into(),
        )
        .map_err(js_err)?;
        let test = seqnet::data::pair_from_bytes(
            test_images,
            Path::new(test_images_name),
            test_labels,
            Path::new(test_labels_name),
            "test".into(),
        )
        .map_err(js_err)?;
        if train.shape != test.shape {
            return Err(JsError::new(&format!(
                "{test_images_name}: its images are {}×{}, but {train_images_name}'s are \
                 {}×{}; open the test files of the same dataset",
                test.shape[1], test.shape[2], train.shape[1], train.shape[2]
            )));
        }
        self.set_data(train, test, "files opened in the browser".to_string())
    }

    fn set_data(&mut self, train: Dataset, test: Dataset, name: String) -> Result<String, JsError> {
        let out = json!({
            "train": train.len(), "test": test.len(), "shape": train.shape, "dataset": name,
        });
        self.train = Some(train);
        self.test = Some(test);
        self.dataset = name;
        self.state = None;
        Ok(out.to_string())
    }

    /// Builds a fresh network from `spec` for the data's image shape and sets the recipe,
    /// as `seqnet train --spec SPEC --optimizer .. --lr .. --batch-size .. --epochs ..
    /// --seed ..` does (the other recipe settings are the default recipe's).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &mut self,
        spec: &str,
        optimizer: &str,
        lr: f32,
        batch_size: usize,
        epochs: usize,
        seed: u64,
        limit: usize,
    ) -> Result<String, JsError> {
        let full = self
            .train
            .as_ref()
            .ok_or_else(|| js_err("no data loaded"))?;
        // `--limit N`: the first N training images (0: all).
        let run_train = (limit > 0 && limit < full.len()).then(|| full.subset(0..limit));
        let train = run_train.as_ref().unwrap_or(full);
        let mut recipe = Recipe::CUSTOM;
        let choice = match optimizer {
            "sgd" => OptimizerChoice::Sgd,
            "adam" => OptimizerChoice::Adam,
            other => return Err(js_err(format!("optimizer '{other}': use sgd or adam"))),
        };
        recipe.use_optimizer(choice);
        if !(lr.is_finite() && lr > 0.0) {
            return Err(js_err(format!(
                "learning rate {lr}: give a positive number, e.g. 0.03"
            )));
        }
        if batch_size == 0 || epochs == 0 {
            return Err(js_err(
                "batch size and epochs must be at least 1, e.g. batch 32, 1 epoch",
            ));
        }
        recipe.lr = lr;
        recipe.batch_size = batch_size;
        recipe.epochs = epochs;
        let mut net = seqnet::spec::build(spec, &train.shape, seed).map_err(js_err)?;
        check_fits(&net, train)?;
        let init = recipe.initialise(&mut net, seed);
        let mut info = ModelInfo::for_net(&net);
        info.seed = Some(seed);
        info.normalize = recipe.normalize;
        info.trained_on = Some(TrainedOn {
            dataset: self.dataset.clone(),
            split: Some("official".into()),
            images: Some(train.len()),
        });
        let steps_per_epoch = recipe.steps_per_epoch(train.len());
        self.state = Some(recipe.new_state(train.len(), seed));
        self.train_run = run_train;
        self.recipe = recipe;
        self.seed = seed;
        self.net = Some(net);
        self.info = Some(info);
        Ok(json!({
            "recipe": self.recipe.describe(init),
            "steps_per_epoch": steps_per_epoch,
            "epochs": epochs,
        })
        .to_string())
    }

    /// Opens a model file (the CLI's, or PyTorch's with seqnet metadata) to inspect and
    /// draw against; `name` is the file's name, for messages.
    pub fn open_model(&mut self, name: &str, bytes: &[u8]) -> Result<String, JsError> {
        let m = model::load_bytes(Path::new(name), bytes)
            .map_err(|e| js_err(format!("reading {name}: {e}")))?;
        // A model that does not fit the loaded data is told so now, not at the first
        // batch: the same check and message as `seqnet train --model`.
        if let Some(train) = &self.train
            && let Err(misfit) = seqnet::evaluate::check_fits(&m.net, train)
        {
            let warning = misfit_message(misfit);
            self.state = None;
            let out = json!({
                "spec": m.info.spec, "input": m.info.input, "warnings": m.warnings,
                "misfit": warning,
            });
            self.net = Some(m.net);
            self.info = Some(m.info);
            return Ok(out.to_string());
        }
        let out = json!({"spec": m.info.spec, "input": m.info.input, "warnings": m.warnings});
        self.state = None;
        self.net = Some(m.net);
        self.info = Some(m.info);
        Ok(out.to_string())
    }

    /// Runs up to `max_steps` mini-batches of the run (stopping early at the end of an
    /// epoch, which is then evaluated), as `seqnet::train::train` does them: the same
    /// order, optimiser and sums, so the same seed gives the same weights as the CLI.
    pub fn run_steps(&mut self, max_steps: usize) -> Result<String, JsError> {
        let train = self.train_run.as_ref().or(self.train.as_ref());
        let (Some(net), Some(state), Some(train)) = (self.net.as_mut(), self.state.as_mut(), train)
        else {
            return Err(js_err("build the network first"));
        };
        let cfg = self.recipe.train_config();
        let n = train.len();
        let bs = cfg.batch_size.max(1);
        let steps = n.div_ceil(bs);
        if state.epoch >= cfg.epochs {
            return Ok(json!({"done": true}).to_string());
        }
        let mut losses = Vec::new();
        for _ in 0..max_steps {
            if state.step_in_epoch == 0 {
                train::begin_epoch(state, &cfg, n);
                self.bufs = train::epoch_buffers(state, &cfg);
            }
            // The library's step: the schedule's rate, the gradient, the optimiser.
            let loss = train::train_step(net, state, train, &cfg, &mut self.idx, &mut self.bufs)
                .map_err(js_err)?;
            losses.push(loss);
            if state.step_in_epoch == steps {
                break;
            }
        }
        let mut out = json!({
            "epoch": state.epoch,
            "step": state.step_in_epoch,
            "steps": steps,
            "epochs": cfg.epochs,
            "losses": losses,
            "images": n,
        });
        if state.step_in_epoch == steps {
            let train_loss = state.loss_sum / steps.max(1) as f64;
            let lr = state.optimizer.lr;
            state.epoch += 1;
            state.step_in_epoch = 0;
            out["epoch_end"] = json!({
                "epoch": state.epoch, "train_loss": train_loss, "lr": lr,
            });
            out["done"] = (state.epoch >= cfg.epochs).into();
        }
        Ok(out.to_string())
    }

    /// Evaluates the network on the test set: accuracy, the confusion matrix (rows are
    /// labels, columns predictions) and the `mistakes` most confident mistakes.
    pub fn evaluate(&mut self, mistakes: usize) -> Result<String, JsError> {
        let (Some(net), Some(test)) = (self.net.as_mut(), self.test.as_ref()) else {
            return Err(js_err("load data and a network first"));
        };
        check_fits(net, test)?;
        let normalize = self.info.as_ref().and_then(|i| i.normalize);
        let p = seqnet::evaluate::predict(net, test, normalize, true).map_err(js_err)?;
        let classes = test.classes.max(p.outputs);
        let mut confusion = vec![vec![0usize; classes]; test.classes];
        let mut wrong: Vec<(f32, usize)> = Vec::new();
        for (i, (&pred, &label)) in p.classes.iter().zip(&test.labels).enumerate() {
            confusion[label][pred] += 1;
            if pred != label {
                wrong.push((p.probs_of(i)[pred], i));
            }
        }
        wrong.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let top: Vec<Value> = wrong
            .iter()
            .take(mistakes)
            .map(|&(conf, i)| {
                json!({
                    "index": i, "label": test.labels[i], "predicted": p.classes[i],
                    "confidence": conf,
                    "pixels": test.image_u8(i).map(<[u8]>::to_vec),
                })
            })
            .collect();
        let correct = seqnet::evaluate::correct(&p.classes, &test.labels);
        Ok(json!({
            "accuracy": seqnet::evaluate::ratio(correct, test.len()),
            "correct": correct,
            "images": test.len(),
            "confusion": confusion,
            "mistakes": top,
            "shape": test.shape,
        })
        .to_string())
    }

    /// The first layer's weights if it is a convolution: `[out, in, kh, kw]` and values.
    pub fn filters(&self) -> Result<String, JsError> {
        let net = self.net.as_ref().ok_or_else(|| js_err("no network"))?;
        let first = net.layers().first();
        let weight = first.filter(|l| l.kind().contains("Conv")).and_then(|l| {
            l.params()
                .into_iter()
                .find(|(n, _)| *n == "weight")
                .map(|(_, p)| p.value.clone())
        });
        Ok(match weight {
            Some(w) => json!({"shape": w.shape(), "values": w.data(),
                              "layer": first.map(|l| l.repr())}),
            None => Value::Null,
        }
        .to_string())
    }

    /// The outputs of every layer for test image `index`, each with its layer and
    /// shape, in Eval mode.
    pub fn activations(&mut self, index: usize) -> Result<String, JsError> {
        let (Some(net), Some(test)) = (self.net.as_mut(), self.test.as_ref()) else {
            return Err(js_err("load data and a network first"));
        };
        check_fits(net, test)?;
        let index = index.min(test.len().saturating_sub(1));
        let (mut x, _) = test.batch(&[index]);
        if let Some(n) = self.info.as_ref().and_then(|i| i.normalize) {
            n.apply(x.data_mut());
        }
        let mut out = vec![json!({"layer": "input", "shape": net.input_shape(),
                                  "values": x.data()})];
        for layer in net.layers_mut() {
            x = Layer::forward(layer.as_mut(), &x, Mode::Eval);
            let shape = &x.shape()[1..];
            // Cap what goes to the page: a huge layer is shown by its first values.
            let values: Vec<f32> = x.data().iter().take(65_536).copied().collect();
            out.push(json!({"layer": layer.repr(), "shape": shape, "values": values}));
        }
        Ok(json!({"index": index, "label": test.labels[index], "layers": out}).to_string())
    }

    /// A drawing (RGBA from a canvas, `w`×`h`; ink is dark or light, both work) fitted
    /// and centred by `seqnet::io::image::prepare_grey`, as `seqnet predict` does, then
    /// classified: the fitted image and the probabilities.
    pub fn predict_drawing(&mut self, rgba: &[u8], w: usize, h: usize) -> Result<String, JsError> {
        let net = self.net.as_mut().ok_or_else(|| js_err("no network"))?;
        if rgba.len() != w * h * 4 {
            return Err(js_err("the drawing's pixels do not match its size"));
        }
        // Grey as the image crate's luma8 (ITU-R BT.709 weights, rounded), over white:
        // the canvas draws dark ink on a white background.
        let grey: Vec<u8> = rgba
            .chunks_exact(4)
            .map(|p| {
                let a = p[3] as f32 / 255.0;
                let l = 0.2126 * p[0] as f32 + 0.7152 * p[1] as f32 + 0.0722 * p[2] as f32;
                (l * a + 255.0 * (1.0 - a)).round().clamp(0.0, 255.0) as u8
            })
            .collect();
        let shape = net.input_shape().to_vec();
        let mut x = seqnet::io::image::prepare_grey(&grey, w, h, &shape).map_err(js_err)?;
        let fitted = x.clone();
        let normalize = self.info.as_ref().and_then(|i| i.normalize);
        if let Some(n) = normalize {
            n.apply(&mut x);
        }
        let mut batch = vec![1];
        batch.extend(&shape);
        let logits = net
            .infer(&Tensor::from_vec(&batch, x).map_err(js_err)?)
            .map_err(js_err)?;
        let probs = seqnet::loss::probabilities(&logits, net.output_kind());
        Ok(
            json!({"fitted": fitted, "shape": shape, "logits": logits.data(),
                  "probs": probs.data()})
            .to_string(),
        )
    }

    /// The logits for one image given as values (C×H×W), as `seqnet predict --input`
    /// computes them from a batch file (which applies no normalisation either).
    pub fn logits(&mut self, values: &[f32]) -> Result<String, JsError> {
        let net = self.net.as_mut().ok_or_else(|| js_err("no network"))?;
        let mut batch = vec![1];
        batch.extend(net.input_shape());
        let x = values.to_vec();
        let out = net
            .forward(&Tensor::from_vec(&batch, x).map_err(js_err)?, Mode::Eval)
            .map_err(js_err)?;
        Ok(json!(out.data()).to_string())
    }

    /// The model as a safetensors file, the bytes `seqnet train` would save.
    pub fn model_bytes(&self) -> Result<Vec<u8>, JsError> {
        let (Some(net), Some(info)) = (self.net.as_ref(), self.info.as_ref()) else {
            return Err(js_err("no network to save"));
        };
        model::to_bytes(Path::new("model.safetensors"), net, info).map_err(js_err)
    }

    /// FNV-1a of every parameter's bits in order: two runs with the same hash have the
    /// same weights, bitwise.
    pub fn weights_hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        if let Some(net) = &self.net {
            for (_, p) in net.named_params() {
                for v in p.value.data() {
                    for b in v.to_bits().to_le_bytes() {
                        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
                    }
                }
            }
        }
        format!("{h:016x}")
    }

    /// Normalisation recorded in the model, if any (for the page's info line).
    pub fn normalize(&self) -> Option<String> {
        self.info
            .as_ref()
            .and_then(|i| i.normalize)
            .map(|n| n.to_string())
    }
}

/// Panics on purpose: the page's test that a Rust panic in the worker is shown.
#[wasm_bindgen]
pub fn debug_panic() {
    panic!("debug_panic was called (the page's panic test)");
}

fn misfit_message(m: Misfit) -> String {
    match m {
        Misfit::Input { .. } => format!("{m}; rebuild it with --spec, or use data of that shape"),
        Misfit::Output { classes, .. } => {
            format!("{m}; end the network with Linear(…, {classes})")
        }
    }
}

fn check_fits(net: &Sequential, ds: &Dataset) -> Result<(), JsError> {
    seqnet::evaluate::check_fits(net, ds).map_err(|m| js_err(misfit_message(m)))
}

/// The bench page's work, as `seqnet bench` does it (src/cli/bench.rs): plain SGD on
/// the preset network over the embedded sample, images taken in file order from a
/// cursor, then inference in batches. The page times each call with `performance.now()`.
#[wasm_bindgen]
pub struct Bench {
    net: Sequential,
    opt: seqnet::optim::Optimizer,
    train: Dataset,
    test: Dataset,
    cursor: usize,
    bufs: StepBuffers,
}

#[wasm_bindgen]
impl Bench {
    #[wasm_bindgen(constructor)]
    pub fn new(preset: &str, seed: u64) -> Result<Bench, JsError> {
        let preset = seqnet::presets::get(preset).map_err(js_err)?;
        let (train, test) = embedded::mnist_5k().map_err(js_err)?;
        let net = seqnet::spec::build(preset.spec, &train.shape, seed).map_err(js_err)?;
        let opt = seqnet::optim::Optimizer::new(
            seqnet::optim::OptimizerKind::sgd(0.0),
            preset.recipe.lr,
            0.0,
            0.0,
        );
        Ok(Bench {
            net,
            opt,
            train,
            test,
            cursor: 0,
            bufs: StepBuffers::default(),
        })
    }

    /// Trains `count` images in mini-batches of `batch`; the last batch's loss.
    pub fn train(&mut self, count: usize, batch: usize) -> Result<f32, JsError> {
        let (mut done, mut loss, bs) = (0, f32::NAN, batch.max(1));
        let mut idx = Vec::with_capacity(bs);
        let n = self.train.len();
        while done < count {
            let take = bs.min(count - done);
            idx.clear();
            idx.extend((0..take).map(|j| (self.cursor + j) % n));
            self.cursor = (self.cursor + take) % n;
            self.net.zero_grad();
            loss =
                accumulate_gradients(&mut self.net, &self.train, &idx, None, 0.0, &mut self.bufs)
                    .map_err(js_err)?;
            self.opt.step(&mut self.net);
            done += take;
        }
        Ok(loss)
    }

    /// Infers the first `count` test images (repeating the 1,000 when more are asked)
    /// in batches of `batch`; returns the number of images done.
    pub fn infer(&mut self, count: usize, batch: usize) -> Result<usize, JsError> {
        let per = self.test.image_len();
        let mut done = 0;
        while done < count {
            let take = batch.max(1).min(count - done);
            let idx: Vec<usize> = (done..done + take).map(|i| i % self.test.len()).collect();
            let (x, _) = self.test.batch(&idx);
            debug_assert_eq!(x.len(), take * per);
            self.net.infer(&x).map_err(js_err)?;
            done += take;
        }
        Ok(done)
    }
}
