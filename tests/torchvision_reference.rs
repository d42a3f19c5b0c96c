//! seqnet's augmentation against torchvision's, for fixed parameters: RandomAffine's
//! resampling (`torchvision.transforms.functional.affine` with RandomAffine's fill=0),
//! RandomCrop with zero padding, and the horizontal flip, on grey, non-square and RGB
//! images.
//!
//! The fixture, `tests/fixtures/torchvision/augment.safetensors`, is written by
//! `tests/fixtures/gen_torchvision_fixtures.py` (see its header); this test needs no
//! Python.

use std::path::Path;

use safetensors::SafeTensors;
use seqnet::data::augment::{AffineParams, Draw, Interpolation};

/// Bilinear results may differ in float rounding: torchvision normalises the grid to
/// [-1, 1] and back, seqnet maps pixels directly, so a sampling position differs by an
/// ulp or two of the coordinate (~2e-6 at 28 pixels), and the value by as much times the
/// image's slope (≤ 1 per pixel for values in [0, 1]). Measured: at most 3.1e-6 (and
/// torchvision is 6.6e-7 off its input for the identity, which seqnet gives exactly). A wrong
/// centre, a swapped width and height or a missing border mask is off by 1e-2 to 1.
const TOL: f32 = 1e-5;

fn f32s(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture has no `{name}`"));
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

#[test]
fn augmentation_matches_torchvision_for_fixed_parameters() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision/augment.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with /opt/torchenv/bin/python \
             tests/fixtures/gen_torchvision_fixtures.py",
            path.display()
        )
    });
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["cases"]).unwrap();
    assert!(cases.len() >= 18, "fixture cases missing");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (mut affine_cases, mut crop_cases, mut unchanged) = (0, 0, 0);
    for (k, case) in cases.iter().enumerate() {
        let (shape, img) = f32s(&st, case["image"].as_str().unwrap());
        let shape: [usize; 3] = shape.try_into().unwrap();
        let (_, want) = f32s(&st, &format!("out.{k}"));
        let draw = match case["kind"].as_str().unwrap() {
            "affine" => {
                affine_cases += 1;
                Draw {
                    affine: Some(AffineParams {
                        angle: case["angle"].as_f64().unwrap(),
                        translate: (case["tx"].as_i64().unwrap(), case["ty"].as_i64().unwrap()),
                        scale: case["scale"].as_f64().unwrap(),
                    }),
                    interpolation: match case["interpolation"].as_str().unwrap() {
                        "bilinear" => Interpolation::Bilinear,
                        _ => Interpolation::Nearest,
                    },
                    ..Draw::IDENTITY
                }
            }
            _ => {
                crop_cases += 1;
                let p = case["padding"].as_i64().unwrap() as isize;
                Draw {
                    crop: (
                        case["top"].as_i64().unwrap() as isize - p,
                        case["left"].as_i64().unwrap() as isize - p,
                    ),
                    flip: case["flip"].as_bool().unwrap(),
                    ..Draw::IDENTITY
                }
            }
        };
        // From f32 pixels, and from the same pixels stored as u8 grey levels.
        let levels: Vec<u8> = img.iter().map(|v| (v * 255.0).round() as u8).collect();
        let mut got = vec![f32::NAN; img.len()];
        let mut got_u8 = vec![f32::NAN; img.len()];
        draw.apply(&img, shape, &mut got);
        draw.apply(&levels, shape, &mut got_u8);
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            got_u8.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "case {k}: u8 and f32 sources differ"
        );
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let exact = draw.affine.is_none() || draw.interpolation == Interpolation::Nearest;
        let tol = if exact { 0.0 } else { TOL };
        eprintln!("case {k} {case}: largest difference {worst:e}");
        assert!(
            worst <= tol,
            "case {k} {case}: largest difference from torchvision {worst:e} > {tol:e}"
        );
        if got.iter().zip(&img).all(|(a, b)| a == b) {
            unchanged += 1;
        }
    }
    assert!(affine_cases >= 10 && crop_cases >= 6);
    // Only the two identity cases (angle 0, no shift, scale 1; crop at the centre, no
    // flip) give their image back: the others are tests of something.
    assert_eq!(unchanged, 2);
}
