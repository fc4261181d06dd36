"""`omg data` commands (the lead registers `data_group` under the main CLI)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click

from omg_data.synthetic.formats import FORMATS, VIDEO_FORMATS


def _parse_size(_context: click.Context, _parameter: click.Parameter, value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", value.strip())
    if not match:
        raise click.BadParameter(f"expected HEIGHTxWIDTH such as 128x128, got {value!r}")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 32 or width < 32:
        raise click.BadParameter(f"the shapes world needs at least 32x32 pixels, got {value!r}")
    return height, width


@click.group(name="data")
def data_group() -> None:
    """Dataset tools: generate the synthetic shapes world in the formats OMG reads."""


@data_group.command(name="synth")
@click.option("--format", "format_name", required=True, type=click.Choice(FORMATS), help="dataset format to write")
@click.option("--num", required=True, type=click.IntRange(min=1), help="number of images (or videos for video formats)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="output folder")
@click.option("--seed", default=0, show_default=True, type=int, help="world seed; same seed, same dataset")
@click.option(
    "--size", "size", default="128x128", show_default=True, callback=_parse_size, help="image size as HEIGHTxWIDTH"
)
@click.option(
    "--frames", default=8, show_default=True, type=click.IntRange(min=1), help="frames per video (video formats)"
)
@click.option("--exclude-held-out", is_flag=True, help="leave out the held-out classes (training data)")
@click.option("--overwrite", is_flag=True, help="delete what OUT already holds, then write (OUT must be empty without it)")
def synth_command(
    format_name: str,
    num: int,
    out_dir: Path,
    seed: int,
    size: tuple[int, int],
    frames: int,
    exclude_held_out: bool,
    overwrite: bool,
) -> None:
    """Writes NUM shapes-world samples in FORMAT under OUT."""
    from omg_data.synthetic import write_dataset

    # Writing into a folder that holds an earlier (perhaps interrupted) data set would mix the two silently.
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise click.UsageError(
                f"--out {out_dir} is not empty; choose an empty folder, or add --overwrite to delete its contents first"
            )
        for entry in out_dir.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    write_dataset(
        format_name, out_dir, num, seed=seed, image_size=size, num_frames=frames, exclude_held_out=exclude_held_out
    )
    unit = "videos" if format_name in VIDEO_FORMATS else "images"
    click.echo(f"wrote {num} {unit} in {format_name} format to {out_dir}")
