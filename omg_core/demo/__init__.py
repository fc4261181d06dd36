"""The bundled demo: a 16-frame shapes-world video and an image, both showing held-out colour x shape classes.

    omg run --task ov-vis --input omg_core/demo/shapes-video.mp4 --vocabulary shapes-world --output demo --overlays

`demo.json` beside them names the world seed and scene, and the ground-truth classes of each file (what a correct
run finds). `tools/make_demo.py` writes all three.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEMO_DIR = Path(__file__).resolve().parent
DEMO_VIDEO = DEMO_DIR / "shapes-video.mp4"
DEMO_IMAGE = DEMO_DIR / "shapes-image.png"


def demo_truth() -> dict[str, Any]:
    """The contents of demo.json: for each demo file, its things, held-out things and stuff."""
    return json.loads((DEMO_DIR / "demo.json").read_text(encoding="utf-8"))
