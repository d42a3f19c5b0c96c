//! Model files: safetensors, f32 tensors named exactly like PyTorch's `nn.Sequential`
//! state_dict (`0.weight`, `0.bias`, `4.weight`, …), with the network in the metadata:
//!
//! | key | value |
//! |---|---|
//! | `seqnet.spec` | the canonical spec, e.g. `Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1)) -> ReLU() -> …` |
//! | `seqnet.input` | the per-image input shape, `1x28x28` |
//! | `seqnet.normalize` | optional `mean,std` applied to pixels after /255 (train and predict), or per channel the means then the stds (`m1,m2,m3,s1,s2,s3`) |
//! | `seqnet.classes` | optional JSON list of class names |
//! | `seqnet.seed` | optional seed the run started from |
//! | `seqnet.dataset` | optional data it was trained on: `mnist`, `mnist-5k` (the embedded sample), `fashion-mnist`, `kmnist`, or a folder or file |
//! | `seqnet.split` | optional split of that data it was trained on: `official`, `book`, or an image folder's `holdout 0.2` |
//! | `seqnet.train_images` | optional number of training images |
//! | `seqnet.images` | optional `resized`: predict scales image files to the input size as they are (image folders, CIFAR-10) instead of preparing them as MNIST digits |
//!
//! So `model.load_state_dict(safetensors.torch.load_file(path))` works in PyTorch, and a
//! file PyTorch wrote with `save_file(model.state_dict(), path, metadata={...})` loads here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::safetensors_file::{self as stf, Entry, Stored};
use crate::layers::LayerDesc;
use crate::layers::{Buffer, BufferMut};
use crate::sequential::Sequential;
use crate::shape::{fmt_shape, parse_shape};
use crate::tensor::Tensor;

/// Pixel normalisation, torchvision's `transforms.Normalize(mean, std)`: `(x − mean[c]) /
/// std[c]` for channel `c`, after u8 pixels are divided by 255. One mean and std apply to
/// every channel (MNIST's `0.1307,0.3081`); or one per channel, up to
/// [`Normalize::MAX_CHANNELS`] (CIFAR-10's three).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    means: [f32; Normalize::MAX_CHANNELS],
    stds: [f32; Normalize::MAX_CHANNELS],
    /// 1 (the same for every channel) or the number of channels.
    len: usize,
}

impl Normalize {
    /// Channels a per-channel normalisation can have: RGB. Fixed, so that `Normalize`
    /// stays `Copy` like the rest of a training configuration.
    pub const MAX_CHANNELS: usize = 3;

    /// One mean and std for every channel.
    pub const fn new(mean: f32, std: f32) -> Self {
        Normalize {
            means: [mean; Normalize::MAX_CHANNELS],
            stds: [std; Normalize::MAX_CHANNELS],
            len: 1,
        }
    }

    /// One mean and std per channel (or one for all), each finite, every std > 0.
    pub fn per_channel(mean: &[f32], std: &[f32]) -> std::result::Result<Self, String> {
        if mean.len() != std.len() || mean.is_empty() || mean.len() > Self::MAX_CHANNELS {
            return Err(format!(
                "{} means and {} stds: give one of each, or one per channel (at most {})",
                mean.len(),
                std.len(),
                Self::MAX_CHANNELS
            ));
        }
        if let Some(v) = mean.iter().chain(std).find(|v| !v.is_finite()) {
            return Err(format!("{v} is not a finite number"));
        }
        if let Some(v) = std.iter().find(|&&v| v <= 0.0) {
            return Err(format!("std {v} is not > 0"));
        }
        let mut n = Normalize::new(0.0, 1.0);
        n.len = mean.len();
        n.means[..mean.len()].copy_from_slice(mean);
        n.stds[..std.len()].copy_from_slice(std);
        Ok(n)
    }

    /// The text form, as `--normalize` takes it and `seqnet.normalize` stores it: `MEAN,STD`
    /// or, per channel, the means then the stds (`M1,M2,M3,S1,S2,S3`).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let values: Vec<f32> = text
            .split(',')
            .map(|p| p.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| "not a list of numbers".to_string())?;
        if !values.len().is_multiple_of(2) {
            return Err(format!(
                "{} numbers: give MEAN,STD or the means then the stds, one per channel",
                values.len()
            ));
        }
        let (mean, std) = values.split_at(values.len() / 2);
        Self::per_channel(mean, std)
    }

    /// The means: one, or one per channel.
    pub fn mean(&self) -> &[f32] {
        &self.means[..self.len]
    }

    /// The stds: one, or one per channel.
    pub fn std(&self) -> &[f32] {
        &self.stds[..self.len]
    }

    /// How many channels it is for: `None` when one mean and std serve every channel.
    pub fn channels(&self) -> Option<usize> {
        (self.len > 1).then_some(self.len)
    }

    /// `(x − 0.1307)/0.3081`, or `(x − (0.49, 0.48, 0.45))/(0.25, 0.24, 0.26)`.
    pub fn describe(&self) -> String {
        let list = |v: &[f32]| match v {
            [one] => one.to_string(),
            many => format!(
                "({})",
                many.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!("(x − {})/{}", list(self.mean()), list(self.std()))
    }

    /// Normalises one image, `C×H×W` values (channel planes of `values.len() / C` each).
    /// A per-channel normalisation needs as many channels as it has.
    pub fn apply(&self, values: &mut [f32]) {
        let per = values.len();
        self.apply_images(values, per);
    }

    /// Normalises images of `image_len` values each, one after the other (a batch).
    pub fn apply_images(&self, values: &mut [f32], image_len: usize) {
        if self.len == 1 {
            let (mean, std) = (self.means[0], self.stds[0]);
            for v in values {
                *v = (*v - mean) / std;
            }
            return;
        }
        let plane = image_len / self.len;
        debug_assert_eq!(
            plane * self.len,
            image_len,
            "channels of {image_len} values"
        );
        for image in values.chunks_exact_mut(image_len.max(1)) {
            for (c, channel) in image.chunks_exact_mut(plane.max(1)).enumerate() {
                let (mean, std) = (self.means[c], self.stds[c]);
                for v in channel {
                    *v = (*v - mean) / std;
                }
            }
        }
    }
}

impl std::fmt::Display for Normalize {
    /// The text [`Normalize::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self
            .mean()
            .iter()
            .chain(self.std())
            .map(|v| v.to_string())
            .collect();
        f.write_str(&all.join(","))
    }
}

/// The metadata key saying how `seqnet predict` prepares image files for the model:
/// [`IMAGES_RESIZED`] for models trained on image folders or CIFAR-10; absent (MNIST's
/// digit preparation) otherwise.
pub const IMAGES_KEY: &str = "seqnet.images";

/// Image files are scaled to the input size as they are (no inversion, cropping or
/// centring), as `--resize` does for image folders.
pub const IMAGES_RESIZED: &str = "resized";

/// What a model file says besides its weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelInfo {
    pub spec: String,
    pub input: Vec<usize>,
    pub normalize: Option<Normalize>,
    pub classes: Option<Vec<String>>,
    pub seed: Option<u64>,
    /// What it was trained on; `None` for files that do not say (older ones, PyTorch's).
    pub trained_on: Option<TrainedOn>,
    /// Any other metadata, kept as it was.
    pub extra: BTreeMap<String, String>,
}

/// The data a model was trained on, as its file records it, so that an evaluation can
/// tell when its images may be ones the model learned from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainedOn {
    /// [`crate::data::Splits::dataset`]: `mnist`, `mnist-5k`, a folder, a file.
    pub dataset: String,
    /// `official` or `book`, if recorded.
    pub split: Option<String>,
    /// How many training images, if recorded.
    pub images: Option<usize>,
}

/// A loaded model: the network with its weights, what the file said, and warnings
/// (e.g. stripped prefixes) for the caller to print.
#[derive(Debug)]
pub struct Model {
    pub net: Sequential,
    pub info: ModelInfo,
    pub warnings: Vec<String>,
}

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ModelInfo {
    /// The info for a network: its canonical spec and input shape.
    pub fn for_net(net: &Sequential) -> Self {
        ModelInfo {
            spec: net.spec(),
            input: net.input_shape().to_vec(),
            ..ModelInfo::default()
        }
    }

    fn to_metadata(&self) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = self.extra.clone().into_iter().collect();
        // The key Hugging Face tools look for; PyTorch ignores it.
        m.insert("format".into(), "pt".into());
        m.insert("seqnet.spec".into(), self.spec.clone());
        m.insert(
            "seqnet.input".into(),
            self.input
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x"),
        );
        m.insert("seqnet.version".into(), env!("CARGO_PKG_VERSION").into());
        if let Some(n) = self.normalize {
            m.insert("seqnet.normalize".into(), n.to_string());
        }
        if let Some(c) = &self.classes {
            m.insert(
                "seqnet.classes".into(),
                serde_json::to_string(c).unwrap_or_default(),
            );
        }
        if let Some(s) = self.seed {
            m.insert("seqnet.seed".into(), s.to_string());
        }
        if let Some(t) = &self.trained_on {
            m.insert("seqnet.dataset".into(), t.dataset.clone());
            if let Some(split) = &t.split {
                m.insert("seqnet.split".into(), split.clone());
            }
            if let Some(n) = t.images {
                m.insert("seqnet.train_images".into(), n.to_string());
            }
        }
        m
    }

    fn from_metadata(path: &Path, mut m: HashMap<String, String>) -> Result<Self> {
        let spec = m.remove("seqnet.spec").ok_or_else(|| {
            err(
                path,
                "has no 'seqnet.spec' metadata, so seqnet does not know the network; save it \
                 with safetensors.torch.save_file(model.state_dict(), path, metadata={\
                 'seqnet.spec': <the layers, e.g. print(model)>, 'seqnet.input': '1x28x28'})",
            )
        })?;
        let input_text = m.remove("seqnet.input").ok_or_else(|| {
            err(
                path,
                "has no 'seqnet.input' metadata (the per-image input shape, e.g. '1x28x28')",
            )
        })?;
        let input = parse_shape(&input_text)
            .map_err(|e| err(path, format!("metadata seqnet.input: {e}")))?;
        let normalize = match m.remove("seqnet.normalize") {
            None => None,
            Some(text) => Some(Normalize::parse(&text).map_err(|why| {
                err(
                    path,
                    format!(
                        "metadata seqnet.normalize '{text}' is not 'mean,std' with std > 0 \
                         (or the means then the stds, one per channel): {why}"
                    ),
                )
            })?),
        };
        let classes = match m.remove("seqnet.classes") {
            None => None,
            Some(text) => Some(serde_json::from_str::<Vec<String>>(&text).map_err(|e| {
                err(
                    path,
                    format!("metadata seqnet.classes is not a JSON list of names: {e}"),
                )
            })?),
        };
        let seed = m.remove("seqnet.seed").and_then(|s| s.parse().ok());
        let split = m.remove("seqnet.split");
        let images = m.remove("seqnet.train_images").and_then(|s| s.parse().ok());
        let trained_on = m.remove("seqnet.dataset").map(|dataset| TrainedOn {
            dataset,
            split,
            images,
        });
        m.remove("format");
        m.remove("seqnet.version");
        Ok(ModelInfo {
            spec,
            input,
            normalize,
            classes,
            seed,
            trained_on,
            extra: m.into_iter().collect(),
        })
    }
}

/// Writes `net`'s parameters, buffers and `info` to `path` (atomically).
pub fn save(path: &Path, net: &Sequential, info: &ModelInfo) -> Result<()> {
    stf::write_atomic(path, &state_entries(net, ""), info.to_metadata())
}

/// The bytes of the file [`save`] writes, without writing it: the browser page offers
/// them as a download. `path` is only what an error message would name.
pub fn to_bytes(path: &Path, net: &Sequential, info: &ModelInfo) -> Result<Vec<u8>> {
    stf::serialize(path, &state_entries(net, ""), info.to_metadata())
}

/// The network's state_dict as entries to write, each name after `prefix`: the
/// parameters (F32), then the buffers (F32, or I64 for counts), as PyTorch saves them.
pub fn state_entries(net: &Sequential, prefix: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = net
        .named_params()
        .into_iter()
        .map(|(name, p)| Entry::f32(format!("{prefix}{name}"), &p.value))
        .collect();
    for (name, b) in net.named_buffers() {
        entries.push(match b {
            Buffer::F32(t) => Entry::f32(format!("{prefix}{name}"), t),
            Buffer::I64(v) => Entry::i64_scalar(format!("{prefix}{name}"), v),
        });
    }
    entries
}

/// Reads a model file: builds the network from its spec and loads its weights strictly.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = stf::read_bounded(path)?;
    load_bytes(path, &bytes)
}

/// [`load`] on the bytes of a file already in memory; `path` is what messages name.
///
/// The network is built within the f32 values the file holds: a spec declaring more
/// parameters than that is refused before they are allocated (its weights could not be
/// in the file anyway), so a small hostile file cannot make seqnet allocate gigabytes.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Model> {
    let tensors = stf::parse(path, bytes)?;
    let info = ModelInfo::from_metadata(path, stf::metadata(path, bytes)?)?;
    // Dtypes first: a file of F64 or F16 weights is told so, not that its values are few.
    let named: Vec<(String, Stored)> = tensors
        .iter()
        .map(|(name, view)| {
            // Integers only where PyTorch writes them (a count buffer); an I64 weight is
            // told it should be F32.
            let stored = if name.ends_with("num_batches_tracked") {
                stf::to_stored(path, name, &view)?
            } else {
                Stored::F32(stf::to_f32(path, name, &view)?)
            };
            Ok((name.to_string(), stored))
        })
        .collect::<Result<_>>()?;
    let held: usize = named.iter().map(|(_, t)| t.f32_len()).sum();
    let mut net = crate::spec::build_within(
        &info.spec,
        &info.input,
        info.seed.unwrap_or(0),
        held,
        &format!(
            "the {held} f32 values the file holds (check that the spec in the metadata is \
             the network that was saved)"
        ),
    )
    .map_err(|e| {
        err(
            path,
            format!("metadata seqnet.spec does not build a network: {e}"),
        )
    })?;
    let warnings = load_state_dict(path, &mut net, named)?;
    Ok(Model {
        net,
        info,
        warnings,
    })
}

/// Most f32 values one image may occupy in a forward pass, all layers' outputs and
/// im2col buffers together (4 GiB).
pub const MAX_FORWARD_FLOATS_PER_IMAGE: u128 = 1 << 30;
/// Most multiply-accumulates one image may cost (about 1.7·10¹⁰, tens of seconds on one
/// core): more is a spec that would look like a hang.
pub const MAX_MACS_PER_IMAGE: u128 = 1 << 34;
/// The f32 values a forward pass may hold at once for a whole batch (512 MiB): larger
/// batches are run in chunks of images.
pub const FORWARD_BATCH_FLOATS: u128 = 1 << 27;

/// How many images one forward pass of `net` may take at a time, so that its outputs
/// and im2col buffers stay within [`FORWARD_BATCH_FLOATS`] whatever the batch size; an
/// error naming `path` when even one image would need more than
/// [`MAX_FORWARD_FLOATS_PER_IMAGE`] values or [`MAX_MACS_PER_IMAGE`] multiply-adds
/// (a network whose spec asks for absurd padding or kernels, which building alone does
/// not allocate).
pub fn images_per_forward(path: &Path, net: &Sequential) -> Result<usize> {
    let numel = |s: &[usize]| s.iter().map(|&d| d as u128).product::<u128>();
    let mut floats = numel(net.input_shape());
    let mut macs: u128 = 0;
    for (layer, step) in net.layers().iter().zip(net.steps()) {
        // The output, and as much again kept for backward (masks, indices, inputs).
        floats += 2 * numel(&step.out);
        macs += u128::from(step.macs);
        if let LayerDesc::Conv2d { groups, .. } = layer.describe() {
            // im2col: C·kh·kw rows × OH·OW columns = MACs · groups / out_channels.
            floats += u128::from(step.macs) * groups as u128
                / step.out.first().map_or(1, |&c| c.max(1) as u128);
        }
    }
    if floats > MAX_FORWARD_FLOATS_PER_IMAGE || macs > MAX_MACS_PER_IMAGE {
        return Err(err(
            path,
            format!(
                "the network {} would need {floats} f32 values and {macs} multiply-adds per \
                 image, more than seqnet runs ({MAX_FORWARD_FLOATS_PER_IMAGE} values, \
                 {MAX_MACS_PER_IMAGE} multiply-adds); check the spec's kernel sizes and padding",
                net.spec()
            ),
        ));
    }
    Ok((FORWARD_BATCH_FLOATS / floats.max(1)).max(1) as usize)
}

/// PyTorch's `load_state_dict(strict=True)`: every parameter and buffer must be present
/// with its shape and nothing else may be. All problems are reported together. The
/// `module.` (DataParallel) and `_orig_mod.` (torch.compile) prefixes are stripped, with a
/// warning.
pub fn load_state_dict(
    path: &Path,
    net: &mut Sequential,
    tensors: Vec<(String, Stored)>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut by_name: BTreeMap<String, Stored> = BTreeMap::new();
    for (name, t) in tensors {
        let mut stripped = name.as_str();
        for prefix in ["module.", "_orig_mod."] {
            while let Some(rest) = stripped.strip_prefix(prefix) {
                stripped = rest;
            }
        }
        if stripped != name {
            warnings.push(format!(
                "{}: tensor '{name}' read as '{stripped}' (prefix stripped)",
                path.display()
            ));
        }
        by_name.insert(stripped.to_string(), t);
    }
    let mut problems = Vec::new();
    fn fill(
        by_name: &mut BTreeMap<String, Stored>,
        name: &str,
        target: &mut Tensor,
        problems: &mut Vec<String>,
    ) {
        match by_name.remove(name) {
            None => problems.push(format!(
                "missing tensor '{name}' of shape {}",
                fmt_shape(target.shape())
            )),
            Some(Stored::F32(t)) if t.shape() != target.shape() => problems.push(format!(
                "tensor '{name}' has shape {} but the network needs {}",
                fmt_shape(t.shape()),
                fmt_shape(target.shape())
            )),
            Some(Stored::F32(t)) => *target = t,
            Some(Stored::I64 { .. }) => problems.push(format!(
                "tensor '{name}' is I64 but the network needs F32 values"
            )),
        }
    }
    for (name, p) in net.named_params_mut() {
        fill(&mut by_name, &name, &mut p.value, &mut problems);
    }
    for (name, b) in net.named_buffers_mut() {
        match b {
            BufferMut::F32(t) => fill(&mut by_name, &name, t, &mut problems),
            BufferMut::I64(count) => match by_name.remove(&name) {
                None => problems.push(format!("missing tensor '{name}' (a count, I64)")),
                Some(Stored::I64 { values, .. }) if values.len() == 1 => *count = values[0],
                Some(_) => problems.push(format!(
                    "tensor '{name}' should be one I64 count, as PyTorch writes it"
                )),
            },
        }
    }
    for name in by_name.keys() {
        problems.push(format!(
            "unexpected tensor '{name}' (no such parameter or buffer in the network)"
        ));
    }
    if !problems.is_empty() {
        return Err(err(
            path,
            format!(
                "the weights do not fit the network {}:\n  {}\ncheck that the spec in the \
                 metadata is the network that was saved",
                net.spec(),
                problems.join("\n  ")
            ),
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a model was trained on goes into its file and back; a file without it (an
    /// older one, or PyTorch's) still loads, with `trained_on` unknown.
    #[test]
    fn the_training_data_is_recorded_and_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let net = crate::spec::build("Flatten() -> Linear(4, 2)", &[1, 2, 2], 1).unwrap();
        let mut info = ModelInfo::for_net(&net);
        let old = tmp.path().join("old.safetensors");
        save(&old, &net, &info).unwrap();
        assert_eq!(load(&old).unwrap().info.trained_on, None);
        info.trained_on = Some(TrainedOn {
            dataset: "mnist".into(),
            split: Some("book".into()),
            images: Some(50_000),
        });
        let new = tmp.path().join("new.safetensors");
        save(&new, &net, &info).unwrap();
        let back = load(&new).unwrap().info;
        assert_eq!(back.trained_on, info.trained_on);
        assert!(back.extra.is_empty(), "{:?}", back.extra);
    }

    /// The bytes in memory are the file on disk, byte for byte, and load back.
    #[test]
    fn to_bytes_is_the_saved_file() {
        let tmp = tempfile::tempdir().unwrap();
        let net = crate::spec::build("Flatten() -> Linear(4, 2)", &[1, 2, 2], 3).unwrap();
        let info = ModelInfo::for_net(&net);
        let path = tmp.path().join("m.safetensors");
        save(&path, &net, &info).unwrap();
        let bytes = to_bytes(Path::new("m.safetensors"), &net, &info).unwrap();
        assert_eq!(bytes, std::fs::read(&path).unwrap());
        let back = load_bytes(Path::new("m.safetensors"), &bytes).unwrap();
        assert_eq!(back.net.spec(), net.spec());
    }
}
