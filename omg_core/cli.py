"""The ``omg`` command line: ``omg tasks``, ``omg run``, ``omg eval`` and the commands other packages contribute."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from omg_core import __version__
from omg_core.errors import OMGError, TaskNotImplementedError

# Subcommands that live in other packages, imported only when used so `omg tasks` stays fast.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "eval": ("omg_eval.cli", "eval_command", "evaluate predictions with every task's official metric"),
    "data": ("omg_data.cli", "data_group", "generate synthetic datasets (the shapes world)"),
    "convert": ("omg_core.weights.cli", "convert_command", "convert the official OMG-Seg checkpoint to safetensors"),
    "doctor": ("omg_core.doctor", "doctor_command", "show torch/CUDA, compilers and the fused kernels' builds"),
    "train": ("omg_core.train.cli", "train_command", "co-train the model on every dataset of a config (torchrun: DDP)"),
}

EXIT_SOME_FAILED = 1  # omg run: some inputs failed, the others were written
EXIT_USER_ERROR = 2
EXIT_NOT_IMPLEMENTED = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

stderr = Console(stderr=True, soft_wrap=True)  # error lines stay whole for grep and tests


class OMGGroup(click.Group):
    """Loads contributed subcommands lazily and turns OMG errors into one clear line instead of a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in LAZY_COMMANDS:
            return command
        module_name, attribute, help_text = LAZY_COMMANDS[name]
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            return _unavailable_command(name, help_text, f"{module_name}.{attribute} is not available ({exc})")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Lists contributed subcommands from their LAZY_COMMANDS help text: `omg --help` imports none of them."""
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                rows.append((name, LAZY_COMMANDS[name][2]))
            else:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TaskNotImplementedError as exc:
            stderr.print(f"[bold red]not implemented:[/] {escape(str(exc))}", highlight=False)
            ctx.exit(EXIT_NOT_IMPLEMENTED)
        except OMGError as exc:
            stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            ctx.exit(EXIT_USER_ERROR)


def _unavailable_command(name: str, help_text: str, reason: str) -> click.Command:
    @click.command(name=name, help=f"{help_text} (not yet implemented)", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def unavailable(args: tuple[str, ...]) -> None:
        raise TaskNotImplementedError(f"`omg {name}` is not implemented yet: {reason}")

    return unavailable


@click.group(cls=OMGGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="omg")
@click.option(
    "-p",
    "plugins",
    multiple=True,
    metavar="NAME",
    help="load a task plugin (module or entry-point name); '-p no:NAME' blocks one. Repeatable.",
)
@click.pass_context
def main(ctx: click.Context, plugins: tuple[str, ...]) -> None:
    """OMG: one model for every segmentation task."""
    ctx.obj = {"plugins": plugins, "registry": None}


def get_registry(ctx: click.Context):  # -> TaskRegistry
    from omg_core.registry import cached_registry

    return cached_registry(ctx.find_root().obj)


@main.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON instead of a table")
@click.pass_context
def tasks_command(ctx: click.Context, as_json: bool) -> None:
    """List the registered tasks and the plugins that failed to load."""
    registry = get_registry(ctx)
    # why a task's default format cannot hold its results (None: it can), for the table, its notes and --json
    format_problems = {handle.name: registry.default_format_problem(handle.info) for handle in registry}
    if as_json:
        payload = {
            "tasks": [
                {
                    **handle.info.model_dump(mode="json"),
                    "formats": registry.formats_for(handle.info),  # every installed writer of its result family
                    # a video task implementing omg_open_video_stream: decodes long videos tube by tube
                    "streams": handle.info.modality == "video" and handle.can_stream,
                    "format_problem": format_problems[handle.name],  # null: its default format works
                    "distribution": handle.origin.distribution,
                    "version": handle.origin.version,
                    "entry_point": handle.origin.entry_point,
                }
                for handle in registry
            ],
            "problems": [
                {
                    "kind": p.kind,  # import, invalid or collision
                    "entry_point": p.origin.entry_point,
                    "distribution": p.origin.distribution,
                    "error": str(p),
                    "names": list(p.names),  # what `omg run --task` would have found
                    "plugins": [
                        {"entry_point": o.entry_point, "distribution": o.distribution, "version": o.version}
                        for o in (p.claimants or (p.origin,))
                    ],
                    "fixes": list(p.fixes),  # the -p no:... that leaves out each plugin
                }
                for p in registry.problems
            ],
            "slow_imports": registry.slow_imports,  # plugins importing torch as they load (they still work)
        }
        click.echo(json.dumps(payload, indent=2))
        return
    table = Table(title=f"OMG tasks ({len(registry)})")
    for column in ("task", "aliases", "modality", "prompts", "vocabulary", "metrics", "distribution", "status"):
        table.add_column(column)
    for handle in registry:
        info = handle.info
        table.add_row(
            info.name,
            ", ".join(info.aliases) or "-",
            info.modality,
            ", ".join(info.prompt_kinds) or "-",
            info.vocabulary,
            ", ".join(info.metrics),
            f"{handle.origin.distribution or handle.origin.module or '?'} {handle.origin.version or ''}".rstrip(),
            "[yellow]not implemented[/]" if not info.implemented
            else "[yellow]no writer[/]" if format_problems[handle.name] else "ready",
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    labels = {"import": "plugin failed", "invalid": "plugin refused", "collision": "plugin conflict"}
    for problem in registry.problems:  # each once; the tasks above work regardless
        stderr.print(f"[bold red]{labels.get(problem.kind, 'plugin failed')}:[/] {escape(str(problem))}", highlight=False)
    for note in registry.slow_imports:
        stderr.print(f"[bold yellow]slow plugin import:[/] {escape(note)}", highlight=False)
    for handle in registry:  # listed, but `omg run` would refuse it before building the model
        if handle.info.implemented and (trouble := format_problems[handle.name]):
            stderr.print(f"[bold yellow]task {handle.name!r} cannot write results:[/] {escape(trouble)}",
                         highlight=False)


@main.command("run")
@click.option("--task", "task_name", help="task name or alias (see `omg tasks`)")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="an image or image folder; a video file, frame folder, folder of videos, or YouTube-VIS/DAVIS root")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), help="directory for the result files")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="run config (YAML or JSON)")
@click.option("--model", "model_name", help="model config name (default: omg-tiny)")
@click.option("--weights", type=click.Path(path_type=Path), help="safetensors weights file")
@click.option(
    "--vocabulary",
    help="open-vocabulary tasks: a built-in vocabulary (coco, ade20k, cityscapes, ytvis2019, ytvis2021, vipseg, "
    "shapes-world, shapes-world-seen), a text "
    "file (one class per line), or inline classes separated by ';' with synonyms by ',' (\"cat,kitten;traffic cone\")",
)
@click.option("--seen", help="open vocabulary: classes to score as seen in training, ';'-separated (others unseen)")
@click.option("--unseen", help="open vocabulary: classes to score as unseen in training, ';'-separated (others seen)")
@click.option("--prompts", type=click.Path(path_type=Path),
              help='interactive tasks: a JSON file of prompts in pixels, one per output mask: {"points": [[[x, y], ...], '
              '...], "point_labels": [[1, 0, ...], ...], "boxes": [[x0, y0, x1, y1], ...]} (labels 1 positive, 0 '
              "negative; points, boxes or both)")
@click.option("--format", "output_format", help="output format (default: the task's first)")
@click.option("--overwrite", is_flag=True, default=None,
              help="allow a non-empty output directory (files this run rewrites are replaced; others stay)")
@click.option("--overlays", is_flag=True, default=None, help="also draw each result over its input in OUTPUT/overlays")
@click.option("--device", help="cpu (default), cuda or cuda:N")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), help="compute precision (default float32)")
@click.option("--size", help="test-time resize: LONGxSHORT (e.g. 1333x800), SHORT (e.g. 800: the short side), or "
              "'native' (default: the model's setting); sides 32-8192")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable summary (JSON) on stdout")
@click.option("--video-mode", type=click.Choice(["auto", "offline", "stream"]),
              help="videos: offline (whole, the official results), stream (tube by tube, flat memory) or auto "
              "(default: stream videos longer than --stream-min-frames)")
@click.option("--stream-min-frames", type=int, help="auto video mode: stream videos of more frames (default 100)")
@click.option(
    "--option",
    "task_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="a task option (repeatable; see `omg tasks --json`); VALUE is read as YAML (0.5, true, [1, 2]) and overrides "
    "the config's task.options",
)
@click.pass_context
def run_command(ctx: click.Context, **options: Any) -> None:
    """Run a task on images or videos and write its results (under torchrun, the inputs are shared out over the ranks)."""
    from rich.progress import Progress

    from omg_core.config import RunConfig, merge_overrides, read_run_config_data, validate_config
    from omg_core.pipeline import run_task

    config_path: Path | None = options["config_path"]
    data = read_run_config_data(config_path) if config_path else {}
    vocabulary = options["vocabulary"]
    overrides = {
        "task.name": options["task_name"],
        "input": _absolute(options["input_path"]),
        "output": _absolute(options["output_dir"]),
        "model.name": options["model_name"],
        "model.weights": _absolute(options["weights"]),
        "task.vocabulary": vocabulary,
        "task.seen": options["seen"],
        "task.unseen": options["unseen"],
        "model.device": options["device"],
        "model.dtype": options["dtype"],
        "model.size": options["size"],
        "task.prompts": _absolute(options["prompts"]),
        "task.output_format": options["output_format"],
        "overwrite": options["overwrite"],
        "overlays": options["overlays"],
        "video_mode": options["video_mode"],
        "stream_min_frames": options["stream_min_frames"],
    }
    merged = merge_overrides(data, overrides)
    if options["task_options"]:
        task_section = merged.setdefault("task", {})
        if not isinstance(task_section, dict):
            raise click.UsageError("the config's 'task' must be a mapping to take --option")
        task_section["options"] = {**(task_section.get("options") or {}), **_parse_task_options(options["task_options"])}
    missing = [flag for key, flag in (("task", "--task"), ("input", "--input"), ("output", "--output"))
               if key not in merged or (key == "task" and "name" not in merged["task"])]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (give them as options or in --config)")
    config = validate_config(merged, RunConfig, str(config_path) if config_path else "command line")
    origins = []  # where the task options came from, for the error that names a bad one
    if config_path is not None and isinstance(data.get("task"), dict) and data["task"].get("options"):
        origins.append(str(config_path))
    if options["task_options"]:
        origins.append("--option")
    from omg_core.pipeline import RunInterrupted
    from omg_eval.sharding import distributed_from_environment, is_main_process

    try:
        # under torchrun (WORLD_SIZE > 1) each rank runs its share of the inputs; rank 0 writes the gathered files
        with distributed_from_environment(), Progress(
            console=stderr, transient=True, disable=not stderr.is_terminal
        ) as progress:
            bar = progress.add_task(f"{config.task.name}", total=None)
            frames = progress.add_task("frames", total=None, visible=False)

            def show_frames(done: int, total: int) -> None:  # a video's frames, tube by tube
                progress.update(frames, completed=done, total=total, visible=done < total)

            summary = run_task(
                config,
                get_registry(ctx),
                on_sample=lambda done, total: progress.update(bar, completed=done, total=total),
                options_source=" and ".join(origins) or "task options",
                on_frames=show_frames,
            )
            main_process = is_main_process()
        if not main_process:
            return
    except RunInterrupted as interrupted:
        stderr.print(f"[bold yellow]{escape(str(interrupted))}[/]", highlight=False)
        if options["as_json"]:
            click.echo(json.dumps({**interrupted.summary.to_json(), "interrupted": True}, indent=2))
        ctx.exit(EXIT_INTERRUPTED)
    for failure in summary.failed:
        stderr.print(f"[bold red]failed:[/] {escape(str(failure.source))}: {escape(failure.reason)}", highlight=False)
    if options["as_json"]:
        click.echo(json.dumps(summary.to_json(), indent=2))
    else:
        click.echo(f"{summary.task}: {summary.num_succeeded} of {summary.num_samples} sample(s) done, wrote "
                   f"{len(summary.written)} file(s) to {config.output}")
        if config.overlays:
            click.echo(f"{len(summary.overlays)} overlay picture(s) in {config.output / 'overlays'}")
    if config.overlays and summary.samples_without_overlay:
        stderr.print(
            f"[bold yellow]warning:[/] no installed plugin draws {escape(summary.task)}'s results: "
            f"{summary.samples_without_overlay} sample(s) have no overlay",
            highlight=False,
        )
    if summary.failed:
        stderr.print(f"[bold red]{len(summary.failed)} of {summary.num_samples} input(s) failed[/]", highlight=False)
        ctx.exit(EXIT_SOME_FAILED)


def _parse_task_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("threshold=0.5", "labels=[1, 2]")`` -> ``{"threshold": 0.5, "labels": [1, 2]}`` (values read as YAML)."""
    import yaml

    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise click.UsageError(f"--option {pair!r}: write KEY=VALUE, e.g. --option threshold=0.5")
        try:
            parsed[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise click.UsageError(f"--option {pair!r}: the value is not valid YAML ({exc})") from exc
    return parsed


def _absolute(path: Path | None) -> str | None:
    return str(path.resolve()) if path is not None else None


def run() -> None:
    """Console-script entry point."""
    main(prog_name="omg")


if __name__ == "__main__":
    sys.exit(run())
