//! Each layer's forward and backward on the sizes of the book's network (book-relu):
//! `cargo bench --bench kernels` (add `-- conv2` to run a subset).
//!
//! Conv2d(1, 20, 5) on 1×28×28, Conv2d(20, 40, 5) on 20×12×12, ReLU and MaxPool2d(2)
//! on 20×24×24, Linear(640, 100); mini-batches of 10 and 64, on the global rayon pool
//! (all cores). Also the matrix multiplies behind the second convolution, and the direct
//! kernels behind the first.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seqnet::kernels::gemm::{MatRef, gemm};
use seqnet::rng::Rng;
use seqnet::{Conv2d, Layer, Linear, MaxPool2d, Pass, ReLU, Sequential, Tensor};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let len = shape.iter().product();
    Tensor::from_vec(shape, (0..len).map(|_| rng.symmetric(1.0)).collect()).unwrap()
}

/// Benchmarks `layer` built for one image of shape `input`, at batch `n`.
fn layer_bench(c: &mut Criterion, name: &str, input: &[usize], layer: impl Layer + 'static) {
    let mut net = Sequential::new(input.to_vec()).add(layer).unwrap();
    for n in [10usize, 64] {
        let mut shape = vec![n];
        shape.extend_from_slice(input);
        let x = random(&shape, 1);
        let out = net.layers_mut()[0].forward(&x, Pass::Train);
        let dout = random(out.shape(), 2);
        let mut group = c.benchmark_group(format!("{name}/batch{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(30);
        let layer = &mut net.layers_mut()[0];
        let mut buf = Tensor::default();
        group.bench_function("forward", |b| {
            b.iter(|| layer.forward_into(black_box(&x), &mut buf, Pass::Train))
        });
        layer.forward_into(&x, &mut buf, Pass::Train);
        let mut dinp = Tensor::default();
        // Each iteration is a training step's backward: zero_grad first, so Linear's
        // weight gradient is overwritten (beta = 0) as in training, not added to.
        group.bench_function("backward", |b| {
            b.iter(|| {
                layer
                    .params_mut()
                    .into_iter()
                    .for_each(|(_, p)| p.zero_grad());
                layer.backward_into(black_box(&dout), Some(&mut dinp))
            })
        });
        group.bench_function("backward_params", |b| {
            b.iter(|| {
                layer
                    .params_mut()
                    .into_iter()
                    .for_each(|(_, p)| p.zero_grad());
                layer.backward_into(black_box(&dout), None)
            })
        });
        group.finish();
    }
}

fn layers(c: &mut Criterion) {
    layer_bench(c, "conv1", &[1, 28, 28], Conv2d::new(1, 20, 5));
    layer_bench(c, "conv2", &[20, 12, 12], Conv2d::new(20, 40, 5));
    layer_bench(c, "relu", &[20, 24, 24], ReLU::new());
    layer_bench(c, "maxpool", &[20, 24, 24], MaxPool2d::new(2));
    layer_bench(c, "linear", &[640], Linear::new(640, 100));
}

fn gemms(c: &mut Criterion) {
    // The three products of Conv2d(20, 40, 5) for one image: forward, dweight, dinput.
    let mut group = c.benchmark_group("gemm");
    group.sample_size(30);
    for &(name, m, k, n, ta, tb) in &[
        ("conv2_forward_40x500x64", 40, 500, 64, false, false),
        ("conv2_dweight_40x64x500", 40, 64, 500, false, true),
        ("conv2_dinput_500x40x64", 500, 40, 64, true, false),
    ] {
        let a_data = random(&[m * k], 3).into_data();
        let b_data = random(&[k * n], 4).into_data();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(name, |bch| {
            let a = if ta {
                MatRef::new(&a_data, k, m).t()
            } else {
                MatRef::new(&a_data, m, k)
            };
            let b = if tb {
                MatRef::new(&b_data, n, k).t()
            } else {
                MatRef::new(&b_data, k, n)
            };
            bch.iter(|| gemm(1.0, black_box(a), black_box(b), 0.0, &mut out))
        });
    }
    group.finish();
}

fn direct_conv(c: &mut Criterion) {
    // Conv2d(1, 20, 5) on one 28×28 image, direct: forward and weight gradient.
    use seqnet::kernels::{direct_conv, im2col::ConvGeom};
    let g = ConvGeom {
        c: 1,
        h: 28,
        w: 28,
        kh: 5,
        kw: 5,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        pb: 0,
        pr: 0,
        dh: 1,
        dw: 1,
        oh: 24,
        ow: 24,
    };
    let (inp, weight, bias) = (
        random(&[784], 5).into_data(),
        random(&[500], 6).into_data(),
        random(&[20], 7).into_data(),
    );
    let dout = random(&[20 * 576], 8).into_data();
    let (mut out, mut dw) = (vec![0.0f32; 20 * 576], vec![0.0f32; 500]);
    let mut group = c.benchmark_group("direct_conv_1x20x5_28x28");
    group.sample_size(30);
    group.throughput(Throughput::Elements(2 * 20 * 25 * 576));
    group.bench_function("forward", |b| {
        b.iter(|| direct_conv::forward(&g, black_box(&weight), Some(&bias), &inp, &mut out))
    });
    group.bench_function("weight_grad", |b| {
        b.iter(|| direct_conv::weight_grad(&g, black_box(&inp), &dout, &mut dw))
    });
    group.finish();
}

criterion_group!(benches, layers, gemms, direct_conv);
criterion_main!(benches);
