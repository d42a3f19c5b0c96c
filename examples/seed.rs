//! The seed network of seqnet, step by step: build it, print its summary, run one
//! forward and backward pass on real digits, take one SGD step, and predict.
//!
//! Run: `cargo run --release --example seed`

use seqnet::optim::Sgd;
use seqnet::summary::Summary;
use seqnet::{Conv2d, Flatten, LazyLinear, Linear, MaxPool2d, Mode, ReLU, Sequential};

fn main() -> seqnet::Result<()> {
    // PyTorch: nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    //                        nn.LazyLinear(100), nn.ReLU(), nn.Linear(100, 10))
    let mut net = Sequential::new([1, 28, 28])
        .seed(42)
        .add(Conv2d::new(1, 20, 5))?
        .add(ReLU::new())?
        .add(MaxPool2d::new(2))?
        .add(Flatten::new())?
        .add(LazyLinear::new(100))?
        .add(ReLU::new())?
        .add(Linear::new(100, 10))?;
    print!("{}", Summary::of(&net).render());

    // A mini-batch of 32 digits from the embedded MNIST sample.
    let (train, test) = seqnet::data::embedded::mnist_5k()?;
    let indices: Vec<usize> = (0..32).collect();
    let (x, labels) = train.batch(&indices);

    // Forward, loss, backward, one SGD step: the loss on this batch goes down.
    let mut sgd = Sgd::new(0.05).momentum(0.9);
    for step in 1..=5 {
        net.zero_grad();
        let logits = net.forward(&x, Mode::Train)?;
        let (loss, dlogits) = seqnet::loss::cross_entropy(&logits, &labels);
        net.backward(&dlogits)?;
        sgd.step(&mut net);
        println!("step {step}: loss {loss:.4}");
    }

    // Predict the first test digit.
    let (digit, label) = test.batch(&[0]);
    let probs = net.predict(&digit)?;
    let best = probs.argmax_rows()[0];
    println!(
        "first test digit: label {}, predicted {best} with probability {:.1}%",
        label[0],
        100.0 * probs.item(0)[best]
    );
    Ok(())
}
