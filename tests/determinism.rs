//! The same seed gives bitwise-identical weights whatever the thread count: every sum
//! over a batch is taken in image order, and every matrix product's sums in a fixed
//! order, however the work is split between threads.

use seqnet::data::augment::Augment;
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
    augment: Option<Augment>,
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
            normalize: Some(Normalize::new(0.1307, 0.3081)),
            augment,
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
        let (w1, p1) = train_with(BOOK_RELU, 1, 300, batch, 0.0, None);
        for threads in [2, 3] {
            let (w, p) = train_with(BOOK_RELU, threads, 300, batch, 0.0, None);
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
    let (w1, p1) = train_with(spec, 1, 200, 17, 0.9, None);
    let (w2, p2) = train_with(spec, 2, 200, 17, 0.9, None);
    assert!(w1 == w2, "weights differ between 1 and 2 threads");
    assert_eq!(p1, p2);
}

/// With `--augment`'s digit default, every image is transformed afresh, in parallel,
/// yet the weights stay bitwise the same for 1, 2 and 3 threads (the draws of image i
/// in epoch e depend on the seed, e and i only). And the augmentation did something.
#[test]
fn augmented_training_is_bitwise_equal_for_1_2_and_3_threads() {
    let aug = Augment::default_for([1, 28, 28]).unwrap();
    let (w1, p1) = train_with(BOOK_RELU, 1, 150, 20, 0.9, Some(aug));
    for threads in [2, 3] {
        let (w, p) = train_with(BOOK_RELU, threads, 150, 20, 0.9, Some(aug));
        assert!(
            w1 == w,
            "augmented weights differ between 1 and {threads} threads"
        );
        assert_eq!(p1, p);
    }
    let (plain, _) = train_with(BOOK_RELU, 1, 150, 20, 0.9, None);
    assert!(plain != w1, "--augment changed nothing");
}

/// The same for RGB images, cropped with padding and flipped (synthetic [3, 12, 12]
/// images: the test needs no CIFAR-10).
#[test]
fn crop_and_flip_training_is_bitwise_equal_for_1_and_2_threads() {
    let run = |threads: usize, augment: Option<Augment>| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let n = 96;
            let mut rng = seqnet::rng::Rng::new(3);
            let pixels: Vec<u8> = (0..n * 3 * 12 * 12).map(|_| rng.below(256) as u8).collect();
            let labels: Vec<usize> = (0..n).map(|i| i % 10).collect();
            let train =
                seqnet::data::Dataset::new_u8("rgb", pixels, labels, [3, 12, 12], 10).unwrap();
            let spec = "Conv2d(3, 8, 3, padding=1) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
                        LazyLinear(10)";
            let mut net = seqnet::spec::build(spec, &train.shape, 5).unwrap();
            let opt = Optimizer::new(OptimizerKind::sgd(0.9), 0.05, 0.0, 0.0);
            let mut state = TrainState::new(opt, 5);
            let cfg = TrainConfig {
                epochs: 2,
                batch_size: 24,
                shuffle: true,
                normalize: None,
                augment,
                ..TrainConfig::default()
            };
            seqnet::train::train(&mut net, &mut state, &train, None, None, &cfg, &mut Silent)
                .unwrap();
            net.named_params()
                .iter()
                .map(|(_, p)| p.value.data().iter().map(|v| v.to_bits()).collect())
                .collect::<Vec<Vec<u32>>>()
        })
    };
    let aug = Augment::default_for([3, 12, 12]).unwrap();
    assert!(aug.crop.is_some() && aug.hflip.is_some());
    let one = run(1, Some(aug));
    assert!(
        one == run(2, Some(aug)),
        "weights differ between 1 and 2 threads"
    );
    assert!(one != run(1, None), "--augment changed nothing");
}

/// fast-mnist (BatchNorm after every convolution) at a mini-batch larger than the
/// training loop's parts, with the digit augmentation: each BatchNorm gathers its
/// statistics image by image and adds them in image order, so 1, 2 and 3 threads give
/// the same weights, and the same running statistics (the test-set predictions use them).
#[test]
fn batchnorm_network_is_bitwise_equal_for_1_2_and_3_threads() {
    let spec = seqnet::presets::get("fast-mnist").unwrap().spec;
    let aug = Augment::default_for([1, 28, 28]).unwrap();
    let (w1, p1) = train_with(spec, 1, 120, 40, 0.9, Some(aug));
    for threads in [2, 3] {
        let (w, p) = train_with(spec, threads, 120, 40, 0.9, Some(aug));
        assert!(
            w1 == w,
            "fast-mnist weights differ between 1 and {threads} threads"
        );
        assert_eq!(p1, p, "predictions differ between 1 and {threads} threads");
    }
}
