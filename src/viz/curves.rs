//! Training curves from a run's metrics.jsonl: loss and accuracy per epoch.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FAMILY, Picture, draw_err};
use crate::error::{Error, Result};

/// One epoch's figures, as far as metrics.jsonl has them. `seqnet train` writes
/// `train_loss`, `val_accuracy` and `test_accuracy`; the other keys are drawn when a
/// line has them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub test_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub test_accuracy: Option<f64>,
}

/// Reads metrics.jsonl: one JSON object per line with at least `epoch`. Blank lines
/// and objects without `epoch` are skipped, and so is an unfinished last line (the file
/// of a run still writing it).
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<EpochPoint>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut points = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => continue,
            Err(e) => {
                return Err(Error::Input(format!(
                    "{}: line {}: not a JSON object ({e})",
                    path.display(),
                    i + 1
                )));
            }
        };
        let Some(epoch) = value.get("epoch").and_then(|v| v.as_u64()) else {
            continue;
        };
        let f = |k: &str| {
            value
                .get(k)
                .and_then(|v| v.as_f64())
                .filter(|v| v.is_finite())
        };
        points.push(EpochPoint {
            epoch: epoch as usize,
            train_loss: f("train_loss"),
            val_loss: f("val_loss"),
            test_loss: f("test_loss"),
            train_accuracy: f("train_accuracy"),
            val_accuracy: f("val_accuracy"),
            test_accuracy: f("test_accuracy"),
        });
    }
    Ok(points)
}

/// The picture's size.
pub const CURVES_SIZE: (u32, u32) = (1000, 420);

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);
const TEST: RGBColor = RGBColor(44, 160, 44);

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Draws two panels: loss per epoch, and accuracy (%) per epoch, for whichever of
/// train/validation/test the points have. `title` goes on top (e.g. the run folder).
pub fn curves(points: &[EpochPoint], title: &str) -> Result<Picture> {
    if points.is_empty() {
        return Err(Error::Input(
            "no epochs recorded yet: metrics.jsonl has no line with an 'epoch'".into(),
        ));
    }
    let series = |get: &dyn Fn(&EpochPoint) -> Option<f64>, scale: f64| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| get(p).map(|v| (p.epoch as f64, v * scale)))
            .collect()
    };
    let loss: Vec<Series> = vec![
        ("train", TRAIN, series(&|p| p.train_loss, 1.0)),
        ("validation", VAL, series(&|p| p.val_loss, 1.0)),
        ("test", TEST, series(&|p| p.test_loss, 1.0)),
    ];
    let acc: Vec<Series> = vec![
        ("train", TRAIN, series(&|p| p.train_accuracy, 100.0)),
        ("validation", VAL, series(&|p| p.val_accuracy, 100.0)),
        ("test", TEST, series(&|p| p.test_accuracy, 100.0)),
    ];
    let last_epoch = points.iter().map(|p| p.epoch).max().unwrap_or(1).max(1) as f64;
    let first_epoch = points.iter().map(|p| p.epoch).min().unwrap_or(1) as f64;
    let x_range = (first_epoch - 0.5).min(0.5)..last_epoch + 0.5;

    let (w, h) = CURVES_SIZE;
    let mut pic = Picture::new(w, h);
    {
        let root = pic.area();
        let (top, body) = root.split_vertically(34);
        let style =
            TextStyle::from((FAMILY, 16).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        top.draw_text(title, &style, (16, 20)).map_err(draw_err)?;
        let (left, right) = body.split_horizontally(w / 2);

        let max_loss = loss
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let y_loss = 0.0..if max_loss > 0.0 { max_loss * 1.1 } else { 1.0 };
        panel(
            &left,
            "loss",
            "loss",
            x_range.clone(),
            y_loss,
            &loss,
            SeriesLabelPosition::UpperRight,
        )?;

        let min_acc = acc
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .fold(f64::INFINITY, f64::min);
        let lo = if min_acc.is_finite() {
            ((min_acc - 1.0) / 5.0).floor().max(0.0) * 5.0
        } else {
            0.0
        };
        panel(
            &right,
            "accuracy",
            "accuracy (%)",
            x_range,
            lo..100.0,
            &acc,
            SeriesLabelPosition::LowerRight,
        )?;
    }
    Ok(pic)
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(caption, (FAMILY, 15))
        .x_label_area_size(38)
        .y_label_area_size(56)
        .build_cartesian_2d(x.clone(), y)
        .map_err(draw_err)?;
    let epochs = (x.end - x.start).round() as usize;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(epochs.clamp(2, 12) + 1)
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 && *v >= 0.0 {
                format!("{}", v.round())
            } else {
                String::new()
            }
        })
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .map_err(draw_err)?;
    let mut any = false;
    for (name, colour, points) in series {
        if points.is_empty() {
            continue;
        }
        any = true;
        let c = *colour;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(draw_err)?;
    }
    if any {
        chart
            .configure_series_labels()
            .position(legend)
            .border_style(RGBColor(200, 200, 200))
            .background_style(WHITE.mix(0.85))
            .label_font((FAMILY, 12))
            .draw()
            .map_err(draw_err)?;
    } else {
        let style = TextStyle::from((FAMILY, 13).into_font())
            .color(&RGBColor(90, 90, 90))
            .pos(Pos::new(HPos::Center, VPos::Center));
        let (w, h) = area.dim_in_pixel();
        area.draw_text(
            "not recorded in this run",
            &style,
            (w as i32 / 2, h as i32 / 2),
        )
        .map_err(draw_err)?;
    }
    Ok(())
}

/// Reads `metrics` (a run's metrics.jsonl) and writes its curves to `out` as a PNG,
/// titled with the run folder's name. `seqnet train --plot` calls this after every
/// epoch.
pub fn curves_png(metrics: impl AsRef<Path>, out: impl AsRef<Path>) -> Result<()> {
    let metrics = metrics.as_ref();
    let points = read_metrics(metrics)?;
    let run = metrics.parent().and_then(|d| d.file_name()).map_or_else(
        || metrics.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let n = points.len();
    let title = format!("{run}: {n} epoch{}", if n == 1 { "" } else { "s" });
    curves(&points, &title)
        .map_err(|e| match e {
            Error::Input(m) => Error::Input(format!("{}: {m}", metrics.display())),
            e => e,
        })?
        .save_png(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_skips_an_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        std::fs::write(
            &p,
            "{\"epoch\":1,\"train_loss\":0.5,\"val_accuracy\":null,\"test_accuracy\":0.9}\n\n\
             {\"epoch\":2,\"train_loss\":0.3,\"test_accuracy\":0.95}\n{\"epoch\":3,\"tr",
        )
        .unwrap();
        let pts = read_metrics(&p).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[1].test_accuracy, Some(0.95));
        assert_eq!(pts[0].val_accuracy, None);
        let out = dir.path().join("curves.png");
        curves_png(&p, &out).unwrap();
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), CURVES_SIZE);

        std::fs::write(&p, "{\"epoch\":1}\nnot json\n").unwrap();
        let e = read_metrics(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(
            curves_png(&p, &out)
                .unwrap_err()
                .to_string()
                .contains("no epochs")
        );
    }
}
