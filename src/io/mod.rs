//! Files in and out: safetensors models, images for predict.

pub mod image;
pub mod model;
pub mod onnx;
pub mod safetensors_file;
