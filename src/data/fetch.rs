//! Downloading MNIST, Fashion-MNIST and KMNIST into a folder ([`fetch`]).
//!
//! A [`Source`] is a dataset's four standard `.gz` files ([`STANDARD_FILES`] with `.gz`
//! appended), each with its SHA-256 (and size, when known), and a list of mirrors: base
//! URLs the file names are appended to. [`Source::builtin`] knows the public mirrors
//! and the published checksums; tests and people with their own mirror replace either
//! ([`Source::with_mirrors`], [`Source::with_checksums`]).
//!
//! Each file is tried from the mirrors in order. It is streamed into a hidden temporary
//! file in the destination folder (`.NAME.PID.seqnet-part`) while its SHA-256 is
//! computed; a failed request (an HTTP error, a connection that drops mid-way, a wrong
//! size or checksum) deletes that file and moves on to the next mirror. A mirror that
//! cannot be reached at all is not asked again for the next files. Only when all four
//! files are verified are they renamed into place, one after the other (each rename is
//! atomic, so a file is either absent or whole). If a file fails on every mirror the
//! fetch stops there: nothing is installed, no temporary file or folder made for it is
//! left behind, and the error names every mirror tried for that file and what went
//! wrong. Temporary files left by a process that was killed are removed by the next
//! fetch into the same folder.
//!
//! Files already in the folder with the right checksum are kept and not downloaded
//! again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::named::{self, FASHION, KMNIST, MNIST, STANDARD_FILES};
use crate::error::{Error, Result};

/// One file of a [`Source`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file name, on the mirrors and on disk, e.g. `train-images-idx3-ubyte.gz`.
    pub name: String,
    /// Its size in bytes, if known; a download of another size fails.
    pub size: Option<u64>,
    /// Its SHA-256, 64 lowercase hexadecimal digits.
    pub sha256: String,
}

/// Where a dataset's files come from and what they must hash to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The dataset's name: `mnist`, `fashion-mnist` or `kmnist`.
    pub name: String,
    /// How people write it, for messages: `MNIST`.
    pub title: String,
    /// Base URLs, tried in this order; each ends in `/`.
    pub mirrors: Vec<String>,
    /// The files to download.
    pub files: Vec<RemoteFile>,
}

/// The built-in mirrors. yann.lecun.com, the original home of MNIST, no longer serves
/// the files, so it is not among them.
const MNIST_MIRRORS: &[&str] = &[
    // PyTorch's copy, torchvision's first mirror.
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    // Google's CVDF copy, the one tensorflow-datasets downloads.
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];
const FASHION_MIRRORS: &[&str] = &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];
const KMNIST_MIRRORS: &[&str] = &["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"];

/// `(name, size in bytes, SHA-256)` of the published files, in [`STANDARD_FILES`]
/// order.
///
/// The sizes and SHA-256 values are those tensorflow-datasets records for the same
/// files (github.com/tensorflow/datasets, `tensorflow_datasets/url_checksums/mnist.txt`,
/// `fashion_mnist.txt` and `kmnist.txt`, one `URL  SIZE  SHA256` line per file); the
/// same values appear in many independent projects' download scripts. They could not
/// be checked against the live mirrors from the machine this was written on (it has no
/// internet access).
type Published = [(&'static str, u64, &'static str); 4];

const MNIST_FILES: Published = [
    (
        "train-images-idx3-ubyte.gz",
        9_912_422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        28_881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        1_648_877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        4_542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];

const FASHION_FILES: Published = [
    (
        "train-images-idx3-ubyte.gz",
        26_421_880,
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        29_515,
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        4_422_102,
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        5_148,
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
];

const KMNIST_FILES: Published = [
    (
        "train-images-idx3-ubyte.gz",
        18_165_135,
        "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        29_497,
        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        3_041_136,
        "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        5_120,
        "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
    ),
];

/// Downloads of files of unknown size stop after this many bytes (1 GiB; MNIST's
/// largest file is 26 MB).
pub const MAX_UNKNOWN_SIZE: u64 = 1 << 30;

/// The suffix of temporary files.
const PART_SUFFIX: &str = ".seqnet-part";

fn source_err(name: &str, message: String) -> Error {
    Error::Data {
        path: PathBuf::from(name),
        message,
    }
}

impl Source {
    /// The built-in source of `name` (`mnist`, `fashion-mnist` or `kmnist`; case and
    /// `_`/`-` do not matter): the public mirrors and the published sizes and SHA-256.
    pub fn builtin(name: &str) -> Result<Source> {
        let key = named::normalise(name);
        let (canonical, mirrors, files) = match named::known(&key) {
            Some(MNIST) => (MNIST, MNIST_MIRRORS, MNIST_FILES),
            Some(FASHION) => (FASHION, FASHION_MIRRORS, FASHION_FILES),
            Some(KMNIST) => (KMNIST, KMNIST_MIRRORS, KMNIST_FILES),
            _ if key == super::embedded::NAME => {
                return Err(source_err(
                    name,
                    "is embedded in seqnet and needs no download (use --dataset mnist-5k)".into(),
                ));
            }
            _ => {
                return Err(source_err(
                    name,
                    format!(
                        "not a dataset seqnet can fetch; it fetches {}",
                        named::KNOWN_NAMES.join(", ")
                    ),
                ));
            }
        };
        Ok(Source {
            name: canonical.to_string(),
            title: named::title(canonical).to_string(),
            mirrors: mirrors.iter().map(|m| m.to_string()).collect(),
            files: files
                .iter()
                .map(|&(name, size, sha)| RemoteFile {
                    name: name.to_string(),
                    size: Some(size),
                    sha256: sha.to_string(),
                })
                .collect(),
        })
    }

    /// The same files from other mirrors (base URLs, `http://` or `https://`, tried in
    /// this order; a missing final `/` is added).
    pub fn with_mirrors<S: AsRef<str>>(mut self, mirrors: &[S]) -> Result<Source> {
        if mirrors.is_empty() {
            return Err(source_err(&self.name, "no mirror to download from".into()));
        }
        self.mirrors = mirrors
            .iter()
            .map(|m| {
                let m = m.as_ref().trim();
                let lower = m.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Err(source_err(
                        m,
                        "a mirror is an http:// or https:// URL of the folder holding the \
                         four files"
                            .into(),
                    ));
                }
                Ok(if m.ends_with('/') {
                    m.to_string()
                } else {
                    format!("{m}/")
                })
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// The same files checked against other SHA-256 sums, given in the format
    /// `sha256sum` prints (`HEX  NAME` or `HEX *NAME` per line; blank lines and lines
    /// starting with `#` are skipped; only the file name of NAME counts). Every file of
    /// the source must be listed; sizes are then unknown. `origin` names the text in
    /// messages.
    pub fn with_checksums(mut self, text: &str, origin: &Path) -> Result<Source> {
        let bad = |line: usize, why: &str| Error::Data {
            path: origin.to_path_buf(),
            message: format!(
                "line {line}: {why}; expected `SHA256  FILENAME` lines, as sha256sum prints"
            ),
        };
        let mut sums: Vec<(String, String)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (hex, rest) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad(i + 1, "no file name"))?;
            let hex = hex.trim_start_matches('\\').to_ascii_lowercase();
            if !is_sha256_hex(&hex) {
                return Err(bad(i + 1, "the first field is not 64 hexadecimal digits"));
            }
            let file = rest.trim().trim_start_matches('*');
            let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
            if base.is_empty() {
                return Err(bad(i + 1, "no file name"));
            }
            sums.push((base.to_string(), hex));
        }
        let mut missing = Vec::new();
        for f in &mut self.files {
            match sums.iter().find(|(n, _)| *n == f.name) {
                Some((_, hex)) => {
                    f.sha256 = hex.clone();
                    f.size = None;
                }
                None => missing.push(f.name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::Data {
                path: origin.to_path_buf(),
                message: format!("has no SHA-256 for {}", missing.join(", ")),
            });
        }
        Ok(self)
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What [`Fetcher::fetch`] is doing, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The file is already in the folder with the right checksum: not downloaded.
    Present { file: &'a str },
    /// A request for `url` is about to be made.
    Start {
        file: &'a str,
        url: &'a str,
        size: Option<u64>,
    },
    /// The response promised this many bytes (when the server says, and no size was
    /// known before).
    Length { file: &'a str, bytes: u64 },
    /// `bytes` of the file have arrived so far.
    Progress { file: &'a str, bytes: u64 },
    /// This mirror failed for this file; the next one is tried.
    Failed {
        file: &'a str,
        url: &'a str,
        reason: &'a str,
    },
    /// This mirror is not asked for this file: it could not be reached for an earlier
    /// one.
    Skipped {
        file: &'a str,
        url: &'a str,
        reason: &'a str,
    },
    /// The file arrived whole with the right checksum.
    Verified {
        file: &'a str,
        url: &'a str,
        bytes: u64,
    },
}

/// A file that [`Fetcher::fetch`] installed or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Its file name.
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The URL it was downloaded from; `None` if it was already there.
    pub url: Option<String>,
}

/// What [`Fetcher::fetch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The folder holding the files.
    pub dir: PathBuf,
    /// Every file of the source, in order.
    pub files: Vec<Installed>,
    /// Things worth telling, e.g. an uncompressed copy of a file in the folder, which
    /// seqnet reads instead of the `.gz`.
    pub notes: Vec<String>,
}

impl Report {
    /// How many files were downloaded (the rest were there already).
    pub fn downloaded(&self) -> usize {
        self.files.iter().filter(|f| f.url.is_some()).count()
    }
}

/// An HTTP client with its timeouts.
#[derive(Clone, Debug)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Default for Fetcher {
    fn default() -> Self {
        Fetcher::new()
    }
}

impl Fetcher {
    /// A client that gives up on a connection after 30 s and on a stalled transfer after
    /// 60 s without data; proxies are taken from the usual environment variables.
    pub fn new() -> Self {
        Fetcher::with_timeouts(Duration::from_secs(30), Duration::from_secs(60))
    }

    /// A client with other timeouts: `connect` for resolving and connecting, `read` for
    /// each read from the network.
    pub fn with_timeouts(connect: Duration, read: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("seqnet/", env!("CARGO_PKG_VERSION")))
            .timeout_resolve(Some(connect))
            .timeout_connect(Some(connect))
            .timeout_per_read(Some(read))
            .build();
        Fetcher {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Downloads `source`'s files into `dest` (created if needed), as the [module
    /// documentation](self) says; `on_event` hears what happens.
    pub fn fetch(
        &self,
        source: &Source,
        dest: &Path,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Report> {
        if source.mirrors.is_empty() {
            return Err(source_err(
                &source.name,
                "no mirror to download from".into(),
            ));
        }
        let created = create_dirs(dest).map_err(|e| Error::io(dest, e))?;
        let result = self.fetch_into(source, dest, on_event);
        if result.is_err() {
            // Leave no trace: the folders made for this fetch go if they are empty.
            for dir in created.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
        result
    }

    fn fetch_into(
        &self,
        source: &Source,
        dest: &Path,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Report> {
        remove_stale_parts(dest);
        // Mirrors that could not be reached at all, and why.
        let mut unreachable: Vec<(String, String)> = Vec::new();
        // Per file: the verified temporary file, or the mirrors' failures.
        let mut ready: Vec<(usize, PartFile, String, u64)> = Vec::new();
        let mut present: Vec<(usize, u64)> = Vec::new();
        for (index, file) in source.files.iter().enumerate() {
            let target = dest.join(&file.name);
            if let Some(bytes) = already_there(&target, file) {
                on_event(Event::Present { file: &file.name });
                present.push((index, bytes));
                continue;
            }
            let mut tried = Vec::new();
            let mut got = None;
            for mirror in &source.mirrors {
                let url = format!("{mirror}{}", file.name);
                if let Some((_, why)) = unreachable.iter().find(|(m, _)| m == mirror) {
                    let reason = format!("not asked again: unreachable earlier ({why})");
                    on_event(Event::Skipped {
                        file: &file.name,
                        url: &url,
                        reason: &reason,
                    });
                    tried.push((url, reason, true));
                    continue;
                }
                on_event(Event::Start {
                    file: &file.name,
                    url: &url,
                    size: file.size,
                });
                let mut part = PartFile::create(dest, &file.name)
                    .map_err(|e| Error::io(dest.join(&file.name), e))?;
                match self.download(&url, file, &mut part, on_event) {
                    Ok(bytes) => {
                        on_event(Event::Verified {
                            file: &file.name,
                            url: &url,
                            bytes,
                        });
                        got = Some((part, url, bytes));
                        break;
                    }
                    Err(failure) => {
                        drop(part); // deletes the temporary file
                        let reason = failure.to_string();
                        on_event(Event::Failed {
                            file: &file.name,
                            url: &url,
                            reason: &reason,
                        });
                        let dead = matches!(failure, Failure::Unreachable(_));
                        if let Failure::Unreachable(why) = &failure {
                            unreachable.push((mirror.clone(), why.clone()));
                        }
                        tried.push((url, reason, dead));
                    }
                }
            }
            match got {
                Some((part, url, bytes)) => ready.push((index, part, url, bytes)),
                // Nothing is installed unless all files are: stop here. `ready` is
                // dropped on return, and with it every verified temporary file.
                None => return Err(no_mirror_had(source, dest, &file.name, &tried, ready.len())),
            }
        }

        let mut files: Vec<Option<Installed>> = vec![None; source.files.len()];
        for (index, bytes) in present {
            let name = &source.files[index].name;
            files[index] = Some(Installed {
                name: name.clone(),
                path: dest.join(name),
                bytes,
                url: None,
            });
        }
        for (index, part, url, bytes) in ready {
            let name = &source.files[index].name;
            let path = dest.join(name);
            part.persist(&path).map_err(|e| Error::io(&path, e))?;
            files[index] = Some(Installed {
                name: name.clone(),
                path,
                bytes,
                url: Some(url),
            });
        }
        sync_dir(dest);
        let mut notes = Vec::new();
        for f in &source.files {
            if let Some(raw) = f.name.strip_suffix(".gz")
                && dest.join(raw).is_file()
                && STANDARD_FILES.contains(&raw)
            {
                notes.push(format!(
                    "{} also holds the uncompressed {raw}, which seqnet reads instead of \
                         {}; delete it if it is not the same data",
                    dest.display(),
                    f.name
                ));
            }
        }
        Ok(Report {
            dir: dest.to_path_buf(),
            files: files.into_iter().flatten().collect(),
            notes,
        })
    }

    /// One attempt: `url` into `part`, checked against `file`; the number of bytes.
    fn download(
        &self,
        url: &str,
        file: &RemoteFile,
        part: &mut PartFile,
        on_event: &mut dyn FnMut(Event),
    ) -> std::result::Result<u64, Failure> {
        let response = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Timeout(_)
            | ureq::Error::Io(_) => Failure::Unreachable(e.to_string()),
            other => Failure::Other(other.to_string()),
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Other(format!(
                "HTTP {}{}",
                status.as_u16(),
                status
                    .canonical_reason()
                    .map_or(String::new(), |r| format!(" {r}"))
            )));
        }
        let body = response.into_body();
        let announced = body.content_length();
        match (announced, file.size) {
            (Some(got), Some(want)) if got != want => {
                return Err(Failure::Other(format!(
                    "the server offers {got} bytes, but the file is {want} bytes (another \
                     version, or an error page)"
                )));
            }
            (Some(got), None) => on_event(Event::Length {
                file: &file.name,
                bytes: got,
            }),
            _ => {}
        }
        let limit = file.size.unwrap_or(MAX_UNKNOWN_SIZE);
        let mut reader = body.into_reader().take(limit + 1);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        let shown = part.path.display().to_string();
        let write_err = |e: io::Error| Failure::Local(format!("writing {shown}: {e}"));
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::Other(format!(
                        "the transfer broke off after {total} bytes: {e}"
                    )));
                }
            };
            total += n as u64;
            if total > limit {
                return Err(Failure::Other(match file.size {
                    Some(want) => format!("more than the expected {want} bytes"),
                    None => format!("more than {limit} bytes, seqnet's limit for one file"),
                }));
            }
            hasher.update(&buf[..n]);
            part.file().write_all(&buf[..n]).map_err(write_err)?;
            on_event(Event::Progress {
                file: &file.name,
                bytes: total,
            });
        }
        if let Some(want) = file.size
            && total != want
        {
            return Err(Failure::Other(format!(
                "got {total} bytes, but the file is {want} bytes"
            )));
        }
        let got = hex(&hasher.finalize());
        if got != file.sha256 {
            return Err(Failure::Other(format!(
                "SHA-256 mismatch: got {got}, expected {} (a corrupt copy, or another \
                 version of the file)",
                file.sha256
            )));
        }
        part.file().flush().map_err(write_err)?;
        part.file().sync_all().map_err(write_err)?;
        Ok(total)
    }
}

/// The error when no mirror had `file`: every mirror tried and what went wrong.
/// `tried` holds (URL, reason, whether the mirror was unreachable).
fn no_mirror_had(
    source: &Source,
    dest: &Path,
    file: &str,
    tried: &[(String, String, bool)],
    discarded: usize,
) -> Error {
    let mut msg = format!(
        "could not download {}: no mirror gave {file} whole with the right checksum, so \
         nothing was installed",
        source.title
    );
    if discarded > 0 {
        msg.push_str(&format!(
            " (the {discarded} file{} already downloaded and verified were discarded)",
            if discarded == 1 { "" } else { "s" }
        ));
    }
    msg.push_str(&format!(". Mirrors tried for {file}:"));
    for (url, why, _) in tried {
        msg.push_str(&format!("\n  {url}: {why}"));
    }
    if tried.iter().all(|t| t.2) {
        msg.push_str(
            "\nNo mirror could be reached: is this machine offline? (A proxy is taken from \
             $HTTPS_PROXY, $HTTP_PROXY or $ALL_PROXY.)",
        );
    }
    msg.push_str(
        "\nTry again later, give other mirrors with --mirror URL (a folder holding the \
         four .gz files), or download the files by other means and pass their folder as \
         --dataset DIR.",
    );
    Error::Data {
        path: dest.to_path_buf(),
        message: msg,
    }
}

/// [`Fetcher::fetch`] with [`Fetcher::new`]'s timeouts.
pub fn fetch(source: &Source, dest: &Path, on_event: &mut dyn FnMut(Event)) -> Result<Report> {
    Fetcher::new().fetch(source, dest, on_event)
}

/// Why one attempt failed.
enum Failure {
    /// The mirror could not be reached (name, connection, time-out): not asked again.
    Unreachable(String),
    /// The mirror answered, but not with the file.
    Other(String),
    /// Writing the temporary file failed.
    Local(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "unreachable: {why}"),
            Failure::Other(why) | Failure::Local(why) => f.write_str(why),
        }
    }
}

/// Lowercase hexadecimal.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, as lowercase hexadecimal, with its size.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// The size of `path` if it already holds `file` (right size and checksum).
fn already_there(path: &Path, file: &RemoteFile) -> Option<u64> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() || file.size.is_some_and(|s| s != meta.len()) {
        return None;
    }
    let (sha, bytes) = sha256_file(path).ok()?;
    (sha == file.sha256).then_some(bytes)
}

/// Creates `dir` and its missing parents; the folders it created, outermost first.
fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    missing.reverse();
    fs::create_dir_all(dir)?;
    if !dir.is_dir() {
        return Err(io::Error::other("not a folder"));
    }
    Ok(missing)
}

/// Makes the renames durable where the platform allows (best effort).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// A temporary file in the destination folder, deleted when dropped unless persisted.
struct PartFile {
    path: PathBuf,
    file: Option<File>,
}

impl PartFile {
    fn create(dir: &Path, name: &str) -> io::Result<PartFile> {
        let path = dir.join(format!(".{name}.{}{PART_SUFFIX}", std::process::id()));
        // A leftover of this very process id (a reused pid) is ours to replace.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(PartFile {
            path,
            file: Some(file),
        })
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until persisted")
    }

    /// Renames the file to `to` (replacing what is there), atomically on the same file
    /// system.
    fn persist(mut self, to: &Path) -> io::Result<()> {
        drop(self.file.take());
        fs::rename(&self.path, to)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Deletes temporary files that a killed fetch left in `dir`: those of processes no
/// longer running (where the platform says, via /proc) or, elsewhere, older than a day.
fn remove_stale_parts(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    let proc_fs = Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = part_pid(&name) else {
            continue;
        };
        let stale = if pid == me {
            false
        } else if proc_fs {
            !Path::new("/proc").join(pid.to_string()).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(86_400))
        };
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The process id in a temporary file's name `.NAME.PID.seqnet-part`.
fn part_pid(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_suffix(PART_SUFFIX)?;
    if !stem.starts_with('.') {
        return None;
    }
    stem.rsplit_once('.')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::http_test_server::{Reply, Server};
    use crate::data::idx::tests::{gz, idx_images, idx_labels};
    use std::collections::HashMap;
    use std::net::TcpListener;

    /// A tiny MNIST-format set: the four .gz files and a source expecting them.
    fn tiny_set() -> (Vec<(String, Vec<u8>)>, Source) {
        let mut files = Vec::new();
        for (stem, n) in [("train", 6usize), ("t10k", 3)] {
            let pixels: Vec<u8> = (0..n * 4).map(|i| (i * 7 % 256) as u8).collect();
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            files.push((
                format!("{stem}-images-idx3-ubyte.gz"),
                gz(&idx_images(n, 2, 2, &pixels)),
            ));
            files.push((
                format!("{stem}-labels-idx1-ubyte.gz"),
                gz(&idx_labels(&labels)),
            ));
        }
        let mut source = Source::builtin("mnist").expect("mnist");
        for f in &mut source.files {
            let bytes = &files.iter().find(|(n, _)| *n == f.name).expect("file").1;
            f.size = Some(bytes.len() as u64);
            f.sha256 = hex(&Sha256::digest(bytes));
        }
        (files, source)
    }

    fn quick() -> Fetcher {
        Fetcher::with_timeouts(Duration::from_secs(5), Duration::from_secs(5))
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn data_fetch_builtin_sources_are_complete() {
        for name in named::KNOWN_NAMES {
            let s = Source::builtin(name).expect("known");
            assert_eq!(s.files.len(), 4);
            assert!(!s.mirrors.is_empty());
            for (f, stem) in s.files.iter().zip(STANDARD_FILES) {
                assert_eq!(f.name, format!("{stem}.gz"));
                assert!(is_sha256_hex(&f.sha256) && f.sha256 == f.sha256.to_lowercase());
                assert!(f.size.is_some_and(|n| n > 4000));
            }
            for m in &s.mirrors {
                assert!(m.ends_with('/') && !m.contains("lecun.com"), "{m}");
            }
        }
        assert_eq!(
            Source::builtin("Fashion_MNIST").expect("fashion").name,
            "fashion-mnist"
        );
        let err = Source::builtin("mnist-5k").unwrap_err().to_string();
        assert!(err.contains("embedded"), "{err}");
        let err = Source::builtin("cifar10").unwrap_err().to_string();
        assert!(err.contains("mnist, fashion-mnist, kmnist"), "{err}");
        // A SHA-256 of the empty input, to check the hashing itself.
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn data_fetch_mirrors_and_checksums_are_injectable() {
        let s = Source::builtin("kmnist")
            .expect("kmnist")
            .with_mirrors(&["http://127.0.0.1:1/a", "https://x/b/"])
            .expect("mirrors");
        assert_eq!(s.mirrors, vec!["http://127.0.0.1:1/a/", "https://x/b/"]);
        assert!(s.clone().with_mirrors(&["ftp://x/"]).is_err());
        assert!(s.clone().with_mirrors::<&str>(&[]).is_err());

        let sums = format!(
            "# comment\n{}  train-images-idx3-ubyte.gz\n{} *dir/train-labels-idx1-ubyte.gz\n\n\
             {}  t10k-images-idx3-ubyte.gz\n",
            "a".repeat(64),
            "B".repeat(64),
            "c".repeat(64)
        );
        let err = s
            .clone()
            .with_checksums(&sums, Path::new("SUMS"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SUMS: has no SHA-256 for t10k-labels-idx1-ubyte.gz"),
            "{err}"
        );
        let all = format!("{sums}{}  t10k-labels-idx1-ubyte.gz\n", "d".repeat(64));
        let s = s.with_checksums(&all, Path::new("SUMS")).expect("sums");
        assert_eq!(s.files[1].sha256, "b".repeat(64));
        assert!(s.files.iter().all(|f| f.size.is_none()));
        let err = Source::builtin("mnist")
            .expect("mnist")
            .with_checksums("xyz  train-images-idx3-ubyte.gz", Path::new("S"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn data_fetch_part_names_and_stale_parts() {
        assert_eq!(
            part_pid(".train-images-idx3-ubyte.gz.123.seqnet-part"),
            Some(123)
        );
        assert_eq!(part_pid("train-images-idx3-ubyte.gz"), None);
        assert_eq!(part_pid(".x.notapid.seqnet-part"), None);
        let tmp = tempfile::tempdir().expect("tempdir");
        // A pid that cannot be running (beyond Linux's pid_max of 2^22).
        let stale = tmp.path().join(".a.gz.4294967295.seqnet-part");
        let mine = tmp
            .path()
            .join(format!(".b.gz.{}.seqnet-part", std::process::id()));
        let other = tmp.path().join("keep.gz");
        for p in [&stale, &mine, &other] {
            fs::write(p, b"x").expect("write");
        }
        remove_stale_parts(tmp.path());
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
        assert!(mine.exists() && other.exists());
    }

    #[test]
    fn data_fetch_installs_from_a_good_mirror_and_skips_verified_files() {
        let (files, source) = tiny_set();
        let routes = files
            .iter()
            .map(|(n, b)| (format!("/good/{n}"), Reply::Body(b.clone())))
            .collect();
        let server = Server::start(routes);
        let source = source
            .with_mirrors(&[format!("{}/good", server.base)])
            .expect("mirror");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("new/mnist");
        let mut events = Vec::new();
        let report = quick()
            .fetch(&source, &dest, &mut |e| {
                if !matches!(e, Event::Progress { .. }) {
                    events.push(format!("{e:?}"));
                }
            })
            .expect("fetch");
        assert_eq!(report.downloaded(), 4);
        assert_eq!(
            dir_entries(&dest),
            vec![
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz"
            ]
        );
        for (name, bytes) in &files {
            assert_eq!(&fs::read(dest.join(name)).expect("read"), bytes);
        }
        assert_eq!(
            events.iter().filter(|e| e.starts_with("Verified")).count(),
            4
        );
        let splits = crate::data::load_dir(&dest, crate::data::Split::Official).expect("load");
        assert_eq!(splits.train.len(), 6);
        assert_eq!(splits.test.as_ref().map(|t| t.len()), Some(3));

        // Again: everything is there and verified, nothing is requested.
        let before = server.requests().len();
        let report = quick().fetch(&source, &dest, &mut |_| {}).expect("again");
        assert_eq!(report.downloaded(), 0);
        assert_eq!(server.requests().len(), before);

        // A corrupted file on disk is downloaded again, the others are kept.
        fs::write(dest.join("t10k-labels-idx1-ubyte.gz"), b"junk").expect("write");
        let report = quick().fetch(&source, &dest, &mut |_| {}).expect("repair");
        assert_eq!(report.downloaded(), 1);
        assert_eq!(server.requests().len(), before + 1);
        assert_eq!(dir_entries(&dest).len(), 4);
    }

    #[test]
    fn data_fetch_falls_back_past_bad_mirrors_file_by_file() {
        let (files, source) = tiny_set();
        let mut routes: HashMap<String, Reply> = HashMap::new();
        for (i, (n, b)) in files.iter().enumerate() {
            // /corrupt/: every file one byte off; /cut/: the first file breaks off
            // mid-way, the others are fine; /missing/: the last two are 404.
            let mut bad = b.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0xff;
            routes.insert(format!("/corrupt/{n}"), Reply::Body(bad));
            routes.insert(
                format!("/cut/{n}"),
                if i == 0 {
                    Reply::CutOff(b.clone())
                } else {
                    Reply::Body(b.clone())
                },
            );
            if i < 2 {
                routes.insert(format!("/missing/{n}"), Reply::Body(b.clone()));
            }
        }
        let server = Server::start(routes);
        let source = source
            .with_mirrors(&[
                format!("{}/corrupt/", server.base),
                format!("{}/missing/", server.base),
                format!("{}/cut/", server.base),
            ])
            .expect("mirrors");
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut failures = Vec::new();
        let report = quick()
            .fetch(&source, tmp.path(), &mut |e| {
                if let Event::Failed { url, reason, .. } = e {
                    failures.push(format!("{url}: {reason}"));
                }
            })
            .expect("fetch");
        let from: Vec<&str> = report
            .files
            .iter()
            .map(|f| {
                f.url
                    .as_deref()
                    .unwrap_or("")
                    .rsplit('/')
                    .nth(1)
                    .unwrap_or("")
            })
            .collect();
        // File 0: corrupt, then /missing/ has it. File 1 likewise. Files 2 and 3: corrupt,
        // 404, then /cut/ has them whole.
        assert_eq!(from, vec!["missing", "missing", "cut", "cut"]);
        assert!(
            failures.iter().all(|f| !f.contains("/cut/")),
            "{failures:?}"
        );
        assert!(failures[0].contains("SHA-256 mismatch"), "{failures:?}");
        assert!(
            failures.iter().any(|f| f.contains("HTTP 404")),
            "{failures:?}"
        );
        assert_eq!(dir_entries(tmp.path()).len(), 4);
        crate::data::load_dir(tmp.path(), crate::data::Split::Official).expect("load");
    }

    #[test]
    fn data_fetch_all_mirrors_bad_installs_nothing_and_names_every_mirror() {
        let (files, source) = tiny_set();
        let mut routes: HashMap<String, Reply> = HashMap::new();
        for (i, (n, b)) in files.iter().enumerate() {
            // /a/ has three good files and a truncated one; /b/ lacks that one.
            routes.insert(
                format!("/a/{n}"),
                if i == 3 {
                    Reply::CutOff(b.clone())
                } else {
                    Reply::Body(b.clone())
                },
            );
        }
        let server = Server::start(routes);
        // A port nothing listens on: bind one, note it, close it.
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let source = source
            .with_mirrors(&[
                format!("http://127.0.0.1:{dead}/x/"),
                format!("{}/a/", server.base),
                format!("{}/b/", server.base),
            ])
            .expect("mirrors");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("made/for/it");
        let err = quick()
            .fetch(&source, &dest, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing was installed"), "{err}");
        assert!(err.contains("t10k-labels-idx1-ubyte.gz:"), "{err}");
        assert!(
            err.contains(&format!("127.0.0.1:{dead}/x/t10k-labels")),
            "{err}"
        );
        assert!(err.contains("unreachable"), "{err}");
        assert!(
            err.contains("/a/t10k-labels-idx1-ubyte.gz: the transfer broke off"),
            "{err}"
        );
        assert!(
            err.contains("/b/t10k-labels-idx1-ubyte.gz: HTTP 404"),
            "{err}"
        );
        // The dead mirror was asked once, then skipped.
        assert!(err.contains("not asked again"), "{err}");
        assert!(
            err.contains("the 3 files already downloaded and verified were discarded"),
            "{err}"
        );
        // A file no mirror has ends the fetch at once: the later files are not asked for.
        let before = server.requests().len();
        let only_b = source
            .clone()
            .with_mirrors(&[format!("{}/b/", server.base)])
            .expect("mirror");
        let err2 = quick()
            .fetch(&only_b, &dest, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err2.contains("no mirror gave train-images-idx3-ubyte.gz"),
            "{err2}"
        );
        assert!(!err2.contains("offline"), "{err2}");
        assert_eq!(
            server.requests()[before..],
            ["/b/train-images-idx3-ubyte.gz".to_string()]
        );
        let only_dead = source
            .clone()
            .with_mirrors(&[format!("http://127.0.0.1:{dead}/")])
            .expect("mirror");
        let err2 = quick()
            .fetch(&only_dead, &dest, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err2.contains("is this machine offline?"), "{err2}");
        // No file, no folder left behind.
        assert!(
            !tmp.path().join("made").exists(),
            "{:?}",
            dir_entries(tmp.path())
        );

        // Into an existing folder: it stays, empty of our files.
        let err = quick().fetch(&source, tmp.path(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("nothing was installed"));
        assert!(
            dir_entries(tmp.path()).is_empty(),
            "{:?}",
            dir_entries(tmp.path())
        );
    }
}
