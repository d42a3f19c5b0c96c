//! The summary table: for each layer its index, PyTorch repr, output shape, parameters,
//! multiply-accumulates per image and the shape arithmetic; then the totals.
//!
//! Definitions (also in the README):
//! - parameters: learnable values (weights and biases); all are trainable in seqnet;
//! - MACs per image: multiply-accumulates of one forward pass of one image (a conv
//!   output element costs C·kh·kw, a Linear output In; pooling counts one per window
//!   element compared or added; elementwise layers count 0);
//! - parameter bytes: 4 × parameters (f32);
//! - activation bytes per image: 4 × (the input's values + every layer's output values),
//!   what one image's forward pass keeps for backward, before any reuse.

use serde::Serialize;

use crate::sequential::Sequential;
use crate::shape::fmt_shape;

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub index: usize,
    pub layer: String,
    pub output_shape: Vec<usize>,
    pub params: usize,
    pub macs: u64,
    pub arithmetic: String,
}

/// The whole table.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub input_shape: Vec<usize>,
    pub layers: Vec<Row>,
    pub total_params: usize,
    pub trainable_params: usize,
    pub macs_per_image: u64,
    pub param_bytes: usize,
    pub activation_bytes_per_image: usize,
}

impl Summary {
    pub fn of(net: &Sequential) -> Self {
        let layers: Vec<Row> = net
            .layers()
            .iter()
            .zip(net.steps())
            .enumerate()
            .map(|(index, (layer, step))| Row {
                index,
                layer: layer.repr(),
                output_shape: step.out.clone(),
                params: layer.params().iter().map(|(_, p)| p.value.len()).sum(),
                macs: step.macs,
                arithmetic: step.arithmetic.clone(),
            })
            .collect();
        let total_params: usize = layers.iter().map(|r| r.params).sum();
        let values: usize = net.input_shape().iter().product::<usize>()
            + layers
                .iter()
                .map(|r| r.output_shape.iter().product::<usize>())
                .sum::<usize>();
        Summary {
            input_shape: net.input_shape().to_vec(),
            total_params,
            trainable_params: total_params,
            macs_per_image: layers.iter().map(|r| r.macs).sum(),
            param_bytes: 4 * total_params,
            activation_bytes_per_image: 4 * values,
            layers,
        }
    }

    /// The table as text, columns aligned.
    pub fn render(&self) -> String {
        let mut rows = vec![[
            "#".to_string(),
            "layer".to_string(),
            "output".to_string(),
            "params".to_string(),
            "MACs".to_string(),
            "shape arithmetic".to_string(),
        ]];
        rows.push([
            String::new(),
            "input".into(),
            fmt_shape(&self.input_shape),
            String::new(),
            String::new(),
            String::new(),
        ]);
        for r in &self.layers {
            rows.push([
                r.index.to_string(),
                r.layer.clone(),
                fmt_shape(&r.output_shape),
                group(r.params as u64),
                group(r.macs),
                r.arithmetic.clone(),
            ]);
        }
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for (i, row) in rows.iter().enumerate() {
            let mut line = String::new();
            for (j, (cell, w)) in row.iter().zip(&widths).enumerate() {
                let pad = w - cell.chars().count();
                // Numbers right-aligned, text left-aligned.
                if j == 3 || j == 4 {
                    line += &" ".repeat(pad);
                    line += cell;
                } else {
                    line += cell;
                    if j < 5 {
                        line += &" ".repeat(pad);
                    }
                }
                if j < 5 {
                    line += "  ";
                }
            }
            out += line.trim_end();
            out += "\n";
            if i == 0 {
                out += &"-".repeat(widths.iter().sum::<usize>() + 10);
                out += "\n";
            }
        }
        out += &format!(
            "\nparameters: {} ({} trainable), {} bytes as f32\n",
            group(self.total_params as u64),
            group(self.trainable_params as u64),
            group(self.param_bytes as u64)
        );
        out += &format!("MACs per image: {}\n", group(self.macs_per_image));
        out += &format!(
            "activation bytes per image: {}\n",
            group(self.activation_bytes_per_image as u64)
        );
        out
    }
}

/// 289630 as `289,630`.
pub fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conv2d, Flatten, LazyLinear, Linear, MaxPool2d, ReLU};

    #[test]
    fn seed_network_summary_explains_every_shape() {
        let net = Sequential::new([1, 28, 28])
            .add(Conv2d::new(1, 20, 5))
            .and_then(|n| n.add(ReLU::new()))
            .and_then(|n| n.add(MaxPool2d::new(2)))
            .and_then(|n| n.add(Flatten::new()))
            .and_then(|n| n.add(LazyLinear::new(100)))
            .and_then(|n| n.add(ReLU::new()))
            .and_then(|n| n.add(Linear::new(100, 10)))
            .unwrap();
        let s = Summary::of(&net);
        assert_eq!(s.total_params, 289_630);
        assert_eq!(s.layers[0].arithmetic, "(28 + 2·0 − 5)/1 + 1 = 24");
        assert_eq!(s.layers[2].arithmetic, "⌊(24 − 2)/2⌋ + 1 = 12");
        assert_eq!(s.layers[3].arithmetic, "20 · 12 · 12 = 2880");
        assert_eq!(s.layers[4].output_shape, vec![100]);
        assert_eq!(s.layers[4].params, 288_100);
        assert_eq!(s.layers[0].macs, 20 * 24 * 24 * 25);
        let text = s.render();
        assert!(text.contains("289,630"), "{text}");
        assert!(
            text.contains("in_features inferred: 2880 = 20 × 12 × 12"),
            "{text}"
        );
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(999), "999");
    }
}
