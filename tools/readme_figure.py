"""Writes docs/demo-ov-vis.png, the README's picture: frames 0, 8 and 15 of README's first command's overlay video.

    python tools/readme_figure.py [--out docs/demo-ov-vis.png] [--frames 0 8 15] [--scale 2]

It runs that command (`omg run --task ov-vis` on the bundled demo, vocabulary shapes-world) into a temporary folder,
so the picture always shows what a fresh clone gets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.io import write_png

from omg_core.demo import DEMO_VIDEO
from omg_data.video_stream import FrameStream

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo-ov-vis.png")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 8, 15])
    parser.add_argument("--scale", type=int, default=2, help="enlargement of each frame")
    arguments = parser.parse_args(argv)

    from click.testing import CliRunner

    from omg_core.cli import main as cli

    with tempfile.TemporaryDirectory() as folder:
        result = CliRunner().invoke(cli, ["run", "--task", "ov-vis", "--input", str(DEMO_VIDEO), "--vocabulary",
                                          "shapes-world", "--output", folder, "--overlays", "--overwrite"])
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
            return result.exit_code
        frames = list(FrameStream(Path(folder) / "overlays" / DEMO_VIDEO.name))  # 3 x H x W uint8 each
    if max(arguments.frames) >= len(frames):
        raise SystemExit(f"the overlay has {len(frames)} frames; --frames must be below that")
    chosen = torch.stack([frames[index] for index in arguments.frames]).float()  # N x 3 x H x W
    enlarged = F.interpolate(chosen, scale_factor=arguments.scale, mode="bilinear", align_corners=False)
    strip = torch.cat(list(enlarged), dim=2).round().clamp(0, 255).to(torch.uint8)  # 3 x sH x N sW
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(strip, str(arguments.out))
    print(f"wrote {arguments.out} ({strip.shape[2]} x {strip.shape[1]} px, frames {arguments.frames})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
