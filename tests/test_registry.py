"""Task discovery through entry points, lookup, and every plugin error the registry reports."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from plugin_factory import line_of, raising_plugin_source, working_plugin_source, write_distribution

from omg_core.errors import (
    DuplicateTaskError,
    InputError,
    PluginHookError,
    PluginLoadError,
    PluginValidationError,
    TaskUnavailableError,
    UnknownTaskError,
)
from omg_core.registry import TaskRegistry, discover_tasks

BUILTIN = {
    "semantic": ("ss",),
    "instance": ("is",),
    "panoptic": ("ps",),
    "interactive": ("int",),
    "video-semantic": ("vss",),
    "video-instance": ("vis",),
    "video-panoptic": ("vps",),
    "ov-seg": (),
    "ov-interactive": (),
    "ov-vis": (),
}
# Task plugins installed beside the core (plugins/omg-salient in CI): every discovery finds them too.
INSTALLED = {h.name: h.info.aliases for h in discover_tasks() if h.origin.distribution != "omg-seg"}
EVERY = {**BUILTIN, **INSTALLED}


def test_the_ten_builtin_tasks_are_discovered_through_entry_points() -> None:
    registry = discover_tasks()
    assert {handle.name: handle.info.aliases for handle in registry} == EVERY
    assert registry.problems == []
    for handle in registry:
        if handle.name in BUILTIN:
            assert handle.origin.distribution == "omg-seg"
            assert handle.origin.entry_point.startswith(f"{handle.name} = omg_tasks.")


def test_lookup_by_alias_and_canonical_name_gives_the_same_task() -> None:
    registry = discover_tasks()
    for name, aliases in BUILTIN.items():
        for alias in aliases:
            assert registry.get(alias) is registry.get(name)
    assert registry.get("OV-VIS").name == "ov-vis"


def test_modalities_prompts_and_vocabularies_match_the_paper_tasks() -> None:
    registry = discover_tasks()
    video = {h.name for h in registry if h.info.modality == "video" and h.origin.distribution == "omg-seg"}
    assert video == {"video-semantic", "video-instance", "video-panoptic", "ov-vis"}
    prompted = {h.name for h in registry if h.info.prompt_kinds and h.origin.distribution == "omg-seg"}
    assert prompted == {"interactive", "ov-interactive"}
    open_vocabulary = {h.name for h in registry if h.info.vocabulary == "open" and h.origin.distribution == "omg-seg"}
    assert open_vocabulary == {"ov-seg", "ov-interactive", "ov-vis"}


def test_unknown_task_suggests_the_closest_names() -> None:
    registry = discover_tasks()
    with pytest.raises(UnknownTaskError, match=r"unknown task 'panoptc'.*Did you mean: panoptic"):
        registry.get("panoptc")
    with pytest.raises(UnknownTaskError, match=r"Did you mean: ov-vis"):
        registry.get("ov_vis")


def test_every_builtin_task_is_implemented_and_has_its_formats() -> None:
    registry = discover_tasks()
    for name in EVERY:
        handle = registry.get(name)
        assert handle.info.implemented, name
        # writing needs no task code: the built-in writers serve the task's result family
        assert registry.formats_for(handle.info)[0] == handle.info.output_formats[0], name
    assert registry.formats_for(registry.get("panoptic").info)[:2] == ["coco-panoptic", "semantic-png"]


def test_throwaway_distribution_is_discovered_and_usable(plugin_site: Path) -> None:
    write_distribution(
        plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright", ("br",)), {"bright": "omg_bright"}
    )
    registry = discover_tasks()
    handle = registry.get("br")
    assert handle.name == "bright"
    assert (handle.origin.distribution, handle.origin.version) == ("omg-bright", "0.1.0")
    assert len(registry) == len(EVERY) + 1
    metric = handle.create_metric({})
    import torch

    metric.update(torch.tensor([True, True, False]), torch.tensor([True, False, False]))
    assert metric.compute() == {"IoU": 0.5}


def discover_quietly(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would repeat the problem (and point into registry.py)
        return discover_tasks(**kwargs)


def write_first_and_second(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-first", "omg_first", working_plugin_source("first", ("dup",)), {"first": "omg_first"})
    write_distribution(plugin_site, "omg-second", "omg_second", working_plugin_source("second", ("dup",)), {"second": "omg_second"})


def test_two_distributions_claiming_one_alias_are_both_left_out_and_the_rest_works(plugin_site: Path) -> None:
    write_first_and_second(plugin_site)
    registry = discover_quietly()
    assert {handle.name for handle in registry} == set(EVERY)
    (problem,) = registry.problems
    assert problem.kind == "collision" and isinstance(problem.error, DuplicateTaskError)
    assert [origin.distribution for origin in problem.claimants] == ["omg-first", "omg-second"]
    assert problem.fixes == ("-p no:first", "-p no:second")
    message = str(problem)
    assert "task name 'dup' is claimed twice" in message
    assert "omg-first 0.1.0" in message and "omg-second 0.1.0" in message
    assert "All of them are left out" in message and "block it with -p no:first or -p no:second" in message
    assert registry.get("ss").name == "semantic"
    for name in ("dup", "first", "second"):
        with pytest.raises(TaskUnavailableError, match=f"task '{name}' is unavailable: a name collision left it out: task name 'dup' is claimed twice"):
            registry.get(name)


def test_blocking_one_claimant_gives_the_name_to_the_other(plugin_site: Path) -> None:
    write_first_and_second(plugin_site)
    registry = discover_quietly(plugins=["no:second"])
    assert registry.problems == []
    assert registry.get("dup").name == "first" and "second" not in registry


def test_plugin_claiming_a_builtin_name_leaves_both_out(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-fake", "omg_fake", working_plugin_source("semantic"), {"fake": "omg_fake"})
    registry = discover_quietly()
    assert {handle.name for handle in registry} == set(EVERY) - {"semantic"}
    (problem,) = registry.problems
    assert "'semantic' is claimed twice" in str(problem)
    assert "omg-seg 0.1.0" in str(problem) and "omg-fake 0.1.0" in str(problem)
    assert "-p no:fake or -p no:semantic" in str(problem)
    with pytest.raises(TaskUnavailableError, match="claimed twice"):
        registry.get("ss")  # the builtin's alias: the whole task is left out, not only the contested name
    assert registry.get("panoptic").origin.distribution == "omg-seg"


def test_duplicate_can_be_resolved_by_blocking_either_entry_point(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-fake", "omg_fake", working_plugin_source("semantic"), {"fake": "omg_fake"})
    registry = discover_quietly(plugins=["no:fake"])
    assert registry.get("semantic").origin.distribution == "omg-seg" and registry.problems == []
    # An entry-point name blocks that entry point only, not every task called so: the fake keeps 'semantic'.
    registry = discover_quietly(plugins=["no:semantic"])
    assert registry.get("semantic").origin.distribution == "omg-fake" and registry.problems == []
    assert "ss" not in registry


def test_asking_for_a_blocked_task_names_the_option_that_blocks_it() -> None:
    registry = discover_quietly(plugins=["no:semantic"])
    with pytest.raises(TaskUnavailableError, match="-p no:semantic blocks it; drop that option"):
        registry.get("semantic")


def test_two_distributions_with_one_entry_point_name_are_blocked_by_distribution(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-fork", "omg_fork", working_plugin_source("semantic"), {"semantic": "omg_fork"})
    registry = discover_quietly()
    (problem,) = registry.problems
    assert problem.fixes == ("-p no:omg-fork:semantic", "-p no:omg-seg:semantic")
    registry = discover_quietly(plugins=["no:omg-fork:semantic"])
    assert registry.get("ss").origin.distribution == "omg-seg" and registry.problems == []


def test_three_claimants_and_several_names_are_one_problem(plugin_site: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        source = working_plugin_source(name, ("shared", "common"))
        write_distribution(plugin_site, f"omg-{name}", f"omg_{name}", source, {name: f"omg_{name}"})
    registry = discover_quietly()
    (problem,) = registry.problems
    assert "task names 'shared', 'common' are claimed 3 times" in str(problem)
    assert problem.fixes == ("-p no:alpha", "-p no:beta", "-p no:gamma")
    assert len(registry) == len(EVERY)


def test_register_in_code_still_refuses_a_taken_name() -> None:
    import types

    registry = TaskRegistry()
    for name in ("one", "two"):
        module = types.ModuleType(f"{name}_plugin")
        exec(working_plugin_source(name, ("same",)), module.__dict__)
        if name == "one":
            registry.register(module)
        else:
            with pytest.raises(DuplicateTaskError, match="'same' is claimed twice"):
                registry.register(module)
    assert registry.get("same").name == "one" and registry.problems == []


BROKEN_SOURCE = "import os\n\nimport not_a_module_anywhere\n"


def test_plugin_that_fails_to_import_is_reported_once_with_its_file_and_line(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-broken", "omg_broken", BROKEN_SOURCE, {"broken": "omg_broken"})
    registry = discover_quietly()
    assert len(registry) == len(EVERY)
    (problem,) = registry.problems
    assert problem.kind == "import" and isinstance(problem.error, PluginLoadError)
    message = str(problem)
    assert "'broken = omg_broken'" in message
    assert "omg-broken 0.1.0" in message
    assert "ModuleNotFoundError" in message and "not_a_module_anywhere" in message
    assert f"(at {plugin_site / 'omg_broken' / '__init__.py'}:3)" in message
    assert "registry.py" not in message
    with pytest.raises(TaskUnavailableError, match="task 'broken' is unavailable: its plugin failed to load") as raised:
        registry.get("broken")
    assert "__init__.py:3" in str(raised.value) and "-p no:broken" in str(raised.value)
    assert "Did you mean" not in str(raised.value)


def test_import_failure_location_is_the_innermost_frame_inside_the_plugin_package(plugin_site: Path) -> None:
    # The error is raised in json (outside the plugin), called from the plugin's helpers module line 3.
    write_distribution(plugin_site, "omg-deep", "omg_deep", "from omg_deep import helpers\n", {"deep": "omg_deep"})
    (plugin_site / "omg_deep" / "helpers.py").write_text("import json\n\nSETTINGS = json.loads('{')\n")
    write_distribution(plugin_site, "omg-syntax", "omg_syntax", "x = 1\ndef oops(:\n", {"syntax": "omg_syntax"})
    registry = discover_quietly()
    deep, syntax = registry.problems
    assert f"(at {plugin_site / 'omg_deep' / 'helpers.py'}:3)" in str(deep)
    assert "JSONDecodeError" in str(deep)
    assert "SyntaxError" in str(syntax) and f"(at {plugin_site / 'omg_syntax' / '__init__.py'}:2)" in str(syntax)


def test_plugin_missing_a_required_hook_is_refused(plugin_site: Path) -> None:
    source = working_plugin_source("partial").replace("@hookimpl\ndef omg_create_metric", "def _no_metric")
    write_distribution(plugin_site, "omg-partial", "omg_partial", source, {"partial": "omg_partial"})
    registry = discover_quietly()
    (problem,) = registry.problems
    assert problem.kind == "invalid" and isinstance(problem.error, PluginValidationError)
    assert "does not implement the required hook(s) omg_create_metric" in str(problem)
    assert "partial" not in registry
    with pytest.raises(TaskUnavailableError, match="its plugin was refused: .*omg_create_metric"):
        registry.get("partial")


def test_hook_with_a_parameter_the_spec_lacks_is_refused() -> None:
    from omg_core import hookimpl

    class WrongSignature:
        @hookimpl
        def omg_task_info(self, verbose):  # the spec has no 'verbose'
            raise AssertionError("never called")

    with pytest.raises(PluginValidationError, match="hook omg_task_info takes parameter.s. verbose that its spec does not offer"):
        TaskRegistry().register(WrongSignature())

    class WrongDecodeSignature:
        @hookimpl
        def omg_decode_outputs(self, request, logits):
            raise AssertionError("never called")

    with pytest.raises(PluginValidationError, match="may take any of: request, plan, outputs"):
        TaskRegistry().register(WrongDecodeSignature())


def test_misspelled_and_undecorated_hooks_are_refused() -> None:
    from omg_core import hookimpl

    class Misspelled:
        @hookimpl
        def omg_task_infos(self):
            raise AssertionError

    with pytest.raises(PluginValidationError, match="omg_task_infos, which is no OMG hook; did you mean omg_task_info"):
        TaskRegistry().register(Misspelled())

    class Undecorated:
        def omg_task_info(self):
            raise AssertionError

    with pytest.raises(PluginValidationError, match="without the @omg_core.hookimpl decorator"):
        TaskRegistry().register(Undecorated())


def test_task_info_must_be_a_task_info(plugin_site: Path) -> None:
    source = working_plugin_source("dicty").replace(
        "    return TaskInfo(name=TASK_NAME,", "    return dict(name=TASK_NAME,"
    )
    write_distribution(plugin_site, "omg-dicty", "omg_dicty", source, {"dicty": "omg_dicty"})
    registry = discover_quietly()
    assert "omg_task_info returned dict, expected omg_core.TaskInfo" in str(registry.problems[0])


def test_hook_returning_the_wrong_type_is_named() -> None:
    registry = TaskRegistry()
    import types

    module = types.ModuleType("weird_plugin")
    exec(working_plugin_source("weird").replace("return QueryPlan(learned_queries=True)", "return 42"), module.__dict__)
    handle = registry.register(module)
    with pytest.raises(PluginValidationError, match="omg_encode_queries returned int, expected QueryPlan"):
        handle.encode_queries(request=None)  # type: ignore[arg-type]


def test_autoload_can_be_disabled_and_plugins_named_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMG_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert len(discover_tasks()) == 0
    registry = discover_tasks(plugins=["semantic", "omg_tasks.ov_vis:plugin"])
    assert sorted(h.name for h in registry) == ["ov-vis", "semantic"]
    assert registry.get("semantic").origin.distribution == "omg-seg"  # loaded through its entry point


def test_explicit_plugin_that_cannot_load_is_an_error() -> None:
    with pytest.raises(PluginLoadError, match="-p no_such_plugin_module"):
        discover_tasks(plugins=["no_such_plugin_module"])
    with pytest.raises(PluginLoadError, match="contradict"):
        discover_tasks(plugins=["semantic", "no:semantic"])


def test_blocking_a_builtin_task() -> None:
    registry = discover_tasks(plugins=["no:ov-vis"])
    assert "ov-vis" not in registry and len(registry) == len(EVERY) - 1


def test_hook_raising_an_omg_error_passes_through_unchanged(plugin_site: Path) -> None:
    source = raising_plugin_source("glow", "omg_encode_queries", 'raise InputError("glow needs RGB")')
    write_distribution(plugin_site, "omg-glow", "omg_glow", source, {"glow": "omg_glow"})
    with pytest.raises(InputError, match="^glow needs RGB$"):
        discover_quietly().get("glow").encode_queries(request=None)  # type: ignore[arg-type]


def test_hook_raising_any_other_exception_names_the_task_and_the_hook(plugin_site: Path) -> None:
    source = raising_plugin_source("glow", "omg_create_metric", 'raise ValueError("threshold must be positive")')
    write_distribution(plugin_site, "omg-glow", "omg_glow", source, {"glow": "omg_glow"})
    with pytest.raises(PluginHookError) as raised:
        discover_quietly().get("glow").create_metric({})
    error = raised.value
    assert (error.task, error.hook) == ("glow", "omg_create_metric")
    assert isinstance(error.__cause__, ValueError)
    assert str(error).startswith("task 'glow' hook omg_create_metric raised ValueError: threshold must be positive")
    line = line_of(source, "threshold must be positive")
    assert f"(at {plugin_site / 'omg_glow' / '__init__.py'}:{line})" in str(error)
    assert "omg-glow 0.1.0" in str(error)
