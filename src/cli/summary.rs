//! `seqnet summary`: the shape walk of a network, as a table or JSON.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use seqnet::summary::Summary;

use super::NetSource;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The network as text: `Conv2d(1, 20, 5) -> ReLU() -> ...`, or PyTorch's
    /// print(model) output (quote it, or pass - to read it from standard input).
    spec: Option<String>,
    /// The same as the SPEC argument, named as `seqnet train --spec` names it.
    #[arg(long = "spec", value_name = "SPEC", conflicts_with = "spec")]
    spec_flag: Option<String>,
    /// The shape of one input image, C×H×W. Default: 1x28x28, or the images of
    /// --dataset.
    #[arg(long, conflicts_with = "dataset")]
    input: Option<String>,
    /// Take the input shape from a dataset's images (as train would), e.g. --dataset
    /// cifar10 or --dataset my_images/ (a folder of class folders).
    #[arg(long)]
    dataset: Option<String>,
    /// Where to look for named datasets first.
    #[arg(long, requires = "dataset")]
    data_dir: Option<std::path::PathBuf>,
    /// With an image folder: scale its images to H×W, as train's --resize.
    #[arg(long, value_name = "HxW", requires = "dataset")]
    resize: Option<String>,
    /// With an image folder: one grey channel, as train's --grey.
    #[arg(long, requires = "dataset")]
    grey: bool,
    #[command(flatten)]
    source: NetSource,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // A preset's recipe: how `seqnet train --net NAME` trains it.
    let mut recipe = None;
    let spec = args.spec.as_ref().or(args.spec_flag.as_ref());
    let net = match (spec, &args.source.net, &args.source.model) {
        (Some(spec), None, None) => {
            let text = if spec == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading the spec from standard input")?
            } else {
                spec.clone()
            };
            let dims = match &args.dataset {
                Some(name) => {
                    let folder = seqnet::data::FolderOptions {
                        resize: args
                            .resize
                            .as_deref()
                            .map(super::train_recipe::parse_resize)
                            .transpose()?,
                        grey: args.grey,
                        ..Default::default()
                    };
                    let s = seqnet::data::load_test_splits_with(
                        Some(name),
                        args.data_dir.as_deref(),
                        &folder,
                    )?;
                    let test = s.test.context("the dataset has no test images")?;
                    eprintln!(
                        "input {} from {}",
                        seqnet::shape::fmt_shape(&test.shape),
                        s.source
                    );
                    test.shape.to_vec()
                }
                None => {
                    let input = seqnet::shape::parse_input_shape(
                        args.input.as_deref().unwrap_or("1x28x28"),
                    )?;
                    if let Some(note) = &input.note {
                        eprintln!("note: {note}");
                    }
                    input.dims
                }
            };
            seqnet::spec::build(&text, &dims, 0)?
        }
        (None, Some(name), None) => {
            let preset = seqnet::presets::get(name)?;
            recipe = Some((
                preset.name,
                preset.recipe.describe(preset.recipe.init_name()),
            ));
            seqnet::spec::build(preset.spec, &preset.input, 0)?
        }
        (None, None, Some(path)) => {
            let model = seqnet::io::model::load(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for w in &model.warnings {
                eprintln!("warning: {w}");
            }
            model.net
        }
        _ => bail!(
            "give exactly one network: a SPEC argument, --net PRESET or --model FILE; e.g. \
             seqnet summary 'Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2)' --input 1x28x28"
        ),
    };
    let summary = Summary::of(&net);
    if args.json {
        let mut json = serde_json::to_value(&summary)?;
        if let (Some((_, line)), Some(obj)) = (&recipe, json.as_object_mut()) {
            obj.insert("recipe".into(), line.clone().into());
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", summary.render());
        if let Some((name, line)) = &recipe {
            let text = format!(
                "recipe of `seqnet train --net {name}`: {line}. Options such as --lr or \
                 --epochs change it; networks given by --spec or --model train with seed's."
            );
            println!();
            for l in seqnet::summary::wrap_at(&text, Summary::WIDTH, " ") {
                println!("{l}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
