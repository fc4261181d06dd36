"""Task discovery through entry points, lookup, and every plugin error the registry reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_factory import working_plugin_source, write_distribution

from omg_core.errors import (
    DuplicateTaskError,
    PluginLoadError,
    PluginValidationError,
    TaskNotImplementedError,
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


def test_the_ten_builtin_tasks_are_discovered_through_entry_points() -> None:
    registry = discover_tasks()
    assert {handle.name: handle.info.aliases for handle in registry} == BUILTIN
    assert registry.problems == []
    for handle in registry:
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
    video = {h.name for h in registry if h.info.modality == "video"}
    assert video == {"video-semantic", "video-instance", "video-panoptic", "ov-vis"}
    prompted = {h.name for h in registry if h.info.prompt_kinds}
    assert prompted == {"interactive", "ov-interactive"}
    open_vocabulary = {h.name for h in registry if h.info.vocabulary == "open"}
    assert open_vocabulary == {"ov-seg", "ov-interactive", "ov-vis"}


def test_unknown_task_suggests_the_closest_names() -> None:
    registry = discover_tasks()
    with pytest.raises(UnknownTaskError, match=r"unknown task 'panoptc'.*Did you mean: panoptic"):
        registry.get("panoptc")
    with pytest.raises(UnknownTaskError, match=r"Did you mean: ov-vis"):
        registry.get("ov_vis")


def test_unimplemented_builtin_tasks_refuse_plainly() -> None:
    handle = discover_tasks().get("panoptic")
    assert handle.info.implemented is False
    with pytest.raises(TaskNotImplementedError, match="'panoptic' is registered but not implemented"):
        handle.encode_queries(request=None)  # type: ignore[arg-type]
    with pytest.raises(TaskNotImplementedError, match="decoding the model's outputs"):
        handle.decode_outputs(request=None, plan=None, outputs=None)  # type: ignore[arg-type]
    with pytest.raises(TaskNotImplementedError, match="writing its result files"):
        handle.write_results([], Path("."))


def test_throwaway_distribution_is_discovered_and_usable(plugin_site: Path) -> None:
    write_distribution(
        plugin_site, "omg-bright", "omg_bright", working_plugin_source("bright", ("br",)), {"bright": "omg_bright"}
    )
    registry = discover_tasks()
    handle = registry.get("br")
    assert handle.name == "bright"
    assert (handle.origin.distribution, handle.origin.version) == ("omg-bright", "0.1.0")
    assert len(registry) == len(BUILTIN) + 1
    metric = handle.create_metric({})
    import torch

    metric.update(torch.tensor([True, True, False]), torch.tensor([True, False, False]))
    assert metric.compute() == {"IoU": 0.5}


def test_two_distributions_claiming_one_alias_name_both(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-first", "omg_first", working_plugin_source("first", ("dup",)), {"first": "omg_first"})
    write_distribution(plugin_site, "omg-second", "omg_second", working_plugin_source("second", ("dup",)), {"second": "omg_second"})
    with pytest.raises(DuplicateTaskError) as raised:
        discover_tasks()
    message = str(raised.value)
    assert "'dup' is claimed twice" in message
    assert "omg-first" in message and "omg-second" in message
    assert "-p no:" in message


def test_plugin_claiming_a_builtin_name_is_a_duplicate(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-fake", "omg_fake", working_plugin_source("semantic"), {"fake": "omg_fake"})
    with pytest.raises(DuplicateTaskError, match="'semantic' is claimed twice") as raised:
        discover_tasks()
    assert "omg-seg 0.1.0" in str(raised.value) and "omg-fake 0.1.0" in str(raised.value)
    assert "-p no:fake" in str(raised.value) and "-p no:semantic" in str(raised.value)


def test_duplicate_can_be_resolved_by_blocking_one(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-fake", "omg_fake", working_plugin_source("semantic"), {"fake": "omg_fake"})
    registry = discover_tasks(plugins=["no:fake"])
    assert registry.get("semantic").origin.distribution == "omg-seg"


def test_plugin_that_fails_to_import_is_reported_and_others_still_load(plugin_site: Path) -> None:
    write_distribution(plugin_site, "omg-broken", "omg_broken", "import not_a_module_anywhere\n", {"broken": "omg_broken"})
    with pytest.warns(RuntimeWarning, match="broken"):
        registry = discover_tasks()
    assert len(registry) == len(BUILTIN)
    (problem,) = registry.problems
    message = str(problem)
    assert "'broken = omg_broken'" in message
    assert "omg-broken 0.1.0" in message
    assert "ModuleNotFoundError" in message and "not_a_module_anywhere" in message
    with pytest.raises(UnknownTaskError, match="failed to import"):
        registry.get("broken")


def test_plugin_missing_a_required_hook_is_refused(plugin_site: Path) -> None:
    source = working_plugin_source("partial").replace("@hookimpl\ndef omg_write_results", "def _no_write")
    write_distribution(plugin_site, "omg-partial", "omg_partial", source, {"partial": "omg_partial"})
    with pytest.warns(RuntimeWarning):
        registry = discover_tasks()
    (problem,) = registry.problems
    assert isinstance(problem.error, PluginValidationError)
    assert "does not implement the required hook(s) omg_write_results" in str(problem)
    assert "partial" not in registry


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
    with pytest.warns(RuntimeWarning):
        registry = discover_tasks()
    assert "omg_task_info returned dict, expected omg_core.TaskInfo" in str(registry.problems[0])


def test_hook_returning_the_wrong_type_is_named() -> None:
    registry = TaskRegistry()
    import types

    module = types.ModuleType("weird_plugin")
    exec(working_plugin_source("weird").replace("return QueryPlan(num_learned_queries=1)", "return 42"), module.__dict__)
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
    assert "ov-vis" not in registry and len(registry) == len(BUILTIN) - 1
