//! Interrupted runs: SIGINT saves a checkpoint and exits 130; a run killed with SIGKILL
//! at random moments and resumed, several times, ends with weights bitwise identical to
//! the same run left alone — with dropout, mid-epoch checkpoints and a different thread
//! count on resume.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seqnet::rng::Rng;

/// With BatchNorm, whose running statistics (and their I64 count) must resume exactly too.
const SPEC: &str = "Conv2d(1, 4, 5) -> BatchNorm2d(4) -> ReLU() -> MaxPool2d(2) -> Flatten() \
                    -> Dropout(0.3) -> LazyLinear(10)";

fn base_args(out: &str) -> Vec<String> {
    [
        "train",
        "--dataset",
        "mnist-5k",
        "--limit",
        "1200",
        "--epochs",
        "3",
        "--batch-size",
        "10",
        "--momentum",
        "0.9",
        "--spec",
        SPEC,
        "--quiet",
        "--checkpoint-every",
        "3",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `seqnet` in `dir` in the tests' clean environment (tests/support), stdout discarded,
/// stderr kept.
fn seqnet(dir: &Path) -> Command {
    let mut c = support::run::command(dir);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// The tensors of a model file, by name, as raw bytes (bitwise comparison).
fn weights(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect()
}

#[test]
fn sigkill_at_random_moments_then_resume_is_bitwise_exact() {
    killed_and_resumed_runs_end_as_one_left_alone(&[]);
}

/// The same with a recipe whose every step has its own learning rate and momentum
/// (OneCycle, stepped per mini-batch, cycling AdamW's β1) and a label-smoothed loss: the
/// schedule's position survives the kills too.
#[test]
fn onecycle_adamw_runs_resume_bitwise_exactly() {
    killed_and_resumed_runs_end_as_one_left_alone(&[
        "--optimizer",
        "adamw",
        "--schedule",
        "onecycle",
        "--max-lr",
        "0.005",
        "--label-smoothing",
        "0.1",
    ]);
}

/// Runs `base_args` plus `extra` once alone, then again killed with SIGKILL at random
/// moments and resumed until it finishes, alternating thread counts, and compares the
/// final weights bitwise.
fn killed_and_resumed_runs_end_as_one_left_alone(extra: &[&str]) {
    // A schedule that cycles the momentum is given none of its own.
    let base_args = |out: &str| {
        let mut args = base_args(out);
        if extra.contains(&"onecycle") {
            let m = args.iter().position(|a| a == "--momentum").unwrap();
            args.drain(m..m + 2);
        }
        args
    };
    let dir = tempfile::tempdir().unwrap();
    let t_alone = Instant::now();
    let status = seqnet(dir.path())
        .args(base_args("alone"))
        .args(extra)
        .args(["--threads", "1"])
        .status()
        .unwrap();
    assert!(status.success());
    let want = weights(&dir.path().join("alone/final.safetensors"));
    // Kill moments scale with the run's measured length, however fast this machine is;
    // each attempt gets at most about a third of it, so the run is killed several times.
    let alone_ms = t_alone.elapsed().as_millis().max(20) as usize;

    let mut rng = Rng::new(2024);
    let mut kills = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 60, "the run never finished");
        let started = dir.path().join("killed/config.json").exists();
        let mut cmd = seqnet(dir.path());
        if started {
            cmd.args(["train", "--resume", "killed", "--quiet"]);
        } else {
            cmd.args(base_args("killed")).args(extra);
        }
        // Alternate thread counts: the result must not depend on them.
        cmd.args(["--threads", if attempts % 2 == 0 { "1" } else { "2" }]);
        let mut child = cmd.spawn().unwrap();
        if kills < 6 {
            let wait = Duration::from_millis((alone_ms / 20 + rng.below(alone_ms * 3 / 10)) as u64);
            let t0 = Instant::now();
            while t0.elapsed() < wait {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "resume failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if dir.path().join("killed/final.safetensors").exists() {
            break;
        }
    }
    assert!(
        kills >= 2,
        "the test should have killed the run a few times, killed {kills}"
    );
    let got = weights(&dir.path().join("killed/final.safetensors"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(
            &got[name] == bytes,
            "tensor {name} differs after {kills} kills and resumes"
        );
    }
    let metrics = std::fs::read_to_string(dir.path().join("killed/metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        epochs,
        vec![1, 2, 3],
        "one metrics line per epoch, no duplicates"
    );
    // config.json holds the recipe as given, in full and in its line.
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("killed/config.json")).unwrap(),
    )
    .unwrap();
    let alone: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("alone/config.json")).unwrap(),
    )
    .unwrap();
    for key in [
        "recipe",
        "schedule",
        "optimizer",
        "label_smoothing",
        "weight_decay",
    ] {
        assert_eq!(config[key], alone[key], "{key}");
    }
    if extra.contains(&"onecycle") {
        assert_eq!(config["optimizer"], "adamw");
        assert_eq!(config["schedule"]["kind"], "onecycle");
        assert_eq!(config["schedule"]["max_lr"], 0.005);
        assert_eq!(config["label_smoothing"], 0.1);
        let line = config["recipe"].as_str().unwrap();
        assert!(
            line.starts_with("AdamW, OneCycle lr 0.0002 → 0.005 → 2e-8 per mini-batch"),
            "{line}"
        );
        assert!(line.contains("label smoothing 0.1"), "{line}");
    }
}

#[test]
fn sigint_saves_a_checkpoint_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args("run");
    let e = args.iter().position(|a| a == "--epochs").unwrap();
    args[e + 1] = "50".into();
    let mut child = seqnet(dir.path()).args(&args).spawn().unwrap();
    // Wait until training is under way (the first checkpoint exists), then interrupt.
    let t0 = Instant::now();
    while !dir.path().join("run/checkpoint.safetensors").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was interrupted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    // "seqnet train …", or "cargo run -- train …" as here under cargo test.
    assert!(err.contains(" train --resume run"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn resume_of_a_folder_that_is_not_a_run_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = seqnet(dir.path())
        .args(["train", "--resume", "nowhere"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("nowhere") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args("run");
    let lr = args.iter().position(|a| a == "--momentum").unwrap();
    args.splice(lr..lr + 2, ["--lr".to_string(), "1e35".to_string()]);
    let e = args.iter().position(|a| a == "--checkpoint-every").unwrap();
    args[e + 1] = "1".into();
    let out = seqnet(dir.path()).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("diverged") || err.contains("not finite"),
        "{err}"
    );
    assert!(err.contains("epoch") && err.contains("step"), "{err}");
    assert!(err.contains("smaller learning rate"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Whatever checkpoint exists holds finite weights only.
    let ckpt = dir.path().join("run/checkpoint.safetensors");
    if ckpt.exists() {
        for (name, bytes) in weights(&ckpt) {
            if name.starts_with("model.") {
                assert!(
                    bytes
                        .chunks_exact(4)
                        .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
                    "{name} is not finite in the kept checkpoint"
                );
            }
        }
    }
}

/// `--augment`: a run interrupted in its first epoch and resumed (on another thread
/// count) ends bitwise where the same run left alone ends: the augmentation of image i
/// in epoch e is drawn from the seed, e and i alone, and config.json brings `--augment`
/// back on resume.
#[test]
fn an_augmented_run_interrupted_and_resumed_is_bitwise_exact() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &str| {
        let mut a = base_args(out);
        let e = a.iter().position(|a| a == "--epochs").unwrap();
        a[e + 1] = "2".into();
        a.push("--augment".into());
        a
    };
    let status = seqnet(dir.path())
        .args(args("alone"))
        .args(["--threads", "1"])
        .status()
        .unwrap();
    assert!(status.success());
    let want = weights(&dir.path().join("alone/final.safetensors"));
    let config = std::fs::read_to_string(dir.path().join("alone/config.json")).unwrap();
    assert!(
        config.contains("RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)"),
        "{config}"
    );

    let mut child = seqnet(dir.path())
        .args(args("cut"))
        .args(["--threads", "2"])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.path().join("cut/checkpoint.safetensors").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was cut"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("cut/final.safetensors").exists());

    let out = seqnet(dir.path())
        .args(["train", "--resume", "cut", "--threads", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = weights(&dir.path().join("cut/final.safetensors"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(
            &got[name] == bytes,
            "tensor {name} differs after the resume"
        );
    }
}
