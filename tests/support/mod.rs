//! What the integration tests share. Each tests/*.rs file is its own crate, includes
//! this folder with `mod support;` and uses only part of it.
//!
//! - [`run`]: running the `seqnet` binary in a folder of the test's own, in a clean
//!   environment and under a watchdog, and reading its result;
//! - [`idx`]: the bytes of IDX dataset files;
//! - [`images`]: CIFAR-10's binary records, and the PNG files seqnet draws read back.
//!
//! The local HTTP server of the download tests is shared with the unit tests of
//! `src/data/fetch.rs`, so it lives in `src/data/http_test_server.rs`.
#![allow(dead_code)]

pub mod idx;
pub mod images;
pub mod run;
