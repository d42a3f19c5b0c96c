//! Batch files: a dataset as one safetensors file, as PyTorch writes it with
//! `safetensors.torch.save_file({"images": x, "labels": y}, "batch.safetensors")`.
//!
//! - `images`: U8 (grey levels, kept as u8 and divided by 255 when read) or F32 (kept as
//!   is, and must be finite), shape `[N, C, H, W]`, or `[N, H, W]` for one channel;
//! - `labels`: U8, I32 or I64, shape `[N]`, each in `0..classes`;
//! - metadata `seqnet.classes` (optional): the number of classes, 10 if absent.
//!
//! Other tensors are ignored.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::{Dataset, MNIST_CLASSES, Pixels, bad_label};
use crate::error::{Error, Result};

/// Batch files larger than this are refused before reading (8 GiB).
pub const MAX_BATCH_FILE_BYTES: u64 = 8 << 30;

/// The metadata key that sets the number of classes.
pub const CLASSES_KEY: &str = "seqnet.classes";

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Loads a safetensors batch file (see the [module documentation](self)) as a dataset
/// named after the file.
pub fn load_safetensors_batch(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > MAX_BATCH_FILE_BYTES {
        return Err(err(
            path,
            format!(
                "the file is {len} bytes, more than the {} GiB seqnet reads as one batch",
                MAX_BATCH_FILE_BYTES >> 30
            ),
        ));
    }
    // The length comes from the file system, bounded above: safe to reserve.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_BATCH_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".to_string());
    batch_from_bytes(&bytes, path, name)
}

/// [`load_safetensors_batch`] on bytes in memory; `path` is what messages name.
pub(crate) fn batch_from_bytes(bytes: &[u8], path: &Path, name: String) -> Result<Dataset> {
    let not_readable = |e: safetensors::SafeTensorError| {
        err(
            path,
            format!(
                "not a readable safetensors file ({e}); a batch file holds tensors `images` \
                 and `labels`, saved with safetensors (PyTorch: \
                 safetensors.torch.save_file)"
            ),
        )
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(not_readable)?;
    let st = SafeTensors::deserialize(bytes).map_err(not_readable)?;
    let classes = classes(path, meta.metadata().as_ref())?;

    let tensor = |wanted: &str| {
        st.tensor(wanted).map_err(|_| {
            let mut names = st.names();
            names.sort();
            err(
                path,
                format!(
                    "no tensor `{wanted}`; a batch file holds `images` and `labels` (this \
                     one holds: {})",
                    if names.is_empty() {
                        "nothing".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
    };
    let images = tensor("images")?;
    let labels = tensor("labels")?;

    let shape = images.shape();
    let (n, chw) = match *shape {
        [n, c, h, w] => (n, [c, h, w]),
        [n, h, w] => (n, [1, h, w]),
        _ => {
            return Err(err(
                path,
                format!("tensor `images` has shape {shape:?}, expected [N, C, H, W] or [N, H, W]"),
            ));
        }
    };
    if shape.contains(&0) {
        return Err(err(
            path,
            format!("tensor `images` has shape {shape:?}: every dimension must be at least 1"),
        ));
    }
    if labels.shape() != [n] {
        return Err(err(
            path,
            format!(
                "tensor `labels` has shape {:?}, expected [{n}] (one label per image of \
                 `images`, shape {shape:?})",
                labels.shape()
            ),
        ));
    }
    let values = image_values(path, &images)?;
    let labels = label_values(path, &labels, classes)?;
    match values {
        Pixels::U8(v) => Dataset::new_u8(name, v, labels, chw, classes),
        Pixels::F32(v) => Dataset::new(name, v, labels, chw, classes),
    }
    .map_err(|e| err(path, e.to_string()))
}

fn classes(path: &Path, meta: Option<&HashMap<String, String>>) -> Result<usize> {
    let Some(text) = meta.and_then(|m| m.get(CLASSES_KEY)) else {
        return Ok(MNIST_CLASSES);
    };
    match text.trim().parse::<usize>() {
        Ok(c) if c >= 2 => Ok(c),
        _ => Err(err(
            path,
            format!("metadata {CLASSES_KEY} is {text:?}, expected a whole number of at least 2"),
        )),
    }
}

/// The values of `images`: U8 kept as grey levels, F32 as they are.
fn image_values(path: &Path, view: &TensorView) -> Result<Pixels> {
    match view.dtype() {
        Dtype::U8 => Ok(Pixels::U8(view.data().to_vec())),
        Dtype::F32 => {
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    path,
                    format!(
                        "tensor `images` holds {} at flat index {i}: values must be finite",
                        values[i]
                    ),
                ));
            }
            Ok(Pixels::F32(values))
        }
        other => Err(err(
            path,
            format!(
                "tensor `images` is {other:?}, expected U8 (grey levels 0-255) or F32 \
                 (PyTorch: images.float() or images.to(torch.uint8))"
            ),
        )),
    }
}

fn label_values(path: &Path, view: &TensorView, classes: usize) -> Result<Vec<usize>> {
    let raw: Vec<i64> = match view.dtype() {
        Dtype::U8 => view.data().iter().map(|&l| l as i64).collect(),
        Dtype::I32 => view
            .data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect(),
        Dtype::I64 => view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        other => {
            return Err(err(
                path,
                format!(
                    "tensor `labels` is {other:?}, expected U8, I32 or I64 (PyTorch's \
                     default for labels is I64)"
                ),
            ));
        }
    };
    let mut labels = Vec::with_capacity(raw.len());
    for (i, &l) in raw.iter().enumerate() {
        if l < 0 {
            return Err(err(
                path,
                format!("tensor `labels`: label {l} (image {i}) is negative"),
            ));
        }
        if l as u64 >= classes as u64 {
            let hint = format!(" (set metadata {CLASSES_KEY} if there are more)");
            return Err(err(
                path,
                format!("tensor `labels`: {}{hint}", bad_label(i, l as u64, classes)),
            ));
        }
        labels.push(l as usize);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(
        tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>,
        meta: Option<HashMap<String, String>>,
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
        safetensors::serialize(views, meta).expect("serialize")
    }

    fn load(bytes: &[u8]) -> Result<Dataset> {
        batch_from_bytes(bytes, &PathBuf::from("b.safetensors"), "b".into())
    }

    fn i64s(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn data_batch_reads_u8_and_f32_images_with_any_integer_labels() {
        let bytes = file(
            vec![
                (
                    "images",
                    Dtype::U8,
                    vec![2, 2, 3],
                    vec![0, 51, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                ),
                ("labels", Dtype::U8, vec![2], vec![3, 9]),
            ],
            None,
        );
        let ds = load(&bytes).expect("u8 batch");
        assert_eq!((ds.len(), ds.shape, ds.classes), (2, [1, 2, 3], 10));
        assert_eq!(&ds.image(0)[..3], &[0.0, 0.2, 1.0]);
        assert_eq!(ds.image_u8(0), Some(&[0, 51, 255, 1, 2, 3][..]));
        assert_eq!(ds.labels, vec![3, 9]);

        let values: Vec<f32> = (0..8).map(|v| v as f32 - 3.5).collect();
        let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let lab32: Vec<u8> = [1i32, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = file(
            vec![
                ("images", Dtype::F32, vec![2, 2, 2, 1], f32_bytes.clone()),
                ("labels", Dtype::I32, vec![2], lab32),
            ],
            None,
        );
        let ds = load(&bytes).expect("f32 batch");
        assert_eq!(ds.shape, [2, 2, 1]);
        assert_eq!(ds.pixels, Pixels::F32(values));

        let meta = HashMap::from([(CLASSES_KEY.to_string(), "47".to_string())]);
        let bytes = file(
            vec![
                ("images", Dtype::F32, vec![2, 2, 2, 1], f32_bytes),
                ("labels", Dtype::I64, vec![2], i64s(&[46, 12])),
                ("extra", Dtype::U8, vec![1], vec![0]),
            ],
            Some(meta),
        );
        let ds = load(&bytes).expect("47 classes");
        assert_eq!((ds.classes, ds.labels.clone()), (47, vec![46, 12]));
    }

    #[test]
    fn data_batch_errors_name_the_tensor_and_what_was_expected() {
        let img = |shape: Vec<usize>, n: usize| ("images", Dtype::U8, shape, vec![0u8; n]);
        let meta = |v: &str| Some(HashMap::from([(CLASSES_KEY.to_string(), v.to_string())]));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"not safetensors".to_vec(),
                "not a readable safetensors file",
            ),
            (Vec::new(), "not a readable safetensors file"),
            (
                file(vec![("labels", Dtype::U8, vec![1], vec![0])], None),
                "no tensor `images`; a batch file holds `images` and `labels` (this one holds: labels)",
            ),
            (
                file(
                    vec![
                        img(vec![2, 4], 8),
                        ("labels", Dtype::U8, vec![2], vec![0, 1]),
                    ],
                    None,
                ),
                "tensor `images` has shape [2, 4], expected [N, C, H, W] or [N, H, W]",
            ),
            (
                file(
                    vec![
                        img(vec![2, 0, 4], 0),
                        ("labels", Dtype::U8, vec![2], vec![0, 1]),
                    ],
                    None,
                ),
                "every dimension must be at least 1",
            ),
            (
                file(
                    vec![
                        img(vec![2, 2, 2], 8),
                        ("labels", Dtype::U8, vec![3], vec![0, 1, 2]),
                    ],
                    None,
                ),
                "tensor `labels` has shape [3], expected [2]",
            ),
            (
                file(
                    vec![
                        ("images", Dtype::I16, vec![1, 1, 1], vec![0, 0]),
                        ("labels", Dtype::U8, vec![1], vec![0]),
                    ],
                    None,
                ),
                "tensor `images` is I16, expected U8",
            ),
            (
                file(
                    vec![
                        img(vec![1, 1, 1], 1),
                        ("labels", Dtype::F32, vec![1], vec![0; 4]),
                    ],
                    None,
                ),
                "tensor `labels` is F32, expected U8, I32 or I64",
            ),
            (
                file(
                    vec![
                        img(vec![2, 1, 1], 2),
                        ("labels", Dtype::I64, vec![2], i64s(&[0, -1])),
                    ],
                    None,
                ),
                "label -1 (image 1) is negative",
            ),
            (
                file(
                    vec![
                        img(vec![2, 1, 1], 2),
                        ("labels", Dtype::U8, vec![2], vec![10, 0]),
                    ],
                    None,
                ),
                "label 10 (image 0) is not a class: there are 10 classes",
            ),
            (
                file(
                    vec![
                        (
                            "images",
                            Dtype::F32,
                            vec![1, 1, 1],
                            f32::NAN.to_le_bytes().to_vec(),
                        ),
                        ("labels", Dtype::U8, vec![1], vec![0]),
                    ],
                    None,
                ),
                "values must be finite",
            ),
            (
                file(
                    vec![
                        img(vec![1, 1, 1], 1),
                        ("labels", Dtype::U8, vec![1], vec![0]),
                    ],
                    meta("x"),
                ),
                "metadata seqnet.classes is \"x\"",
            ),
        ];
        for (bytes, want) in cases {
            let msg = match std::panic::catch_unwind(|| load(&bytes)) {
                Ok(Ok(_)) => panic!("accepted; expected: {want}"),
                Ok(Err(e)) => e.to_string(),
                Err(_) => panic!("panicked; expected: {want}"),
            };
            assert!(msg.starts_with("b.safetensors: "), "{msg}");
            assert!(msg.contains(want), "{msg}\n  does not contain: {want}");
        }
    }

    #[test]
    fn data_batch_loads_from_a_file_named_after_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("digits.safetensors");
        let bytes = file(
            vec![
                ("images", Dtype::U8, vec![1, 1, 2, 2], vec![0, 255, 255, 0]),
                ("labels", Dtype::U8, vec![1], vec![7]),
            ],
            None,
        );
        std::fs::write(&path, bytes).expect("write");
        let ds = load_safetensors_batch(&path).expect("batch file");
        assert_eq!((ds.name.as_str(), ds.labels[0]), ("digits", 7));
        let err = load_safetensors_batch(tmp.path().join("none.safetensors")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
    }
}
