//! The training-set expansion of Nielsen's book (`expand_mnist.py`, chapter 6): every
//! image plus its four one-pixel shifts, which took his best network from 99.06% to
//! 99.37%.

use super::Dataset;

/// Each image followed by four copies shifted by one pixel: the original, then its
/// content moved up, down, left and right. The row or column the content leaves is
/// filled with 0 (background), and the row or column pushed past the edge is dropped,
/// as `np.roll` followed by zeroing does in `expand_mnist.py`. Labels are repeated, so
/// the result has 5 × `len()` images; every channel is shifted alike.
///
/// `expand_mnist.py` appends the shifts in the order down, up, right, left, then
/// shuffles the whole list; seqnet keeps each image's five versions together, in the
/// order above, and leaves the shuffling to the training loop (which reshuffles every
/// epoch anyway). Expand the training set only (the book: 50,000 → 250,000 images).
pub fn expand_book(ds: &Dataset) -> Dataset {
    let [c, h, w] = ds.shape;
    let per = ds.image_len();
    let mut images = Vec::with_capacity(ds.images.len() * 5);
    let mut labels = Vec::with_capacity(ds.len() * 5);
    for (i, &label) in ds.labels.iter().enumerate() {
        let img = ds.image(i);
        images.extend_from_slice(img);
        for shift in [Shift::Up, Shift::Down, Shift::Left, Shift::Right] {
            let start = images.len();
            images.resize(start + per, 0.0);
            for ch in 0..c {
                let plane = &img[ch * h * w..(ch + 1) * h * w];
                let out = &mut images[start + ch * h * w..start + (ch + 1) * h * w];
                shift.apply(plane, out, h, w);
            }
        }
        labels.extend_from_slice(&[label; 5]);
    }
    Dataset {
        images,
        labels,
        shape: ds.shape,
        classes: ds.classes,
        name: format!("{} (expanded ×5)", ds.name),
    }
}

#[derive(Clone, Copy)]
enum Shift {
    Up,
    Down,
    Left,
    Right,
}

impl Shift {
    /// Writes the shifted `src` plane into `dst`, which is all zeros on entry.
    fn apply(self, src: &[f32], dst: &mut [f32], h: usize, w: usize) {
        if h == 0 || w == 0 {
            return; // Nothing to shift (and `w - 1` below needs w ≥ 1).
        }
        match self {
            // Content moves up: output row y is input row y + 1; the bottom row stays 0.
            Shift::Up => {
                if h > 1 {
                    dst[..(h - 1) * w].copy_from_slice(&src[w..]);
                }
            }
            // Content moves down: output row y is input row y - 1; the top row stays 0.
            Shift::Down => {
                if h > 1 {
                    dst[w..].copy_from_slice(&src[..(h - 1) * w]);
                }
            }
            // Content moves left: output column x is input column x + 1; the right column
            // stays 0.
            Shift::Left => {
                for (d, s) in dst.chunks_exact_mut(w).zip(src.chunks_exact(w)) {
                    d[..w - 1].copy_from_slice(&s[1..]);
                }
            }
            // Content moves right: output column x is input column x - 1; the left column
            // stays 0.
            Shift::Right => {
                for (d, s) in dst.chunks_exact_mut(w).zip(src.chunks_exact(w)) {
                    d[1..].copy_from_slice(&s[..w - 1]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_expand_book_shifts_by_one_pixel_in_order() {
        // A 3×3 image of distinct values, and a second, uniform one.
        #[rustfmt::skip]
        let a = [
            1.0, 2.0, 3.0,
            4.0, 5.0, 6.0,
            7.0, 8.0, 9.0,
        ];
        let mut images = a.to_vec();
        images.extend([0.5; 9]);
        let ds = Dataset::new("t", images, vec![4, 2], [1, 3, 3], 10).expect("dataset");
        let ex = expand_book(&ds);
        assert_eq!(ex.len(), 10);
        assert_eq!(ex.labels, vec![4, 4, 4, 4, 4, 2, 2, 2, 2, 2]);
        assert_eq!(ex.shape, [1, 3, 3]);
        #[rustfmt::skip]
        let want: [[f32; 9]; 5] = [
            a,
            // up: row 1 becomes row 0, the bottom row is vacated
            [4.0, 5.0, 6.0,  7.0, 8.0, 9.0,  0.0, 0.0, 0.0],
            // down
            [0.0, 0.0, 0.0,  1.0, 2.0, 3.0,  4.0, 5.0, 6.0],
            // left: column 1 becomes column 0, the right column is vacated
            [2.0, 3.0, 0.0,  5.0, 6.0, 0.0,  8.0, 9.0, 0.0],
            // right
            [0.0, 1.0, 2.0,  0.0, 4.0, 5.0,  0.0, 7.0, 8.0],
        ];
        for (k, w) in want.iter().enumerate() {
            assert_eq!(ex.image(k), w, "version {k}");
        }
        assert_eq!(ex.image(5), &[0.5; 9]);
        assert_eq!(ex.image(6)[6..], [0.0; 3]);
    }

    #[test]
    fn data_expand_book_shifts_every_channel_and_handles_thin_images() {
        // Two channels of a 1×2 image: up/down empty the image, left/right move a value.
        let ds =
            Dataset::new("t", vec![1.0, 2.0, 3.0, 4.0], vec![0], [2, 1, 2], 10).expect("dataset");
        let ex = expand_book(&ds);
        assert_eq!(ex.image(1), &[0.0; 4]); // up
        assert_eq!(ex.image(2), &[0.0; 4]); // down
        assert_eq!(ex.image(3), &[2.0, 0.0, 4.0, 0.0]); // left
        assert_eq!(ex.image(4), &[0.0, 1.0, 0.0, 3.0]); // right
    }
}
