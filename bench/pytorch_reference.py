#!/usr/bin/env python3
"""PyTorch's side of `seqnet bench`: the same network, data, batch size, thread count,
warm-up and timing method, printing the same line:

    train_img_per_s X  infer_img_per_s Y  peak_rss_mb Z

Training: the net's optimiser at a constant learning rate (plain SGD for the book's
nets; AdamW with weight decay 0.01 for fast-mnist, as `seqnet bench` does) on the
training images in file order (wrapping around), not augmented, `--warmup` images
untimed, then `--images` images timed; each step is zero_grad, forward, cross_entropy,
backward, step. Inference: the test set in batches of `--infer-batch`
under torch.inference_mode(), forward and argmax, after one untimed batch.

The images are read from the same IDX files as seqnet (gzipped or not) and kept as
uint8, as torchvision's MNIST keeps them; each batch is converted to float32 / 255.
`--store f32` keeps the whole set as float32 instead (what seqnet's Dataset does).

Usage: pytorch_reference.py --net book-relu --batch-size 64 --threads 2 [--dataset DIR]
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def book_convs():
    """The book's two convolution layers with ReLU and pooling: 1x28x28 -> 40x4x4."""
    return [
        nn.Conv2d(1, 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 40, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    ]


NETS = {
    "book-relu": lambda: nn.Sequential(
        *book_convs(),
        nn.Linear(640, 100),
        nn.ReLU(),
        nn.Linear(100, 10),
    ),
    "book-dropout": lambda: nn.Sequential(
        *book_convs(),
        nn.Dropout(0.5),
        nn.Linear(640, 1000),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1000, 1000),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1000, 10),
    ),
    # Two blocks of two 3x3 convolutions without bias, each followed by BatchNorm2d and
    # ReLU, max-pooling after each block: 1x28x28 -> 64x4x4 (src/presets.rs).
    "fast-mnist": lambda: nn.Sequential(
        nn.Conv2d(1, 32, 3, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1024, 10),
    ),
    "seed": lambda: nn.Sequential(
        nn.Conv2d(1, 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2880, 100),
        nn.ReLU(),
        nn.Linear(100, 10),
    ),
}
# The presets' learning rates and optimisers (src/presets.rs, src/recipe.rs); fast-mnist's
# rate is its OneCycle peak, held constant here.
LR = {"book-relu": 0.03, "book-dropout": 0.03, "seed": 0.05, "fast-mnist": 0.003}
ADAMW = {"fast-mnist": 0.01}  # weight decay; the other nets train with plain SGD


def optimizer(net, params, lr):
    if net in ADAMW:
        return torch.optim.AdamW(params, lr=lr, weight_decay=ADAMW[net])
    return torch.optim.SGD(params, lr=lr)


def read_idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rb") as f:
                data = f.read()
            break
    else:
        sys.exit(f"missing {path}[.gz]")
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(dataset):
    def images(name):
        x = torch.from_numpy(read_idx(os.path.join(dataset, name)).copy())
        return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])

    def labels(name):
        return torch.from_numpy(read_idx(os.path.join(dataset, name)).astype(np.int64))

    return (
        images("train-images-idx3-ubyte"),
        labels("train-labels-idx1-ubyte"),
        images("t10k-images-idx3-ubyte"),
        labels("t10k-labels-idx1-ubyte"),
    )


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def as_float(x):
    return x if x.dtype == torch.float32 else x.float().div_(255.0)


def train(model, opt, xs, ys, cursor, count, bs):
    n = xs.shape[0]
    done, loss = 0, float("nan")
    while done < count:
        take = min(bs, count - done)
        if cursor + take <= n:
            x, y = xs[cursor : cursor + take], ys[cursor : cursor + take]
        else:
            idx = torch.arange(cursor, cursor + take) % n
            x, y = xs[idx], ys[idx]
        cursor = (cursor + take) % n
        opt.zero_grad()
        out = model(as_float(x))
        l = F.cross_entropy(out, y)
        l.backward()
        opt.step()
        loss = l.detach()
        done += take
    return cursor, float(loss)


def infer(model, xs, ys, count, bs):
    correct = 0
    with torch.inference_mode():
        for s in range(0, count, bs):
            x, y = xs[s : min(s + bs, count)], ys[s : min(s + bs, count)]
            correct += int((model(as_float(x)).argmax(1) == y).sum())
    return correct


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="book-relu", choices=sorted(NETS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=12_800)
    ap.add_argument("--warmup", type=int, default=640)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument(
        "--dataset", default=os.environ.get("SEQNET_DATA", "/work/shared/data/mnist")
    )
    ap.add_argument("--infer-batch", type=int, default=1000)
    ap.add_argument("--infer-images", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--store", choices=["u8", "f32"], default="u8")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr, xte, yte = load(a.dataset)
    if a.store == "f32":
        xtr, xte = as_float(xtr), as_float(xte)
    model = NETS[a.net]()
    opt = optimizer(a.net, model.parameters(), a.lr or LR[a.net])

    train_ips, train_cpu, final_loss = 0.0, 0.0, float("nan")
    if a.images > 0:
        model.train()
        cursor, _ = train(model, opt, xtr, ytr, 0, a.warmup, a.batch_size)
        t0, c0 = time.perf_counter(), time.process_time()
        _, final_loss = train(model, opt, xtr, ytr, cursor, a.images, a.batch_size)
        train_ips = a.images / max(time.perf_counter() - t0, 1e-9)
        train_cpu = a.images / max(time.process_time() - c0, 1e-9)

    n_inf = min(a.infer_images if a.infer_images is not None else len(xte), len(xte))
    infer_ips, infer_cpu = 0.0, 0.0
    if n_inf > 0:
        model.eval()
        infer(model, xte, yte, min(a.infer_batch, n_inf), a.infer_batch)
        t0, c0 = time.perf_counter(), time.process_time()
        infer(model, xte, yte, n_inf, a.infer_batch)
        infer_ips = n_inf / max(time.perf_counter() - t0, 1e-9)
        infer_cpu = n_inf / max(time.process_time() - c0, 1e-9)

    report = {
        "net": a.net,
        "batch_size": a.batch_size,
        "threads": a.threads,
        "optimizer": "adamw" if a.net in ADAMW else "sgd",
        "train_images": a.images,
        "infer_images": n_inf,
        "train_img_per_s": train_ips,
        "infer_img_per_s": infer_ips,
        # Per second of CPU time (all threads): the work without a loaded machine's waits.
        "train_img_per_cpu_s": train_cpu,
        "infer_img_per_cpu_s": infer_cpu,
        "peak_rss_mb": peak_rss_mb(),
        "final_loss": final_loss,
        "torch": torch.__version__,
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(
            f"train_img_per_s {train_ips:.0f}  infer_img_per_s {infer_ips:.0f}  "
            f"peak_rss_mb {report['peak_rss_mb']:.1f}"
        )


if __name__ == "__main__":
    main()
