//! The training-set expansion of Nielsen's book (`expand_mnist.py`, chapter 6): every
//! image plus its four one-pixel shifts, which took his best network from 99.06% to
//! 99.37%.

use super::{Dataset, Pixels};

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
///
/// The shifts move the stored values, so a u8 dataset stays u8 (a quarter of the memory:
/// the book's 250,000 images are 196 MB as u8, 784 MB as f32) and reads back exactly as
/// the shifted f32 values would.
pub fn expand_book(ds: &Dataset) -> Dataset {
    let pixels = match &ds.pixels {
        Pixels::U8(v) => Pixels::U8(expand_values(v, ds.shape)),
        Pixels::F32(v) => Pixels::F32(expand_values(v, ds.shape)),
    };
    let mut labels = Vec::with_capacity(ds.len() * 5);
    for &label in &ds.labels {
        labels.extend_from_slice(&[label; 5]);
    }
    Dataset {
        pixels,
        labels,
        shape: ds.shape,
        classes: ds.classes,
        name: format!("{} (expanded ×5)", ds.name),
    }
}

/// Each image of `values` (images of `shape`, one after the other) followed by its four
/// shifts, vacated pixels set to `T::default()` (0).
fn expand_values<T: Copy + Default>(values: &[T], shape: [usize; 3]) -> Vec<T> {
    let [c, h, w] = shape;
    let per = c * h * w;
    let mut out = Vec::with_capacity(values.len() * 5);
    for img in values.chunks_exact(per.max(1)) {
        out.extend_from_slice(img);
        for shift in [Shift::Up, Shift::Down, Shift::Left, Shift::Right] {
            let start = out.len();
            out.resize(start + per, T::default());
            for ch in 0..c {
                let plane = &img[ch * h * w..(ch + 1) * h * w];
                let dst = &mut out[start + ch * h * w..start + (ch + 1) * h * w];
                shift.apply(plane, dst, h, w);
            }
        }
    }
    out
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
    fn apply<T: Copy>(self, src: &[T], dst: &mut [T], h: usize, w: usize) {
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
            assert_eq!(*ex.image(k), *w, "version {k}");
        }
        assert_eq!(*ex.image(5), [0.5; 9]);
        assert_eq!(ex.image(6)[6..], [0.0; 3]);
    }

    #[test]
    fn data_expand_book_shifts_u8_levels_and_reads_as_the_f32_expansion() {
        // Grey levels 1..=18 in two 1×3×3 images; the u8 expansion stays u8, and reads
        // bit for bit as the expansion of the same images as f32 levels / 255.
        let levels: Vec<u8> = (1..=18).map(|v| v * 14).collect();
        let ds = Dataset::new_u8("t", levels.clone(), vec![4, 2], [1, 3, 3], 10).expect("u8");
        let as_f32: Vec<f32> = levels.iter().map(|&v| v as f32 / 255.0).collect();
        let ds_f32 = Dataset::new("t", as_f32, vec![4, 2], [1, 3, 3], 10).expect("f32");
        let ex = expand_book(&ds);
        let ex_f32 = expand_book(&ds_f32);
        assert!(matches!(ex.pixels, Pixels::U8(_)));
        assert_eq!(
            (ex.len(), &ex.labels, ex.shape),
            (10, &ex_f32.labels, [1, 3, 3])
        );
        assert_eq!(ex.name, ex_f32.name);
        let all: Vec<usize> = (0..10).collect();
        let bits = |ds: &Dataset| -> Vec<u32> {
            ds.batch(&all)
                .0
                .data()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&ex), bits(&ex_f32));
        let a = &levels[..9];
        assert_eq!(ex.image_u8(0), Some(a));
        assert_eq!(
            ex.image_u8(1),
            Some(&[a[3], a[4], a[5], a[6], a[7], a[8], 0, 0, 0][..])
        );
        assert_eq!(
            ex.image_u8(2),
            Some(&[0, 0, 0, a[0], a[1], a[2], a[3], a[4], a[5]][..])
        );
        assert_eq!(
            ex.image_u8(3),
            Some(&[a[1], a[2], 0, a[4], a[5], 0, a[7], a[8], 0][..])
        );
        assert_eq!(
            ex.image_u8(4),
            Some(&[0, a[0], a[1], 0, a[3], a[4], 0, a[6], a[7]][..])
        );
        assert_eq!(ex.image_u8(5), Some(&levels[9..]));
    }

    #[test]
    fn data_expand_book_shifts_every_channel_and_handles_thin_images() {
        // Two channels of a 1×2 image: up/down empty the image, left/right move a value.
        let ds =
            Dataset::new("t", vec![1.0, 2.0, 3.0, 4.0], vec![0], [2, 1, 2], 10).expect("dataset");
        let ex = expand_book(&ds);
        assert_eq!(*ex.image(1), [0.0; 4]); // up
        assert_eq!(*ex.image(2), [0.0; 4]); // down
        assert_eq!(*ex.image(3), [2.0, 0.0, 4.0, 0.0]); // left
        assert_eq!(*ex.image(4), [0.0, 1.0, 0.0, 3.0]); // right
    }
}
