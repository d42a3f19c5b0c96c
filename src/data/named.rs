//! Finding named datasets (MNIST, Fashion-MNIST, KMNIST) on disk.
//!
//! A folder *holds* a dataset when it contains the four standard IDX files
//! ([`STANDARD_FILES`], each gzipped or not). For a name, these folders are searched in
//! order ([`search_path`]):
//!
//! 1. `data_dir/NAME`, then `data_dir` itself (the caller's folder);
//! 2. `$SEQNET_DATA/NAME`, then `$SEQNET_DATA`;
//! 3. `./data/NAME`;
//! 4. `$XDG_CACHE_HOME/seqnet/NAME` (if set), then `~/.cache/seqnet/NAME` ([`cache_dir`]);
//! 5. `/usr/share/datasets/NAME` (where Debian's `dataset-fashion-mnist` installs).
//!
//! The four files have the same names in all three datasets, so a folder holding them
//! directly (`data_dir` or `$SEQNET_DATA` itself) could be any of them. It counts as NAME
//! when its own name is NAME, never when its name is another dataset's (so
//! `SEQNET_DATA=/data/mnist` is not taken for KMNIST), and otherwise only when it is
//! `data_dir` (the caller pointed at it) or NAME is `mnist` (the default, and the set
//! the file names come from).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The datasets found by name ([`resolve_named`]); `mnist-5k`, embedded in the library,
/// needs no folder.
pub const KNOWN_NAMES: [&str; 3] = [MNIST, FASHION, KMNIST];

pub(crate) const MNIST: &str = "mnist";
pub(crate) const FASHION: &str = "fashion-mnist";
pub(crate) const KMNIST: &str = "kmnist";

/// The four files of an MNIST-format dataset, each also accepted with `.gz` appended:
/// training images, training labels, test images, test labels.
pub const STANDARD_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// `"Fashion_MNIST "` → `"fashion-mnist"`: names are matched case-insensitively, with `_`
/// for `-`.
pub(crate) fn normalise(name: &str) -> String {
    name.trim().to_lowercase().replace('_', "-")
}

/// The canonical name for a normalised one, if it is a known dataset.
pub(crate) fn known(key: &str) -> Option<&'static str> {
    KNOWN_NAMES.iter().copied().find(|&n| n == key)
}

/// How people write the name.
pub(crate) fn title(name: &str) -> &str {
    match name {
        MNIST => "MNIST",
        FASHION => "Fashion-MNIST",
        KMNIST => "KMNIST",
        other => other,
    }
}

/// The four files in `dir`, uncompressed preferred when both forms exist; or the list of
/// those missing, as `name[.gz]`.
pub(crate) fn standard_files(dir: &Path) -> std::result::Result<[PathBuf; 4], Vec<String>> {
    let mut found = Vec::with_capacity(4);
    let mut missing = Vec::new();
    for stem in STANDARD_FILES {
        let raw = dir.join(stem);
        let gz = dir.join(format!("{stem}.gz"));
        if raw.is_file() {
            found.push(raw);
        } else if gz.is_file() {
            found.push(gz);
        } else {
            missing.push(format!("{stem}[.gz]"));
        }
    }
    match <[PathBuf; 4]>::try_from(found) {
        Ok(files) if missing.is_empty() => Ok(files),
        _ => Err(missing),
    }
}

/// What the search reads from the outside world. Tests build their own instead of
/// changing the process environment, which would race other tests.
#[derive(Clone, Debug)]
pub(crate) struct SearchEnv {
    vars: HashMap<&'static str, OsString>,
    /// `./data` in real use.
    local: PathBuf,
    /// `/usr/share/datasets` in real use.
    system: PathBuf,
}

const VARS: [&str; 3] = ["SEQNET_DATA", "XDG_CACHE_HOME", "HOME"];

impl SearchEnv {
    /// The process's environment variables and the real folders.
    pub(crate) fn process() -> Self {
        SearchEnv {
            vars: VARS
                .iter()
                .filter_map(|&k| std::env::var_os(k).map(|v| (k, v)))
                .collect(),
            local: PathBuf::from("data"),
            system: PathBuf::from("/usr/share/datasets"),
        }
    }

    /// An environment confined to `root`: `$XDG_CACHE_HOME` is `root/cache`, `$HOME` is
    /// `root/home`, `./data` is `root/local-data`, the system folder `root/system`.
    #[cfg(test)]
    pub(crate) fn isolated(root: &Path) -> Self {
        let mut env = SearchEnv {
            vars: HashMap::new(),
            local: root.join("local-data"),
            system: root.join("system"),
        };
        env.set("XDG_CACHE_HOME", &root.join("cache"));
        env.set("HOME", &root.join("home"));
        env
    }

    #[cfg(test)]
    pub(crate) fn set(&mut self, key: &'static str, value: &Path) {
        self.vars.insert(key, value.as_os_str().to_owned());
    }

    #[cfg(test)]
    pub(crate) fn unset(&mut self, key: &'static str) {
        self.vars.remove(key);
    }

    /// A variable's value, if set and non-empty (an empty value means unset, as in the
    /// XDG specification).
    fn var(&self, key: &str) -> Option<PathBuf> {
        self.vars
            .get(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    fn cache_dirs(&self, name: &str) -> Vec<(PathBuf, &'static str)> {
        let mut dirs = Vec::new();
        // XDG requires an absolute path; a relative one is to be ignored.
        if let Some(xdg) = self.var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
            dirs.push((xdg.join("seqnet").join(name), "$XDG_CACHE_HOME"));
        }
        if let Some(home) = self.var("HOME") {
            let dir = home.join(".cache").join("seqnet").join(name);
            if dirs.iter().all(|(d, _)| *d != dir) {
                dirs.push((dir, "~/.cache"));
            }
        }
        dirs
    }
}

/// One folder the search looked in.
#[derive(Clone, Debug)]
pub(crate) struct Tried {
    pub(crate) dir: PathBuf,
    /// Why it was searched: "data dir", "$SEQNET_DATA", ...
    pub(crate) origin: &'static str,
    /// Why a folder holding the files was passed over.
    pub(crate) note: Option<String>,
}

/// The outcome of a search: the folder found, and every folder looked in before it.
#[derive(Clone, Debug)]
pub(crate) struct Search {
    pub(crate) name: &'static str,
    pub(crate) found: Option<PathBuf>,
    pub(crate) tried: Vec<Tried>,
}

impl Search {
    /// "NAME: not found", with every folder tried and what to do.
    pub(crate) fn not_found_error(&self) -> Error {
        let mut msg = format!(
            "{} not found; looked for its four files ({}, each optionally .gz) in:",
            title(self.name),
            STANDARD_FILES.join(", ")
        );
        for t in &self.tried {
            msg.push_str(&format!("\n  {}  ({})", t.dir.display(), t.origin));
            if let Some(note) = &t.note {
                msg.push_str(&format!(": {note}"));
            }
        }
        msg.push_str(&format!(
            "\nFetch it with `seqnet data fetch {}`, or pass --dataset DIR with a folder \
             holding the four files.",
            self.name
        ));
        if self.name == FASHION {
            msg.push_str(
                " On Debian or Ubuntu, `apt-get install dataset-fashion-mnist` puts it in \
                 /usr/share/datasets/fashion-mnist.",
            );
        }
        Error::Data {
            path: PathBuf::from(self.name),
            message: msg,
        }
    }
}

enum Place {
    /// A folder named after the dataset (or holding it under that name): accepted if it
    /// holds the files.
    Named,
    /// A folder that may hold the files directly; `explicit` if the caller named it.
    Direct { explicit: bool },
}

fn places(
    name: &str,
    data_dir: Option<&Path>,
    env: &SearchEnv,
) -> Vec<(PathBuf, &'static str, Place)> {
    let mut out = Vec::new();
    if let Some(d) = data_dir {
        out.push((d.join(name), "data dir", Place::Named));
        out.push((
            d.to_path_buf(),
            "data dir",
            Place::Direct { explicit: true },
        ));
    }
    if let Some(d) = env.var("SEQNET_DATA") {
        out.push((d.join(name), "$SEQNET_DATA", Place::Named));
        out.push((d, "$SEQNET_DATA", Place::Direct { explicit: false }));
    }
    out.push((env.local.join(name), "./data", Place::Named));
    for (dir, origin) in env.cache_dirs(name) {
        out.push((dir, origin, Place::Named));
    }
    out.push((env.system.join(name), "system datasets", Place::Named));
    out
}

/// Whether a folder holding the files directly may be taken for `name` (see the module
/// documentation); the reason if not.
fn direct_ok(dir: &Path, name: &str, explicit: bool) -> std::result::Result<(), String> {
    let base = dir
        .file_name()
        .map(|n| normalise(&n.to_string_lossy()))
        .unwrap_or_default();
    match known(&base) {
        Some(k) if k == name => Ok(()),
        Some(other) => Err(format!(
            "holds the four files, but its name says they are {}",
            title(other)
        )),
        None if explicit || name == MNIST => Ok(()),
        None => Err(format!(
            "holds the four files, but nothing says they are {} rather than MNIST; put them \
             in a folder named {name}, or pass the folder itself as --dataset DIR",
            title(name)
        )),
    }
}

pub(crate) fn search(name: &'static str, data_dir: Option<&Path>, env: &SearchEnv) -> Search {
    let mut tried = Vec::new();
    for (dir, origin, place) in places(name, data_dir, env) {
        let mut note = None;
        if standard_files(&dir).is_ok() {
            let ok = match place {
                Place::Named => Ok(()),
                Place::Direct { explicit } => direct_ok(&dir, name, explicit),
            };
            match ok {
                Ok(()) => {
                    return Search {
                        name,
                        found: Some(dir),
                        tried,
                    };
                }
                Err(why) => note = Some(why),
            }
        }
        tried.push(Tried { dir, origin, note });
    }
    Search {
        name,
        found: None,
        tried,
    }
}

fn unknown_name(name: &str) -> Error {
    Error::Data {
        path: PathBuf::from(name),
        message: format!(
            "not a dataset name; the names are {} (and mnist-5k, the sample embedded in \
             seqnet, which needs no folder)",
            KNOWN_NAMES.join(", ")
        ),
    }
}

/// The folder holding dataset `name` (`mnist`, `fashion-mnist` or `kmnist`; case and
/// `_`/`-` do not matter), searched as the [module documentation](self) says; `Ok(None)`
/// if no folder holds it, an error if `name` is not one of these.
pub fn resolve_named(name: &str, data_dir: Option<&Path>) -> Result<Option<PathBuf>> {
    let name = known(&normalise(name)).ok_or_else(|| unknown_name(name))?;
    check_data_dir(data_dir)?;
    Ok(search(name, data_dir, &SearchEnv::process()).found)
}

/// A `--data-dir` the user named must exist: a typo there must not fall through to
/// another copy of the data, or to the embedded sample.
pub(crate) fn check_data_dir(data_dir: Option<&Path>) -> Result<()> {
    match data_dir {
        Some(d) if !d.is_dir() => Err(Error::Data {
            path: d.to_path_buf(),
            message: "the --data-dir folder does not exist (or is not a folder); check \
                      the path, or leave --data-dir out to search the usual places"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// The folders named after a dataset that the search looks in, in order, with why: for
/// datasets other than the IDX ones (CIFAR-10), whose files have names of their own, so
/// no folder holding them directly is taken for another set.
pub(crate) fn named_places(
    name: &str,
    data_dir: Option<&Path>,
    env: &SearchEnv,
) -> Vec<(PathBuf, &'static str)> {
    places(name, data_dir, env)
        .into_iter()
        .filter(|(_, _, place)| matches!(place, Place::Named))
        .map(|(dir, origin, _)| (dir, origin))
        .collect()
}

/// Every folder [`resolve_named`] would look in for `name`, in order (for listing, or
/// for messages).
pub fn search_path(name: &str, data_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let name = known(&normalise(name)).ok_or_else(|| unknown_name(name))?;
    Ok(places(name, data_dir, &SearchEnv::process())
        .into_iter()
        .map(|(dir, _, _)| dir)
        .collect())
}

/// Where a downloaded dataset belongs: `$XDG_CACHE_HOME/seqnet/NAME` if that variable is
/// set (to an absolute path), else `~/.cache/seqnet/NAME`; `None` if neither variable is
/// set. [`resolve_named`] looks there.
pub fn cache_dir(name: &str) -> Option<PathBuf> {
    cache_dir_in(name, &SearchEnv::process())
}

fn cache_dir_in(name: &str, env: &SearchEnv) -> Option<PathBuf> {
    let name = known(&normalise(name)).map_or_else(|| normalise(name), str::to_string);
    env.cache_dirs(&name).into_iter().next().map(|(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_set(dir: &Path, gzip: bool) {
        std::fs::create_dir_all(dir).expect("mkdir");
        for f in STANDARD_FILES {
            let name = if gzip {
                format!("{f}.gz")
            } else {
                f.to_string()
            };
            std::fs::write(dir.join(name), b"").expect("write");
        }
    }

    #[test]
    fn data_named_search_order_and_places() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let mut env = SearchEnv::isolated(root);
        env.set("SEQNET_DATA", &root.join("env"));
        let given = root.join("given");
        let dirs: Vec<PathBuf> = places(KMNIST, Some(&given), &env)
            .into_iter()
            .map(|(d, _, _)| d)
            .collect();
        assert_eq!(
            dirs,
            vec![
                given.join("kmnist"),
                given.clone(),
                root.join("env/kmnist"),
                root.join("env"),
                root.join("local-data/kmnist"),
                root.join("cache/seqnet/kmnist"),
                root.join("home/.cache/seqnet/kmnist"),
                root.join("system/kmnist"),
            ]
        );

        // Nothing anywhere: every place is listed as tried.
        let s = search(KMNIST, Some(&given), &env);
        assert!(s.found.is_none());
        assert_eq!(s.tried.len(), 8);

        // Later places are found, earlier ones win.
        touch_set(&root.join("system/kmnist"), true);
        assert_eq!(
            search(KMNIST, None, &env).found,
            Some(root.join("system/kmnist"))
        );
        touch_set(&root.join("home/.cache/seqnet/kmnist"), false);
        assert_eq!(
            search(KMNIST, None, &env).found,
            Some(root.join("home/.cache/seqnet/kmnist"))
        );
        touch_set(&root.join("env/kmnist"), true);
        assert_eq!(
            search(KMNIST, None, &env).found,
            Some(root.join("env/kmnist"))
        );
        touch_set(&given.join("kmnist"), true);
        assert_eq!(
            search(KMNIST, Some(&given), &env).found,
            Some(given.join("kmnist"))
        );
    }

    #[test]
    fn data_named_direct_folders_are_not_taken_for_another_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let mnist_dir = root.join("MNIST");
        touch_set(&mnist_dir, true);
        let mut env = SearchEnv::isolated(root);
        env.set("SEQNET_DATA", &mnist_dir);
        // SEQNET_DATA=/…/MNIST holds MNIST, not Fashion-MNIST.
        assert_eq!(search(MNIST, None, &env).found, Some(mnist_dir.clone()));
        let s = search(FASHION, None, &env);
        assert!(s.found.is_none());
        let msg = s.not_found_error().to_string();
        assert!(msg.contains("its name says they are MNIST"), "{msg}");
        assert!(
            msg.contains("apt-get install dataset-fashion-mnist"),
            "{msg}"
        );

        // A generically named folder is MNIST by default, KMNIST only if the caller
        // pointed at it.
        let generic = root.join("files");
        touch_set(&generic, false);
        env.set("SEQNET_DATA", &generic);
        assert_eq!(search(MNIST, None, &env).found, Some(generic.clone()));
        assert!(search(KMNIST, None, &env).found.is_none());
        assert_eq!(
            search(KMNIST, Some(&generic), &env).found,
            Some(generic.clone())
        );
        // But a caller's folder named after another set is still not taken.
        assert!(search(KMNIST, Some(&mnist_dir), &env).found.is_none());
    }

    #[test]
    fn data_named_standard_files_gz_or_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        assert_eq!(standard_files(dir).unwrap_err().len(), 4);
        touch_set(dir, true);
        std::fs::write(dir.join("t10k-images-idx3-ubyte"), b"").expect("write");
        let files = standard_files(dir).expect("all four");
        assert_eq!(files[0], dir.join("train-images-idx3-ubyte.gz"));
        assert_eq!(files[2], dir.join("t10k-images-idx3-ubyte"));
        std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz")).expect("rm");
        assert_eq!(
            standard_files(dir).unwrap_err(),
            vec!["train-labels-idx1-ubyte[.gz]".to_string()]
        );
    }

    #[test]
    fn data_named_cache_dir_honours_xdg_then_home() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut env = SearchEnv::isolated(tmp.path());
        assert_eq!(
            cache_dir_in("Fashion_MNIST", &env),
            Some(tmp.path().join("cache/seqnet/fashion-mnist"))
        );
        env.set("XDG_CACHE_HOME", Path::new("relative/cache"));
        assert_eq!(
            cache_dir_in("mnist", &env),
            Some(tmp.path().join("home/.cache/seqnet/mnist"))
        );
        env.unset("XDG_CACHE_HOME");
        env.unset("HOME");
        assert_eq!(cache_dir_in("mnist", &env), None);
    }

    #[test]
    fn data_named_unknown_names_are_errors() {
        let err = resolve_named("cifar10", None).unwrap_err().to_string();
        assert!(err.contains("cifar10: not a dataset name"), "{err}");
        assert!(err.contains("mnist, fashion-mnist, kmnist"), "{err}");
        assert!(search_path("KMNIST", None).expect("known").len() >= 3);
    }
}
