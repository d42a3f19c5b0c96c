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

    /// The width [`Summary::render`] fits the table in: long layer reprs and shape
    /// arithmetic continue on further lines (the JSON keeps them whole).
    pub const WIDTH: usize = 100;

    /// The table as text, columns aligned, at most [`Summary::WIDTH`] columns wide
    /// (unless one word is wider).
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
        let widths = column_widths(&rows, Self::WIDTH);
        let mut out = String::new();
        for (i, row) in rows.iter().enumerate() {
            // A long layer repr or arithmetic continues on lines of its own below.
            let cells: Vec<Vec<String>> = row
                .iter()
                .enumerate()
                .map(|(j, cell)| match j {
                    1 => wrap_at(cell, widths[1], ", "),
                    5 => wrap_at(cell, widths[5], " "),
                    _ => vec![cell.clone()],
                })
                .collect();
            let height = cells.iter().map(Vec::len).max().unwrap_or(1);
            for k in 0..height {
                let mut line = String::new();
                for (j, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                    let cell = cell.get(k).map_or("", String::as_str);
                    let pad = w.saturating_sub(cell.chars().count());
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
            }
            if i == 0 {
                out += &"-".repeat((widths.iter().sum::<usize>() + 10).min(Self::WIDTH));
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

/// Widths of the six columns: the numbers' and shapes' as they are; the layer and
/// the arithmetic share what is left of `total`, the arithmetic kept whole when the
/// layer column can still have 20.
fn column_widths(rows: &[[String; 6]], total: usize) -> [usize; 6] {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fixed = widths[0] + widths[2] + widths[3] + widths[4] + 10;
    let avail = total.saturating_sub(fixed);
    if widths[1] + widths[5] > avail {
        let layer = if avail.saturating_sub(widths[5]) >= 20 {
            avail - widths[5]
        } else {
            widths[1].min((avail / 2).max(20))
        };
        widths[1] = widths[1].min(layer);
        widths[5] = avail.saturating_sub(widths[1]).max(16);
    }
    widths
}

/// `text` in lines of at most `width` characters, broken after each `sep` outside
/// brackets (the separator's trailing spaces dropped); a piece wider than `width` gets
/// a line of its own.
pub fn wrap_at(text: &str, width: usize, sep: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in text.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ => {}
        }
        if depth <= 1 && text[i..].starts_with(sep) && (sep == " " || depth == 1) {
            pieces.push(&text[start..i + sep.trim_end().len()]);
            start = i + sep.len();
        }
    }
    pieces.push(&text[start..]);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for p in pieces.into_iter().filter(|p| !p.is_empty()) {
        let len = line.chars().count();
        if len > 0 && len + 1 + p.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(p);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// 289630 as `289,630`.
pub fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_wrap_at_their_separators() {
        let repr = "Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))";
        assert_eq!(
            wrap_at(repr, 22, ", "),
            ["Conv2d(1, 20,", "kernel_size=(5, 5),", "stride=(1, 1))"]
        );
        assert_eq!(wrap_at(repr, 60, ", "), [repr]);
        assert_eq!(wrap_at("a bb ccc", 4, " "), ["a bb", "ccc"]);
        assert_eq!(wrap_at("", 4, " "), [""]);
    }
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
        // The table wraps the long arithmetic to fit 100 columns; the row keeps it whole.
        assert!(text.contains("in_features inferred: 2880"), "{text}");
        assert!(
            s.layers[4]
                .arithmetic
                .starts_with("in_features inferred: 2880 = 20 × 12 × 12"),
            "{:?}",
            s.layers[4]
        );
        assert!(
            text.lines().all(|l| l.chars().count() <= Summary::WIDTH),
            "{text}"
        );
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(999), "999");
    }
}
