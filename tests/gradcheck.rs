//! Finite-difference gradient checks for every layer and for small networks.
//!
//! Loss L = Σ forward(x) · g with a fixed random g (a uniform upstream gradient would let
//! a backward that ignores `dout` pass). Numerical gradients are central differences
//! (L(v + ε) − L(v − ε)) / 2ε with L accumulated in f64. The layers compute in f32, so ε
//! is 1e-2: large enough that f32 rounding in L stays far below the tolerance, small
//! enough that the O(ε²) truncation error does too. Inputs are chosen so no perturbation
//! crosses a kink: max-pool inputs are distinct by at least 0.05 (no ties), ReLU inputs
//! are at least 0.05 away from 0.

use seqnet::layers::Layer;
use seqnet::rng::Rng;
use seqnet::{
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, ConvPadding,
    Dropout, Dropout2d, ELU, Flatten, GELU, Identity, LazyLinear, LeakyReLU, Linear, LogSoftmax,
    MaxPool2d, Mode, ReLU, Sequential, SiLU, Sigmoid, Softmax, Tanh, Tensor,
};

const EPS: f32 = 1e-2;

/// Distinct values, each at least 0.05 from any other and from 0, in random order.
fn spaced_input(rng: &mut Rng, len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..len)
        .map(|i| {
            let k = i as f32 + 1.0;
            if i % 2 == 0 { 0.05 * k } else { -0.05 * k }
        })
        .collect();
    rng.shuffle(&mut v);
    let scale = 2.0 / (0.05 * len as f32);
    v.iter().map(|x| x * scale.min(1.0)).collect()
}

fn loss(net: &mut Sequential, x: &Tensor, g: &[f32], dropout_state: &[Option<[u64; 4]>]) -> f64 {
    restore_dropout(net, dropout_state);
    let out = net.forward(x, Mode::Train).expect("forward");
    out.data()
        .iter()
        .zip(g)
        .map(|(&o, &gi)| o as f64 * gi as f64)
        .sum()
}

fn dropout_state(net: &mut Sequential) -> Vec<Option<[u64; 4]>> {
    net.layers_mut()
        .iter_mut()
        .map(|l| l.rng_mut().map(|r| r.state()))
        .collect()
}

/// Dropout draws a new mask each forward; every evaluation of L must see the same one.
fn restore_dropout(net: &mut Sequential, state: &[Option<[u64; 4]>]) {
    for (l, s) in net.layers_mut().iter_mut().zip(state) {
        if let (Some(r), Some(s)) = (l.rng_mut(), s) {
            *r = Rng::from_state(*s);
        }
    }
}

fn assert_close(what: &str, index: usize, numeric: f64, analytic: f32) {
    let tol = 2e-3 * (1.0 + numeric.abs());
    assert!(
        (numeric - analytic as f64).abs() <= tol,
        "{what}[{index}]: finite difference {numeric:.6}, backward {analytic:.6}"
    );
}

/// Checks dinp and every parameter gradient of `net` at a spaced random input.
fn gradcheck(case: &str, mut net: Sequential, batch: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut shape = vec![batch];
    shape.extend_from_slice(net.input_shape());
    let len: usize = shape.iter().product();
    let x = Tensor::from_vec(&shape, spaced_input(&mut rng, len)).unwrap();
    let out_len = batch * net.output_shape().iter().product::<usize>();
    let g: Vec<f32> = (0..out_len).map(|_| rng.symmetric(1.0)).collect();
    let state = dropout_state(&mut net);

    // Analytic gradients.
    restore_dropout(&mut net, &state);
    net.zero_grad();
    let out = net.forward(&x, Mode::Train).unwrap();
    let dout = Tensor::from_vec(out.shape(), g.clone()).unwrap();
    let dinp = net.backward(&dout).unwrap();
    let grads: Vec<(String, Vec<f32>)> = net
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.grad().expect("backward ran").data().to_vec()))
        .collect();

    // dinp
    for i in 0..len {
        let mut xp = x.clone();
        xp.data_mut()[i] += EPS;
        let mut xm = x.clone();
        xm.data_mut()[i] -= EPS;
        let num = (loss(&mut net, &xp, &g, &state) - loss(&mut net, &xm, &g, &state))
            / (2.0 * EPS as f64);
        assert_close(&format!("{case}: dinp"), i, num, dinp.data()[i]);
    }
    // dweight, dbias
    for (name, grad) in grads {
        for (i, &analytic) in grad.iter().enumerate() {
            let bump = |delta: f32, net: &mut Sequential| {
                for (n, p) in net.named_params_mut() {
                    if n == name {
                        p.value.data_mut()[i] += delta;
                    }
                }
            };
            bump(EPS, &mut net);
            let lp = loss(&mut net, &x, &g, &state);
            bump(-2.0 * EPS, &mut net);
            let lm = loss(&mut net, &x, &g, &state);
            bump(EPS, &mut net);
            let num = (lp - lm) / (2.0 * EPS as f64);
            assert_close(&format!("{case}: d{name}"), i, num, analytic);
        }
    }
}

fn one(input: &[usize], layer: impl Layer + 'static) -> Sequential {
    Sequential::new(input.to_vec()).seed(3).add(layer).unwrap()
}

#[test]
fn conv2d_gradients() {
    gradcheck("Conv2d plain", one(&[2, 6, 5], Conv2d::new(2, 3, 3)), 2, 1);
    // One input channel, stride 1, no padding: the direct kernels (output width 17 =
    // a 16-column block and a tail; 5 filters leave short register blocks).
    gradcheck(
        "Conv2d one input channel (direct)",
        one(&[1, 7, 21], Conv2d::new(1, 5, (3, 5))),
        2,
        6,
    );
    gradcheck(
        "Conv2d stride 2 padding 1, H≠W, tuple kernel",
        one(&[2, 7, 5], Conv2d::new(2, 3, (3, 2)).stride(2).padding(1)),
        2,
        2,
    );
    gradcheck(
        "Conv2d tuple stride/padding, no bias",
        one(
            &[1, 6, 7],
            Conv2d::new(1, 2, 3)
                .stride((1, 2))
                .padding((0, 1))
                .bias(false),
        ),
        3,
        3,
    );
    gradcheck(
        "Conv2d padding='same', even kernel (extra row and column after)",
        one(
            &[2, 6, 5],
            Conv2d::new(2, 3, (4, 2)).padding(ConvPadding::Same),
        ),
        2,
        7,
    );
    gradcheck(
        "Conv2d dilation, stride, padding",
        one(
            &[2, 9, 8],
            Conv2d::new(2, 3, 3).stride(2).padding(1).dilation((2, 3)),
        ),
        2,
        8,
    );
    gradcheck(
        "Conv2d groups, 'same' with dilation, no bias",
        one(
            &[4, 6, 7],
            Conv2d::new(4, 6, (3, 2))
                .padding(ConvPadding::Same)
                .dilation(2)
                .groups(2)
                .bias(false),
        ),
        2,
        9,
    );
    gradcheck(
        "Conv2d depthwise, 'valid'",
        one(
            &[3, 6, 5],
            Conv2d::new(3, 6, 3).padding(ConvPadding::Valid).groups(3),
        ),
        2,
        10,
    );
}

#[test]
fn linear_gradients() {
    gradcheck("Linear", one(&[7], Linear::new(7, 5)), 3, 4);
    gradcheck(
        "Linear no bias",
        one(&[4], Linear::new(4, 3).bias(false)),
        2,
        5,
    );
}

#[test]
fn pooling_gradients() {
    gradcheck("MaxPool2d 2", one(&[2, 5, 7], MaxPool2d::new(2)), 2, 6);
    gradcheck(
        "MaxPool2d 3 stride 2 padding 1 ceil",
        one(
            &[2, 7, 6],
            MaxPool2d::new(3).stride(2).padding(1).ceil_mode(true),
        ),
        2,
        7,
    );
    gradcheck("AvgPool2d 2", one(&[2, 5, 7], AvgPool2d::new(2)), 2, 8);
    gradcheck(
        "AdaptiveMaxPool2d 7x9 -> 3x4",
        one(&[2, 7, 9], AdaptiveMaxPool2d::new((3, 4))),
        2,
        26,
    );
    gradcheck(
        "AdaptiveAvgPool2d 7x9 -> 3x4",
        one(&[2, 7, 9], AdaptiveAvgPool2d::new((3, 4))),
        2,
        25,
    );
    gradcheck(
        "AvgPool2d padding 1 count_include_pad",
        one(&[1, 5, 4], AvgPool2d::new(3).stride(2).padding(1)),
        2,
        9,
    );
    gradcheck(
        "AvgPool2d padding 1 exclude pad, ceil",
        one(
            &[1, 5, 4],
            AvgPool2d::new(2)
                .padding(1)
                .count_include_pad(false)
                .ceil_mode(true),
        ),
        2,
        10,
    );
}

#[test]
fn elementwise_and_shape_gradients() {
    gradcheck("ReLU", one(&[2, 3, 5], ReLU::new()), 2, 11);
    gradcheck("Sigmoid", one(&[2, 3, 5], Sigmoid::new()), 2, 12);
    gradcheck("Tanh", one(&[2, 3, 5], Tanh::new()), 2, 13);
    gradcheck("LeakyReLU", one(&[2, 3, 5], LeakyReLU::new(0.2)), 2, 16);
    gradcheck("GELU", one(&[2, 3, 5], GELU::new()), 2, 17);
    gradcheck("GELU tanh", one(&[2, 3, 5], GELU::tanh()), 2, 18);
    gradcheck("SiLU", one(&[2, 3, 5], SiLU::new()), 2, 19);
    gradcheck("ELU", one(&[2, 3, 5], ELU::new(0.5)), 2, 20);
    gradcheck("Identity", one(&[2, 3, 5], Identity::new()), 2, 21);
    gradcheck("Flatten", one(&[2, 3, 5], Flatten::new()), 2, 14);
    gradcheck("Dropout (Train)", one(&[2, 3, 5], Dropout::new(0.3)), 2, 15);
    gradcheck(
        "Dropout2d (Train)",
        one(&[6, 3, 5], Dropout2d::new(0.4)),
        2,
        22,
    );
}

/// In training BatchNorm's output depends on every image of the batch (through μ and σ²):
/// the gradient must carry those paths, and γ's and β's.
#[test]
fn batchnorm_gradients() {
    gradcheck("BatchNorm2d", one(&[3, 4, 5], BatchNorm2d::new(3)), 3, 21);
    gradcheck("BatchNorm1d", one(&[6], BatchNorm1d::new(6)), 5, 22);
    gradcheck(
        "BatchNorm1d (N, C, L), no affine",
        one(&[4, 3], BatchNorm1d::new(4).affine(false)),
        3,
        23,
    );
    let net = Sequential::new([2, 6, 6])
        .seed(4)
        .add(Conv2d::new(2, 3, 3).bias(false))
        .and_then(|n| n.add(BatchNorm2d::new(3).momentum(None)))
        .and_then(|n| n.add(Flatten::new()))
        .and_then(|n| n.add(LazyLinear::new(5)))
        .unwrap();
    gradcheck("Conv2d → BatchNorm2d → Linear", net, 4, 24);
}

#[test]
fn softmax_gradients() {
    gradcheck("Softmax flat", one(&[6], Softmax::new(1)), 3, 16);
    gradcheck("LogSoftmax flat", one(&[6], LogSoftmax::new(1)), 3, 17);
    gradcheck(
        "Softmax over channels",
        one(&[3, 2, 4], Softmax::new(1)),
        2,
        18,
    );
    gradcheck(
        "LogSoftmax over channels",
        one(&[3, 2, 4], LogSoftmax::new(1)),
        2,
        19,
    );
}

#[test]
fn small_cnn_gradients() {
    let net = Sequential::new([1, 9, 8])
        .seed(21)
        .add(Conv2d::new(1, 3, 3).padding(1))
        .and_then(|n| n.add(Tanh::new()))
        .and_then(|n| n.add(AvgPool2d::new(2)))
        .and_then(|n| n.add(Conv2d::new(3, 2, (2, 3)).stride(2)))
        .and_then(|n| n.add(Sigmoid::new()))
        .and_then(|n| n.add(Flatten::new()))
        .and_then(|n| n.add(Dropout::new(0.25)))
        .and_then(|n| n.add(LazyLinear::new(4)))
        .and_then(|n| n.add(LogSoftmax::new(1)))
        .unwrap();
    gradcheck("small CNN", net, 2, 22);
}

#[test]
fn small_cnn_with_max_pool_gradients() {
    // Max-pool first, on the spaced input, so no perturbation can change a window's
    // winner (deeper in a network, pooled activations can come within ε of a tie).
    let net = Sequential::new([2, 8, 7])
        .seed(23)
        .add(MaxPool2d::new(2).padding(1))
        .and_then(|n| n.add(Conv2d::new(2, 3, 3).stride(2).padding(1)))
        .and_then(|n| n.add(Sigmoid::new()))
        .and_then(|n| n.add(Flatten::new()))
        .and_then(|n| n.add(LazyLinear::new(5)))
        .unwrap();
    gradcheck("small CNN with max-pool", net, 2, 24);
}

#[test]
fn a_backward_that_ignored_dout_would_be_caught() {
    // Guard for the guard: with g not all ones, scaling dout must change the gradient.
    let mut net = one(&[4], Linear::new(4, 2));
    let x = Tensor::from_vec(&[1, 4], vec![0.1, -0.2, 0.3, 0.4]).unwrap();
    net.forward(&x, Mode::Train).unwrap();
    let d1 = net
        .backward(&Tensor::from_vec(&[1, 2], vec![1.0, 1.0]).unwrap())
        .unwrap();
    net.forward(&x, Mode::Train).unwrap();
    let d2 = net
        .backward(&Tensor::from_vec(&[1, 2], vec![0.3, -0.7]).unwrap())
        .unwrap();
    assert_ne!(d1.data(), d2.data());
}

/// Label-smoothed cross-entropy (PyTorch's `CrossEntropyLoss(label_smoothing=ε)`) in f64,
/// from the definition: the target is (1 − ε)·onehot + ε/K, the loss its cross-entropy
/// with softmax(z), averaged over the rows.
fn smoothed_loss_f64(z: &[f64], labels: &[usize], k: usize, eps: f64) -> f64 {
    let rows = labels.len() as f64;
    z.chunks(k)
        .zip(labels)
        .map(|(row, &y)| {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
            row.iter()
                .enumerate()
                .map(|(j, v)| {
                    let target = eps / k as f64 + if j == y { 1.0 - eps } else { 0.0 };
                    target * (log_sum - v)
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        / rows
}

#[test]
fn label_smoothing_loss_and_gradient_match_f64_finite_differences() {
    let (n, k, eps) = (3, 7, 0.15);
    let mut rng = Rng::new(31);
    let z: Vec<f32> = (0..n * k).map(|_| rng.symmetric(3.0)).collect();
    let labels = [4, 0, 6];
    let logits = Tensor::from_vec(&[n, k], z.clone()).unwrap();
    let (loss, grad) = seqnet::loss::cross_entropy_smoothed(&logits, &labels, eps as f32);

    let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    let want = smoothed_loss_f64(&z64, &labels, k, eps);
    assert!(
        (loss as f64 - want).abs() <= 1e-6 * want,
        "loss {loss}, f64 {want}"
    );
    // Central differences of the f64 loss, step 1e-5 (truncation ~1e-10).
    let h = 1e-5;
    for i in 0..n * k {
        let (mut up, mut down) = (z64.clone(), z64.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (smoothed_loss_f64(&up, &labels, k, eps)
            - smoothed_loss_f64(&down, &labels, k, eps))
            / (2.0 * h);
        assert!(
            (numeric - grad.data()[i] as f64).abs() <= 1e-6,
            "dlogits[{i}]: finite difference {numeric:.8}, analytic {:.8}",
            grad.data()[i]
        );
    }

    // Through a layer: dL/dweight and dL/dbias of Linear(5, 7) under the smoothed loss,
    // against central differences of seqnet's own loss accumulated in f64.
    let mut net = one(&[5], Linear::new(5, 7));
    let x = Tensor::from_vec(&[n, 5], (0..n * 5).map(|_| rng.symmetric(1.0)).collect()).unwrap();
    let loss_of = |net: &mut Sequential| {
        let out = net.forward(&x, Mode::Train).unwrap();
        let (total, _) = seqnet::loss::cross_entropy_smoothed_part(&out, &labels, n, eps as f32);
        total / n as f64
    };
    net.zero_grad();
    let out = net.forward(&x, Mode::Train).unwrap();
    let (_, dlogits) = seqnet::loss::cross_entropy_smoothed(&out, &labels, eps as f32);
    net.backward_params(&dlogits).unwrap();
    let grads: Vec<(String, Vec<f32>)> = net
        .named_params()
        .into_iter()
        .map(|(name, p)| (name, p.grad().unwrap().data().to_vec()))
        .collect();
    for (name, grad) in grads {
        for (i, &analytic) in grad.iter().enumerate() {
            let bump = |delta: f32, net: &mut Sequential| {
                for (n2, p) in net.named_params_mut() {
                    if n2 == name {
                        p.value.data_mut()[i] += delta;
                    }
                }
            };
            bump(EPS, &mut net);
            let lp = loss_of(&mut net);
            bump(-2.0 * EPS, &mut net);
            let lm = loss_of(&mut net);
            bump(EPS, &mut net);
            assert_close(
                &format!("smoothed loss: d{name}"),
                i,
                (lp - lm) / (2.0 * EPS as f64),
                analytic,
            );
        }
    }
}
