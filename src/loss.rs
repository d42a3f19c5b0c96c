//! Mean softmax cross-entropy on raw logits. PyTorch: `nn.CrossEntropyLoss()` (reduction
//! 'mean').
//!
//! loss = (1/N) Σ_n [ln Σ_k e^(z_nk − m_n) + m_n − z_n,y_n], m_n = max_k z_nk: the
//! log-sum-exp is taken after subtracting the max, so large logits cannot overflow.
//! Its gradient is the classic dL/dz_nk = (softmax(z_n)_k − [k = y_n]) / N.
//!
//! With label smoothing ε (PyTorch: `nn.CrossEntropyLoss(label_smoothing=ε)`) the target
//! is (1 − ε)·onehot(y) + ε/K over the K classes:
//!   loss_n = (1 − ε)·(−log p_n,y) + (ε/K)·Σ_k (−log p_n,k)
//!   dL/dz_nk = (p_nk − (1 − ε)·[k = y_n] − ε/K) / N

use crate::layers::OutputKind;
use crate::tensor::Tensor;

/// The mean cross-entropy of `logits` (`[N, K]`) against `labels`, and dL/dlogits.
/// With `log_probs`, the logits are already log-probabilities (a network ending in
/// LogSoftmax): the loss is then PyTorch's `NLLLoss`, which gives the same numbers.
pub fn cross_entropy(logits: &Tensor, labels: &[usize]) -> (f32, Tensor) {
    let n = logits.batch();
    let (total, grad) = cross_entropy_part(logits, labels, n);
    ((total / n.max(1) as f64) as f32, grad)
}

/// The cross-entropy of a part of a mini-batch of `batch_len` images: the sum of the
/// part's per-image losses, and its share of dL/dlogits of the whole batch's mean loss
/// (each row scaled by 1/`batch_len`, not by 1/(rows in the part)). The training loop
/// runs a large mini-batch in parts so that each part's activations stay in cache.
pub fn cross_entropy_part(logits: &Tensor, labels: &[usize], batch_len: usize) -> (f64, Tensor) {
    cross_entropy_smoothed_part(logits, labels, batch_len, 0.0)
}

/// The mean cross-entropy of `logits` against `labels` smoothed by `label_smoothing`
/// (ε in [0, 1]), and dL/dlogits: PyTorch's `F.cross_entropy(logits, labels,
/// label_smoothing=ε)`. ε = 0 is [`cross_entropy`].
pub fn cross_entropy_smoothed(
    logits: &Tensor,
    labels: &[usize],
    label_smoothing: f32,
) -> (f32, Tensor) {
    let n = logits.batch();
    let (total, grad) = cross_entropy_smoothed_part(logits, labels, n, label_smoothing);
    ((total / n.max(1) as f64) as f32, grad)
}

/// [`cross_entropy_part`] with label smoothing ε: the part's summed per-image losses and
/// its share of the whole batch's dL/dlogits.
pub fn cross_entropy_smoothed_part(
    logits: &Tensor,
    labels: &[usize],
    batch_len: usize,
    label_smoothing: f32,
) -> (f64, Tensor) {
    if label_smoothing != 0.0 {
        return smoothed_part(logits, labels, batch_len, label_smoothing);
    }
    let n = logits.batch();
    let k = logits.len() / n.max(1);
    debug_assert_eq!(labels.len(), n);
    let mut grad = Tensor::zeros(logits.shape());
    let mut total = 0.0f64;
    let scale = 1.0 / batch_len.max(1) as f32;
    for (i, (&y, g)) in labels.iter().zip(grad.data_mut().chunks_mut(k)).enumerate() {
        let z = logits.item(i);
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = z.iter().map(|&v| (v - m).exp()).sum();
        let log_sum = sum.ln();
        total += (log_sum + m - z[y]) as f64;
        for (j, (gj, &zj)) in g.iter_mut().zip(z).enumerate() {
            let p = (zj - m).exp() / sum;
            *gj = (p - if j == y { 1.0 } else { 0.0 }) * scale;
        }
    }
    (total, grad)
}

/// The smoothed loss; its own function so that ε = 0 keeps the plain loss's arithmetic
/// (and a run's weights) exactly as they were.
fn smoothed_part(logits: &Tensor, labels: &[usize], batch_len: usize, eps: f32) -> (f64, Tensor) {
    let n = logits.batch();
    let k = logits.len() / n.max(1);
    debug_assert_eq!(labels.len(), n);
    let mut grad = Tensor::zeros(logits.shape());
    let mut total = 0.0f64;
    let scale = 1.0 / batch_len.max(1) as f32;
    let (keep, spread) = (1.0 - eps, eps / k.max(1) as f32);
    for (i, (&y, g)) in labels.iter().zip(grad.data_mut().chunks_mut(k)).enumerate() {
        let z = logits.item(i);
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = z.iter().map(|&v| (v - m).exp()).sum();
        let log_sum = sum.ln();
        // −log p_k = log_sum + m − z_k, summed over the classes in f64.
        let nll_all: f64 = z.iter().map(|&zk| (log_sum + m - zk) as f64).sum();
        let nll_y = (log_sum + m - z[y]) as f64;
        total += f64::from(keep) * nll_y + f64::from(spread) * nll_all;
        for (j, (gj, &zj)) in g.iter_mut().zip(z).enumerate() {
            let p = (zj - m).exp() / sum;
            let target = if j == y { keep + spread } else { spread };
            *gj = (p - target) * scale;
        }
    }
    (total, grad)
}

/// Class probabilities from a network's output ([`crate::Sequential::output_kind`]):
/// softmax of logits, exp of log-probabilities (LogSoftmax), or the output itself after
/// Softmax.
pub fn probabilities(out: &Tensor, kind: OutputKind) -> Tensor {
    let n = out.batch();
    let k = out.len() / n.max(1);
    let mut probs = out.clone();
    for row in probs.data_mut().chunks_mut(k.max(1)) {
        match kind {
            OutputKind::Probabilities => {}
            OutputKind::LogProbabilities => row.iter_mut().for_each(|v| *v = v.exp()),
            OutputKind::Logits => {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = (*v - m).exp();
                    sum += *v;
                }
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
    }
    probs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_hand_computation_and_is_stable() {
        // torch.nn.functional.cross_entropy(torch.tensor([[1., 2., 3.], [1000., 0., -1000.]]),
        //                                   torch.tensor([2, 1])) = 250.2039...
        let logits = Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 1000.0, 0.0, -1000.0]).unwrap();
        let (loss, grad) = cross_entropy(&logits, &[2, 1]);
        let first = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
        let expected = (first + 1000.0) / 2.0;
        assert!(
            (loss as f64 - expected).abs() < 1e-3,
            "{loss} vs {expected}"
        );
        assert!(loss.is_finite());
        // Gradient rows sum to zero; the true class gets p − 1.
        for row in grad.data().chunks(3) {
            assert!(row.iter().sum::<f32>().abs() < 1e-6);
        }
        assert!((grad.data()[4] - (-0.5)).abs() < 1e-6);
    }

    /// ε/K of the target on every class, 1 − ε + ε/K on the true one; the loss is
    /// PyTorch's: F.cross_entropy(torch.tensor([[1., 2., 3.], [0.5, -1., 4.]]),
    /// torch.tensor([2, 0]), label_smoothing=0.2) = 2.00527109...
    #[test]
    fn label_smoothing_matches_torch_and_its_gradient_rows_sum_to_zero() {
        let logits = Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 0.5, -1.0, 4.0]).unwrap();
        let (loss, grad) = cross_entropy_smoothed(&logits, &[2, 0], 0.2);
        assert!((loss - 2.005_271).abs() < 1e-6, "{loss}");
        // By hand in f64: the per-row formula of the module doc.
        let row = |z: [f64; 3], y: usize| {
            let ls = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            0.8 * (ls - z[y]) + 0.2 / 3.0 * z.iter().map(|v| ls - v).sum::<f64>()
        };
        let want = (row([1.0, 2.0, 3.0], 2) + row([0.5, -1.0, 4.0], 0)) / 2.0;
        assert!((loss as f64 - want).abs() < 1e-6, "{loss} vs {want}");
        for r in grad.data().chunks(3) {
            assert!(r.iter().sum::<f32>().abs() < 1e-6);
        }
        // ε = 0 is the plain loss, bit for bit.
        let (plain, g0) = cross_entropy(&logits, &[2, 0]);
        let (zero, g1) = cross_entropy_smoothed(&logits, &[2, 0], 0.0);
        assert_eq!((plain.to_bits(), g0.data()), (zero.to_bits(), g1.data()));
    }
}
