//! Reading and writing safetensors files: bounded reads, f32 conversion, atomic writes.
//! The format itself (header parsing, bounds checks) is the `safetensors` crate's; this
//! is the glue that turns its errors into messages naming the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Model and batch files larger than this are refused before reading (8 GiB).
pub const MAX_FILE_BYTES: u64 = 8 << 30;

fn model_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a whole file, refusing one larger than [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > MAX_FILE_BYTES {
        return Err(model_err(
            path,
            format!("the file is {len} bytes, more than seqnet reads ({MAX_FILE_BYTES})"),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// Parses `bytes` as safetensors, with an error that says what a safetensors file is.
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        model_err(
            path,
            format!(
                "not a readable safetensors file ({e}); it may be truncated or not a \
                 safetensors file at all (a PyTorch .pt/.pth pickle must first be saved with \
                 safetensors.torch.save_file)"
            ),
        )
    })
}

/// The metadata of a parsed file (empty if it has none).
pub fn metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| model_err(path, format!("not a readable safetensors file ({e})")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Converts a stored tensor to f32; only F32 is accepted, as PyTorch writes by default.
pub fn to_f32(path: &Path, name: &str, view: &TensorView) -> Result<Tensor> {
    if view.dtype() != Dtype::F32 {
        return Err(model_err(
            path,
            format!(
                "tensor '{name}' is {:?}, but seqnet stores and reads F32; convert it first \
                 (PyTorch: model.float() before saving)",
                view.dtype()
            ),
        ));
    }
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(view.shape(), values).map_err(|e| model_err(path, e.to_string()))
}

/// A tensor of a network's state as stored: f32 values (parameters and most buffers), or
/// integers (BatchNorm's `num_batches_tracked`, which PyTorch writes as I64).
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    F32(Tensor),
    I64 { shape: Vec<usize>, values: Vec<i64> },
}

impl Stored {
    /// The f32 values it holds (0 for integers).
    pub fn f32_len(&self) -> usize {
        match self {
            Stored::F32(t) => t.len(),
            Stored::I64 { .. } => 0,
        }
    }
}

/// Reads a stored tensor of a network's state: F32, or I64 for integer buffers; any
/// other dtype gets [`to_f32`]'s message.
pub fn to_stored(path: &Path, name: &str, view: &TensorView) -> Result<Stored> {
    if view.dtype() == Dtype::I64 {
        let values = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        return Ok(Stored::I64 {
            shape: view.shape().to_vec(),
            values,
        });
    }
    to_f32(path, name, view).map(Stored::F32)
}

/// Little-endian bytes of f32 values, as safetensors stores them.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// One tensor to write: name, dtype, shape and raw little-endian bytes.
pub struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Entry {
    /// A 0-d I64 tensor, as PyTorch stores a count such as `num_batches_tracked`.
    pub fn i64_scalar(name: impl Into<String>, value: i64) -> Self {
        Entry {
            name: name.into(),
            dtype: Dtype::I64,
            shape: Vec::new(),
            bytes: value.to_le_bytes().to_vec(),
        }
    }

    pub fn f32(name: impl Into<String>, tensor: &Tensor) -> Self {
        Entry {
            name: name.into(),
            dtype: Dtype::F32,
            shape: tensor.shape().to_vec(),
            bytes: f32_bytes(tensor.data()),
        }
    }
}

/// Writes a safetensors file atomically: a temporary file in the same folder, fsync,
/// rename over the target, fsync the folder. A crash leaves the old file or the new one,
/// never half of one.
pub fn write_atomic(
    path: &Path,
    entries: &[Entry],
    metadata: HashMap<String, String>,
) -> Result<()> {
    write_bytes_atomic(path, &serialize(path, entries, metadata)?)
}

/// The bytes [`write_atomic`] writes (header keys sorted, so the same model always gives
/// the same bytes), for callers that keep the file in memory, such as the browser page's
/// download; `path` is what messages name.
pub fn serialize(
    path: &Path,
    entries: &[Entry],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, e.shape.clone(), &e.bytes)
                .map(|v| (e.name.clone(), v))
                .map_err(|err| model_err(path, format!("tensor '{}': {err}", e.name)))
        })
        .collect::<Result<_>>()?;
    let bytes = if views.is_empty() {
        // safetensors 0.8 writes `{},"__metadata__":{…}}` for no tensors with metadata,
        // which no reader (itself included) accepts: write the header directly.
        empty_with_metadata(&metadata)
    } else {
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| model_err(path, format!("cannot serialise: {e}")))?;
        with_sorted_header(bytes).map_err(|e| model_err(path, e))?
    };
    Ok(bytes)
}

/// The same file with every key of its JSON header in sorted order. The safetensors
/// crate writes the metadata from a HashMap, so its order, and so the file's bytes,
/// changed from one save to the next. Sorted, the same model always gives the same
/// bytes, and a resumed run and an uninterrupted one compare equal with `sha256sum`.
/// The tensors' offsets count from the end of the header, so they stay valid.
fn with_sorted_header(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let map: std::collections::BTreeMap<_, _> = map.into_iter().collect();
                serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            v => v,
        }
    }
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .filter(|&n| n <= bytes.len() - 8)
        .ok_or("the serialised header is cut short")?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + len]).map_err(|e| e.to_string())?;
    let mut out = framed_header(sorted(header).to_string());
    out.extend_from_slice(&bytes[8 + len..]);
    Ok(out)
}

/// A safetensors file of no tensors and `metadata` (a network without parameters):
/// the 8-byte header length, then the JSON header padded with spaces to 8 bytes.
fn empty_with_metadata(metadata: &HashMap<String, String>) -> Vec<u8> {
    let sorted: std::collections::BTreeMap<&String, &String> = metadata.iter().collect();
    framed_header(if sorted.is_empty() {
        "{}".to_string()
    } else {
        serde_json::json!({ "__metadata__": sorted }).to_string()
    })
}

/// The start of a safetensors file: the header's length (8 bytes, little-endian), then
/// the JSON header padded with spaces to a multiple of 8 bytes.
fn framed_header(json: String) -> Vec<u8> {
    let mut header = json.into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out
}

/// Creates `path` with `bytes`, whole or not at all, and only if nothing is there yet:
/// the bytes go to a temporary file first, which is then hard-linked to `path` (a link
/// fails with `AlreadyExists` when the name is taken, so of two processes racing for
/// one name, one wins). A new run claims its folder this way with its config.json.
pub fn create_new_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    through_temp_file(path, "new", bytes, |tmp| {
        match std::fs::hard_link(tmp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                // A file system without hard links: an exclusive create, still first-come,
                // though a crash mid-write could leave a short file.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)?;
                f.write_all(bytes)?;
                f.sync_all()
            }
            r => r,
        }
    })
}

/// The atomic write itself, for any bytes.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        return Err(model_err(path, "is not a file name"));
    }
    through_temp_file(path, "tmp", bytes, |tmp| std::fs::rename(tmp, path))
        .map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to a temporary file beside `path` (`.NAME.KIND<pid>`), syncs it, lets
/// `publish` put it in place, then syncs the folder, whose entry makes the new name
/// durable. The temporary file is gone afterwards, whatever happened.
fn through_temp_file(
    path: &Path,
    kind: &str,
    bytes: &[u8],
    publish: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.{kind}{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        publish(&tmp)?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    // After a rename there is nothing left to remove; after a link, the extra name.
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same tensors and metadata give the same bytes every time (HashMap order
    /// changes between maps), and the file reads back with the safetensors crate.
    #[test]
    fn same_model_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::from_vec(&[2, 3], vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.25]).unwrap();
        let b = Tensor::from_vec(&[3], vec![0.5, 0.25, -1.0]).unwrap();
        let entries = [Entry::f32("0.weight", &t), Entry::f32("0.bias", &b)];
        let mut files = Vec::new();
        for i in 0..6 {
            let metadata: HashMap<String, String> = (0..12)
                .map(|k| (format!("key{k}"), format!("value {k}")))
                .collect();
            let path = dir.path().join(format!("m{i}.safetensors"));
            write_atomic(&path, &entries, metadata).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(
            files.iter().all(|f| f == &files[0]),
            "bytes differ between saves"
        );
        let st = safetensors::SafeTensors::deserialize(&files[0]).unwrap();
        assert_eq!(st.tensor("0.bias").unwrap().shape(), &[3]);
        assert_eq!(
            st.tensor("0.weight").unwrap().data(),
            &f32_bytes(t.data())[..]
        );
        let (_, meta) = safetensors::SafeTensors::read_metadata(&files[0]).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["key7"], "value 7");
    }

    /// A network without parameters saves to a file that reads back with its metadata.
    #[test]
    fn no_tensors_with_metadata_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.safetensors");
        let meta: HashMap<String, String> = [("seqnet.spec".to_string(), "ReLU()".to_string())]
            .into_iter()
            .collect();
        write_atomic(&path, &[], meta.clone()).expect("write");
        let bytes = read_bounded(&path).expect("read");
        assert_eq!(parse(&path, &bytes).expect("parse").len(), 0);
        assert_eq!(metadata(&path, &bytes).expect("metadata"), meta);
        write_atomic(&path, &[], HashMap::new()).expect("write");
        let bytes = read_bounded(&path).expect("read");
        assert!(metadata(&path, &bytes).expect("metadata").is_empty());
    }
}
