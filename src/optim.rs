//! Optimisers, step for step as PyTorch's, so the same gradients give the same weights.
//!
//! SGD (`torch.optim.SGD`, dampening 0, no Nesterov):
//!   g = grad + weight_decay·p;  buf = g (first step) or momentum·buf + g;  p −= lr·buf
//! The book's L2 (network3.py) adds λ/(mini-batches per epoch)·p to the gradient of
//! weights only (not biases) before that.
//! Adam (`torch.optim.Adam`, defaults β = (0.9, 0.999), ε = 1e-8):
//!   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//!   p −= (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)

use crate::sequential::Sequential;

/// `torch.optim.SGD(params, lr)`: [`Sgd::new`] gives plain SGD, to be refined with
/// [`Optimizer::momentum`] and [`Optimizer::weight_decay`]:
/// `Sgd::new(0.05).momentum(0.9)`.
pub struct Sgd;

impl Sgd {
    /// Plain SGD at learning rate `lr` (no momentum, no weight decay).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(lr: f32) -> Optimizer {
        Optimizer::new(OptimizerKind::Sgd { momentum: 0.0 }, lr, 0.0, 0.0)
    }
}

/// `torch.optim.Adam(params, lr)` with PyTorch's defaults (β = (0.9, 0.999),
/// ε = 1e-8): `Adam::new(1e-3)`, refined with [`Optimizer::weight_decay`].
pub struct Adam;

impl Adam {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(lr: f32) -> Optimizer {
        Optimizer::adam(lr)
    }
}

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd { momentum: f32 },
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

/// An optimiser with its per-parameter state (momentum buffers, Adam moments).
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// PyTorch's `weight_decay`, on every parameter.
    pub weight_decay: f32,
    /// The book's decay on weights only, already divided by the mini-batches per epoch.
    pub weight_only_decay: f32,
    /// Steps taken so far (Adam's t).
    pub step: u64,
    /// One buffer per parameter: momentum (SGD) or first moment (Adam).
    pub m: Vec<Vec<f32>>,
    /// Adam's second moment.
    pub v: Vec<Vec<f32>>,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, lr: f32, weight_decay: f32, weight_only_decay: f32) -> Self {
        Optimizer {
            kind,
            lr,
            weight_decay,
            weight_only_decay,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// PyTorch's `torch.optim.Adam(params, lr)` defaults.
    pub fn adam(lr: f32) -> Self {
        Optimizer::new(
            OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
            0.0,
            0.0,
        )
    }

    /// SGD's momentum (PyTorch's `momentum=`, dampening 0).
    ///
    /// # Panics
    /// On an Adam optimiser, whose momentum is its β1: a mistake in the code that
    /// builds it, so it is not an error to handle.
    pub fn momentum(mut self, momentum: f32) -> Self {
        match &mut self.kind {
            OptimizerKind::Sgd { momentum: m } => *m = momentum,
            OptimizerKind::Adam { .. } => {
                panic!("momentum is SGD's; Adam's momentum is β1 (OptimizerKind::Adam)")
            }
        }
        self
    }

    /// PyTorch's `weight_decay=`: an L2 penalty on every parameter, added to its
    /// gradient as `weight_decay · p`.
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// One update of every parameter that has a gradient, from that gradient.
    pub fn step(&mut self, net: &mut Sequential) {
        let mut params = net.named_params_mut();
        if self.m.len() != params.len() {
            self.m = params.iter().map(|_| Vec::new()).collect();
            self.v = params.iter().map(|_| Vec::new()).collect();
        }
        self.step += 1;
        let t = self.step as i32;
        for (i, (name, p)) in params.iter_mut().enumerate() {
            let decay = self.weight_decay
                + if name.ends_with("weight") {
                    self.weight_only_decay
                } else {
                    0.0
                };
            // No backward since zero_grad: PyTorch skips a parameter whose grad is None
            // (no decay, no momentum), and so does this.
            let (value, Some(grad)) = p.value_and_grad() else {
                continue;
            };
            let (value, grad) = (value.data_mut(), grad.data());
            let first = self.m[i].is_empty();
            if first {
                self.m[i] = vec![0.0; value.len()];
                if matches!(self.kind, OptimizerKind::Adam { .. }) {
                    self.v[i] = vec![0.0; value.len()];
                }
            }
            match self.kind {
                OptimizerKind::Sgd { momentum } => {
                    let buf = &mut self.m[i];
                    for ((w, &g), b) in value.iter_mut().zip(grad).zip(buf.iter_mut()) {
                        let mut d = if decay != 0.0 { g + decay * *w } else { g };
                        if momentum != 0.0 {
                            *b = if first { d } else { momentum * *b + d };
                            d = *b;
                        }
                        *w -= self.lr * d;
                    }
                }
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    let bias1 = 1.0 - beta1.powi(t);
                    let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
                    let step_size = self.lr / bias1;
                    let (m, v) = (&mut self.m[i], &mut self.v[i]);
                    for (((w, &g), m), v) in value
                        .iter_mut()
                        .zip(grad)
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
                    {
                        let g = if decay != 0.0 { g + decay * *w } else { g };
                        // torch: exp_avg.lerp_(grad, 1 − β1) = m + (1 − β1)(g − m)
                        *m += (1.0 - beta1) * (g - *m);
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        let denom = v.sqrt() / bias2_sqrt + eps;
                        *w -= step_size * (*m / denom);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Linear, Tensor};

    /// The named constructors set what their names say, and nothing else.
    #[test]
    fn named_constructors_match_the_general_one() {
        let sgd = Sgd::new(0.05).momentum(0.9).weight_decay(1e-4);
        assert_eq!(sgd.kind, OptimizerKind::Sgd { momentum: 0.9 });
        assert_eq!(
            (sgd.lr, sgd.weight_decay, sgd.weight_only_decay),
            (0.05, 1e-4, 0.0)
        );
        let adam = Adam::new(1e-3);
        assert_eq!(adam.kind, Optimizer::adam(1e-3).kind);
        assert_eq!((adam.lr, adam.weight_decay), (1e-3, 0.0));
    }

    fn net_with_grad(w: f32, g: f32) -> Sequential {
        let mut net = Sequential::new([1])
            .add(Linear::new(1, 1).bias(false))
            .unwrap();
        for (_, p) in net.named_params_mut() {
            p.value = Tensor::from_vec(&[1, 1], vec![w]).unwrap();
            *p.grad_mut() = Tensor::from_vec(&[1, 1], vec![g]).unwrap();
        }
        net
    }

    fn weight(net: &Sequential) -> f32 {
        net.named_params()[0].1.value.data()[0]
    }

    #[test]
    fn sgd_momentum_and_weight_decay_follow_torch() {
        // torch: p=1, grad=0.5, lr=0.1, momentum=0.9, wd=0.01 -> d = 0.51; p = 0.949;
        // second step same grad: d = 0.5 + 0.01·0.949 = 0.50949; buf = 0.9·0.51 + 0.50949
        let mut net = net_with_grad(1.0, 0.5);
        let mut opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.9 }, 0.1, 0.01, 0.0);
        opt.step(&mut net);
        assert!((weight(&net) - 0.949).abs() < 1e-6);
        opt.step(&mut net);
        let buf = 0.9 * 0.51 + 0.50949;
        assert!(
            (weight(&net) - (0.949 - 0.1 * buf)).abs() < 1e-6,
            "{}",
            weight(&net)
        );
    }

    #[test]
    fn a_parameter_without_a_gradient_is_left_alone_as_in_torch() {
        // torch: after zero_grad() (set_to_none) and no backward, step() skips the
        // parameter: no weight decay, no momentum.
        let mut net = net_with_grad(1.0, 0.5);
        let mut opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.9 }, 0.1, 0.01, 0.0);
        opt.step(&mut net);
        let after_one = weight(&net);
        net.zero_grad();
        opt.step(&mut net);
        assert_eq!(weight(&net), after_one);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction Adam's first step is lr · sign(g) (up to ε).
        let mut net = net_with_grad(1.0, 0.25);
        let mut opt = Optimizer::adam(0.01);
        opt.step(&mut net);
        assert!((weight(&net) - 0.99).abs() < 1e-6, "{}", weight(&net));
    }

    #[test]
    fn book_l2_decays_weights_only() {
        let mut net = Sequential::new([1]).add(Linear::new(1, 1)).unwrap();
        for (_, p) in net.named_params_mut() {
            p.value.data_mut().fill(1.0);
            p.grad_mut().data_mut().fill(0.0);
        }
        let mut opt = Optimizer::new(OptimizerKind::Sgd { momentum: 0.0 }, 0.5, 0.0, 0.2);
        opt.step(&mut net);
        let p = net.named_params();
        assert!(
            (p[0].1.value.data()[0] - 0.9).abs() < 1e-7,
            "weight decayed"
        );
        assert_eq!(p[1].1.value.data()[0], 1.0, "bias untouched");
    }
}
