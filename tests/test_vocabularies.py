"""Built-in vocabularies (official synonym lists), --vocabulary parsing, seen/unseen flags, and the JSON generator."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from omg_core.errors import InputError
from omg_core.model.config import ModelConfig
from omg_core.model.prompt_templates import split_synonyms
from omg_core.model.vocabulary import (
    VOCABULARY_DIR,
    Vocabulary,
    list_vocabularies,
    load_vocabulary,
    merged_training_vocabulary,
    parse_class_list,
    parse_vocabulary,
    seen_flags,
    seen_override,
    vocabulary_from_classes,
)

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = ("coco", "ade20k", "cityscapes", "ytvis2019", "ytvis2021", "vipseg")


def official_calculate_class_overlapping(classes1: list[str], classes2: list[str]) -> list[bool]:
    """Transcription of OMG-Seg seg/models/utils/class_overlapping.py (classes1: training, classes2: test)."""
    words1 = [word for item in classes1 for word in item.split(",")]
    results = []
    for item in classes2:
        flag = False
        for word in item.split(","):
            if word in words1:
                flag = True
                break
        results.append(flag)
    return results


def _generator():
    spec = importlib.util.spec_from_file_location("gen_vocabularies", ROOT / "tools" / "gen_vocabularies.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_vocabularies"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ built-ins


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_vocabulary_files_are_consistent(name: str) -> None:
    document = json.loads((VOCABULARY_DIR / f"{name}.json").read_text())
    vocabulary = load_vocabulary(name)
    assert vocabulary.name == name and len(vocabulary) == len(document["classes"])
    assert vocabulary.num_things == document["num_things"]
    assert len(vocabulary) - vocabulary.num_things == document["num_stuff"]
    # Official order: every thing before every stuff class.
    assert list(vocabulary.is_thing) == sorted(vocabulary.is_thing, reverse=True)
    assert "1ae2e7d" in document["description"] and document["source"]["commit"].startswith("1ae2e7d")
    for text in vocabulary.texts:  # stored as the text tower normalises them: nothing left to rewrite
        assert text == ",".join(split_synonyms(text))


def test_test_scales_are_the_official_test_resizes() -> None:
    scales = {name: load_vocabulary(name).test_scale for name in BUILT_IN}
    assert scales == {"coco": (1333, 800), "ade20k": (2560, 640), "cityscapes": (2048, 1024),
                      "ytvis2019": (1280, 736), "ytvis2021": (1280, 736), "vipseg": (1280, 736)}


def test_coco_is_the_official_synonym_list_and_coco_panoptic_is_its_alias() -> None:
    coco = load_vocabulary("coco")
    assert load_vocabulary("coco_panoptic") == coco
    assert ModelConfig().default_vocabulary in list_vocabularies()
    assert load_vocabulary(ModelConfig().default_vocabulary).texts == coco.texts
    assert (len(coco), coco.num_things) == (133, 80)
    assert coco.dataset_names[0] == "person" and coco.dataset_names[-1] == "rug-merged"
    person = coco.texts[0].split(",")
    assert person[0] == "person" and {"child", "woman", "man", "people"} <= set(person)
    assert coco.texts[coco.dataset_names.index("bicycle")] == "bicycle,bicycles,bike,bikes"
    # The official list renames some COCO categories; dataset names stay the annotation file's.
    assert coco.texts[coco.dataset_names.index("orange")] == "orange fruit"


def test_vipseg_and_youtube_vis_texts_are_normalised_like_gen_cls() -> None:
    vipseg = load_vocabulary("vipseg")
    index = vipseg.dataset_names.index("parasol_or_umbrella")
    assert vipseg.texts[index] == "parasol,umbrella" and vipseg.is_thing[index]
    assert (len(vipseg), vipseg.num_things) == (124, 58)
    ytvis = load_vocabulary("ytvis2019")
    assert ytvis.texts[ytvis.dataset_names.index("earless_seal")] == "earless seal"
    assert all(ytvis.is_thing) and len(ytvis) == 40


def test_unknown_built_in_name_suggests_the_closest() -> None:
    with pytest.raises(InputError, match="did you mean 'ade20k'") as error:
        load_vocabulary("ade20")
    assert "cityscapes" in str(error.value)  # lists the built-ins
    with pytest.raises(InputError):
        load_vocabulary("../configs/vocabularies/coco")


# ------------------------------------------------------------------------------------------ --vocabulary


def test_parse_built_in_names_case_insensitively() -> None:
    assert parse_vocabulary(" COCO ") is load_vocabulary("coco")
    assert parse_vocabulary("coco_panoptic") == load_vocabulary("coco")


def test_parse_inline_classes_synonyms_and_stuff_marker() -> None:
    vocabulary = parse_vocabulary("cat,kitty; zebra ;sky,clouds:stuff;road : Thing")
    assert vocabulary.texts == ("cat,kitty", "zebra", "sky,clouds", "road")
    assert vocabulary.dataset_names == ("cat", "zebra", "sky", "road")
    assert vocabulary.is_thing == (True, True, False, True)
    assert vocabulary.test_scale is None
    assert parse_vocabulary("zebra;").texts == ("zebra",)  # one class, spelled with a trailing ';'
    assert parse_vocabulary("cat,kitty").texts == ("cat,kitty",)  # one class with a synonym


def test_parse_vocabulary_file(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\r\n\ncafé table, bistro table\n  zebra  \n# stuff below\nsky:stuff\n",
                    encoding="utf-8")
    vocabulary = parse_vocabulary(str(path))
    assert vocabulary.texts == ("café table,bistro table", "zebra", "sky")
    assert vocabulary.is_thing == (True, True, False)
    assert vocabulary.name == str(path)
    path.write_text("cat\ndog\n", encoding="utf-8-sig")  # as Windows editors save UTF-8
    assert parse_vocabulary(str(path)).texts == ("cat", "dog")


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty vocabulary"),
    ("   ", "empty vocabulary"),
    ("cat;;dog", "class 2 is blank"),
    (";cat", "class 1 is blank"),
    ("cat, ,dog", "blank synonym"),
    ("cat,,dog", "blank synonym"),
    ("Cat;cat", "class 2: 'cat' repeats 'Cat' of class 1"),
    ("cat,kitty;dog,Kitty ", "'Kitty' repeats 'kitty' of class 1"),
    ("cat,CAT", "repeats 'cat' in the same class"),
    ("wall_or_fence;Fence", "'Fence' repeats 'wall_or_fence'"),  # the text tower splits "_or_"
    ("sky:stufff;road", "unknown class marker ':stufff'"),
    ("cocoo", "did you mean 'coco'"),
    ("zebra", "for a one-class vocabulary write 'zebra;'"),
    ("no/such/classes.txt", "no such file"),
])
def test_parse_vocabulary_errors(spec: str, message: str) -> None:
    with pytest.raises(InputError, match="^--vocabulary: ") as error:
        parse_vocabulary(spec)
    assert message in str(error.value)


def test_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("cat\n# comment\ndog, ,puppy\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"^--classes: {path} line 3 .*blank synonym"):
        parse_vocabulary(str(path), option="--classes")
    path.write_text("cat\n\nKitty,cat\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"line 3: 'cat' repeats 'cat' of {path} line 1"):
        parse_vocabulary(str(path))
    path.write_text("cat;dog\n", encoding="utf-8")
    with pytest.raises(InputError, match="one class per line"):
        parse_vocabulary(str(path))
    path.write_bytes(b"cat\ndog\nz\xe8bre\n")  # Latin-1
    with pytest.raises(InputError, match=f"{path}: line 3 is not UTF-8"):
        parse_vocabulary(str(path))
    path.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="has no classes"):
        parse_vocabulary(str(path))


def test_vocabulary_from_a_list_of_classes() -> None:
    assert vocabulary_from_classes(["coco"]).texts == ("coco",)  # an element is a class, never a built-in name
    vocabulary = vocabulary_from_classes(["cat, kitty", "sky:stuff"], option="classes")
    assert vocabulary.texts == ("cat,kitty", "sky") and vocabulary.is_thing == (True, False)
    with pytest.raises(InputError, match="^classes: class 2: 'Cat' repeats 'cat' of class 1"):
        vocabulary_from_classes(["cat", "Cat"], option="classes")
    with pytest.raises(InputError, match="contains ';'"):
        vocabulary_from_classes(["cat;dog"])
    with pytest.raises(InputError, match="empty class list"):
        vocabulary_from_classes([])


def test_long_inline_vocabulary_is_not_mistaken_for_a_file() -> None:
    spec = ";".join(f"class number {index}" for index in range(100))  # longer than a file name may be
    assert len(parse_vocabulary(spec)) == 100


# ------------------------------------------------------------------------------------------ seen / unseen


@pytest.mark.parametrize(("test", "train"), [("ade20k", "coco"), ("coco", "ade20k"), ("vipseg", "coco"),
                                             ("cityscapes", "vipseg"), ("ytvis2021", "ytvis2019")])
def test_seen_flags_follow_the_official_word_overlap(test: str, train: str) -> None:
    test_texts, train_texts = load_vocabulary(test).texts, load_vocabulary(train).texts
    flags = seen_flags(test_texts, train_texts)
    assert flags == official_calculate_class_overlapping(list(train_texts), list(test_texts))
    assert 0 < sum(flags) < len(flags)  # the built-in pairs share some classes, not all


def test_released_training_vocabulary_merges_like_concat_ov_dataset() -> None:
    merged = merged_training_vocabulary()
    # The official demo's vocabulary for the released weights is named th139_st101.
    assert (merged.num_things, len(merged) - merged.num_things) == (139, 101)
    coco = load_vocabulary("coco")
    assert merged.texts[:80] == coco.texts[:80]  # COCO comes first and keeps all its things
    # VIPSeg "parasol,umbrella" maps onto COCO "umbrella,umbrellas": "parasol" is not a training word.
    assert not any("parasol" in text.split(",") for text in merged.texts)
    assert seen_flags(["parasol", "umbrella", "rider"], merged.texts) == [False, True, True]
    # Merging is per kind: VIPSeg's thing "window" does not merge into COCO's stuff "window".
    windows = [flag for text, flag in zip(merged.texts, merged.is_thing) if "window" in text.split(",")]
    assert sorted(windows) == [False, True]


def test_seen_flags_match_whole_synonyms_exactly() -> None:
    train = ["person,man", "traffic light"]
    assert seen_flags(["man,woman", "light", "Person", " man", "traffic light,signal"], train) == \
        [True, False, False, False, True]


def test_seen_override() -> None:
    vocabulary = parse_vocabulary("cat,kitty;dog;zebra")
    assert seen_override(vocabulary, ["kitty"], None) == [True, False, False]  # others unseen
    assert seen_override(vocabulary, None, ["ZEBRA"]) == [True, True, False]  # others seen
    assert seen_override(vocabulary, ["zebra"], ["cat,kitty"], default=[True, True, False]) == [False, True, True]
    assert seen_override(vocabulary, parse_class_list("cat;dog;", "--seen"), None) == [True, True, False]
    with pytest.raises(InputError, match="^--unseen: 'lion' is not a class of the vocabulary"):
        seen_override(vocabulary, ["cat"], ["lion"])
    with pytest.raises(InputError, match="^--unseen: 'dog' also given to --seen"):
        seen_override(vocabulary, ["dog"], ["dog"])
    with pytest.raises(InputError, match="did you mean 'zebra'"):
        seen_override(vocabulary, ["zebr"], None)
    with pytest.raises(InputError, match="^--seen: blank class"):
        parse_class_list("cat;;dog", "--seen")
    with pytest.raises(ValueError, match="3 classes"):
        seen_override(vocabulary, None, None, default=[True])


def test_vocabulary_checks_its_lengths() -> None:
    with pytest.raises(ValueError, match="one of each per class"):
        Vocabulary("x", ("a",), ("a", "b"), (True,))


# ------------------------------------------------------------------------------------------ generator


class _FakeMirror:
    """Stands in for gen_vocabularies.Mirror: official-layout sources held in memory."""

    commit = "1ae2e7d" + "0" * 33
    short_commit = "1ae2e7d"

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def module(self, path: str) -> ast.Module:
        return ast.parse(self.files[path])


def test_generator_reads_metainfo_thing_stuff_and_test_scale_with_ast() -> None:
    generator = _generator()
    dataset = (
        "from mmdet.datasets import CocoPanopticDataset\n"
        "class CityscapesPanopticDataset(CocoPanopticDataset):\n"
        "    METAINFO = {'classes': ('person,people', 'Traffic_light', 'sky'),\n"
        "                'thing_classes': ('person,people', 'Traffic_light'), 'stuff_classes': ('sky',)}\n"
    )
    config = ("image_size = (1280, 736)\n"
              "test_pipeline = [dict(type=LoadImageFromFile), dict(type=Resize, scale=image_size, keep_ratio=True)]\n")
    evaluation = "num_things_classes = 3\nnum_stuff_classes = 0\n"
    mirror = _FakeMirror({"seg/datasets/cityscapes.py": dataset,
                          "seg/configs/_base_/datasets/cityscapes_panoptic.py": config,
                          "seg/configs/m2ov_val/datasets/cityscapes.py": evaluation})
    spec = next(spec for spec in generator.SPECS if spec.name == "cityscapes")
    document, warnings = generator.build_vocabulary(mirror, spec)
    assert document["test_scale"] == [1280, 736]
    assert [c["text"] for c in document["classes"]] == ["person,people", "traffic light", "sky"]
    assert [c["dataset_name"] for c in document["classes"]] == ["person,people", "Traffic_light", "sky"]
    assert [c["isthing"] for c in document["classes"]] == [True, True, False]
    assert (document["num_things"], document["num_stuff"]) == (2, 1)
    assert warnings and "3 things / 0 stuff" in warnings[0]  # the eval config disagrees: reported, metainfo wins
    mirror.files["seg/datasets/cityscapes.py"] = dataset.replace("'stuff_classes': ('sky',)", "'stuff_classes': ()")
    with pytest.raises(ValueError, match="not thing_classes followed by stuff_classes"):
        generator.build_vocabulary(mirror, spec)


def test_generated_files_are_what_the_loader_reads(tmp_path: Path) -> None:
    generator = _generator()
    alias = generator.render(generator.alias_document("coco_panoptic", "coco"))
    assert alias == (VOCABULARY_DIR / "coco_panoptic.json").read_text()
    assert set(BUILT_IN) == {spec.name for spec in generator.SPECS}
    assert tuple(generator.COCO_PANOPTIC_NAMES) == load_vocabulary("coco").dataset_names


def test_shapes_world_vocabularies_follow_the_world_and_flag_the_held_out_classes_unseen() -> None:
    import subprocess
    import sys
    from pathlib import Path

    from omg_core.model.vocabulary import load_vocabulary, seen_flags
    from omg_data.synthetic.classes import HELD_OUT, shapes_world_categories

    tool = Path(__file__).resolve().parents[1] / "tools" / "gen_shapes_vocabulary.py"
    assert subprocess.run([sys.executable, str(tool), "--check"]).returncode == 0
    everything, seen = load_vocabulary("shapes-world"), load_vocabulary("shapes-world-seen")
    assert everything.texts == tuple(c.name for c in shapes_world_categories())
    flags = seen_flags(list(everything.texts), list(seen.texts))
    assert {text for text, flag in zip(everything.texts, flags) if not flag} == set(HELD_OUT)
