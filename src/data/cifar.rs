//! CIFAR-10, the binary version (`cifar-10-binary.tar.gz` from the dataset's authors):
//! 60,000 colour images of 32×32 in 10 classes, 50,000 for training and 10,000 for test.
//!
//! The archive unpacks to `cifar-10-batches-bin/`, holding `data_batch_1.bin` …
//! `data_batch_5.bin` (training, in that order), `test_batch.bin` and
//! `batches.meta.txt` (the class names, one a line). Each `.bin` file is a run of
//! 3,073-byte records: one label byte (0–9), then 1,024 red, 1,024 green and 1,024 blue
//! bytes, each plane row by row. That is the `[3, 32, 32]` C×H×W order of a tensor, so a
//! record's pixels are kept as they are, as u8 levels read as `v / 255`
//! ([`Pixels::U8`]), as torchvision's `ToTensor()` gives them.
//!
//! A folder *holds* CIFAR-10 when it contains the six `.bin` files, directly or in
//! `cifar-10-batches-bin/` (where the archive puts them). `--dataset cifar10` looks for
//! one in `DATA_DIR/cifar10`, `$SEQNET_DATA/cifar10`, `./data/cifar10` and the cache
//! folder (`~/.cache/seqnet/cifar10`, where `seqnet data fetch cifar10` installs it);
//! `--dataset DIR` takes such a folder directly.
//!
//! Its pixels are normalised per channel by [`MEAN`] and [`STD`] unless the run says
//! otherwise (`--normalize`).

use std::path::{Path, PathBuf};

use super::{Dataset, Splits, data_err, named, thousands};
use crate::error::{Error, Result};
use crate::io::model::Normalize;

/// The name `--dataset` and `seqnet data fetch` take (`cifar-10` and `CIFAR10` work too).
pub const NAME: &str = "cifar10";

/// The folder the archive unpacks to.
pub const ARCHIVE_DIR: &str = "cifar-10-batches-bin";

/// The training files, in the order their images are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";

/// The class names file.
pub const META_FILE: &str = "batches.meta.txt";

/// The classes, in label order (as `batches.meta.txt` lists them).
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Bytes per record: the label and 3 × 32 × 32 pixels.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Records per file in the published set (10,000 in each of the six).
pub const PER_FILE: usize = 10_000;

/// The per-channel means (R, G, B) of the 50,000 training images' pixels in [0, 1]: the
/// values PyTorch tutorials pass to `transforms.Normalize` for CIFAR-10.
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];

/// The per-channel standard deviations of the same pixels (over all training pixels of
/// the channel, not the mean of per-image deviations, which gives the also-seen
/// 0.2023, 0.1994, 0.2010).
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// CIFAR-10's standard normalisation, [`MEAN`] and [`STD`].
pub fn normalize() -> Normalize {
    Normalize::per_channel(&MEAN, &STD).expect("three finite means and positive stds")
}

/// True if `key` (normalised: lower case, `_` as `-`) names CIFAR-10.
pub(crate) fn is_name(key: &str) -> bool {
    matches!(key, "cifar10" | "cifar-10")
}

/// The folder holding the six `.bin` files: `dir` itself or its `cifar-10-batches-bin/`.
pub fn batches_dir(dir: &Path) -> Option<PathBuf> {
    let holds = |d: &Path| {
        TRAIN_FILES
            .iter()
            .chain(&[TEST_FILE])
            .all(|f| d.join(f).is_file())
    };
    [dir.to_path_buf(), dir.join(ARCHIVE_DIR)]
        .into_iter()
        .find(|d| holds(d))
}

/// True if `dir` holds any CIFAR-10 file (so a folder missing some of them gets
/// CIFAR-10's error, not the IDX one).
pub(crate) fn looks_like(dir: &Path) -> bool {
    [dir.to_path_buf(), dir.join(ARCHIVE_DIR)].iter().any(|d| {
        TRAIN_FILES
            .iter()
            .chain(&[TEST_FILE])
            .any(|f| d.join(f).is_file())
    })
}

/// Reads one `.bin` file: `(pixels, labels)`, each record's 3,072 pixel bytes in order.
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_batch(&bytes).map_err(|m| data_err(path, m))
}

fn parse_batch(bytes: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "is {} bytes, not a whole number of {}-byte records (a label byte and 3×32×32 \
             pixel bytes): the file is truncated or not a CIFAR-10 binary batch; fetch it \
             again with `seqnet data fetch {NAME}`",
            thousands(bytes.len()),
            thousands(RECORD)
        ));
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] as usize >= CLASSES.len() {
            return Err(format!(
                "record {i} (byte {}) has label {}, but CIFAR-10's labels are 0 to 9: not a \
                 CIFAR-10 binary batch (CIFAR-100's files have two label bytes)",
                thousands(i * RECORD),
                record[0]
            ));
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok((pixels, labels))
}

/// Reads `files` (in `dir`) one after the other into one dataset called `name`.
fn read_files(dir: &Path, files: &[&str], name: String) -> Result<Dataset> {
    let parts: Vec<Result<(Vec<u8>, Vec<u8>)>> = {
        use rayon::prelude::*;
        files.par_iter().map(|f| read_batch(&dir.join(f))).collect()
    };
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for part in parts {
        let (p, l) = part?;
        pixels.extend_from_slice(&p);
        labels.extend_from_slice(&l);
    }
    let labels: Vec<usize> = labels.into_iter().map(usize::from).collect();
    Dataset::new_u8(name, pixels, labels, [3, 32, 32], CLASSES.len())
}

/// The class names: `batches.meta.txt` when it lists ten, else [`CLASSES`].
fn class_names(dir: &Path) -> Vec<String> {
    let listed: Vec<String> = std::fs::read_to_string(dir.join(META_FILE))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if listed.len() == CLASSES.len() {
        listed
    } else {
        CLASSES.iter().map(|c| c.to_string()).collect()
    }
}

/// Loads CIFAR-10 from `dir` (which holds the six files, directly or in
/// `cifar-10-batches-bin/`): the 50,000 training images and the 10,000 test images
/// (only the test file when `test_only`). `dataset` is what [`Splits::dataset`] records.
pub fn load_dir(dir: &Path, test_only: bool, dataset: &str) -> Result<Splits> {
    let Some(batches) = batches_dir(dir) else {
        let missing: Vec<&str> = TRAIN_FILES
            .iter()
            .chain(&[TEST_FILE])
            .copied()
            .filter(|f| !dir.join(f).is_file() && !dir.join(ARCHIVE_DIR).join(f).is_file())
            .collect();
        return Err(data_err(
            dir,
            format!(
                "missing {}: a CIFAR-10 folder holds data_batch_1.bin … data_batch_5.bin and \
                 test_batch.bin (directly or in {ARCHIVE_DIR}/, as the binary version's \
                 archive unpacks); fetch them with `seqnet data fetch {NAME}`",
                missing.join(", ")
            ),
        ));
    };
    let test = read_files(&batches, &[TEST_FILE], format!("{NAME} test"))?;
    let train = if test_only {
        test.clone().split_at(0).0
    } else {
        read_files(&batches, &TRAIN_FILES, format!("{NAME} train"))?
    };
    let counts = if test_only {
        format!("{} test", thousands(test.len()))
    } else {
        format!(
            "{} train / {} test",
            thousands(train.len()),
            thousands(test.len())
        )
    };
    Ok(Splits {
        train,
        val: None,
        test: Some(test),
        source: format!("CIFAR-10 from {} ({counts})", batches.display()),
        dataset: dataset.to_string(),
        classes: Some(class_names(&batches)),
        normalize: Some(normalize()),
        split: None,
    })
}

/// The archive `seqnet data fetch cifar10` downloads.
pub const ARCHIVE: &str = "cifar-10-binary.tar.gz";

/// Unpacks CIFAR-10's archive (`cifar-10-binary.tar.gz`, gzipped tar) into
/// `dest/cifar-10-batches-bin/`: the six `.bin` files and `batches.meta.txt`, found by
/// their file names; nothing else in the archive is written, and no path from it is
/// used, so an archive cannot write outside that folder. Each file is written to a
/// temporary name and renamed when whole. Returns the folder.
///
/// The reader is a plain POSIX tar (ustar) reader: 512-byte headers checked by their
/// checksums, sizes in octal, regular files; GNU long names are followed. That is all
/// the published archive uses (it is checked by its SHA-256 before this is called).
pub fn extract_archive(archive: &Path, dest: &Path) -> Result<PathBuf> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let out = dest.join(ARCHIVE_DIR);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let wanted: Vec<&str> = TRAIN_FILES
        .iter()
        .chain(&[TEST_FILE, META_FILE])
        .copied()
        .collect();
    let mut found: Vec<String> = Vec::new();
    untar(gz, |name, bytes| {
        let base = name.rsplit('/').next().unwrap_or(name);
        if !wanted.contains(&base) || found.iter().any(|f| f == base) {
            return Ok(());
        }
        let part = out.join(format!(".{base}.{}.seqnet-part", std::process::id()));
        let path = out.join(base);
        std::fs::write(&part, bytes)
            .and_then(|()| std::fs::rename(&part, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&part);
                Error::io(&path, e)
            })?;
        found.push(base.to_string());
        Ok(())
    })
    .map_err(|e| match e {
        Untar::Io(e) => e,
        Untar::Format(m) => data_err(
            archive,
            format!(
                "{m}: the archive is truncated or damaged; delete it and fetch it again                  with `seqnet data fetch {NAME}`"
            ),
        ),
    })?;
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| *w != META_FILE && !found.iter().any(|f| f == w))
        .collect();
    if !missing.is_empty() {
        return Err(data_err(
            archive,
            format!(
                "holds no {}: not CIFAR-10's binary version (cifar-10-binary.tar.gz)",
                missing.join(", ")
            ),
        ));
    }
    Ok(out)
}

enum Untar {
    Io(Error),
    Format(String),
}

impl From<Error> for Untar {
    fn from(e: Error) -> Self {
        Untar::Io(e)
    }
}

/// Calls `on_file(name, contents)` for each regular file of the tar stream `r`.
fn untar(
    mut r: impl std::io::Read,
    mut on_file: impl FnMut(&str, &[u8]) -> Result<()>,
) -> std::result::Result<(), Untar> {
    let read_err = |what: &str, e: std::io::Error| {
        Untar::Format(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("it ends inside {what}")
        } else {
            format!("reading {what}: {e}")
        })
    };
    let mut long_name: Option<String> = None;
    let mut header = [0u8; 512];
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            // Some writers stop after the last file without the two zero blocks.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Untar::Format(
                    "it ends without the end-of-archive blocks".into(),
                ));
            }
            Err(e) => return Err(read_err("a header", e)),
        }
        if header.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let field = |range: std::ops::Range<usize>| {
            let f = &header[range];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let octal = |range: std::ops::Range<usize>| {
            let text = field(range);
            u64::from_str_radix(text.trim_matches(|c: char| c == ' ' || c == '\0'), 8).ok()
        };
        let stored = octal(148..156);
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored != Some(sum) {
            return Err(Untar::Format(
                "a header's checksum does not match: not a tar archive, or a damaged one".into(),
            ));
        }
        let size = octal(124..136)
            .ok_or_else(|| Untar::Format("a header's size field is not an octal number".into()))?;
        let mut name = field(0..100);
        if &header[257..262] == b"ustar" {
            let prefix = field(345..500);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        if let Some(long) = long_name.take() {
            name = long;
        }
        let kind = header[156];
        // Only the files wanted are held in memory; the rest is read past.
        let padded = size.div_ceil(512) * 512;
        match kind {
            b'0' | 0 | b'L' if size <= (1 << 31) => {
                let mut data = vec![0u8; size as usize];
                r.read_exact(&mut data)
                    .map_err(|e| read_err(&format!("{name} ({size} bytes)"), e))?;
                std::io::copy(
                    &mut std::io::Read::take(&mut r, padded - size),
                    &mut std::io::sink(),
                )
                .map_err(|e| read_err(&name, e))?;
                if kind == b'L' {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
                } else {
                    on_file(&name, &data)?;
                }
            }
            _ => {
                let skipped = std::io::copy(
                    &mut std::io::Read::take(&mut r, padded),
                    &mut std::io::sink(),
                )
                .map_err(|e| read_err(&name, e))?;
                if skipped != padded {
                    return Err(Untar::Format(format!("it ends inside {name}")));
                }
            }
        }
    }
}

/// The folder `--dataset cifar10` would load, if any (for `seqnet data list`).
pub fn find(data_dir: Option<&Path>) -> Option<PathBuf> {
    named::named_places(NAME, data_dir, &named::SearchEnv::process())
        .into_iter()
        .find_map(|(dir, _)| batches_dir(&dir))
}

/// Finds CIFAR-10 by name in the places [`named`] searches for a dataset folder named
/// `cifar10`, and loads it; or an error listing every place looked in.
pub(crate) fn load_named(
    data_dir: Option<&Path>,
    env: &named::SearchEnv,
    test_only: bool,
) -> Result<Splits> {
    let places = named::named_places(NAME, data_dir, env);
    for (dir, _) in &places {
        if batches_dir(dir).is_some() {
            return load_dir(dir, test_only, NAME);
        }
    }
    let mut msg = format!(
        "CIFAR-10 not found; looked for its six .bin files (data_batch_1.bin … \
         data_batch_5.bin, test_batch.bin, directly or in {ARCHIVE_DIR}/) in:"
    );
    for (dir, origin) in &places {
        msg.push_str(&format!("\n  {}  ({origin})", dir.display()));
    }
    msg.push_str(&format!(
        "\nFetch it with `seqnet data fetch {NAME}`, or pass --dataset DIR with a folder \
         holding the files."
    ));
    Err(Error::Data {
        path: PathBuf::from(NAME),
        message: msg,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::Pixels;

    /// `n` records: label `(i + first) % 10`, pixels `(i + c + y + x) % 256` per
    /// channel c, row y, column x.
    pub(crate) fn records(n: usize, first: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * RECORD);
        for i in 0..n {
            out.push(((i + first) % 10) as u8);
            for c in 0..3 {
                for y in 0..32 {
                    for x in 0..32 {
                        out.push(((i + first + 7 * c + y + x) % 256) as u8);
                    }
                }
            }
        }
        out
    }

    /// A CIFAR-10 folder of tiny files: 2 records in each training file, 3 in the test.
    pub(crate) fn write_fake(dir: &Path) {
        std::fs::create_dir_all(dir).expect("mkdir");
        for (k, f) in TRAIN_FILES.iter().enumerate() {
            std::fs::write(dir.join(f), records(2, 2 * k)).expect("write");
        }
        std::fs::write(dir.join(TEST_FILE), records(3, 5)).expect("write");
    }

    #[test]
    fn data_cifar_reads_records_in_chw_order_with_labels() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join(ARCHIVE_DIR);
        write_fake(&dir);
        // Found through the archive's folder.
        let s = load_dir(tmp.path(), false, "x").expect("load");
        assert_eq!(
            (s.train.len(), s.test.as_ref().map(Dataset::len)),
            (10, Some(3))
        );
        assert_eq!(s.train.shape, [3, 32, 32]);
        assert!(matches!(s.train.pixels, Pixels::U8(_)));
        // The files' records in order: data_batch_1's two, then data_batch_2's, ...
        assert_eq!(s.train.labels, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let test = s.test.as_ref().expect("test");
        assert_eq!(test.labels, vec![5, 6, 7]);
        // Image 3: R plane at (0, 0) is 3, G plane at (0, 0) is 3 + 7, B at (1, 2) 3+14+3.
        let img = s.train.image_u8(3).expect("u8");
        assert_eq!((img[0], img[1024], img[2048 + 32 + 2]), (3, 10, 20));
        assert_eq!(s.train.image(3)[1024], 10.0 / 255.0);
        assert_eq!(s.classes.as_deref().map(|c| c[9].as_str()), Some("truck"));
        assert_eq!(s.normalize, Some(normalize()));
        assert!(s.source.contains("10 train / 3 test"), "{}", s.source);
        // The test file alone.
        let t = load_dir(tmp.path(), true, "x").expect("test only");
        assert_eq!((t.train.len(), t.test.map(|t| t.len())), (0, Some(3)));
    }

    #[test]
    fn data_cifar_normalises_each_channel_by_its_own_mean_and_std() {
        let n = normalize();
        let mut img: Vec<f32> = vec![0.5; 3 * 4];
        n.apply(&mut img);
        for c in 0..3 {
            let want = (0.5 - MEAN[c]) / STD[c];
            assert!(
                img[c * 4..(c + 1) * 4].iter().all(|&v| v == want),
                "{img:?}"
            );
        }
        // A batch of two images, 12 values each.
        let mut two: Vec<f32> = vec![1.0; 24];
        n.apply_images(&mut two, 12);
        assert_eq!(two[0], two[12]);
        assert_eq!(two[11], (1.0 - MEAN[2]) / STD[2]);
        assert_eq!(two[4], (1.0 - MEAN[1]) / STD[1]);
    }

    #[test]
    fn data_cifar_rejects_truncated_files_missing_files_and_bad_labels() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_fake(tmp.path());
        let mut short = records(2, 0);
        short.truncate(RECORD + 100);
        std::fs::write(tmp.path().join("data_batch_3.bin"), &short).expect("write");
        let err = load_dir(tmp.path(), false, "x").unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin"), "{err}");
        assert!(
            err.contains("is 3,173 bytes, not a whole number of 3,073-byte"),
            "{err}"
        );
        assert!(err.contains("truncated"), "{err}");
        // Only the test file is read for an evaluation.
        assert!(load_dir(tmp.path(), true, "x").is_ok());

        let mut bad = records(2, 0);
        bad[RECORD] = 10;
        std::fs::write(tmp.path().join("data_batch_3.bin"), &bad).expect("write");
        let err = load_dir(tmp.path(), false, "x").unwrap_err().to_string();
        assert!(err.contains("record 1 (byte 3,073) has label 10"), "{err}");

        std::fs::remove_file(tmp.path().join(TEST_FILE)).expect("rm");
        let err = load_dir(tmp.path(), false, "x").unwrap_err().to_string();
        assert!(err.contains("missing test_batch.bin"), "{err}");
        assert!(err.contains("seqnet data fetch cifar10"), "{err}");
    }

    /// A ustar archive of `files`, as `tar` writes one, then two zero blocks.
    pub(crate) fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
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
        out
    }

    /// A fake `cifar-10-binary.tar.gz`: the layout of the real one, tiny files.
    pub(crate) fn fake_archive() -> Vec<u8> {
        let mut files: Vec<(String, Vec<u8>)> = TRAIN_FILES
            .iter()
            .enumerate()
            .map(|(k, f)| (format!("{ARCHIVE_DIR}/{f}"), records(2, 2 * k)))
            .collect();
        files.push((format!("{ARCHIVE_DIR}/{TEST_FILE}"), records(3, 5)));
        files.push((
            format!("{ARCHIVE_DIR}/{META_FILE}"),
            CLASSES.join("\n").into_bytes(),
        ));
        files.push((format!("{ARCHIVE_DIR}/readme.html"), b"<p>hi</p>".to_vec()));
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        crate::data::idx::tests::gz(&tar(&refs))
    }

    #[test]
    fn data_cifar_extracts_the_archive_and_refuses_damaged_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let archive = tmp.path().join(ARCHIVE);
        std::fs::write(&archive, fake_archive()).expect("write");
        let out = extract_archive(&archive, tmp.path()).expect("extract");
        assert_eq!(out, tmp.path().join(ARCHIVE_DIR));
        assert!(!out.join("readme.html").exists());
        let s = load_dir(tmp.path(), false, NAME).expect("load");
        assert_eq!(s.train.len(), 10);
        assert_eq!(
            s.classes.as_deref().map(|c| c[0].as_str()),
            Some("airplane")
        );

        // Cut short: the file it ends in is named.
        let whole = crate::data::idx::tests::gz(&tar(&[(
            "cifar-10-batches-bin/data_batch_1.bin",
            &records(2, 0),
        )]));
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&whole[..]), &mut raw)
            .expect("gunzip");
        raw.truncate(512 + 3000);
        std::fs::write(&archive, crate::data::idx::tests::gz(&raw)).expect("write");
        let err = extract_archive(&archive, &tmp.path().join("t"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("it ends inside cifar-10-batches-bin/data_batch_1.bin"),
            "{err}"
        );
        assert!(err.contains("truncated or damaged"), "{err}");

        // An archive without the files.
        std::fs::write(
            &archive,
            crate::data::idx::tests::gz(&tar(&[("a.txt", b"x")])),
        )
        .expect("write");
        let err = extract_archive(&archive, &tmp.path().join("u"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no data_batch_1.bin"), "{err}");

        // Not a tar at all.
        std::fs::write(&archive, crate::data::idx::tests::gz(&[7u8; 600])).expect("write");
        let err = extract_archive(&archive, &tmp.path().join("v"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum does not match"), "{err}");
    }

    #[test]
    fn data_cifar_is_found_by_name_and_the_search_is_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = named::SearchEnv::isolated(tmp.path());
        let err = load_named(None, &env, false).unwrap_err().to_string();
        assert!(err.starts_with("cifar10: CIFAR-10 not found"), "{err}");
        assert!(err.contains("cache/seqnet/cifar10"), "{err}");
        write_fake(&tmp.path().join("cache/seqnet/cifar10").join(ARCHIVE_DIR));
        let s = load_named(None, &env, false).expect("found");
        assert_eq!((s.train.len(), s.dataset.as_str()), (10, NAME));
    }
}
