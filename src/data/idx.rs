//! The IDX format of MNIST, Fashion-MNIST and KMNIST, gzipped or not.
//!
//! An IDX file is a 4-byte magic number `00 00 TT DD` (TT the element type, 0x08 for u8;
//! DD the number of dimensions), then DD big-endian u32 sizes, then the elements in
//! row-major order. Images files are u8 with 3 dimensions (magic 2051 = 0x00000803:
//! count × rows × columns); labels files are u8 with 1 dimension (magic 2049 =
//! 0x00000801).
//!
//! Only u8 files are read: every dataset seqnet names ships as u8, and other element
//! types (i8, i16, i32, f32, f64) are rejected with a message saying so, rather than read
//! through a conversion nobody has tested.
//!
//! The reader treats its input as hostile: a header's declared size is checked against
//! the data actually present before anything is allocated for it, gzip input is
//! decompressed through a bound of declared + 1 bytes (so a header claiming billions of
//! images, or a gzip bomb, cannot exhaust memory), no file may declare more than
//! [`MAX_IDX_BYTES`], and trailing data is an error. No input makes it panic.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use flate2::bufread::GzDecoder;

use crate::error::{Error, Result};

/// The most data bytes (after the header, after decompression) one IDX file may declare:
/// 4 GiB, 90 times the 47 MB of MNIST's training images.
pub const MAX_IDX_BYTES: u64 = 4 << 30;

/// The magic number of a u8 images file (`00 00 08 03`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// The magic number of a u8 labels file (`00 00 08 01`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The images of an IDX images file: `n` images of `h` rows × `w` columns, stored
/// row-major one after the other (`pixels[(i * h + y) * w + x]`), 0 = background.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub h: usize,
    /// Columns per image.
    pub w: usize,
    /// `n * h * w` grey levels.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The `h * w` pixels of image `i` (panics if `i >= n`, like slice indexing).
    pub fn image(&self, i: usize) -> &[u8] {
        let per = self.h * self.w;
        &self.pixels[i * per..(i + 1) * per]
    }
}

/// Reads an IDX images file (u8, 3 dimensions), gzipped or not: gzip is recognised by
/// its magic bytes, not by the file name.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let (dims, pixels) = read_file(path, Kind::Images)?;
    Ok(IdxImages {
        n: dims[0],
        h: dims[1],
        w: dims[2],
        pixels,
    })
}

/// Reads an IDX labels file (u8, 1 dimension), gzipped or not.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let (_, labels) = read_file(path.as_ref(), Kind::Labels)?;
    Ok(labels)
}

/// [`read_images`] on the bytes of a file already in memory; `name` is the file name
/// that error messages show.
pub fn images_from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<IdxImages> {
    let (dims, pixels) = read_slice(bytes, name.as_ref(), Kind::Images)?;
    Ok(IdxImages {
        n: dims[0],
        h: dims[1],
        w: dims[2],
        pixels,
    })
}

/// [`read_labels`] on the bytes of a file already in memory; `name` is the file name
/// that error messages show.
pub fn labels_from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<u8>> {
    let (_, labels) = read_slice(bytes, name.as_ref(), Kind::Labels)?;
    Ok(labels)
}

/// Which of the two MNIST file kinds is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IMAGES_MAGIC,
            Kind::Labels => LABELS_MAGIC,
        }
    }

    fn ndims(self) -> usize {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn dim_name(self, i: usize) -> &'static str {
        match (self, i) {
            (Kind::Images, 0) => "images",
            (Kind::Images, 1) => "rows",
            (Kind::Images, _) => "columns",
            (Kind::Labels, _) => "labels",
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Kind::Images => "3 dimensions: images × rows × columns",
            Kind::Labels => "1 dimension: labels",
        }
    }
}

fn data_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Where the bytes come from, for error messages and for the raw-length checks.
struct Input<'a> {
    path: &'a Path,
    /// The compressed stream is gzip (errors while reading are then decompression
    /// errors, and lengths are "after decompression").
    gzip: bool,
    /// For uncompressed input, the total length, known without reading: the declared
    /// size is checked against it before anything is allocated.
    raw_len: Option<u64>,
}

fn read_file(path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    // Sniff the first bytes for gzip, then put them back in front of the rest.
    let prefix = read_at_most(&mut file, 2).map_err(|e| Error::io(path, e))?;
    let gzip = prefix == GZIP_MAGIC;
    let rest = io::Cursor::new(prefix).chain(file);
    if gzip {
        let input = Input {
            path,
            gzip,
            raw_len: None,
        };
        parse(&mut GzMembers::new(io::BufReader::new(rest)), &input, kind)
    } else {
        let input = Input {
            path,
            gzip,
            raw_len: Some(len),
        };
        parse(&mut io::BufReader::new(rest), &input, kind)
    }
}

fn read_slice(bytes: &[u8], path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
    let gzip = bytes.starts_with(&GZIP_MAGIC);
    let mut input = Input {
        path,
        gzip,
        raw_len: None,
    };
    if gzip {
        parse(&mut GzMembers::new(bytes), &input, kind)
    } else {
        input.raw_len = Some(bytes.len() as u64);
        let mut reader = bytes;
        parse(&mut reader, &input, kind)
    }
}

/// Decompresses gzip members one after another (`cat a.gz b.gz` is a valid gzip file of
/// the two contents joined), and fails with [`TrailingAfterGzip`] on anything else after
/// the last member: a generic multi-member decoder would report such bytes as an invalid
/// gzip header, which misleads.
struct GzMembers<R: BufRead> {
    current: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(r: R) -> Self {
        GzMembers {
            current: Some(GzDecoder::new(r)),
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // This member has ended (its CRC checked): what follows?
            let Some(decoder) = self.current.take() else {
                return Ok(0);
            };
            let mut inner = decoder.into_inner();
            let next = inner.fill_buf()?;
            match next.first() {
                None => return Ok(0),
                // Another member (a wrong second byte is reported by its decoder).
                Some(&b) if b == GZIP_MAGIC[0] => self.current = Some(GzDecoder::new(inner)),
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        TrailingAfterGzip,
                    ));
                }
            }
        }
    }
}

/// Bytes after the end of the gzip data that are not another gzip member.
#[derive(Debug)]
struct TrailingAfterGzip;

impl std::fmt::Display for TrailingAfterGzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("data after the end of the gzip stream")
    }
}

impl std::error::Error for TrailingAfterGzip {}

/// Reads until end of input or `limit` bytes, growing the buffer no further than the
/// bytes actually produced (never to `limit` up front), so a lying header costs nothing.
fn read_at_most(r: &mut dyn Read, limit: u64) -> io::Result<Vec<u8>> {
    const CHUNK: usize = 64 * 1024;
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; CHUNK];
    loop {
        let room = limit - out.len() as u64;
        if room == 0 {
            return Ok(out);
        }
        let want = room.min(CHUNK as u64) as usize;
        match r.read(&mut chunk[..want]) {
            Ok(0) => return Ok(out),
            Ok(got) => {
                if out.len() + got > out.capacity() {
                    // Double, but never past the limit: a 47 MB file gets a 47 MB buffer.
                    let target = (out.capacity() as u64 * 2).max(1 << 20).min(limit) as usize;
                    out.reserve_exact(target.max(out.len() + got) - out.len());
                }
                out.extend_from_slice(&chunk[..got]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A read error: decompression failures are data errors with a hint; anything else is
/// the operating system's.
fn read_err(input: &Input, e: io::Error) -> Error {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<TrailingAfterGzip>())
    {
        return data_err(
            input.path,
            "trailing data after the end of the gzip stream: something was appended to \
             the compressed file (delete it and fetch it again)",
        );
    }
    let decoding = matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    );
    if input.gzip && decoding {
        data_err(
            input.path,
            format!(
                "corrupt gzip data ({e}): the file is damaged or incompletely downloaded; \
                 delete it and fetch it again"
            ),
        )
    } else {
        Error::io(input.path, e)
    }
}

fn holds(input: &Input, bytes: u64) -> String {
    if input.gzip {
        format!("the file decompresses to {bytes}")
    } else {
        format!("the file holds {bytes}")
    }
}

fn parse(r: &mut dyn Read, input: &Input, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
    let path = input.path;
    let what = match kind {
        Kind::Images => "an IDX images file",
        Kind::Labels => "an IDX labels file",
    };
    let head = read_at_most(r, 4).map_err(|e| read_err(input, e))?;
    if head.is_empty() {
        return Err(data_err(
            path,
            if input.gzip {
                format!("the gzip data decompresses to nothing (0 bytes); expected {what}")
            } else {
                format!(
                    "empty file (0 bytes); expected {what} (the download probably failed: \
                     delete it and fetch it again)"
                )
            },
        ));
    }
    let header_len = 4 + 4 * kind.ndims() as u64;
    if head.len() < 4 {
        return Err(data_err(
            path,
            format!(
                "too short for {what}: {} bytes, but its header alone is {header_len} bytes",
                holds(input, head.len() as u64)
            ),
        ));
    }
    let magic_bytes = [head[0], head[1], head[2], head[3]];
    check_magic(input, kind, magic_bytes)?;

    let dim_bytes = read_at_most(r, 4 * kind.ndims() as u64).map_err(|e| read_err(input, e))?;
    if dim_bytes.len() < 4 * kind.ndims() {
        return Err(data_err(
            path,
            format!(
                "truncated header: {what} starts with {header_len} header bytes, but {}",
                holds(input, 4 + dim_bytes.len() as u64)
            ),
        ));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(data_err(
            path,
            format!(
                "the header declares 0 {} (sizes {}): every dimension must be at least 1",
                kind.dim_name(i),
                dims_text(&dims)
            ),
        ));
    }
    // u32 sizes multiply to at most 2^96: u128 cannot overflow.
    let declared: u128 = dims.iter().map(|&d| d as u128).product();
    let declares = match kind {
        Kind::Images => format!(
            "header declares {} images of {}×{} = {declared} bytes",
            dims[0], dims[1], dims[2]
        ),
        Kind::Labels => format!("header declares {} labels ({declared} bytes)", dims[0]),
    };

    // Uncompressed: the length is known, so both mismatches are caught before reading.
    if let Some(total) = input.raw_len {
        let present = total.saturating_sub(header_len) as u128;
        if present < declared {
            return Err(truncated(input, &declares, present as u64));
        }
        if present > declared {
            return Err(trailing(
                &declares,
                Some((present - declared) as u64),
                input,
            ));
        }
    }
    if declared > MAX_IDX_BYTES as u128 {
        return Err(data_err(
            path,
            format!(
                "{declares}, more than the {} GiB seqnet reads from one IDX file: the header \
                 is probably corrupt",
                MAX_IDX_BYTES >> 30
            ),
        ));
    }
    let declared = declared as u64;

    // One byte more than declared, to detect trailing data without reading it all.
    let data = read_at_most(r, declared + 1).map_err(|e| read_err(input, e))?;
    let got = data.len() as u64;
    if got < declared {
        return Err(truncated(input, &declares, got));
    }
    if got > declared {
        // Count a bounded amount more, for the message only.
        const MORE: u64 = 1 << 20;
        let more = io::copy(&mut r.take(MORE), &mut io::sink()).map_err(|e| read_err(input, e))?;
        let extra = (more < MORE).then_some(1 + more);
        return Err(trailing(&declares, extra, input));
    }
    let mut data = data;
    data.shrink_to_fit();
    Ok((dims, data))
}

fn dims_text(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" × ")
}

fn truncated(input: &Input, declares: &str, present: u64) -> Error {
    data_err(
        input.path,
        format!(
            "truncated: {declares} but {} (the download is probably incomplete: delete the \
             file and fetch it again)",
            holds(input, present)
        ),
    )
}

fn trailing(declares: &str, extra: Option<u64>, input: &Input) -> Error {
    let extra = match extra {
        Some(n) => format!("{n} bytes"),
        None => "more than 1 MiB".to_string(),
    };
    let after = if input.gzip {
        " (after decompression)"
    } else {
        ""
    };
    data_err(
        input.path,
        format!(
            "{extra} of trailing data{after}: the {declares}, and the file holds more (a \
             wrong count in the header, or two files joined together?)"
        ),
    )
}

/// The IDX element types, by their code in the magic number.
fn element_type(code: u8) -> Option<&'static str> {
    match code {
        0x08 => Some("u8"),
        0x09 => Some("i8"),
        0x0B => Some("i16"),
        0x0C => Some("i32"),
        0x0D => Some("f32"),
        0x0E => Some("f64"),
        _ => None,
    }
}

fn check_magic(input: &Input, kind: Kind, b: [u8; 4]) -> Result<()> {
    let magic = u32::from_be_bytes(b);
    let expected = kind.magic();
    if magic == expected {
        return Ok(());
    }
    let hex = format!("{:02x} {:02x} {:02x} {:02x}", b[0], b[1], b[2], b[3]);
    let hint = if kind == Kind::Images && magic == LABELS_MAGIC {
        " (is this a labels file?)".to_string()
    } else if kind == Kind::Labels && magic == IMAGES_MAGIC {
        " (is this an images file?)".to_string()
    } else if b[0] == 0 && b[1] == 0 && element_type(b[2]).is_some() {
        let ty = element_type(b[2]).unwrap_or("?");
        if ty == "u8" {
            format!(
                " (a {}-dimensional u8 array; {what} has {})",
                b[3],
                kind.layout(),
                what = if kind == Kind::Images {
                    "an images file"
                } else {
                    "a labels file"
                }
            )
        } else {
            format!(
                " (a {}-dimensional {ty} array): seqnet reads only u8 IDX files, as MNIST, \
                 Fashion-MNIST and KMNIST are; convert the data to u8, or save it as a \
                 safetensors batch (images F32 [N, C, H, W], labels [N])",
                b[3]
            )
        }
    } else if b[0] == b'<' {
        " (the file starts with '<': it looks like an HTML page, so the download probably \
         failed; delete it and fetch it again)"
            .to_string()
    } else if u32::from_le_bytes(b) == expected {
        " (the header was written little-endian; IDX numbers are big-endian)".to_string()
    } else {
        let gz_name = input
            .path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        if gz_name && !input.gzip {
            format!(
                " (not an IDX file; the name ends in .gz but the file is not gzip-compressed: \
                 gzip data starts with 1f 8b, this file with {hex})"
            )
        } else {
            format!(
                " (not an IDX file: it starts with bytes {hex}, an IDX {} file with 00 00 08 {:02x})",
                if kind == Kind::Images {
                    "images"
                } else {
                    "labels"
                },
                kind.ndims()
            )
        }
    };
    Err(data_err(
        input.path,
        format!("magic number {magic}, expected {expected}{hint}"),
    ))
}

#[cfg(test)]
#[path = "../../tests/support/idx.rs"]
mod idx_files;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The IDX file builders, shared with the integration tests (tests/support/idx.rs).
    pub(crate) use super::idx_files::{gz, idx_images, idx_labels};

    fn sample() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 7 % 256) as u8).collect();
        (pixels, vec![3, 1, 4])
    }

    #[test]
    fn idx_round_trips_raw_and_gzipped_from_files_and_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pixels, labels) = sample();
        let img = idx_images(3, 4, 5, &pixels);
        let lab = idx_labels(&labels);
        // Deliberately misleading names: gzip is detected by content.
        for (name, bytes_i, bytes_l) in [
            ("raw", img.clone(), lab.clone()),
            ("gz", gz(&img), gz(&lab)),
        ] {
            let pi = dir.path().join(format!("{name}-images"));
            let pl = dir.path().join(format!("{name}-labels.gz"));
            std::fs::write(&pi, &bytes_i).expect("write");
            std::fs::write(&pl, &bytes_l).expect("write");
            let got = read_images(&pi).expect("images");
            assert_eq!((got.n, got.h, got.w), (3, 4, 5));
            assert_eq!(got.pixels, pixels);
            assert_eq!(got.image(1), &pixels[20..40]);
            assert_eq!(read_labels(&pl).expect("labels"), labels);
            assert_eq!(images_from_bytes(&bytes_i, "x").expect("bytes"), got);
            assert_eq!(labels_from_bytes(&bytes_l, "x").expect("bytes"), labels);
        }
    }

    #[test]
    fn idx_reads_concatenated_gzip_members() {
        // `cat a.gz b.gz` is a valid gzip file of the concatenation.
        let img = idx_images(1, 2, 2, &[1, 2, 3, 4]);
        let mut bytes = gz(&img[..10]);
        bytes.extend(gz(&img[10..]));
        let got = images_from_bytes(&bytes, "joined.gz").expect("multi-member gzip");
        assert_eq!(got.pixels, vec![1, 2, 3, 4]);
    }

    #[test]
    fn idx_missing_file_is_an_io_error_naming_it() {
        let err = read_images("/nonexistent/train-images-idx3-ubyte.gz").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains("train-images-idx3-ubyte.gz"),
            "{err}"
        );
    }

    /// Every hostile input gives an error naming the file and the problem, and none
    /// panics, whether read from memory or from a file.
    #[test]
    fn idx_hostile_inputs_give_clear_errors() {
        let (pixels, labels) = sample();
        let img = idx_images(3, 4, 5, &pixels);
        let lab = idx_labels(&labels);
        let mut big_claim = idx_images(1, 28, 28, &[0; 784]);
        big_claim[4..8].copy_from_slice(&(1u32 << 31).to_be_bytes());
        let mut corrupt = gz(&idx_images(50, 28, 28, &[7; 50 * 784]));
        let mid = corrupt.len() / 2;
        for b in &mut corrupt[12..mid] {
            *b ^= 0x5a;
        }
        let whole = gz(&idx_images(50, 28, 28, &[7; 50 * 784]));
        let cut_gz = whole[..whole.len() / 2].to_vec();
        let mut gz_then_junk = gz(&img);
        gz_then_junk.extend_from_slice(b"junk");
        let mut gz_then_bad_member = gz(&img);
        gz_then_bad_member.extend_from_slice(&[0x1f, 0x00, 1, 2, 3]);
        let mut f32_file = img.clone();
        f32_file[2] = 0x0D;
        let mut le = img.clone();
        le[..4].copy_from_slice(&IMAGES_MAGIC.to_le_bytes());
        let mut four_d = img.clone();
        four_d[3] = 4;
        let mut zero_rows = img.clone();
        zero_rows[8..12].copy_from_slice(&0u32.to_be_bytes());
        let mut trailing_raw = img.clone();
        trailing_raw.extend_from_slice(&[9; 5]);
        let mut trailing_gz_data = img.clone();
        trailing_gz_data.extend_from_slice(&[9; 5]);

        let images = Kind::Images;
        let labels_k = Kind::Labels;
        let cases: Vec<(&str, Vec<u8>, Kind, &str)> = vec![
            (
                "labels as images",
                lab.clone(),
                images,
                "magic number 2049, expected 2051 (is this a labels file?)",
            ),
            (
                "images as labels",
                img.clone(),
                labels_k,
                "magic number 2051, expected 2049 (is this an images file?)",
            ),
            (
                "truncated",
                img[..16 + 30].to_vec(),
                images,
                "truncated: header declares 3 images of 4×5 = 60 bytes but the file holds 30",
            ),
            (
                "truncated gzip payload",
                gz(&img[..16 + 30]),
                images,
                "header declares 3 images of 4×5 = 60 bytes but the file decompresses to 30",
            ),
            (
                "2^31 images in a tiny file",
                big_claim.clone(),
                images,
                "truncated: header declares 2147483648 images of 28×28 = 1683627180032 bytes \
                 but the file holds 784",
            ),
            (
                "2^31 images in a tiny gzip",
                gz(&big_claim),
                images,
                "more than the 4 GiB",
            ),
            ("zero rows", zero_rows, images, "declares 0 rows"),
            (
                "zero labels",
                idx_labels(&[]),
                labels_k,
                "declares 0 labels",
            ),
            (
                "not gzip",
                b"this is not gzip, just text".to_vec(),
                images,
                "not gzip-compressed",
            ),
            ("corrupt gzip", corrupt, images, "corrupt gzip data"),
            ("cut gzip", cut_gz, images, "corrupt gzip data"),
            (
                "bytes after the gzip stream",
                gz_then_junk,
                images,
                "trailing data after the end of the gzip stream",
            ),
            (
                "a bad second member",
                gz_then_bad_member,
                images,
                "corrupt gzip data",
            ),
            ("empty", Vec::new(), images, "empty file (0 bytes)"),
            (
                "gzip of nothing",
                gz(&[]),
                labels_k,
                "decompresses to nothing",
            ),
            (
                "trailing bytes",
                trailing_raw,
                images,
                "5 bytes of trailing data",
            ),
            (
                "trailing bytes inside gzip",
                gz(&trailing_gz_data),
                images,
                "5 bytes of trailing data (after decompression)",
            ),
            ("short header", vec![0, 0], images, "too short"),
            ("cut dims", img[..10].to_vec(), images, "truncated header"),
            ("f32 idx", f32_file, images, "3-dimensional f32 array"),
            ("4-d u8", four_d, images, "4-dimensional u8 array"),
            ("little-endian", le, images, "little-endian"),
            (
                "html",
                b"<!DOCTYPE html><html>404</html>".to_vec(),
                images,
                "HTML page",
            ),
            (
                "random",
                b"\x12\x34\x56\x78abcdefgh".to_vec(),
                labels_k,
                "not an IDX file",
            ),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        for (label, bytes, kind, want) in cases {
            let name = "train-images-idx3-ubyte.gz";
            let from_bytes = std::panic::catch_unwind(|| read_slice(&bytes, Path::new(name), kind))
                .unwrap_or_else(|_| panic!("{label}: panicked"));
            let msg = match from_bytes {
                Ok(_) => panic!("{label}: accepted"),
                Err(e) => e.to_string(),
            };
            assert!(msg.starts_with(name), "{label}: {msg}");
            assert!(
                msg.contains(want),
                "{label}: {msg}\n  does not contain: {want}"
            );

            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).expect("write");
            let from_file = std::panic::catch_unwind(|| read_file(&path, kind))
                .unwrap_or_else(|_| panic!("{label}: panicked on a file"));
            let msg_file = match from_file {
                Ok(_) => panic!("{label}: accepted from a file"),
                Err(e) => e.to_string(),
            };
            assert!(msg_file.contains(want), "{label} (file): {msg_file}");
            assert!(msg_file.contains(&*path.to_string_lossy()), "{msg_file}");
        }
    }

    /// A cheap deterministic fuzz: random corruptions and cuts of valid files, raw and
    /// gzipped, must give Ok or Err, never a panic or a huge allocation.
    #[test]
    fn idx_random_corruptions_never_panic() {
        let (pixels, labels) = sample();
        let seeds = [
            idx_images(3, 4, 5, &pixels),
            gz(&idx_images(3, 4, 5, &pixels)),
            idx_labels(&labels),
            gz(&idx_labels(&labels)),
        ];
        let mut rng = Rng::new(11);
        for i in 0..4000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            match rng.below(3) {
                0 => {
                    let flips = 1 + rng.below(4);
                    for _ in 0..flips {
                        let at = rng.below(bytes.len());
                        bytes[at] = rng.next_u64() as u8;
                    }
                }
                1 => bytes.truncate(rng.below(bytes.len() + 1)),
                _ => {
                    // Header fields are where size attacks live.
                    let at = rng.below(bytes.len().min(16));
                    bytes[at] = 0xff;
                }
            }
            for kind in [Kind::Images, Kind::Labels] {
                let r = std::panic::catch_unwind(|| read_slice(&bytes, Path::new("fuzz"), kind));
                assert!(r.is_ok(), "panic on case {i}: {bytes:?}");
            }
        }
    }
}
