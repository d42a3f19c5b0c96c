//! The networks of chapter 6 of *Neural Networks and Deep Learning*, each with the
//! book's hyper-parameters (network3.py: mini-batch 10, plain SGD, η, λ, epochs), and the
//! `seed` network with seqnet's fast default recipe.
//!
//! network3.py applies a conv layer's activation after its max-pool; for the
//! increasing activations used here (sigmoid, ReLU) max-pool commutes with them, so
//! `Conv2d → act → MaxPool2d` below computes the same function in PyTorch's usual order.

/// How a preset is trained unless flags say otherwise (defined in [`crate::recipe`]).
pub use crate::recipe::Recipe;

/// A named network with its recipe.
#[derive(Clone, Debug)]
pub struct Preset {
    pub name: &'static str,
    pub spec: &'static str,
    pub input: [usize; 3],
    pub recipe: Recipe,
    /// The book's row and test accuracy (%), for the results table.
    pub book_row: &'static str,
    pub book_accuracy: Option<f32>,
}

/// book-relu and book-relu-expanded share the network; only the data differs.
const BOOK_RELU: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Conv2d(20, 40, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(640, 100) -> ReLU() -> Linear(100, 10)";

/// The book's recipe: see [`Recipe::book`].
const fn book(epochs: usize, lr: f32, l2: f32, expand: bool) -> Recipe {
    Recipe::book(epochs, lr, l2, expand)
}

/// Every preset, in the book's order after `seed`.
pub fn all() -> Vec<Preset> {
    vec![
        Preset {
            name: "seed",
            spec: "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(2880, 100) -> ReLU() -> Linear(100, 10)",
            input: [1, 28, 28],
            // seqnet's fast default (see Recipe::SEED for what it was measured to give).
            recipe: Recipe::SEED,
            book_row: "(seqnet's starting network)",
            book_accuracy: None,
        },
        Preset {
            name: "book-fc",
            spec: "Flatten() -> Linear(784, 100) -> Sigmoid() -> Linear(100, 10)",
            input: [1, 28, 28],
            recipe: book(60, 0.1, 0.0, false),
            book_row: "FC 784→100 sigmoid → 10",
            book_accuracy: Some(97.80),
        },
        Preset {
            name: "book-conv1",
            spec: "Conv2d(1, 20, 5) -> Sigmoid() -> MaxPool2d(2) -> Flatten() -> Linear(2880, 100) -> Sigmoid() -> Linear(100, 10)",
            input: [1, 28, 28],
            recipe: book(60, 0.1, 0.0, false),
            book_row: "conv 20@5×5 + pool 2, FC 100 sigmoid",
            book_accuracy: Some(98.78),
        },
        Preset {
            name: "book-conv2",
            spec: "Conv2d(1, 20, 5) -> Sigmoid() -> MaxPool2d(2) -> Conv2d(20, 40, 5) -> Sigmoid() -> MaxPool2d(2) -> Flatten() -> Linear(640, 100) -> Sigmoid() -> Linear(100, 10)",
            input: [1, 28, 28],
            recipe: book(60, 0.1, 0.0, false),
            book_row: "+ conv 40@5×5 + pool 2, sigmoid",
            book_accuracy: Some(99.06),
        },
        Preset {
            name: "book-relu",
            spec: BOOK_RELU,
            input: [1, 28, 28],
            recipe: book(60, 0.03, 0.1, false),
            book_row: "the same with ReLU, η 0.03, λ 0.1",
            book_accuracy: Some(99.23),
        },
        Preset {
            name: "book-relu-expanded",
            spec: BOOK_RELU,
            input: [1, 28, 28],
            recipe: book(60, 0.03, 0.1, true),
            book_row: "+ expanded data",
            book_accuracy: Some(99.37),
        },
        Preset {
            name: "book-relu-fc2",
            spec: "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Conv2d(20, 40, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(640, 100) -> ReLU() -> Linear(100, 100) -> ReLU() -> Linear(100, 10)",
            input: [1, 28, 28],
            recipe: book(60, 0.03, 0.1, true),
            book_row: "+ a second FC layer of 100",
            book_accuracy: Some(99.43),
        },
        Preset {
            name: "book-dropout",
            spec: "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Conv2d(20, 40, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Dropout(0.5) -> Linear(640, 1000) -> ReLU() -> Dropout(0.5) -> Linear(1000, 1000) -> ReLU() -> Dropout(0.5) -> Linear(1000, 10)",
            input: [1, 28, 28],
            recipe: book(40, 0.03, 0.0, true),
            book_row: "FC 1000–1000, dropout 0.5 before each FC, expanded",
            book_accuracy: Some(99.60),
        },
        Preset {
            name: "fast-mnist",
            // Past the book: two blocks of two 3×3 convolutions with BatchNorm (no bias:
            // BatchNorm's β is the shift), global max-pooling by 2 after each, one Linear.
            // 28 → 26 → 24 → 12 → 10 → 8 → 4: 64·4·4 = 1024 features.
            spec: "Conv2d(1, 32, 3, bias=False) -> BatchNorm2d(32) -> ReLU() -> Conv2d(32, 32, 3, bias=False) -> BatchNorm2d(32) -> ReLU() -> MaxPool2d(2) -> Conv2d(32, 64, 3, bias=False) -> BatchNorm2d(64) -> ReLU() -> Conv2d(64, 64, 3, bias=False) -> BatchNorm2d(64) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(1024, 10)",
            input: [1, 28, 28],
            recipe: Recipe::fast_mnist(),
            book_row: "(past the book: BatchNorm, augmentation, OneCycle)",
            book_accuracy: None,
        },
    ]
}

/// The preset called `name`, or an error listing them all.
pub fn get(name: &str) -> crate::Result<Preset> {
    all().into_iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = all().iter().map(|p| p.name).collect();
        let hint = crate::spec::closest(name, names.iter().copied())
            .map_or(".".to_string(), |n| format!("; did you mean '{n}'?"));
        crate::Error::Input(format!(
            "no preset named '{name}'{hint} The presets are: {}",
            names.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique_and_found() {
        let all = super::all();
        for p in &all {
            assert_eq!(super::get(p.name).unwrap().spec, p.spec);
        }
        let err = super::get("book-cnn").unwrap_err().to_string();
        assert!(err.contains("book-relu"), "{err}");
        let err = super::get("book-relux").unwrap_err().to_string();
        assert!(err.contains("did you mean 'book-relu'?"), "{err}");
    }
}
