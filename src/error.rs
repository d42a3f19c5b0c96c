//! One typed error for the library. Every message names what was wrong (the layer, the
//! file, the argument) with its numbers, and says what to do about it. The binary adds
//! context ("reading model.safetensors") and prints the chain.

use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer does not fit the shape it receives (found when the network is built).
    #[error("layer {index} {repr}: {message}")]
    Shape {
        index: usize,
        repr: String,
        message: String,
    },

    /// A layer's own arguments are invalid (zero sizes, stride 0, p outside [0, 1), ...).
    #[error("{layer}: {message}")]
    Config { layer: String, message: String },

    /// The text form of a network could not be parsed.
    #[error("{message}\n{excerpt}")]
    Spec { message: String, excerpt: String },

    /// A model file is unreadable, or its tensors do not fit its network.
    #[error("{path}: {message}", path = path.display())]
    Model { path: PathBuf, message: String },

    /// A dataset file is missing, corrupt or inconsistent.
    #[error("{path}: {message}", path = path.display())]
    Data { path: PathBuf, message: String },

    /// An input tensor or image is not what the network takes.
    #[error("{0}")]
    Input(String),

    /// Training produced a non-finite loss or weight.
    #[error("{0}")]
    Diverged(String),

    /// Training was stopped by a signal after saving a checkpoint.
    #[error("{0}")]
    Interrupted(String),

    /// An operating-system error, with the file it concerns.
    // The OS error is part of the message, not a `source`: a source would be printed a
    // second time by the binary's error chain.
    #[error("{path}: {err}", path = path.display())]
    Io { path: PathBuf, err: std::io::Error },
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err,
        }
    }
}
