//! What `--augment` does to training images: one row per image, the image as stored,
//! then as the augmentation draws it in successive epochs.

use plotters::style::text_anchor::{HPos, VPos};

use super::{BLACK_RGB, FRAME, GREY_TEXT, MARGIN, Picture, text_width};
use crate::data::Dataset;
use crate::data::augment::Augment;
use crate::error::{Error, Result};

/// Draws images `indices` of `ds` (rows): as stored, then augmented by `augment` as a
/// run of seed `seed` draws them in epochs 1 to `epochs` (columns). Grey images are
/// drawn in ink (0 white, 1 black) as the mistakes grid draws them, three-channel ones
/// in their colours (values in [0, 1]).
pub fn augmented(
    ds: &Dataset,
    augment: &Augment,
    seed: u64,
    indices: &[usize],
    epochs: usize,
    heading: &str,
) -> Result<Picture> {
    let [_, h, w] = ds.shape;
    if let Some(&i) = indices.iter().find(|&&i| i >= ds.len()) {
        return Err(Error::Input(format!(
            "image {i} is not in {}, which has {} images",
            ds.name,
            ds.len()
        )));
    }
    augment.check(ds.shape)?;
    let key = crate::data::augment::key(seed);
    let scale = (84 / h.max(w).max(1) as u32).clamp(1, 6);
    let (tw, th) = (w as i32 * scale as i32, h as i32 * scale as i32);
    let (cell_w, cell_h) = (tw.max(60) + 12, th + 12);
    let header = 78;
    let cols = epochs as i32 + 1;
    let width = (2 * MARGIN + 60 + cols * cell_w)
        .max(text_width(heading, 16.0) as i32 + 2 * MARGIN)
        .max(text_width(&augment.to_string(), 12.0) as i32 + 2 * MARGIN);
    let height = header + indices.len().max(1) as i32 * cell_h + MARGIN;
    let mut pic = Picture::new(width as u32, height as u32);
    pic.label(heading, (MARGIN, MARGIN - 4), 16.0, BLACK_RGB)?;
    pic.label(&augment.to_string(), (MARGIN, MARGIN + 18), 12.0, GREY_TEXT)?;
    let x0 = MARGIN + 60;
    for col in 0..cols {
        let caption = if col == 0 {
            "stored".to_string()
        } else {
            format!("epoch {col}")
        };
        let cx = x0 + col * cell_w + tw / 2;
        pic.text(
            &caption,
            (cx, header - 6),
            12.0,
            GREY_TEXT,
            HPos::Center,
            VPos::Bottom,
        )?;
    }
    let mut values = vec![0.0f32; ds.image_len()];
    for (row, &i) in indices.iter().enumerate() {
        let y = header + row as i32 * cell_h;
        pic.text(
            &format!("#{i}"),
            (MARGIN + 52, y + th / 2),
            11.0,
            GREY_TEXT,
            HPos::Right,
            VPos::Center,
        )?;
        for col in 0..cols {
            if col == 0 {
                values.copy_from_slice(&ds.image(i));
            } else {
                let epoch = augment.for_epoch(key, col as usize - 1);
                epoch.write_batch(ds, &[i], &mut values);
            }
            let x = x0 + col * cell_w;
            pic.image(x, y, &values, ds.shape, scale);
            pic.frame(x, y, tw as u32, th as u32, FRAME);
        }
    }
    Ok(pic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmented_grid_has_a_row_per_image_and_a_column_per_epoch() {
        let (train, _) = crate::data::embedded::mnist_5k().unwrap();
        let aug = Augment::default_for(train.shape).unwrap();
        let pic = augmented(&train, &aug, 1, &[0, 1, 2], 4, "t").unwrap();
        let small = augmented(&train, &aug, 1, &[0], 4, "t").unwrap();
        assert!(pic.height() > small.height());
        // The same seed draws the same picture; another seed another.
        assert_eq!(pic, augmented(&train, &aug, 1, &[0, 1, 2], 4, "t").unwrap());
        assert_ne!(pic, augmented(&train, &aug, 2, &[0, 1, 2], 4, "t").unwrap());
        let err = augmented(&train, &aug, 1, &[4000], 2, "t").unwrap_err();
        assert!(err.to_string().contains("has 4000 images"), "{err}");
    }

    #[test]
    fn rgb_images_are_drawn_in_their_colours() {
        // Pure red, green and blue 3×8×8 images.
        let mut values = Vec::new();
        for k in 0..3 {
            for c in 0..3 {
                values.extend(std::iter::repeat_n(if c == k { 1.0 } else { 0.0 }, 64));
            }
        }
        let ds = Dataset::new("rgb", values, vec![0, 1, 0], [3, 8, 8], 2).unwrap();
        let aug = Augment::default_for(ds.shape).unwrap();
        let pic = augmented(&ds, &aug, 1, &[0, 1, 2], 2, "t").unwrap();
        let saturated = pic
            .rgb()
            .chunks_exact(3)
            .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() == 255)
            .count();
        // At least the three stored images, 8×8 values of 6×6 pixels each.
        assert!(saturated >= 3 * 48 * 48, "{saturated} saturated pixels");
    }
}
