//! What the network gets wrong: the confusion matrix and the misclassified images.

use plotters::style::text_anchor::{HPos, VPos};

use super::{BLACK_RGB, FRAME, GREY_TEXT, MARGIN, Picture, blues, text_width};
use crate::error::{Error, Result};

/// `matrix[true][predicted]`: how many images of each class went to each prediction.
/// Labels or predictions `>= classes` are ignored.
pub fn confusion_matrix(labels: &[usize], predicted: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (&y, &p) in labels.iter().zip(predicted) {
        if y < classes && p < classes {
            m[y][p] += 1;
        }
    }
    m
}

/// Draws the confusion matrix as a heat map with the count in every cell: rows are the
/// true classes, columns the predictions, each cell shaded by its share of its row.
/// `heading` goes on top; the accuracy is added to it.
pub fn confusion(matrix: &[Vec<usize>], heading: &str) -> Result<Picture> {
    let k = matrix.len();
    if k == 0 || matrix.iter().any(|r| r.len() != k) {
        return Err(Error::Input(
            "the confusion matrix must be square and non-empty".into(),
        ));
    }
    let total: usize = matrix.iter().flatten().sum();
    let correct: usize = (0..k).map(|i| matrix[i][i]).sum();
    let cell = (480 / k as i32).clamp(16, 48);
    let font = (cell as f64 * 0.3).clamp(8.0, 13.0);
    let biggest = matrix.iter().flatten().max().copied().unwrap_or(0);
    let digits = text_width(&biggest.to_string(), font) as i32;
    let font = if digits > cell - 4 {
        font * (cell - 4) as f64 / digits as f64
    } else {
        font
    };
    let left = MARGIN + 64; // "true" label and row labels
    let top = 70 + 22; // heading, "predicted", column labels
    let grid = cell * k as i32;
    let acc = if total > 0 {
        100.0 * correct as f64 / total as f64
    } else {
        0.0
    };
    let title = format!("{heading}: {correct} of {total} right ({acc:.2}%)");
    let width = (left + grid + 64 + MARGIN)
        .max(560)
        .max(text_width(&title, 16.0) as i32 + 2 * MARGIN);
    let height = top + grid + 36 + MARGIN;
    let mut pic = Picture::new(width as u32, height as u32);
    pic.label(&title, (MARGIN, MARGIN - 4), 16.0, BLACK_RGB)?;
    pic.label(
        "rows: true class; columns: predicted class; shade: share of the row",
        (MARGIN, MARGIN + 18),
        12.0,
        GREY_TEXT,
    )?;
    pic.text(
        "predicted",
        (left + grid / 2, top - 40),
        13.0,
        BLACK_RGB,
        HPos::Center,
        VPos::Top,
    )?;
    pic.text(
        "true",
        (MARGIN, top + grid / 2),
        13.0,
        BLACK_RGB,
        HPos::Left,
        VPos::Center,
    )?;
    for i in 0..k {
        let c = (i as i32) * cell + cell / 2;
        pic.text(
            &i.to_string(),
            (left + c, top - 6),
            13.0,
            BLACK_RGB,
            HPos::Center,
            VPos::Bottom,
        )?;
        pic.text(
            &i.to_string(),
            (left - 8, top + c),
            13.0,
            BLACK_RGB,
            HPos::Right,
            VPos::Center,
        )?;
    }
    for (t, row) in matrix.iter().enumerate() {
        let row_total: usize = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            let share = if row_total > 0 {
                n as f32 / row_total as f32
            } else {
                0.0
            };
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            pic.fill(x, y, cell as u32, cell as u32, blues(share));
            if n > 0 {
                let colour = if share > 0.5 {
                    (255, 255, 255)
                } else {
                    BLACK_RGB
                };
                pic.text(
                    &n.to_string(),
                    (x + cell / 2, y + cell / 2),
                    font,
                    colour,
                    HPos::Center,
                    VPos::Center,
                )?;
            }
        }
        pic.text(
            &format!("{row_total}"),
            (left + grid + 8, top + t as i32 * cell + cell / 2),
            11.0,
            GREY_TEXT,
            HPos::Left,
            VPos::Center,
        )?;
    }
    pic.text(
        "images",
        (left + grid + 8, top - 6),
        11.0,
        GREY_TEXT,
        HPos::Left,
        VPos::Bottom,
    )?;
    for i in 0..=k as i32 {
        pic.fill(left + i * cell, top, 1, grid as u32, (255, 255, 255));
        pic.fill(left, top + i * cell, grid as u32, 1, (255, 255, 255));
    }
    pic.frame(left, top, grid as u32, grid as u32, FRAME);
    // The scale.
    let (bx, by, bw) = (left, top + grid + 14, 160);
    for i in 0..bw {
        pic.fill(bx + i, by, 1, 10, blues(i as f32 / (bw - 1) as f32));
    }
    pic.frame(bx, by, bw as u32, 10, FRAME);
    pic.text("0%", (bx, by + 13), 11.0, GREY_TEXT, HPos::Left, VPos::Top)?;
    pic.text(
        "100% of the row",
        (bx + bw, by + 13),
        11.0,
        GREY_TEXT,
        HPos::Right,
        VPos::Top,
    )?;
    Ok(pic)
}

/// One misclassified image.
#[derive(Clone, Debug, PartialEq)]
pub struct Mistake {
    /// Its index in the dataset.
    pub index: usize,
    /// Its values (`C·H·W`, as stored: intensities in [0, 1]).
    pub image: Vec<f32>,
    pub label: usize,
    pub predicted: usize,
    /// The probability the network gave its (wrong) prediction.
    pub probability: f32,
}

/// Images per row of the mistakes grid.
pub const MISTAKES_COLUMNS: usize = 10;

/// Draws misclassified images in a grid, each captioned `true → predicted` with the
/// probability of the prediction and the image's index. `shape` is `[C, H, W]`: RGB
/// images are drawn in their colours, grey ones in ink (see [`Picture::image`]);
/// `heading` goes on top.
pub fn mistakes(items: &[Mistake], shape: [usize; 3], heading: &str) -> Result<Picture> {
    let [c, h, w] = shape;
    let per = c * h * w;
    if let Some(m) = items.iter().find(|m| m.image.len() != per) {
        return Err(Error::Input(format!(
            "image {} has {} values, not {per} for shape {c}×{h}×{w}",
            m.index,
            m.image.len()
        )));
    }
    let scale = (84 / h.max(w).max(1) as u32).clamp(1, 6);
    let (tw, th) = (w as i32 * scale as i32, h as i32 * scale as i32);
    let cell_w = tw.max(84) + 14;
    let cell_h = th + 36 + 10;
    let cols = MISTAKES_COLUMNS as i32;
    let rows = ((items.len() as i32 + cols - 1) / cols).max(1);
    let header = 58;
    let width =
        (2 * MARGIN + cols * cell_w - 14).max(text_width(heading, 16.0) as i32 + 2 * MARGIN);
    let height = header + rows * cell_h + MARGIN;
    let mut pic = Picture::new(width as u32, height as u32);
    pic.label(heading, (MARGIN, MARGIN - 4), 16.0, BLACK_RGB)?;
    pic.label(
        "caption: true → predicted, the probability given to the prediction, #index; most \
         confident mistakes first",
        (MARGIN, MARGIN + 18),
        12.0,
        GREY_TEXT,
    )?;
    if items.is_empty() {
        pic.label("no mistakes", (MARGIN, header + 10), 14.0, BLACK_RGB)?;
    }
    for (i, m) in items.iter().enumerate() {
        let (r, col) = (i as i32 / cols, i as i32 % cols);
        let x = MARGIN + col * cell_w + (cell_w - 14 - tw) / 2;
        let y = header + r * cell_h;
        pic.image(x, y, &m.image, shape, scale);
        pic.frame(x, y, tw as u32, th as u32, FRAME);
        let cx = MARGIN + col * cell_w + (cell_w - 14) / 2;
        pic.text(
            &format!("{} → {}  {:.2}", m.label, m.predicted, m.probability),
            (cx, y + th + 4),
            13.0,
            BLACK_RGB,
            HPos::Center,
            VPos::Top,
        )?;
        pic.text(
            &format!("#{}", m.index),
            (cx, y + th + 21),
            11.0,
            GREY_TEXT,
            HPos::Center,
            VPos::Top,
        )?;
    }
    Ok(pic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs() {
        let m = confusion_matrix(&[0, 1, 1, 2, 9], &[0, 1, 2, 2, 0], 3);
        assert_eq!(m, vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        let pic = confusion(&m, "t").unwrap();
        assert!(pic.width() >= 560);
        assert!(confusion(&[], "t").is_err());
    }

    #[test]
    fn mistakes_grid_rows() {
        let one = Mistake {
            index: 3,
            image: vec![0.5; 16],
            label: 1,
            predicted: 2,
            probability: 0.9,
        };
        let a = mistakes(&vec![one.clone(); 10], [1, 4, 4], "t").unwrap();
        let b = mistakes(&vec![one.clone(); 11], [1, 4, 4], "t").unwrap();
        assert_eq!(a.width(), b.width());
        assert!(b.height() > a.height());
        let bad = Mistake {
            image: vec![0.0; 3],
            ..one
        };
        assert!(mistakes(&[bad], [1, 4, 4], "t").is_err());
    }
}
