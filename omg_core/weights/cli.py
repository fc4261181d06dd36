"""`omg convert SRC DST`: official OMG-Seg checkpoint -> safetensors (the lead registers `convert_command`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_name", default="omg-convnext-large", show_default=True,
              help="Named model config the weights belong to.")
def convert_command(src: Path, dst: Path, model_name: str) -> None:
    """Convert the official OMG-Seg checkpoint SRC (.pth) into the safetensors file DST."""
    from omg_core.weights.official import UnmappedKeysError, convert_official_checkpoint

    try:
        written = convert_official_checkpoint(src, dst, model_name=model_name)
    except (UnmappedKeysError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"wrote {written}")
