//! # seqnet
//!
//! PyTorch-style `Sequential` convolutional networks in pure Rust, built for the CNNs of
//! chapter 6 of Michael Nielsen's *Neural Networks and Deep Learning*. Every layer checks
//! and explains the shape it receives when the network is built; forward and backward
//! compute what PyTorch computes.
//!
//! ```
//! use seqnet::{Conv2d, Flatten, LazyLinear, Linear, MaxPool2d, Mode, ReLU, Sequential, Tensor};
//!
//! // nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
//! //               nn.LazyLinear(100), nn.ReLU(), nn.Linear(100, 10))
//! let mut net = Sequential::new([1, 28, 28])
//!     .add(Conv2d::new(1, 20, 5))?
//!     .add(ReLU::new())?
//!     .add(MaxPool2d::new(2))?
//!     .add(Flatten::new())?
//!     .add(LazyLinear::new(100))? // in_features inferred: 20 × 12 × 12 = 2880
//!     .add(ReLU::new())?
//!     .add(Linear::new(100, 10))?;
//! assert_eq!(net.num_params(), 289_630);
//!
//! // A batch of two blank images: forward, loss, backward.
//! let x = Tensor::zeros(&[2, 1, 28, 28]);
//! let logits = net.forward(&x, Mode::Train)?;
//! assert_eq!(logits.shape(), &[2, 10]);
//! let (loss, dlogits) = seqnet::loss::cross_entropy(&logits, &[3, 7]);
//! net.backward(&dlogits)?;
//! assert!(loss > 0.0);
//!
//! // A wrong size is caught when the layer is added, with the arithmetic:
//! let err = Sequential::new([1, 28, 28])
//!     .add(Conv2d::new(1, 20, 5))?
//!     .add(MaxPool2d::new(2))?
//!     .add(Flatten::new())?
//!     .add(Linear::new(800, 100))
//!     .unwrap_err();
//! assert!(err.to_string().contains("2880 = 20 × 12 × 12"));
//! # Ok::<(), seqnet::Error>(())
//! ```
//!
//! Training is PyTorch's loop: zero the gradients, forward, loss, backward, step. Here a
//! few steps on 32 digits of the MNIST sample that ships inside the crate:
//!
//! ```
//! use seqnet::{Pass, optim::Sgd};
//!
//! let (train, _test) = seqnet::data::embedded::mnist_5k()?;
//! let (images, labels) = train.batch(&(0..32).collect::<Vec<_>>());
//! let spec = "Conv2d(1, 8, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(10)";
//! let mut net = seqnet::spec::build(spec, &[1, 28, 28], 1)?;
//! let mut sgd = Sgd::new(0.05).momentum(0.9);
//! let mut losses = Vec::new();
//! for step in 1..=5 {
//!     net.zero_grad();
//!     let logits = net.forward(&images, Pass::Train)?;
//!     let (loss, dlogits) = seqnet::loss::cross_entropy(&logits, &labels);
//!     net.backward_params(&dlogits)?; // dL/d(parameters); the images need no gradient
//!     sgd.step(&mut net);
//!     println!("step {step}: loss {loss:.4}");
//!     losses.push(loss);
//! }
//! assert!(losses[4] < losses[0]);
//! # Ok::<(), seqnet::Error>(())
//! ```

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod optim;
pub mod presets;
pub mod recipe;
pub mod rng;
pub mod run_dir;
pub mod schedule;
pub mod sequential;
pub mod shape;
pub mod spec;
pub mod summary;
pub mod tensor;
pub mod train;
#[cfg(feature = "viz")]
pub mod viz;

pub use error::{Error, Result};
pub use layers::{
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, ConvPadding,
    Dropout, Dropout2d, ELU, Flatten, GELU, Identity, Init, Layer, LazyConv2d, LazyLinear,
    LeakyReLU, Linear, LogSoftmax, MaxPool2d, Mode, Pass, ReLU, SiLU, Sigmoid, Softmax, Tanh,
};
pub use sequential::{LayerTime, Sequential};
pub use tensor::Tensor;
