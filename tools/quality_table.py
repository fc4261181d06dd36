"""The quality table of a model on a held-out shapes world: twelve figures against their targets, as markdown.

Usage:
  python tools/quality_table.py [--weights FILE] [--model omg-tiny] [--seed 4242] [--num 16] [--json OUT]
                                [--device cpu] [--image-size 128 128] [--threads 1]
                                [--train-config FILE | --train-config none]

Without --weights the named model runs with its released weights, or with seeded random weights when it has none (the
figures then describe the plumbing, not a model). What each figure measures: omg_core/train/quality.py.

The seed must be one training never drew scenes from: the seeds of --train-config's datasets (and their
training-evaluation seeds) are refused; by default the shipped configs/train/shapes-tiny.yaml is checked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN_CONFIG = ROOT / "configs" / "train" / "shapes-tiny.yaml"
DEFAULT_SEED = 4242


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="a safetensors weights file (or folder)")
    parser.add_argument("--model", default=None, help="model name (default omg-tiny); with --weights: its config")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"world seed (default {DEFAULT_SEED})")
    parser.add_argument("--num", type=int, default=16, help="scenes per figure (default 16)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch (default 1: omg-tiny gains little from more, and on a busy machine "
                             "two OpenMP threads waiting on each other made it 30x slower; raise it for big models)")
    parser.add_argument("--train-config", default=str(DEFAULT_TRAIN_CONFIG),
                        help="refuse the world seeds this training config uses ('none': no check)")
    return parser.parse_args(argv)


def check_seed(seed: int, train_config: str) -> None:
    """InputError when `seed` is a world seed of the training config (skipped for 'none' or a missing default)."""
    from omg_core.errors import InputError
    from omg_core.train.config import load_train_config
    from omg_core.train.quality import training_world_seeds

    if train_config.lower() == "none":
        return
    path = Path(train_config)
    if not path.exists():
        if path == DEFAULT_TRAIN_CONFIG:
            return
        raise InputError(f"--train-config {path}: no such file; give the training config or 'none'")
    if seed in training_world_seeds(load_train_config(path)):
        raise InputError(f"--seed {seed} is a world seed of {path}: its scenes were seen in training; pick another "
                         "seed (small integers are never training seeds)")


def main(argv: list[str] | None = None) -> int:
    import warnings

    from omg_core.errors import InputError, OMGError
    from omg_core.model.predictor import OMGPredictor, check_device
    from omg_core.train.quality import measure_quality

    args = parse_args(argv)
    started = time.perf_counter()
    try:
        if args.num < 1:
            raise InputError(f"--num must be >= 1, got {args.num}")
        if min(args.image_size) < 32:
            raise InputError(f"--image-size must be at least 32 32, got {args.image_size[0]} {args.image_size[1]}")
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
        check_seed(args.seed, args.train_config)
        device = check_device(args.device)
        if args.weights is not None and not args.weights.exists():
            raise InputError(f"--weights {args.weights}: no such file")
        torch.manual_seed(0)  # a model without released weights gets the same random weights every run
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.weights is not None:
                predictor = OMGPredictor.from_pretrained(args.weights, device, model_name=args.model)
            else:
                predictor = OMGPredictor.from_pretrained(args.model or "omg-tiny", device)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        report = measure_quality(predictor, args.seed, args.num, tuple(args.image_size))
    except (InputError, OMGError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    model = str(args.weights) if args.weights is not None else (args.model or "omg-tiny")
    print(report.markdown())
    print()
    print(f"{model}: {report.support()}; {elapsed:.1f} s")
    if args.json is not None:
        document = {"model": model, "wall_s": round(elapsed, 2), **report.to_json()}
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
