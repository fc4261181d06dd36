"""Writes omg_core/weights/embedded/MODEL_CARD.md from what the runs measured.

    python tools/model_card.py --clip-card runs/clip-tiny/clip_card.json --clip-card runs/clip-tiny-r/clip_card.json \
        --train-run runs/shapes-tiny \
        --train-wall-s 2400 --quality quality.json [--clip-eval clip_eval.json] [--out .../MODEL_CARD.md]

Every number in the card comes from these files: the CLIP runs' cards (one per stage, in order) (steps, minutes, zero-shot accuracy), the
OMG run's train_log.jsonl (steps, evaluations), its wall time, `tools/quality_table.py --json` output, and
`python -m omg_core.clip_train.zero_shot WEIGHTS --json` output for the shipped CLIP (else the last card's figures).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omg_core.clip_train.train import TrainSettings
from omg_core.weights.hub import EMBEDDED_DIR, EMBEDDED_WEIGHTS
from omg_data.synthetic.classes import COLOURS, HELD_OUT, SHAPES, STUFF


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


# Settings a card may predate: their value in runs made before they existed.
_PREDATING = {"region_batch_size": 0, "init": None}


def clip_command(card: dict) -> str:
    """The command that repeats a CLIP run: every setting that differs from today's defaults."""
    settings = {**_PREDATING, **card["settings"]}
    defaults = TrainSettings(out="")
    parts = ["python -m omg_core.clip_train.train", f"--out {settings['out']}", f"--minutes {settings['minutes']:g}",
             f"--steps {card['steps']}"]
    for name, value in settings.items():
        if name in ("out", "minutes", "steps") or not hasattr(defaults, name) or value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "")
        else:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(part for part in parts if part)


def clip_stage_row(card: dict) -> str:
    settings = {**_PREDATING, **card["settings"]}
    losses = "contrastive + vocabulary loss"
    data = (f"shapes-world scenes, thing / stuff / isolated-thing crops at {card['image_size']} px with ViLD-template "
            f"captions, batch {card['batch_size']}")
    if settings["region_batch_size"]:
        losses += " + region loss"
        data += (f"; {settings['region_batch_size']} whole {settings.get('region_image_size', 128)} px scenes a step, "
                 "every segment mask-pooled")
    start = f", from `{settings['init']}`" if settings["init"] else ""
    return (f"| CLIP ({losses}{start}) | {data}, lr {settings['lr']:g} | {card['steps']} | {card['seed']} | "
            f"{card['minutes']:.1f} min |")


def quality_rows(quality: dict) -> list[str]:
    rows = ["| figure | measured | target | met |", "| --- | ---: | ---: | --- |"]
    for figure in quality["figures"]:
        sign = "%" if "accuracy" in figure["figure"] else ""
        measured = "n/a" if figure["measured"] is None else f"{figure['measured']:.1f}{sign}"
        rows.append(f"| {figure['figure']} | {measured} | ≥ {figure['target']:g}{sign} | "
                    f"{'met' if figure['met'] else 'missed'} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip-card", type=Path, required=True, action="append",
                        help="a CLIP run's clip_card.json; repeat for each training stage, in order")
    parser.add_argument("--train-run", type=Path, required=True)
    parser.add_argument("--train-wall-s", type=float, required=True, help="wall time of `omg train`, seconds")
    parser.add_argument("--quality", type=Path, required=True)
    parser.add_argument("--clip-eval", type=Path, help="python -m omg_core.clip_train.zero_shot ... --json output")
    parser.add_argument("--notes", type=Path, help="markdown appended as the card's last section (limits, misses)")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DIR / "MODEL_CARD.md")
    arguments = parser.parse_args(argv)

    stages = [json.loads(path.read_text()) for path in arguments.clip_card]
    clip = stages[-1]
    quality = json.loads(arguments.quality.read_text())
    log = [json.loads(line) for line in (arguments.train_run / "train_log.jsonl").read_text().splitlines()]
    steps = max(record["step"] for record in log if record.get("kind") == "train")
    weights = EMBEDDED_DIR / EMBEDDED_WEIGHTS["omg-tiny"]
    evaluated = json.loads(arguments.clip_eval.read_text()) if arguments.clip_eval else clip
    zero_shot = evaluated["zero_shot"]
    crops = evaluated.get("masked_crop_zero_shot")
    region = evaluated.get("region_zero_shot")
    last_out = clip["settings"]["out"]
    lines = [
        "# omg-tiny: the embedded default model",
        "",
        "OMG-Seg's architecture at toy scale, trained here on the procedural shapes world "
        "(`omg_data.synthetic.ShapesWorld`), so that every task runs offline with real results. "
        f"`{weights.name}` ({weights.stat().st_size / 2**20:.1f} MB: the CLIP in float16, widened to float32 on load, the head in float32) holds the "
        "frozen CLIP and the trained head; `create_model(\"omg-tiny\", pretrained=True)`, "
        "`OMGPredictor.from_pretrained(\"omg-tiny\")` and `omg run` load it with no download.",
        "",
        "## The model",
        "",
        "- **Frozen CLIP** `omg-tiny-convnext-atto` (an open_clip config in `omg_core/configs/open_clip/`): "
        "convnext_atto image tower (stages of 40/80/160/320 channels), a 2-layer 128-wide text transformer, "
        "a 64-d joint space; 10.2 M parameters, most of them the 49,408 x 128 token embedding.",
        "- **Head** (trained, 0.63 M parameters): 2 deformable-attention pixel-decoder layers and 6 masked-attention "
        "decoder layers, all 64 wide, 32 learned queries (a scene has at most 12 segments: 6 things, a crowd, "
        "5 stuff regions), SAM-style point/box prompt encoding, the CLIP-text classifier with the FC-CLIP ensemble.",
        "- **Open-vocabulary classifier**: the FC-CLIP geometric ensemble (alpha 0.4, beta 0.8) of the trained "
        "classifier and the frozen CLIP, which sees each thing mask as a *masked crop*: the mask's box with a 20% "
        "margin, everything outside the mask painted grey, resized to 64 px (how the CLIP's isolated-thing training "
        "crops look) and embedded by the whole CLIP image tower. OMG-Seg pools stride-32 features under the mask "
        "instead; at 128 px that grid is 4 x 4 and the tiny CLIP's pooled features carry no shape (table below). "
        "Stuff keeps the trained classifier's score (the CLIP never saw a masked stuff region). The ensemble runs "
        "on every task, closed ones too (`open_vocabulary.ensemble = \"always\"`, as FC-CLIP evaluates; OMG-Seg "
        "ensembles open-vocabulary runs only): the masked crops name things' shapes better than the trained "
        "classifier does. The CLIP's logits use the temperature it learned (20; `clip_temperature = \"clip\"`): "
        "at OMG-Seg's 100 its softmax was overconfident and outvoted the trained classifier's right colours.",
        "",
        "## The world",
        "",
        f"- {len(COLOURS) * len(SHAPES)} thing classes, colour x shape ({', '.join(COLOURS)} x {', '.join(SHAPES)}), "
        f"and {len(STUFF)} stuff classes ({', '.join(STUFF)}); scenes have 2-6 overlapping, rotated things, "
        "sometimes a crowd, over textured stuff; videos move them in and out of view.",
        f"- **Held-out classes** ({', '.join(HELD_OUT)}): the CLIP saw their images and words; the segmenter never "
        "saw them as labelled pixels (their pixels are ignored in training) and was trained against the 63-class "
        "`shapes-world-seen` vocabulary. The open-vocabulary figures below are measured on them only.",
        "",
        "## Reproducing it (2 CPU cores)",
        "",
        "```",
        *[clip_command(card) for card in stages],
        f"omg train --config configs/train/shapes-tiny.yaml   # with model.clip_weights: ../../{last_out}/clip.safetensors",
        "python tools/pack_embedded.py runs/shapes-tiny/model.safetensors",
        "```",
        "",
        "As shipped, `configs/train/shapes-tiny.yaml` takes its frozen CLIP from the packaged file, so "
        "`omg train --config configs/train/shapes-tiny.yaml` alone retrains the head on the same CLIP.",
        "",
        "| stage | data | steps | seed | wall time (2 cores) |",
        "| --- | --- | ---: | ---: | ---: |",
        *[clip_stage_row(card) for card in stages],
        f"| OMG head (co-training) | `configs/train/shapes-tiny.yaml`: 7 families at 128 px, batch 4, lr 2e-4 | "
        f"{steps} | 0 | {arguments.train_wall_s / 60:.1f} min |",
        "",
        "## CLIP zero-shot accuracy",
        "",
        f"Single-thing crops of world seed {zero_shot['world_seed']} ({zero_shot['per_class']} per class), "
        "classified against all 64 thing classes with the ViLD prompt templates:",
        "",
        "| seen classes | held-out classes | colour right | shape right |",
        "| ---: | ---: | ---: | ---: |",
        f"| {percent(zero_shot['seen'])} | {percent(zero_shot['held_out'])} | {percent(zero_shot['colour'])} | "
        f"{percent(zero_shot['shape'])} |",
        "",
        *([] if crops is None or region is None else [
            f"The things of {region['scenes']} whole {region['image_size']} px scenes of the same world seed, each "
            "seen through its ground-truth mask, two ways: as omg-tiny's classifier sees it (masked crop) and as "
            "OMG-Seg's sees it (CLIP features pooled under the mask):",
            "",
            "| CLIP input | seen classes | held-out classes | colour right | shape right |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| masked crop, {crops['crop_size']} px | {percent(crops['seen'])} | {percent(crops['held_out'])} | "
            f"{percent(crops['colour'])} | {percent(crops['shape'])} |",
            f"| pooled features | {percent(region['seen'])} | {percent(region['held_out'])} | "
            f"{percent(region['colour'])} | {percent(region['shape'])} |",
            "",
        ]),
        "## Quality",
        "",
        f"Measured by `python tools/quality_table.py --num {quality['num_samples']} --json ...` on world seed "
        f"{quality['seed']} (never drawn in training), {quality['image_size'][0]} x {quality['image_size'][1]} px, "
        f"{quality['num_samples']} scenes per figure, scored by `omg_eval`:",
        "",
        *quality_rows(quality),
        "",
    ]
    if arguments.notes is not None:
        lines += [arguments.notes.read_text().rstrip(), ""]
    arguments.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
