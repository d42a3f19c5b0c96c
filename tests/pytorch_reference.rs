//! seqnet against PyTorch: the forward output, dL/d(input) and every parameter gradient
//! of each layer alone and of small CNNs, compared with what PyTorch computed for the same
//! parameters, input and upstream gradient.
//!
//! The fixtures, `tests/fixtures/pytorch/*.safetensors`, are written by
//! `tests/fixtures/gen_pytorch_fixtures.py` (see its header for the tensors and metadata
//! each holds, and how inputs avoid the kinks of ReLU and max pooling). Running this test
//! needs no Python: only regenerating the fixtures does.
//!
//! A case is a fixture file with an `output` tensor. The other files (`predict_*`,
//! `train_*`) are for the CLI and training tests; here only their parameter names are
//! checked against the network's state_dict names.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use seqnet::layers::{Buffer, BufferMut};
use seqnet::{Mode, Pass, Sequential, Tensor};

/// Allowed difference, relative to the scale of the tensor compared:
/// `|got_i − want_i| ≤ RTOL · max_j |want_j|` (plus [`ABS_FLOOR`]).
///
/// Why the tensor's largest magnitude and not each element's own: every value compared
/// is (or is derived from) a float32 sum of up to a few thousand products, and two
/// correct implementations add those products in different orders (blocked GEMMs with
/// and without FMA, im2col against direct convolution, pairwise against sequential
/// reductions). The rounding error of such a sum is bounded by ~ε·Σ|terms|, which is set
/// by the magnitude of the activations and weights involved, i.e. by the scale of the
/// tensor, not by the size of the result: an element that cancels to nearly 0 still
/// carries an absolute error of that order, so an element-wise relative 1e-5 cannot hold
/// there. Measured against the scale of the tensor, the differences seen are 0 (pooling,
/// Flatten, Dropout) to 8.5e-7 (the seed network's first conv weight gradient, a sum of
/// 3 × 576 products), a dozen times inside 1e-5; while a real mistake (a wrong index,
/// a missing term, a wrong divisor or sign) moves values by a sizeable fraction of that
/// scale: a wrong count_include_pad divisor, a dropped softmax term or a stride ignored
/// in col2im each fail here by 1e-2 to 1 of the scale.
const RTOL: f32 = 1e-5;

/// Absolute floor of the tolerance, so a tensor that is exactly zero in PyTorch is not
/// compared at a tolerance of exactly 0 (only matters for all-zero tensors).
const ABS_FLOOR: f32 = 1e-12;

/// Fewer cases than this means fixtures are missing (an empty folder must not pass).
const MIN_CASES: usize = 21;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch")
}

/// Every `*.safetensors` file of the fixture folder, sorted by name.
fn fixture_files() -> Vec<PathBuf> {
    let dir = fixture_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate the fixtures with \
             /opt/torchenv/bin/python tests/fixtures/gen_pytorch_fixtures.py",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("reading the fixture folder").path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    files
}

/// One fixture file: its metadata, its f32 tensors, and the names and dtypes of the
/// others (the training files hold u8 images and i64 labels).
struct Fixture {
    file: String,
    metadata: HashMap<String, String>,
    tensors: HashMap<String, Tensor>,
    other_dtypes: HashMap<String, Dtype>,
}

impl Fixture {
    fn read(path: &Path) -> Fixture {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{file}: not a safetensors file: {e}"));
        let metadata = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{file}: not a safetensors file: {e}"));
        let mut tensors = HashMap::new();
        let mut other_dtypes = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                other_dtypes.insert(name, view.dtype());
                continue;
            }
            // safetensors stores little-endian values.
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let tensor = Tensor::from_vec(view.shape(), data)
                .unwrap_or_else(|e| panic!("{file}: tensor {name}: {e}"));
            tensors.insert(name, tensor);
        }
        Fixture {
            file,
            metadata,
            tensors,
            other_dtypes,
        }
    }

    fn is_case(&self) -> bool {
        self.tensors.contains_key("output") || self.other_dtypes.contains_key("output")
    }

    /// The case name for messages: metadata `case`, else the file name.
    fn name(&self) -> String {
        match self.metadata.get("case") {
            Some(case) => format!("{case} ({})", self.file),
            None => self.file.clone(),
        }
    }

    fn meta(&self, key: &str) -> Result<&str, String> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("{}: metadata has no `{key}`", self.name()))
    }

    fn tensor(&self, key: &str) -> Result<&Tensor, String> {
        match (self.tensors.get(key), self.other_dtypes.get(key)) {
            (Some(t), _) => Ok(t),
            (None, Some(dtype)) => Err(format!(
                "{}: tensor `{key}` is {dtype:?}, expected F32",
                self.name()
            )),
            (None, None) => Err(format!("{}: no tensor `{key}`", self.name())),
        }
    }

    /// Names after `prefix` (`param.`, `grad.`, `after.`) among all tensors, sorted.
    fn names_with_prefix(&self, prefix: &str) -> BTreeSet<String> {
        self.tensors
            .keys()
            .chain(self.other_dtypes.keys())
            .filter_map(|k| k.strip_prefix(prefix))
            .map(str::to_string)
            .collect()
    }

    /// The network the fixture describes: metadata `seqnet.spec` for `seqnet.input`.
    fn build(&self) -> Result<Sequential, String> {
        let spec = self.meta("seqnet.spec")?;
        let input_text = self.meta("seqnet.input")?;
        let input = seqnet::shape::parse_shape(input_text)
            .map_err(|e| format!("{}: seqnet.input: {e}", self.name()))?;
        seqnet::spec::build(spec, &input, 0).map_err(|e| {
            format!(
                "{}: seqnet::spec::build(`{spec}`, {input_text}) failed: {e}",
                self.name()
            )
        })
    }

    /// Sets every buffer of `net` to the fixture's `buffer.<name>` (an F32 tensor, or a
    /// count in the metadata), as PyTorch's state before the forward.
    fn load_buffers(&self, net: &mut Sequential) -> Result<(), String> {
        let name = self.name();
        for (key, b) in net.named_buffers_mut() {
            let key = format!("buffer.{key}");
            match b {
                BufferMut::F32(t) => {
                    let want = self.tensor(&key)?;
                    if want.shape() != t.shape() {
                        return Err(format!("{name}: `{key}` has shape {:?}", want.shape()));
                    }
                    *t = want.clone();
                }
                BufferMut::I64(v) => {
                    *v = self
                        .meta(&key)?
                        .parse()
                        .map_err(|e| format!("{name}: {key}: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// Copies `<prefix><name>` into every parameter of `net`, checking shapes, and that
    /// the fixture has no parameter the network lacks.
    fn load_params(&self, net: &mut Sequential, prefix: &str) -> Result<(), String> {
        let mut used = BTreeSet::new();
        for (name, p) in net.named_params_mut() {
            let key = format!("{prefix}{name}");
            let t = self.tensor(&key)?;
            if t.shape() != p.value.shape() {
                return Err(format!(
                    "{}: `{key}` has shape {:?} but the network's parameter {name} is {:?}",
                    self.name(),
                    t.shape(),
                    p.value.shape()
                ));
            }
            p.value = t.clone();
            used.insert(name);
        }
        let unused: Vec<_> = self
            .names_with_prefix(prefix)
            .difference(&used)
            .cloned()
            .collect();
        if !unused.is_empty() {
            return Err(format!(
                "{}: the fixture has parameters the network lacks: {unused:?}",
                self.name()
            ));
        }
        Ok(())
    }
}

/// Row-major flat index -> `[i0, i1, …]`.
fn multi_index(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (slot, &d) in idx.iter_mut().zip(shape).rev() {
        *slot = flat % d.max(1);
        flat /= d.max(1);
    }
    idx
}

/// How close one tensor came: the largest difference relative to the tensor's scale.
struct Closeness {
    what: String,
    max_diff: f32,
    scale: f32,
}

/// `diff ≤ tol`, false for a NaN difference (a NaN in either tensor fails).
fn within(diff: f32, tol: f32) -> bool {
    matches!(
        diff.partial_cmp(&tol),
        Some(Ordering::Less | Ordering::Equal)
    )
}

/// Compares `got` with PyTorch's `want` (see [`RTOL`]). The error names the case, the
/// tensor, the first element out of tolerance with both values, and the largest
/// difference.
fn compare(case: &str, what: &str, got: &Tensor, want: &Tensor) -> Result<Closeness, String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "{case}: {what}: shape {:?}, PyTorch's is {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let scale = want.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = RTOL * scale + ABS_FLOOR;
    let mut max_diff = 0.0f32;
    let mut max_at = 0;
    let mut first_bad = None;
    for (i, (&a, &b)) in got.data().iter().zip(want.data()).enumerate() {
        let diff = (a - b).abs();
        if !within(diff, tol) {
            first_bad.get_or_insert(i);
        }
        if diff > max_diff || (diff.is_nan() && !max_diff.is_nan()) {
            max_diff = diff;
            max_at = i;
        }
    }
    if let Some(i) = first_bad {
        let count = got
            .data()
            .iter()
            .zip(want.data())
            .filter(|&(&a, &b)| !within((a - b).abs(), tol))
            .count();
        return Err(format!(
            "{case}: {what} {:?}: {count} of {} values differ by more than {RTOL:e} × {scale:e} \
             (the largest |value|); first at {:?}: expected {:e}, got {:e}; max difference \
             {max_diff:e} at {:?} (expected {:e}, got {:e})",
            want.shape(),
            want.len(),
            multi_index(i, want.shape()),
            want.data()[i],
            got.data()[i],
            multi_index(max_at, want.shape()),
            want.data()[max_at],
            got.data()[max_at],
        ));
    }
    Ok(Closeness {
        what: what.to_string(),
        max_diff,
        scale,
    })
}

/// Runs one case: build, copy the parameters, forward in Eval mode, backward with the
/// fixture's `dout`, and compare output, grad.input and every grad.<name>. Collects
/// every mismatching tensor of the case, not only the first.
fn check_case(fx: &Fixture) -> Result<Vec<Closeness>, String> {
    let case = fx.name();
    let mut net = fx.build()?;
    fx.load_params(&mut net, "param.")?;
    fx.load_buffers(&mut net)?;
    net.zero_grad();
    let input = fx.tensor("input")?;
    // PyTorch's model.train() or model.eval() when the fixture was made.
    let pass = match fx.metadata.get("mode").map(String::as_str) {
        None | Some("eval") => Pass::Eval,
        Some("train") => Pass::Train,
        Some(other) => return Err(format!("{case}: unknown mode `{other}`")),
    };
    let out = net
        .forward(input, pass)
        .map_err(|e| format!("{case}: forward failed: {e}"))?;

    let mut results = vec![compare(&case, "output", &out, fx.tensor("output")?)];
    // The buffers after the forward: BatchNorm's running statistics in training.
    for (name, b) in net.named_buffers() {
        let key = format!("after.{name}");
        results.push(match b {
            Buffer::F32(t) => fx
                .tensor(&key)
                .and_then(|want| compare(&case, &key, t, want)),
            Buffer::I64(v) => match fx.meta(&key).map(|w| w.parse::<i64>()) {
                Ok(Ok(want)) if want == v => Ok(Closeness {
                    what: format!("{case} {key}"),
                    max_diff: 0.0,
                    scale: v as f32,
                }),
                Ok(Ok(want)) => Err(format!("{case}: {key} is {v}, PyTorch's {want}")),
                Ok(Err(e)) => Err(format!("{case}: {key}: {e}")),
                Err(e) => Err(e),
            },
        });
    }
    let dout = fx.tensor("dout")?;
    if dout.shape() != out.shape() {
        return Err(format!(
            "{case}: dout is {:?} but the output is {:?}",
            dout.shape(),
            out.shape()
        ));
    }
    let dinp = net.backward(dout).unwrap();
    results.push(compare(
        &case,
        "grad.input",
        &dinp,
        fx.tensor("grad.input")?,
    ));
    for (name, p) in net.named_params() {
        let key = format!("grad.{name}");
        results.push(fx.tensor(&key).and_then(|want| match p.grad() {
            Some(grad) => compare(&case, &key, grad, want),
            None => Err(format!("{case}: {key}: backward left no gradient")),
        }));
    }
    let unused: Vec<_> = fx
        .names_with_prefix("grad.")
        .into_iter()
        .filter(|n| n != "input" && !net.named_params().iter().any(|(p, _)| p == n))
        .collect();
    if !unused.is_empty() {
        results.push(Err(format!(
            "{case}: gradients for parameters the network lacks: {unused:?}"
        )));
    }

    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if errors.is_empty() {
        Ok(results.into_iter().map(Result::unwrap).collect())
    } else {
        Err(errors.join("\n"))
    }
}

fn cases() -> Vec<Fixture> {
    fixture_files()
        .iter()
        .map(|p| Fixture::read(p))
        .filter(Fixture::is_case)
        .collect()
}

#[test]
fn outputs_and_gradients_match_pytorch() {
    let cases = cases();
    assert!(
        cases.len() >= MIN_CASES,
        "only {} PyTorch cases in {}; expected at least {MIN_CASES}",
        cases.len(),
        fixture_dir().display()
    );
    let mut failures = Vec::new();
    let mut report = String::new();
    for fx in &cases {
        match check_case(fx) {
            Ok(results) => {
                let worst = results
                    .iter()
                    .max_by(|a, b| {
                        (a.max_diff / a.scale.max(f32::MIN_POSITIVE))
                            .total_cmp(&(b.max_diff / b.scale.max(f32::MIN_POSITIVE)))
                    })
                    .expect("at least output and grad.input");
                let _ = writeln!(
                    report,
                    "ok   {:40} {} tensors; worst {} max|diff| / max|value| = {:.2e}",
                    fx.name(),
                    results.len(),
                    worst.what,
                    worst.max_diff / worst.scale.max(f32::MIN_POSITIVE)
                );
            }
            Err(e) => {
                let _ = writeln!(report, "FAIL {}", fx.name());
                failures.push(e);
            }
        }
    }
    println!("{report}");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from PyTorch:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_file_is_a_case_or_a_known_companion() {
    let files = fixture_files();
    let mut cases = 0;
    for path in &files {
        let fx = Fixture::read(path);
        if fx.is_case() {
            cases += 1;
            for key in ["input", "output", "dout", "grad.input"] {
                fx.tensor(key).unwrap();
            }
            fx.meta("seqnet.spec").unwrap();
            fx.meta("seqnet.input").unwrap();
        } else {
            // Files without `output` are skipped by the comparison; make sure only the
            // predict and training fixtures are, so a broken case cannot hide.
            assert!(
                fx.file.starts_with("predict_") || fx.file.starts_with("train_"),
                "{}: has no `output` tensor, so it would not be checked",
                fx.file
            );
        }
    }
    assert!(
        cases >= MIN_CASES,
        "{} fixture files, {cases} of them cases; expected at least {MIN_CASES} cases in {}",
        files.len(),
        fixture_dir().display()
    );
}

/// The `state_dict` metadata: PyTorch's keys in order ("" for a network without any).
fn state_dict_keys(fx: &Fixture) -> Vec<String> {
    let keys = fx.meta("state_dict").unwrap();
    if keys.is_empty() {
        Vec::new()
    } else {
        keys.split(',').map(str::to_string).collect()
    }
}

#[test]
fn parameter_names_are_pytorch_state_dict_names() {
    let mut checked = 0;
    for path in fixture_files() {
        let fx = Fixture::read(&path);
        let is_model = fx.file == "predict_model.safetensors";
        if fx.file.starts_with("predict_") && !is_model {
            continue; // input images and expected outputs: no parameters
        }
        let net = fx.build().unwrap_or_else(|e| panic!("{e}"));
        let ours: Vec<String> = net.named_params().into_iter().map(|(n, _)| n).collect();
        let ours_set: BTreeSet<String> = ours.iter().cloned().collect();
        let state_dict = net.state_dict_names();
        let shapes: HashMap<String, Vec<usize>> = net
            .named_params()
            .into_iter()
            .map(|(n, p)| (n, p.value.shape().to_vec()))
            .collect();
        let prefixes: &[&str] = if is_model {
            // Saved as a user would: the bare state_dict, no prefix, no order metadata.
            &[""]
        } else {
            // PyTorch's state_dict order, recorded by the generator.
            assert_eq!(
                state_dict,
                state_dict_keys(&fx),
                "{}: state_dict names (left) differ from PyTorch's state_dict keys \
                 (right), in order",
                fx.name()
            );
            if fx.is_case() {
                &["param.", "grad."]
            } else {
                &["param.", "after."]
            }
        };
        for prefix in prefixes {
            let mut theirs = fx.names_with_prefix(prefix);
            if *prefix == "grad." {
                theirs.remove("input");
            }
            assert_eq!(
                ours_set,
                theirs,
                "{}: named_params() names (left) differ from the fixture's `{prefix}*` \
                 tensors (right)",
                fx.name()
            );
            for name in &ours {
                let t = fx.tensor(&format!("{prefix}{name}")).unwrap();
                assert_eq!(
                    t.shape(),
                    &shapes[name][..],
                    "{}: `{prefix}{name}` shape",
                    fx.name()
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked > MIN_CASES,
        "only {checked} fixtures had their names checked"
    );
}

/// The `seqnet predict` fixtures agree with each other: the state_dict file, loaded into
/// the network its metadata describes, gives PyTorch's logits and probabilities for the
/// input file. (The CLI tests then only have to check the CLI.)
#[test]
fn predict_fixtures_are_consistent() {
    let dir = fixture_dir();
    let model = Fixture::read(&dir.join("predict_model.safetensors"));
    let input = Fixture::read(&dir.join("predict_input.safetensors"));
    let expected = Fixture::read(&dir.join("predict_expected.safetensors"));
    let mut net = model.build().unwrap_or_else(|e| panic!("{e}"));
    model.load_params(&mut net, "").unwrap();
    let x = input.tensor("input").unwrap();
    let logits = net.forward(x, Mode::Eval).unwrap();
    let case = "predict_*.safetensors";
    compare(case, "logits", &logits, expected.tensor("logits").unwrap()).unwrap();
    let probabilities = net.predict(x).unwrap();
    compare(
        case,
        "probabilities",
        &probabilities,
        expected.tensor("probabilities").unwrap(),
    )
    .unwrap();
}
