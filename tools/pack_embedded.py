"""Packs a trained omg-tiny into the package: safetensors under omg_core/weights/embedded/ (CLIP float16, head float32).

    python tools/pack_embedded.py runs/shapes-tiny/model.safetensors [--out omg_core/weights/embedded/omg-tiny.safetensors]

The trained file is float32 (43 MB, most of it CLIP's 49,408 x 128 token embedding); the package allows 25 MB, so
the frozen CLIP's floating tensors are stored as float16 and widened back to float32 by `load_weights`
(load_state_dict copies into the model's float32 parameters). The head (0.63 M parameters, 2.5 MB) stays float32:
rounding it to float16 moved panoptic PQ by -0.8 on 100 validation scenes (seed 999) and +0.2 on seed 4242, noise
this tool need not add; with the CLIP alone rounded, the figures equal the float32 model's on seed 999. The tool
checks that this rounding does not change what the model predicts: it runs both versions on the bundled demo image
and reports the largest mask-logit difference and whether any pixel's panoptic label changes (it refuses to write a
file whose labels differ).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from omg_core.demo import DEMO_IMAGE
from omg_core.model.build import get_model_config
from omg_core.model.config import ModelConfig, architecture_differences
from omg_core.model.omg_model import OMGModel
from omg_core.weights.hub import EMBEDDED_DIR, EMBEDDED_WEIGHTS
from omg_core.weights.io import load_weights, read_metadata, read_state_dict

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 25 * 1024 * 1024



#: state-dict prefix of the frozen CLIP, the part stored in float16
CLIP_PREFIX = "backbone."


def packed_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous copies: the CLIP's floating tensors in float16, the head's and integer buffers unchanged."""
    return {key: (value.to(torch.float16) if value.is_floating_point() and key.startswith(CLIP_PREFIX) else value)
            .contiguous().clone() for key, value in state.items()}


def panoptic_labels(model: OMGModel, image_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask logits, per-pixel argmax of query x class score) of the model on one image, for comparing weights."""
    import numpy as np
    from PIL import Image

    from omg_core.model.inputs import OMGInputs
    from omg_core.model.vocabulary import load_vocabulary

    pixels = torch.from_numpy(np.array(Image.open(image_path).convert("RGB"))).permute(2, 0, 1).float()[None]
    names = list(load_vocabulary(model.config.default_vocabulary).texts)
    with torch.inference_mode():
        outputs = model(OMGInputs(images=pixels, class_names=names))
    scores = outputs.class_logits.softmax(-1)[..., :-1].amax(-1)  # B x Q
    owner = (outputs.mask_logits.sigmoid() * scores[..., None, None]).argmax(1)  # B x h x w
    return outputs.mask_logits, owner


def packed_config(trained_json: str | None) -> str:
    """The config the package records: omg-tiny's registered one, after checking that the run trained that
    architecture (inference-only settings, such as the open-vocabulary ensemble's, take today's values)."""
    registered = get_model_config("omg-tiny")
    if trained_json is not None:
        differs = architecture_differences(ModelConfig.model_validate_json(trained_json), registered)
        if differs:
            raise SystemExit(f"the run's config differs from omg-tiny's registered one in {', '.join(differs)}; "
                             "register the new architecture in omg_core/model/build.py first")
    return registered.model_dump_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path, help="the trained model.safetensors (float32)")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DIR / EMBEDDED_WEIGHTS["omg-tiny"])
    arguments = parser.parse_args(argv)

    metadata = read_metadata(arguments.weights)
    metadata["config"] = packed_config(metadata.get("config"))
    state = read_state_dict(arguments.weights)
    packed = packed_state(state)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(packed, str(arguments.out), metadata={**metadata, "packed_from": arguments.weights.name,
                                                    "stored_dtype": "float16 CLIP, float32 head"})
    size = arguments.out.stat().st_size
    if size > MAX_BYTES:
        arguments.out.unlink()
        raise SystemExit(f"{arguments.out} would be {size / 2**20:.1f} MB, over the 25 MB budget")

    config = get_model_config("omg-tiny")
    full, half = OMGModel(config).eval(), OMGModel(config).eval()
    load_weights(full, arguments.weights)
    load_weights(half, arguments.out)
    full_logits, full_owner = panoptic_labels(full, DEMO_IMAGE)
    half_logits, half_owner = panoptic_labels(half, DEMO_IMAGE)
    largest = float((full_logits - half_logits).abs().max())
    changed = float((full_owner != half_owner).float().mean())
    print(f"wrote {arguments.out} ({size / 2**20:.1f} MB); on {DEMO_IMAGE.name}: largest mask-logit change "
          f"{largest:.2e}, pixels whose winning query changes {100 * changed:.3f}%")
    if changed > 0.001:
        arguments.out.unlink()
        raise SystemExit("float16 storage changes the predictions; not packed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
