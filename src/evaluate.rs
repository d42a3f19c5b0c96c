//! How well trained networks classify a dataset: accuracy, per-class results, the
//! confusion matrix, and for an ensemble of networks their plurality vote and their
//! averaged probabilities.
//!
//! Everything is computed from one function, [`predict`], which runs a network over a
//! dataset in Eval mode with the model's own pixel normalisation. The training loop's
//! per-epoch accuracy ([`crate::train::accuracy`]) and `seqnet eval` both use it, so the
//! figure a run reports is the figure an evaluation of its model gives.
//!
//! ```
//! use seqnet::evaluate::{score, vote_and_average, Predictions};
//!
//! // Three models, two images, three classes.
//! let p = |classes: Vec<usize>, probs: Vec<f32>| Predictions { classes, probs, outputs: 3 };
//! let runs = [
//!     p(vec![1, 0], vec![0.1, 0.8, 0.1, 0.6, 0.2, 0.2]),
//!     p(vec![1, 2], vec![0.2, 0.7, 0.1, 0.1, 0.2, 0.7]),
//!     p(vec![2, 1], vec![0.1, 0.4, 0.5, 0.1, 0.5, 0.4]),
//! ];
//! let e = vote_and_average(&runs);
//! assert_eq!(e.vote, vec![1, 2]); // image 1 is a three-way tie: the highest average wins
//! assert_eq!(e.vote_ties, 1);
//! let s = score(&e.vote, &[1, 2], 3, 3);
//! assert_eq!(s.correct, 2);
//! ```

use serde::Serialize;

use crate::data::Dataset;
use crate::error::Result;
use crate::io::model::{ModelInfo, Normalize};
use crate::sequential::Sequential;
use crate::shape::fmt_shape;

/// Images per forward pass: enough to keep every core busy, few enough that a batch's
/// activations stay small.
const CHUNK: usize = 500;

/// A network's answers on every image of a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Predictions {
    /// The predicted class of each image: the argmax of the network's outputs.
    pub classes: Vec<usize>,
    /// `[images × outputs]` class probabilities, row after row; empty unless asked for.
    pub probs: Vec<f32>,
    /// Outputs (scores) per image.
    pub outputs: usize,
}

impl Predictions {
    /// The probabilities of image `i` (empty when they were not kept).
    pub fn probs_of(&self, i: usize) -> &[f32] {
        self.probs
            .get(i * self.outputs..(i + 1) * self.outputs)
            .unwrap_or(&[])
    }
}

/// Runs `net` over every image of `ds` in Eval mode, pixels normalised by `normalize`
/// (the model's own), and returns each image's predicted class and, if `keep_probs`,
/// its class probabilities (softmax of the outputs, or the outputs themselves when the
/// network already ends in Softmax or LogSoftmax).
pub fn predict(
    net: &mut Sequential,
    ds: &Dataset,
    normalize: Option<Normalize>,
    keep_probs: bool,
) -> Result<Predictions> {
    let last = net.output_kind();
    let outputs = net.output_shape().iter().product();
    let mut classes = Vec::with_capacity(ds.len());
    let mut probs = Vec::new();
    let all: Vec<usize> = (0..ds.len()).collect();
    for chunk in all.chunks(CHUNK) {
        let (x, _) = crate::train::prepare(ds, chunk, normalize);
        let out = net.infer(&x)?;
        classes.extend(out.argmax_rows());
        if keep_probs {
            let p = crate::loss::probabilities(&out, last);
            probs.extend_from_slice(p.data());
        }
    }
    Ok(Predictions {
        classes,
        probs,
        outputs,
    })
}

/// Images whose predicted class is their label.
pub fn correct(preds: &[usize], labels: &[usize]) -> usize {
    preds.iter().zip(labels).filter(|(p, y)| p == y).count()
}

/// `num / den`, and 0 for an empty set.
pub fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Why a network cannot be trained or evaluated on a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misfit {
    /// The network takes images of another shape than the data's.
    Input { net: Vec<usize>, data: Vec<usize> },
    /// The network does not output one score per class: its output is not a vector,
    /// or has fewer entries than the data has classes.
    Output { net: Vec<usize>, classes: usize },
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misfit::Input { net, data } => write!(
                f,
                "the network takes images shaped {} but the data's are {}",
                fmt_shape(net),
                fmt_shape(data)
            ),
            Misfit::Output { net, classes } => write!(
                f,
                "the network outputs {} per image but the data has {classes} classes",
                fmt_shape(net)
            ),
        }
    }
}

/// Whether `net` fits `ds`: its input is the data's image shape and it outputs one
/// vector per image with a score for every class. Checked before any forward pass,
/// so that a mismatch is told in words rather than found as a shape error deep in a
/// layer. The caller says what to do about it (rebuild the network, pick other data).
pub fn check_fits(net: &Sequential, ds: &Dataset) -> std::result::Result<(), Misfit> {
    if net.input_shape() != ds.shape.as_slice() {
        return Err(Misfit::Input {
            net: net.input_shape().to_vec(),
            data: ds.shape.to_vec(),
        });
    }
    let out = net.output_shape();
    if out.len() != 1 || out[0] < ds.classes {
        return Err(Misfit::Output {
            net: out.to_vec(),
            classes: ds.classes,
        });
    }
    Ok(())
}

/// How a classifier did: counts per true class and the confusion matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Score {
    pub correct: usize,
    /// Per true class: (images, correct).
    pub per_class: Vec<(usize, usize)>,
    /// `classes × outputs`: rows are true classes, columns predicted ones.
    pub confusion: Vec<Vec<usize>>,
}

/// Scores predictions `preds` against `labels`, for data of `classes` classes and a
/// network of `outputs` outputs (at least `classes`; a wider one may predict a class
/// the data does not have, which gets a column but no row).
pub fn score(preds: &[usize], labels: &[usize], classes: usize, outputs: usize) -> Score {
    let mut s = Score {
        correct: 0,
        per_class: vec![(0, 0); classes],
        confusion: vec![vec![0; outputs]; classes],
    };
    for (&p, &y) in preds.iter().zip(labels) {
        s.confusion[y][p] += 1;
        s.per_class[y].0 += 1;
        if p == y {
            s.correct += 1;
            s.per_class[y].1 += 1;
        }
    }
    s
}

/// How the plurality vote breaks ties, in words (for reports).
pub const TIE_BREAK: &str = "ties go to the tied class with the highest averaged probability \
                             (then the lowest class index)";

/// What an ensemble predicts, both ways.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsemblePredictions {
    /// The plurality vote of the members' classes ([`TIE_BREAK`]).
    pub vote: Vec<usize>,
    /// The argmax of the members' averaged probabilities.
    pub average: Vec<usize>,
    /// Images on which the vote was tied.
    pub vote_ties: usize,
    /// Images on which the members did not all predict the same class.
    pub disagreements: usize,
}

/// The ensemble's vote and averaged probabilities; every member must have kept its
/// probabilities ([`predict`] with `keep_probs`) and have the same outputs.
pub fn vote_and_average(runs: &[Predictions]) -> EnsemblePredictions {
    let n = runs.first().map_or(0, |r| r.classes.len());
    let outputs = runs.first().map_or(0, |r| r.outputs);
    let mut avg = vec![0f32; n * outputs];
    for r in runs {
        for (a, p) in avg.iter_mut().zip(&r.probs) {
            *a += p;
        }
    }
    let k = runs.len() as f32;
    avg.iter_mut().for_each(|a| *a /= k);
    let average: Vec<usize> = avg.chunks_exact(outputs.max(1)).map(argmax).collect();
    let mut vote_ties = 0;
    let vote = (0..n)
        .map(|i| {
            let (p, tied) = vote(runs, &avg[i * outputs..(i + 1) * outputs], i);
            vote_ties += usize::from(tied);
            p
        })
        .collect();
    let disagreements = (0..n)
        .filter(|&i| runs.iter().any(|r| r.classes[i] != runs[0].classes[i]))
        .count();
    EnsemblePredictions {
        vote,
        average,
        vote_ties,
        disagreements,
    }
}

/// The plurality vote of `runs` on image `i`: most votes wins; ties go to the tied
/// class with the highest averaged probability (`avg`, this image's row), then the
/// lowest index. Returns the class and whether there was a tie.
fn vote(runs: &[Predictions], avg: &[f32], i: usize) -> (usize, bool) {
    let mut votes = vec![0usize; avg.len()];
    for r in runs {
        votes[r.classes[i]] += 1;
    }
    let most = votes.iter().copied().max().unwrap_or(0);
    let tied: Vec<usize> = (0..avg.len()).filter(|&k| votes[k] == most).collect();
    if tied.len() == 1 {
        return (tied[0], false);
    }
    let mut best = tied[0];
    for &k in &tied[1..] {
        if avg[k] > avg[best] {
            best = k;
        }
    }
    (best, true)
}

/// The first index of the largest value.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Class names from the first model that has enough of them, else the indices.
pub fn class_names<'a>(
    infos: impl IntoIterator<Item = &'a ModelInfo>,
    outputs: usize,
) -> Vec<String> {
    for info in infos {
        if let Some(names) = &info.classes
            && names.len() >= outputs
        {
            return names[..outputs].to_vec();
        }
    }
    (0..outputs).map(|k| k.to_string()).collect()
}

/// Which of a dataset's sets was evaluated.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EvalSet {
    Test,
    Validation,
    Train,
}

impl EvalSet {
    /// The set in words: "test", "validation", "training".
    pub fn words(self) -> &'static str {
        match self {
            EvalSet::Test => "test",
            EvalSet::Validation => "validation",
            EvalSet::Train => "training",
        }
    }
}

/// Why an evaluation's images may include images the model was trained on, if they
/// may: `trained` is what the model file records (`None`: it does not say), `dataset`
/// the evaluated data's [`crate::data::Splits::dataset`], `set` which of its sets.
/// Evaluating on the training set itself (`EvalSet::Train`) is asked for, so not told.
///
/// The embedded sample (`mnist-5k`) is 5,000 of MNIST's *training* images, so a model
/// trained on MNIST has seen every one of them; the book's validation images are the
/// last 10,000 of the training file, which the official split trains on; and a
/// safetensors batch file has no separate test part.
pub fn overlap(
    trained: Option<&crate::io::model::TrainedOn>,
    dataset: &str,
    set: EvalSet,
) -> Option<String> {
    const SAMPLE: &str = crate::data::embedded::NAME;
    if set == EvalSet::Train {
        return None;
    }
    let Some(t) = trained else {
        return match (dataset, set) {
            (SAMPLE, _) => Some(
                "the embedded sample's images are MNIST training images, and the model file \
                 does not record what it was trained on: if it was trained on MNIST, it has \
                 seen every one of these images, and the score flatters it"
                    .into(),
            ),
            (_, EvalSet::Validation) => Some(
                "the model file does not record its split: if it was trained on the official \
                 split, the validation images were among its training images"
                    .into(),
            ),
            _ => None,
        };
    };
    let official = t.split.as_deref() != Some("book");
    let from = |d: &str| match d {
        SAMPLE => "the embedded sample".to_string(),
        "mnist" => "MNIST".to_string(),
        other => other.to_string(),
    };
    if dataset == SAMPLE && t.dataset == "mnist" {
        return Some(
            "the model was trained on MNIST, and the embedded sample's images are 5,000 of \
             MNIST's training images: the model has seen them, so this score flatters it (for \
             a true test score, evaluate on MNIST's test set: seqnet data fetch mnist)"
                .into(),
        );
    }
    if set == EvalSet::Validation {
        if t.dataset == dataset && official {
            return Some(format!(
                "the model was trained on the official split of {}, which trains on the \
                 validation images too: the model has seen them",
                from(dataset)
            ));
        }
        if dataset == "mnist" && t.dataset == SAMPLE {
            return Some(
                "the model was trained on the embedded sample, whose images are MNIST training \
                 images, some of them from the validation part"
                    .into(),
            );
        }
    }
    if t.dataset == dataset && dataset.ends_with(".safetensors") {
        return Some(format!(
            "the model was trained on {dataset}, the very file evaluated: the model has seen \
             every one of these images"
        ));
    }
    None
}

/// A whole evaluation, as `seqnet eval --json` prints it.
#[derive(Serialize, Clone, Debug)]
pub struct Report {
    /// Where the images came from.
    pub data: String,
    /// Which set of the data they are: "test", "validation" or "train".
    pub set: EvalSet,
    /// How many images.
    pub images: usize,
    /// Names of the classes the models score (columns of `confusion`); the first
    /// `per_class.len()` are the data's classes (its rows).
    pub classes: Vec<String>,
    pub models: Vec<ModelScore>,
    /// What `accuracy`, `per_class` and `confusion` describe: "model" or "vote".
    pub of: &'static str,
    pub accuracy: f64,
    pub correct: usize,
    pub per_class: Vec<ClassScore>,
    /// Rows: true class; columns: predicted class.
    pub confusion: Vec<Vec<usize>>,
    /// With several models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<Ensemble>,
}

/// One model's accuracy.
#[derive(Serialize, Clone, Debug)]
pub struct ModelScore {
    pub path: String,
    pub accuracy: f64,
    pub correct: usize,
}

/// One class's accuracy.
#[derive(Serialize, Clone, Debug)]
pub struct ClassScore {
    pub class: String,
    pub images: usize,
    pub correct: usize,
    /// `null` when the evaluated set has no image of this class.
    pub accuracy: Option<f64>,
}

/// An ensemble's figures.
#[derive(Serialize, Clone, Debug)]
pub struct Ensemble {
    pub models: usize,
    pub vote: Tally,
    pub average: Tally,
    /// How the vote breaks ties.
    pub tie_break: &'static str,
    /// Images on which the vote was tied.
    pub vote_ties: usize,
    /// Images on which the models did not all predict the same class.
    pub disagreements: usize,
}

/// Correct answers and their fraction.
#[derive(Serialize, Clone, Debug)]
pub struct Tally {
    pub accuracy: f64,
    pub correct: usize,
}

impl Tally {
    fn of(preds: &[usize], labels: &[usize]) -> Self {
        let correct = correct(preds, labels);
        Tally {
            accuracy: ratio(correct, labels.len()),
            correct,
        }
    }
}

/// The report of `runs` (one per model, named by `names`) on `ds`: each model's
/// accuracy and, for one model its per-class results and confusion matrix, for several
/// the vote's, with the ensemble's vote and averaged-probability figures.
pub fn report(
    names: &[String],
    runs: &[Predictions],
    ds: &Dataset,
    source: &str,
    set: EvalSet,
    classes: Vec<String>,
) -> Report {
    let n = ds.len();
    let labels = &ds.labels;
    let outputs = runs.first().map_or(0, |r| r.outputs);
    let models = names
        .iter()
        .zip(runs)
        .map(|(name, r)| {
            let t = Tally::of(&r.classes, labels);
            ModelScore {
                path: name.clone(),
                accuracy: t.accuracy,
                correct: t.correct,
            }
        })
        .collect();

    let (shown, of, ensemble) = if runs.len() == 1 {
        (runs[0].classes.clone(), "model", None)
    } else {
        let e = vote_and_average(runs);
        let ensemble = Ensemble {
            models: runs.len(),
            vote: Tally::of(&e.vote, labels),
            average: Tally::of(&e.average, labels),
            tie_break: TIE_BREAK,
            vote_ties: e.vote_ties,
            disagreements: e.disagreements,
        };
        (e.vote, "vote", Some(ensemble))
    };

    let s = score(&shown, labels, ds.classes, outputs);
    let per_class = s
        .per_class
        .iter()
        .enumerate()
        .map(|(k, &(images, correct))| ClassScore {
            class: classes[k].clone(),
            images,
            correct,
            accuracy: (images > 0).then(|| ratio(correct, images)),
        })
        .collect();
    Report {
        data: source.to_string(),
        set,
        images: n,
        classes,
        models,
        of,
        accuracy: ratio(s.correct, n),
        correct: s.correct,
        per_class,
        confusion: s.confusion,
        ensemble,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_on_images_the_model_has_seen_are_told() {
        use crate::io::model::TrainedOn;
        let on = |d: &str, split: &str| TrainedOn {
            dataset: d.into(),
            split: Some(split.into()),
            images: None,
        };
        let mnist = on("mnist", "official");
        // The embedded sample is MNIST training images.
        let w = overlap(Some(&mnist), "mnist-5k", EvalSet::Test).unwrap();
        assert!(w.contains("has seen them"), "{w}");
        assert!(overlap(None, "mnist-5k", EvalSet::Test).is_some());
        assert_eq!(overlap(Some(&mnist), "mnist", EvalSet::Test), None);
        assert_eq!(
            overlap(Some(&on("mnist-5k", "official")), "mnist-5k", EvalSet::Test),
            None
        );
        assert_eq!(
            overlap(Some(&on("mnist-5k", "official")), "mnist", EvalSet::Test),
            None
        );
        // The official split trains on the book's validation images.
        assert!(overlap(Some(&mnist), "mnist", EvalSet::Validation).is_some());
        assert_eq!(
            overlap(Some(&on("mnist", "book")), "mnist", EvalSet::Validation),
            None
        );
        // Asked for: no warning.
        assert_eq!(overlap(Some(&mnist), "mnist", EvalSet::Train), None);
        let file = on("b.safetensors", "official");
        assert!(overlap(Some(&file), "b.safetensors", EvalSet::Test).is_some());
        assert_eq!(overlap(Some(&file), "c.safetensors", EvalSet::Test), None);
    }

    fn run_of(classes: Vec<usize>, probs: Vec<f32>) -> Predictions {
        Predictions {
            classes,
            probs,
            outputs: 3,
        }
    }

    #[test]
    fn score_counts_and_confusion() {
        let s = score(&[0, 1, 1, 2], &[0, 1, 2, 2], 3, 4);
        assert_eq!(s.correct, 3);
        assert_eq!(s.per_class, vec![(1, 1), (1, 1), (2, 1)]);
        assert_eq!(s.confusion[2], vec![0, 1, 1, 0]);
        assert_eq!(s.confusion.iter().flatten().sum::<usize>(), 4);
    }

    #[test]
    fn vote_is_plurality_with_ties_to_the_higher_average() {
        // Image 0: votes 1, 1, 2 → 1. Image 1: votes 0, 2, 1, a three-way tie → the
        // highest averaged probability among them, class 2.
        let a = run_of(vec![1, 0], vec![]);
        let b = run_of(vec![1, 2], vec![]);
        let c = run_of(vec![2, 1], vec![]);
        let avg = [0.1, 0.5, 0.4, 0.2, 0.3, 0.5];
        let runs = [a, b, c];
        assert_eq!(vote(&runs, &avg[..3], 0), (1, false));
        assert_eq!(vote(&runs, &avg[3..], 1), (2, true));
        // Equal averages: the lowest index.
        assert_eq!(vote(&runs, &[0.0; 3], 1), (0, true));
    }

    #[test]
    fn the_average_can_disagree_with_the_vote() {
        // Two weak votes for class 0 against one confident vote for class 2.
        let runs = [
            run_of(vec![0], vec![0.4, 0.3, 0.3]),
            run_of(vec![0], vec![0.4, 0.3, 0.3]),
            run_of(vec![2], vec![0.0, 0.0, 1.0]),
        ];
        let e = vote_and_average(&runs);
        assert_eq!((e.vote, e.average), (vec![0], vec![2]));
        assert_eq!((e.vote_ties, e.disagreements), (0, 1));
    }

    #[test]
    fn a_report_of_one_model_scores_the_model() {
        let ds = Dataset::new("tiny", vec![0.0; 4], vec![0, 1, 1, 0], [1, 1, 1], 2).unwrap();
        let run = Predictions {
            classes: vec![0, 1, 0, 0],
            probs: vec![],
            outputs: 2,
        };
        let r = report(
            &["m".into()],
            &[run],
            &ds,
            "tiny",
            EvalSet::Test,
            vec!["a".into(), "b".into()],
        );
        assert_eq!((r.of, r.correct, r.accuracy), ("model", 3, 0.75));
        assert_eq!(r.confusion, vec![vec![2, 0], vec![1, 1]]);
        assert_eq!(r.per_class[1].accuracy, Some(0.5));
        assert!(r.ensemble.is_none());
    }

    #[test]
    fn a_network_must_fit_the_data() {
        let ds = Dataset::new("tiny", vec![0.0; 8], vec![0, 1], [1, 2, 2], 2).unwrap();
        let net = crate::spec::build("Flatten() -> Linear(4, 2)", &[1, 2, 2], 1).unwrap();
        assert_eq!(check_fits(&net, &ds), Ok(()));
        let narrow = crate::spec::build("Flatten() -> Linear(4, 1)", &[1, 2, 2], 1).unwrap();
        assert_eq!(
            check_fits(&narrow, &ds),
            Err(Misfit::Output {
                net: vec![1],
                classes: 2
            })
        );
        let other = crate::spec::build("Flatten() -> Linear(9, 2)", &[1, 3, 3], 1).unwrap();
        assert!(matches!(check_fits(&other, &ds), Err(Misfit::Input { .. })));
    }
}
