//! The same seed gives bitwise-identical weights whatever the thread count: every sum
//! over a batch is taken in image order, and every matrix product's sums in a fixed
//! order, however the work is split between threads.

use seqnet::data::embedded;
use seqnet::io::model::Normalize;
use seqnet::optim::{Optimizer, OptimizerKind};
use seqnet::train::{Silent, TrainConfig, TrainState};

const BOOK_RELU: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Conv2d(20, 40, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(640, 100) -> ReLU() -> Linear(100, 10)";

/// Trains `spec` on `images` embedded-sample images at `batch` per step with `threads`
/// workers; returns every parameter's bits and the test-set predictions.
fn train_with(
    spec: &str,
    threads: usize,
    images: usize,
    batch: usize,
    momentum: f32,
) -> (Vec<Vec<u32>>, Vec<usize>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let (train, test) = embedded::mnist_5k().unwrap();
        let train = train.subset(0..images);
        let test = test.subset(0..100);
        let mut net = seqnet::spec::build(spec, &train.shape, 7).unwrap();
        let opt = Optimizer::new(OptimizerKind::sgd(momentum), 0.05, 0.0, 0.0);
        let mut state = TrainState::new(opt, 7);
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: batch,
            shuffle: true,
            normalize: Some(Normalize {
                mean: 0.1307,
                std: 0.3081,
            }),
            ..TrainConfig::default()
        };
        seqnet::train::train(&mut net, &mut state, &train, None, None, &cfg, &mut Silent).unwrap();
        let weights = net
            .named_params()
            .iter()
            .map(|(_, p)| p.value.data().iter().map(|v| v.to_bits()).collect())
            .collect();
        let preds = seqnet::train::predict_all(&mut net, &test, cfg.normalize).unwrap();
        (weights, preds)
    })
}

#[test]
fn book_relu_weights_are_bitwise_equal_for_1_2_and_3_threads() {
    // Mini-batches of 10 (the book's) and of 64, plus a ragged last batch (300 = 4·64 + 44).
    for batch in [10, 64] {
        let (w1, p1) = train_with(BOOK_RELU, 1, 300, batch, 0.0);
        for threads in [2, 3] {
            let (w, p) = train_with(BOOK_RELU, threads, 300, batch, 0.0);
            assert_eq!(w.len(), w1.len());
            for (i, (a, b)) in w1.iter().zip(&w).enumerate() {
                assert!(
                    a == b,
                    "batch {batch}: parameter {i} differs between 1 and {threads} threads"
                );
            }
            assert_eq!(p1, p, "batch {batch}: predictions differ");
        }
    }
}

#[test]
fn padded_strided_network_is_bitwise_equal_for_1_and_2_threads() {
    let spec = "Conv2d(1, 6, 3, stride=2, padding=1) -> Tanh() -> AvgPool2d(2) -> \
                Conv2d(6, 5, (3, 2)) -> Sigmoid() -> Flatten() -> Dropout(0.3) -> \
                LazyLinear(17) -> ReLU() -> Linear(17, 10)";
    let (w1, p1) = train_with(spec, 1, 200, 17, 0.9);
    let (w2, p2) = train_with(spec, 2, 200, 17, 0.9);
    assert!(w1 == w2, "weights differ between 1 and 2 threads");
    assert_eq!(p1, p2);
}
