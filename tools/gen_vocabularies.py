"""Regenerate omg_core/configs/vocabularies/*.json from the official OMG-Seg sources.

The class lists (with their synonyms), the thing/stuff split and the test resize scale are read from a local
mirror of lxtGH/OMG-Seg with `git show <ref>:<path>` and parsed with `ast` (the official modules import mmdet and
are never imported or executed here).

    python tools/gen_vocabularies.py [--mirror /work/.mirror/lxtGH+OMG-Seg/repo] [--ref HEAD] [--check]

Class text: the official class string normalised the way tools/gen_cls.py (`split_label`) does before it fills the
prompt templates ("_or_" and "/" separate synonyms, "_" becomes a space, lower case), with the synonyms joined by
",". For COCO and ADE20K this is the official string unchanged; for VIPSeg "parasol_or_umbrella" becomes
"parasol,umbrella". `dataset_name` is the dataset's own category name: the COCO panoptic names (the official OV
list renames them), the raw VIPSeg / YouTube-VIS / Cityscapes names, and for ADE20K the first synonym (the official
ADE list is checked against the annotation file's names by first-synonym membership).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from omg_core.model.prompt_templates import split_synonyms  # noqa: E402 - needs the repository on sys.path

DEFAULT_MIRROR = Path("/work/.mirror/lxtGH+OMG-Seg/repo")
OUTPUT_DIR = REPO_ROOT / "omg_core" / "configs" / "vocabularies"
OFFICIAL_REPOSITORY = "lxtGH/OMG-Seg"

# COCO panoptic 2017 category names in category order (80 things, then 53 stuff): the names of
# panoptic_{train,val}2017.json. The official OV dataset keeps this order but replaces the names with synonym lists.
COCO_PANOPTIC_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
    "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door-stuff", "floor-wood", "flower", "fruit",
    "gravel", "house", "light", "mirror-stuff", "net", "pillow", "platform", "playingfield", "railroad", "river",
    "road", "roof", "sand", "sea", "shelf", "snow", "stairs", "tent", "towel", "wall-brick", "wall-stone",
    "wall-tile", "wall-wood", "water-other", "window-blind", "window-other", "tree-merged", "fence-merged",
    "ceiling-merged", "sky-other-merged", "cabinet-merged", "table-merged", "floor-other-merged", "pavement-merged",
    "mountain-merged", "grass-merged", "dirt-merged", "paper-merged", "food-other-merged", "building-other-merged",
    "rock-merged", "wall-other-merged", "rug-merged",
)


@dataclass(frozen=True)
class OfficialClasses:
    """raw_names: K official class strings in dataset order; is_thing: K flags; source: where they were read."""

    raw_names: tuple[str, ...]
    is_thing: tuple[bool, ...]
    source: str


class Mirror:
    """Reads files of one commit of the official repository mirror."""

    def __init__(self, git_dir: Path, ref: str) -> None:
        self.git_dir = git_dir
        self.commit = self._git("rev-parse", f"{ref}^{{commit}}").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.git_dir), *args], check=True, capture_output=True,
                              text=True).stdout

    def module(self, path: str) -> ast.Module:
        return ast.parse(self._git("show", f"{self.commit}:{path}"), filename=path)

    @property
    def short_commit(self) -> str:
        return self.commit[:7]


def _assigned_value(scope: ast.AST, name: str) -> ast.expr:
    """The value of the (unique) assignment `name = ...` anywhere inside scope."""
    values = [node.value for node in ast.walk(scope) if isinstance(node, ast.Assign)
              and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)]
    if len(values) != 1:
        raise LookupError(f"expected one assignment to {name!r}, found {len(values)}")
    return values[0]


def _class_def(module: ast.Module, name: str) -> ast.ClassDef:
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise LookupError(f"class {name!r} not found")


def _thing_stuff_metainfo(mirror: Mirror, path: str, class_name: str) -> OfficialClasses:
    """`classes` = `thing_classes` + `stuff_classes` from a dataset class's METAINFO literal."""
    metainfo = ast.literal_eval(_assigned_value(_class_def(mirror.module(path), class_name), "METAINFO"))
    classes, things, stuff = (tuple(metainfo[key]) for key in ("classes", "thing_classes", "stuff_classes"))
    if classes != things + stuff:
        raise ValueError(f"{path}: METAINFO classes are not thing_classes followed by stuff_classes")
    return OfficialClasses(classes, (True,) * len(things) + (False,) * len(stuff), f"{path} ({class_name}.METAINFO)")


def _youtube_vis(mirror: Mirror, year: str) -> OfficialClasses:
    path = "seg/datasets/youtube_vis_dataset.py"
    variable = f"classes_{year}_version"
    classes = tuple(ast.literal_eval(_assigned_value(mirror.module(path), variable)))
    # No thing/stuff split in the official metainfo: ConcatOVDataset treats `classes` as things.
    return OfficialClasses(classes, (True,) * len(classes), f"{path} (YouTubeVISDatasetV2.{variable})")


def _vipseg(mirror: Mirror) -> OfficialClasses:
    dataset_path, names_path = "seg/datasets/vipseg.py", "ext/class_names/VIPSeg.py"
    metainfo = _assigned_value(_class_def(mirror.module(dataset_path), "VIPSegDataset"), "METAINFO")
    referenced = {key.value: value.id for key, value in zip(metainfo.keys, metainfo.values)
                  if isinstance(key, ast.Constant) and isinstance(value, ast.Name)}
    if referenced.get("classes") != "COCO_CLASSES":
        raise ValueError(f"{dataset_path}: VIPSegDataset.METAINFO['classes'] is no longer COCO_CLASSES")
    names = mirror.module(names_path)
    # COCO_CLASSES = [*COCO_THINGS, *COCO_STUFF], the names of CLASSES_THING then CLASSES_STUFF.
    things = tuple(item["name"] for item in ast.literal_eval(_assigned_value(names, "CLASSES_THING")))
    stuff = tuple(item["name"] for item in ast.literal_eval(_assigned_value(names, "CLASSES_STUFF")))
    return OfficialClasses(things + stuff, (True,) * len(things) + (False,) * len(stuff),
                           f"{names_path} (CLASSES_THING + CLASSES_STUFF, VIPSegDataset.METAINFO)")


def _test_scale(mirror: Mirror, path: str) -> tuple[int, int]:
    """The `scale` of the Resize step in a dataset config's test_pipeline: (long side, short side)."""
    module = mirror.module(path)
    pipeline = _assigned_value(module, "test_pipeline")
    scales = [keyword.value for call in ast.walk(pipeline) if isinstance(call, ast.Call)
              for keyword in call.keywords if keyword.arg == "scale"
              and any(k.arg == "type" and isinstance(k.value, ast.Name) and k.value.id == "Resize"
                      for k in call.keywords)]
    if len(scales) != 1:
        raise ValueError(f"{path}: expected one Resize(scale=...) in test_pipeline, found {len(scales)}")
    scale = scales[0]
    if isinstance(scale, ast.Name):
        scale = _assigned_value(module, scale.id)
    long_side, short_side = ast.literal_eval(scale)
    return int(long_side), int(short_side)


def _num_things_in_eval_config(mirror: Mirror, path: str) -> tuple[int, int]:
    module = mirror.module(path)
    return (ast.literal_eval(_assigned_value(module, "num_things_classes")),
            ast.literal_eval(_assigned_value(module, "num_stuff_classes")))


@dataclass(frozen=True)
class VocabularySpec:
    name: str
    title: str
    read_classes: Callable[[Mirror], OfficialClasses]
    test_config: str
    eval_config: str
    dataset_names: tuple[str, ...] | None = None  # None: first normalised synonym (ADE20K) or the raw name


SPECS: tuple[VocabularySpec, ...] = (
    VocabularySpec("coco", "COCO panoptic 2017 (80 things, 53 stuff)",
                   lambda m: _thing_stuff_metainfo(m, "seg/datasets/coco_ov.py", "CocoPanopticOVDataset"),
                   "seg/configs/_base_/datasets/coco_panoptic_lsj.py", "seg/configs/m2ov_val/datasets/coco.py",
                   COCO_PANOPTIC_NAMES),
    VocabularySpec("ade20k", "ADE20K panoptic, 150 classes (100 things, 50 stuff)",
                   lambda m: _thing_stuff_metainfo(m, "seg/datasets/ade_ov.py", "ADEPanopticOVDataset"),
                   "seg/configs/_base_/datasets/ade_panoptic_ov.py", "seg/configs/m2ov_val/datasets/ade.py"),
    VocabularySpec("cityscapes", "Cityscapes panoptic, 19 classes (8 things, 11 stuff)",
                   lambda m: _thing_stuff_metainfo(m, "seg/datasets/cityscapes.py", "CityscapesPanopticDataset"),
                   "seg/configs/_base_/datasets/cityscapes_panoptic.py",
                   "seg/configs/m2ov_val/datasets/cityscapes.py"),
    VocabularySpec("ytvis2019", "YouTube-VIS 2019, 40 classes (all things)", lambda m: _youtube_vis(m, "2019"),
                   "seg/configs/_base_/datasets/youtube_vis_2019.py", "seg/configs/m2ov_val/datasets/y19.py"),
    VocabularySpec("ytvis2021", "YouTube-VIS 2021, 40 classes (all things)", lambda m: _youtube_vis(m, "2021"),
                   "seg/configs/_base_/datasets/youtube_vis_2021.py", "seg/configs/m2ov_val/datasets/y21.py"),
    VocabularySpec("vipseg", "VIPSeg, 124 classes (58 things, 66 stuff)", _vipseg,
                   "seg/configs/_base_/datasets/vipseg.py", "seg/configs/m2ov_val/datasets/vipseg.py"),
)

# Names kept loadable for configs written before the official lists: alias -> vocabulary.
ALIASES: dict[str, str] = {"coco_panoptic": "coco"}


def build_vocabulary(mirror: Mirror, spec: VocabularySpec) -> tuple[dict, list[str]]:
    """The JSON document of one vocabulary and the warnings found while building it."""
    official = spec.read_classes(mirror)
    texts = [",".join(split_synonyms(raw)) for raw in official.raw_names]
    if spec.dataset_names is not None:
        if len(spec.dataset_names) != len(texts):
            raise ValueError(f"{spec.name}: {len(spec.dataset_names)} dataset names for {len(texts)} classes")
        dataset_names = list(spec.dataset_names)
    elif spec.name == "ade20k":
        dataset_names = [text.split(",")[0] for text in texts]
    else:
        dataset_names = list(official.raw_names)
    warnings = []
    num_things = sum(official.is_thing)
    config_things, config_stuff = _num_things_in_eval_config(mirror, spec.eval_config)
    if (config_things, config_stuff) != (num_things, len(texts) - num_things):
        warnings.append(f"{spec.name}: {spec.eval_config} says {config_things} things / {config_stuff} stuff, the "
                        f"dataset metainfo {num_things} / {len(texts) - num_things}; the metainfo split is used")
    test_scale = _test_scale(mirror, spec.test_config)
    description = (
        f"{spec.title} in the official OMG-Seg class order, from {OFFICIAL_REPOSITORY} commit {mirror.short_commit}: "
        f"classes and thing/stuff split from {official.source}, test_scale (long, short) from the test_pipeline "
        f"Resize of {spec.test_config}. 'text' is the official class string as tools/gen_cls.py normalises it for "
        "CLIP (synonyms separated by ','); 'dataset_name' is the dataset's category name. "
        "Generated by tools/gen_vocabularies.py; do not edit by hand."
    )
    if warnings:
        description += " Note: " + "; ".join(warnings) + "."
    document = {
        "name": spec.name,
        "description": description,
        "source": {"repository": OFFICIAL_REPOSITORY, "commit": mirror.commit, "classes": official.source,
                   "test_scale": spec.test_config},
        "test_scale": list(test_scale),
        "num_things": num_things,
        "num_stuff": len(texts) - num_things,
        "classes": [{"dataset_name": name, "text": text, "isthing": is_thing}
                    for name, text, is_thing in zip(dataset_names, texts, official.is_thing)],
    }
    return document, warnings


def alias_document(alias: str, target: str) -> dict:
    return {"name": alias, "alias_of": target,
            "description": f"Alias of the '{target}' vocabulary (same classes, texts and order), kept so that "
                           f"configs naming '{alias}' still load. Generated by tools/gen_vocabularies.py."}


def render(document: dict) -> str:
    return json.dumps(document, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="bare git mirror of lxtGH/OMG-Seg")
    parser.add_argument("--ref", default="HEAD", help="commit or ref to read (default HEAD)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--check", action="store_true", help="only report files that would change (exit 1 if any)")
    args = parser.parse_args(argv)

    mirror = Mirror(args.mirror, args.ref)
    outputs: dict[str, str] = {}
    for spec in SPECS:
        document, warnings = build_vocabulary(mirror, spec)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        outputs[f"{spec.name}.json"] = render(document)
    for alias, target in ALIASES.items():
        outputs[f"{alias}.json"] = render(alias_document(alias, target))

    stale = []
    for file_name, text in outputs.items():
        path = args.output_dir / file_name
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(file_name)
        if not args.check:
            path.write_text(text)
    verb = "would change" if args.check else "written"
    print(f"{len(stale)} file(s) {verb}: {', '.join(stale) or '-'} (official commit {mirror.short_commit})")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
