//! Optimisers, step for step as PyTorch's, so the same gradients give the same weights.
//!
//! SGD (`torch.optim.SGD`, dampening 0):
//!   g = grad + weight_decay·p;  buf = g (first step) or momentum·buf + g;
//!   p −= lr·buf, or with Nesterov p −= lr·(g + momentum·buf)
//! The book's L2 (network3.py) adds λ/(mini-batches per epoch)·p to the gradient of
//! weights only (not biases) before that, whatever the optimiser.
//! Adam (`torch.optim.Adam`, defaults β = (0.9, 0.999), ε = 1e-8):
//!   g = grad + weight_decay·p;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//!   p −= (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
//! AdamW (`torch.optim.AdamW`, default weight_decay 0.01): Adam with the decay taken out
//! of the gradient and applied to the weights directly (decoupled), before the step:
//!   p ← p·(1 − lr·weight_decay);  then Adam's update with g = grad

use crate::sequential::Sequential;

/// `torch.optim.SGD(params, lr)`: [`Sgd::new`] gives plain SGD, to be refined with
/// [`Optimizer::momentum`], [`Optimizer::nesterov`] and [`Optimizer::weight_decay`]:
/// `Sgd::new(0.05).momentum(0.9).nesterov(true)` is `torch.optim.SGD(params, lr=0.05,
/// momentum=0.9, nesterov=True)`.
pub struct Sgd;

impl Sgd {
    /// Plain SGD at learning rate `lr` (no momentum, no weight decay).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(lr: f32) -> Optimizer {
        Optimizer::new(OptimizerKind::sgd(0.0), lr, 0.0, 0.0)
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

/// `torch.optim.AdamW(params, lr)` with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8,
/// weight_decay 0.01, decoupled): `AdamW::new(1e-3)`, refined with
/// [`Optimizer::weight_decay`] (`AdamW::new(1e-3).weight_decay(0.05)`).
pub struct AdamW;

impl AdamW {
    /// torch.optim.AdamW's default weight decay.
    pub const WEIGHT_DECAY: f32 = 0.01;

    #[allow(clippy::new_ret_no_self)]
    pub fn new(lr: f32) -> Optimizer {
        Optimizer::new(
            OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
            Self::WEIGHT_DECAY,
            0.0,
        )
    }
}

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// `torch.optim.SGD(momentum=…, nesterov=…)`, dampening 0.
    Sgd { momentum: f32, nesterov: bool },
    /// `torch.optim.Adam(betas=(β1, β2), eps=…)`: weight decay added to the gradient.
    Adam { beta1: f32, beta2: f32, eps: f32 },
    /// `torch.optim.AdamW(betas=(β1, β2), eps=…)`: weight decay applied to the weights.
    AdamW { beta1: f32, beta2: f32, eps: f32 },
}

impl OptimizerKind {
    /// SGD with `momentum`, without Nesterov.
    pub fn sgd(momentum: f32) -> Self {
        OptimizerKind::Sgd {
            momentum,
            nesterov: false,
        }
    }

    /// SGD's momentum, or Adam's β1: what a OneCycle schedule cycles.
    pub fn momentum(&self) -> f32 {
        match *self {
            OptimizerKind::Sgd { momentum, .. } => momentum,
            OptimizerKind::Adam { beta1, .. } | OptimizerKind::AdamW { beta1, .. } => beta1,
        }
    }

    /// Lower-case, as checkpoints record it: "sgd", "adam" or "adamw".
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Adam { .. } => "adam",
            OptimizerKind::AdamW { .. } => "adamw",
        }
    }
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
    /// One buffer per parameter: momentum (SGD) or first moment (Adam, AdamW).
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
            OptimizerKind::Sgd { momentum: m, .. } => *m = momentum,
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
                panic!("momentum is SGD's; Adam's momentum is β1 (OptimizerKind::Adam)")
            }
        }
        self
    }

    /// SGD's Nesterov momentum (PyTorch's `nesterov=True`): the step is
    /// `lr·(g + momentum·buf)` rather than `lr·buf`. Like PyTorch, it needs a momentum
    /// above 0: [`Optimizer::check`] (run by the training loop) refuses it without.
    ///
    /// # Panics
    /// On an Adam optimiser, which has no Nesterov form here.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        match &mut self.kind {
            OptimizerKind::Sgd { nesterov: n, .. } => *n = nesterov,
            OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
                panic!("nesterov is SGD's (torch.optim.SGD(nesterov=True))")
            }
        }
        self
    }

    /// Sets the momentum a schedule chose for the next step (OneCycleLR's
    /// `cycle_momentum`): SGD's momentum, or Adam's β1.
    pub fn set_momentum(&mut self, momentum: f32) {
        match &mut self.kind {
            OptimizerKind::Sgd { momentum: m, .. } => *m = momentum,
            OptimizerKind::Adam { beta1, .. } | OptimizerKind::AdamW { beta1, .. } => {
                *beta1 = momentum
            }
        }
    }

    /// Refuses settings PyTorch refuses when the optimiser is made: Nesterov without
    /// momentum, a negative or non-finite learning rate or decay.
    pub fn check(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::Input(m));
        if let OptimizerKind::Sgd {
            momentum,
            nesterov: true,
        } = self.kind
            && momentum <= 0.0
        {
            return bad(format!(
                "SGD with Nesterov momentum needs a momentum above 0 (it has {momentum}), \
                     as torch.optim.SGD: 'Nesterov momentum requires a momentum and zero \
                     dampening'; e.g. momentum 0.9"
            ));
        }
        for (name, v) in [
            ("learning rate", self.lr),
            ("weight decay", self.weight_decay),
            ("L2 decay", self.weight_only_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} {v} must be a finite number ≥ 0"));
            }
        }
        Ok(())
    }

    /// PyTorch's `weight_decay=` on every parameter: for SGD and Adam an L2 penalty added
    /// to the gradient as `weight_decay · p`; for AdamW the decoupled decay
    /// `p ← p·(1 − lr·weight_decay)` before each step.
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
        // AdamW's decay is applied to the weights, not added to the gradient.
        let (coupled, decoupled) = match self.kind {
            OptimizerKind::AdamW { .. } => (0.0, self.weight_decay),
            _ => (self.weight_decay, 0.0),
        };
        // torch: param.mul_(1 - lr * weight_decay), the factor taken in Python floats.
        let shrink = (1.0 - f64::from(self.lr) * f64::from(decoupled)) as f32;
        for (i, (name, p)) in params.iter_mut().enumerate() {
            let decay = coupled
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
                if !matches!(self.kind, OptimizerKind::Sgd { .. }) {
                    self.v[i] = vec![0.0; value.len()];
                }
            }
            match self.kind {
                // Plain SGD without decay (seqnet bench's, the page's seed network's):
                // w -= lr·g, the general loop's arithmetic below with d = g, in a loop of
                // its own. Why: the general loop's per-element branches kept it scalar; in
                // the browser build it was 16-18 % of training time at mini-batch 10
                // (Chromium profile of the seed network), a simple vector loop here.
                OptimizerKind::Sgd { momentum, .. } if momentum == 0.0 && decay == 0.0 => {
                    let lr = self.lr;
                    for (w, &g) in value.iter_mut().zip(grad) {
                        *w -= lr * g;
                    }
                }
                OptimizerKind::Sgd { momentum, nesterov } => {
                    let buf = &mut self.m[i];
                    for ((w, &g), b) in value.iter_mut().zip(grad).zip(buf.iter_mut()) {
                        let mut d = if decay != 0.0 { g + decay * *w } else { g };
                        if momentum != 0.0 {
                            *b = if first { d } else { momentum * *b + d };
                            // torch: grad.add(buf, alpha=momentum) with Nesterov.
                            d = if nesterov { d + momentum * *b } else { *b };
                        }
                        *w -= self.lr * d;
                    }
                }
                OptimizerKind::Adam { beta1, beta2, eps }
                | OptimizerKind::AdamW { beta1, beta2, eps } => {
                    if decoupled != 0.0 {
                        value.iter_mut().for_each(|w| *w *= shrink);
                    }
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
        assert_eq!(sgd.kind, OptimizerKind::sgd(0.9));
        let nesterov = Sgd::new(0.05).momentum(0.9).nesterov(true);
        assert_eq!(
            nesterov.kind,
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true
            }
        );
        let adamw = AdamW::new(1e-3);
        assert!(matches!(
            adamw.kind,
            OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8
            }
        ));
        assert_eq!((adamw.lr, adamw.weight_decay), (1e-3, 0.01));
        assert_eq!(AdamW::new(1e-3).weight_decay(0.05).weight_decay, 0.05);
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
        let mut opt = Optimizer::new(OptimizerKind::sgd(0.9), 0.1, 0.01, 0.0);
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

    /// Plain SGD's loop of its own gives bitwise the general loop's formula, w - lr·(g +
    /// 0·w) with decay 0 (its naive twin, written out here), on a length that is not a
    /// multiple of any vector width, over two steps.
    #[test]
    fn plain_sgd_is_bitwise_the_general_formula() {
        let (n, lr) = (37, 0.03f32);
        let mut net = Sequential::new([n])
            .add(Linear::new(n, 1).bias(false))
            .unwrap();
        let mut rng = crate::rng::Rng::new(5);
        let w0: Vec<f32> = (0..n).map(|_| rng.symmetric(1.0)).collect();
        let g: Vec<f32> = (0..n).map(|_| rng.symmetric(1.0)).collect();
        for (_, p) in net.named_params_mut() {
            p.value = Tensor::from_vec(&[1, n], w0.clone()).unwrap();
            *p.grad_mut() = Tensor::from_vec(&[1, n], g.clone()).unwrap();
        }
        let mut opt = Optimizer::new(OptimizerKind::sgd(0.0), lr, 0.0, 0.0);
        let mut want = w0.clone();
        for _ in 0..2 {
            opt.step(&mut net);
            for (w, &g) in want.iter_mut().zip(&g) {
                let d = g;
                *w -= lr * d;
            }
        }
        let got = net.named_params()[0].1.value.data().to_vec();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn a_parameter_without_a_gradient_is_left_alone_as_in_torch() {
        // torch: after zero_grad() (set_to_none) and no backward, step() skips the
        // parameter: no weight decay, no momentum.
        let mut net = net_with_grad(1.0, 0.5);
        let mut opt = Optimizer::new(OptimizerKind::sgd(0.9), 0.1, 0.01, 0.0);
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
    fn nesterov_steps_by_the_gradient_plus_momentum_times_the_buffer() {
        // torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True), p=1, grad 0.5 twice:
        // buf 0.5, step 0.5 + 0.9·0.5 = 0.95 → 0.905; buf 0.95, step 0.5 + 0.9·0.95.
        let mut net = net_with_grad(1.0, 0.5);
        let mut opt = Sgd::new(0.1).momentum(0.9).nesterov(true);
        opt.step(&mut net);
        assert!((weight(&net) - 0.905).abs() < 1e-6, "{}", weight(&net));
        opt.step(&mut net);
        assert!(
            (weight(&net) - (0.905 - 0.1355)).abs() < 1e-6,
            "{}",
            weight(&net)
        );
    }

    #[test]
    fn nesterov_without_momentum_is_refused_as_in_torch() {
        let err = Sgd::new(0.1)
            .nesterov(true)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Nesterov momentum requires a momentum"),
            "{err}"
        );
        assert!(Sgd::new(0.1).momentum(0.9).nesterov(true).check().is_ok());
    }

    #[test]
    fn adamw_decays_the_weight_before_adams_step() {
        // torch.optim.AdamW([p], lr=0.01, weight_decay=0.1), p=1, grad 0.25:
        // p·(1 − 0.001) = 0.999, then Adam's first step of lr: 0.989.
        let mut net = net_with_grad(1.0, 0.25);
        let mut opt = AdamW::new(0.01).weight_decay(0.1);
        opt.step(&mut net);
        assert!((weight(&net) - 0.989).abs() < 1e-6, "{}", weight(&net));
        // Adam with the same weight_decay adds it to the gradient instead: the first
        // step is still lr · sign(g + wd·p), 0.99.
        let mut net = net_with_grad(1.0, 0.25);
        let mut opt = Adam::new(0.01).weight_decay(0.1);
        opt.step(&mut net);
        assert!((weight(&net) - 0.99).abs() < 1e-6, "{}", weight(&net));
    }

    #[test]
    fn a_schedule_sets_sgd_momentum_or_adam_beta1() {
        let mut sgd = Sgd::new(0.1).momentum(0.9);
        sgd.set_momentum(0.85);
        assert_eq!(sgd.kind, OptimizerKind::sgd(0.85));
        let mut adam = AdamW::new(0.1);
        adam.set_momentum(0.95);
        assert!(matches!(
            adam.kind,
            OptimizerKind::AdamW { beta1: 0.95, .. }
        ));
    }

    #[test]
    fn book_l2_decays_weights_only() {
        let mut net = Sequential::new([1]).add(Linear::new(1, 1)).unwrap();
        for (_, p) in net.named_params_mut() {
            p.value.data_mut().fill(1.0);
            p.grad_mut().data_mut().fill(0.0);
        }
        let mut opt = Optimizer::new(OptimizerKind::sgd(0.0), 0.5, 0.0, 0.2);
        opt.step(&mut net);
        let p = net.named_params();
        assert!(
            (p[0].1.value.data()[0] - 0.9).abs() < 1e-7,
            "weight decayed"
        );
        assert_eq!(p[1].1.value.data()[0], 1.0, "bias untouched");
    }
}
