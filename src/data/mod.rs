//! Datasets: IDX files, the embedded MNIST sample, named datasets and splits.
