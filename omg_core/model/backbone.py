"""Frozen open_clip ConvNeXt: multi-scale image features, the CLIP embedding of pooled features, and text."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F

from omg_core.model.prompt_templates import VILD_TEMPLATES, expand_class_name, split_synonyms

# Folder of extra open_clip model configs shipped with omg_core (the tiny test model lives there).
OPEN_CLIP_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "open_clip"
_configs_registered = False
TEXT_BATCH = 512  # sentences per text-tower call


def register_open_clip_configs() -> None:
    """Make the open_clip configs under omg_core/configs/open_clip known to open_clip (idempotent)."""
    global _configs_registered
    if not _configs_registered:
        open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR)
        _configs_registered = True


class _RandomInitNoticeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded for model")


@contextlib.contextmanager
def _without_random_init_notice() -> Iterator[None]:
    """Hide open_clip's root-logger warning "No pretrained weights loaded ... initialized randomly", printed on every
    model creation: OMG builds the backbone without weights on purpose (the checkpoint is loaded afterwards), and
    `omg run` says itself, once, when a model really runs with random weights."""
    notice_filter = _RandomInitNoticeFilter()
    root = logging.getLogger()
    root.addFilter(notice_filter)
    try:
        yield
    finally:
        root.removeFilter(notice_filter)


class ClipConvNeXtBackbone(nn.Module):
    """The visual ConvNeXt trunk and the text tower of an open_clip model, frozen.

    The module never trains: parameters have requires_grad=False, `.train()` keeps it in eval mode (so drop
    path and any statistics stay fixed) and the forward runs under no_grad.
    """

    def __init__(
        self,
        clip_model_name: str,
        pretrained_tag: str | None = None,
        channels: tuple[int, int, int, int] = (192, 384, 768, 1536),
        templates: tuple[str, ...] = VILD_TEMPLATES,
        clip_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        """
        Arguments:
          clip_model_name: an open_clip model name whose visual tower is a timm ConvNeXt
            (e.g. "convnext_large_d_320").
          pretrained_tag: open_clip pretrained tag (e.g. "laion2b_s29b_b131k_ft_soup"); None builds random
            weights without touching the network.
          channels: expected channels of the four stages; checked against the built trunk.
          templates: prompt templates used by `encode_vocabulary`.
          clip_weights: a safetensors file of the whole open_clip model (its state_dict keys), loaded strictly over
            the built model before its parts are taken; e.g. a CLIP trained by omg_core.clip_train.
        """
        super().__init__()
        register_open_clip_configs()
        if clip_model_name not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip model {clip_model_name!r}; pick one of open_clip.list_models() or add a JSON "
                f"config to {OPEN_CLIP_CONFIG_DIR}"
            )
        with warnings.catch_warnings(), _without_random_init_notice():
            warnings.simplefilter("ignore")  # open_clip warns when no pretrained weights are requested
            clip_model = open_clip.create_model(clip_model_name, pretrained=pretrained_tag)
        if clip_weights is not None:
            _load_clip_file(clip_model, Path(clip_weights))
        trunk = getattr(clip_model.visual, "trunk", None)
        if trunk is None or not hasattr(trunk, "stages") or not hasattr(trunk, "stem"):
            raise ValueError(f"open_clip model {clip_model_name!r} has no timm ConvNeXt trunk; use a convnext_* model")
        stage_channels = tuple(int(stage.blocks[-1].conv_dw.out_channels) for stage in trunk.stages)
        if stage_channels != tuple(channels):
            raise ValueError(
                f"{clip_model_name!r} has stage channels {stage_channels}, config says {tuple(channels)}; "
                f"set backbone.channels={list(stage_channels)}"
            )
        self.clip_model_name = clip_model_name
        self.channels = tuple(channels)
        self.strides = (4, 8, 16, 32)
        self.templates = tuple(templates)

        self.stem = trunk.stem
        self.stages = trunk.stages
        # The CLIP image embedding path of a ConvNeXt CLIP: LayerNorm2d on the last stage, then the projection
        # MLP into the joint image-text space. Applied to mask-pooled stride-32 features it gives a CLIP
        # embedding per mask (the out-of-vocabulary classifier of OMG-Seg / FC-CLIP).
        self.clip_pooled_norm = trunk.head.norm
        self.clip_pooled_proj = clip_model.visual.head
        self.embed_dim = int(clip_model.text_projection.shape[1])

        clip_model.visual = nn.Identity()  # keep only the text tower in `text`
        self.text = clip_model
        self.tokenizer = open_clip.get_tokenizer(clip_model_name)
        self._vocabulary_cache: dict[tuple[str, ...], torch.Tensor] = {}

        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> ClipConvNeXtBackbone:
        """Stays in eval mode whatever `mode` is: the CLIP backbone is frozen in OMG-Seg."""
        del mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Arguments:
          images: B x 3 x H x W normalised images, H and W multiples of 32.

        Returns:
          {"res2": B x C1 x H/4 x W/4, "res3": B x C2 x H/8 x W/8, "res4": B x C3 x H/16 x W/16,
           "res5": B x C4 x H/32 x W/32}.
        """
        x = self.stem(images)
        features = {}
        for index, stage in enumerate(self.stages):
            x = stage(x)
            features[f"res{index + 2}"] = x.contiguous()
        return features

    @torch.no_grad()
    def embed_pooled_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """Project pooled last-stage features into the CLIP embedding space.

        Arguments:
          pooled: ... x C4 pooled "res5" features.

        Returns:
          ... x D CLIP image embeddings (not normalised).
        """
        leading = pooled.shape[:-1]
        x = pooled.reshape(-1, pooled.shape[-1], 1, 1)  # N x C4 x 1 x 1, the layout LayerNorm2d expects
        x = self.clip_pooled_norm(x).flatten(1)  # N x C4
        x = self.clip_pooled_proj(x)  # N x D
        return x.reshape(*leading, x.shape[-1])

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings of whole images (open_clip's encode_image: average pool of the last stage, then
        the head).

        Arguments:
          images: N x 3 x H x W normalised images.

        Returns:
          N x D CLIP image embeddings (not normalised).
        """
        return self.embed_pooled_features(self.forward(images)["res5"].mean(dim=(-2, -1)))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """
        Arguments:
          texts: sentences.

        Returns:
          len(texts) x D L2-normalised text embeddings.
        """
        device = self.text.token_embedding.weight.device
        tokens = self.tokenizer(texts).to(device)
        return F.normalize(self.text.encode_text(tokens).float(), dim=-1)

    @torch.no_grad()
    def encode_vocabulary_prototypes(self, class_names: list[str] | tuple[str, ...]) -> torch.Tensor:
        """One text embedding per synonym of each class (OMG-Seg's classifier layout).

        Each synonym's embedding is the normalised mean of its normalised template embeddings; classes with
        fewer synonyms repeat their first one (harmless, since the classifier takes the max over prototypes).
        Cached per vocabulary (the tuple of names): the text tower is frozen.

        Arguments:
          class_names: K class names; synonyms separated by "," (see prompt_templates.split_synonyms).

        Returns:
          K x P x D L2-normalised embeddings, P the largest number of synonyms.
        """
        if isinstance(class_names, str):
            raise TypeError("class_names must be a list of names, not one string; wrap it: [name]")
        key = tuple(class_names)
        if not key:
            raise ValueError("the vocabulary is empty; give at least one class name")
        device = self.text.token_embedding.weight.device
        cached = self._vocabulary_cache.get(key)
        if cached is not None and cached.device == device:
            return cached
        # All sentences of all classes go through the text tower in a few large batches (many tiny batches
        # are an order of magnitude slower on CPU).
        sentences_per_synonym = [expand_class_name(name, self.templates) for name in key]
        flat = [sentence for synonyms in sentences_per_synonym for sentences in synonyms for sentence in sentences]
        encoded = torch.cat([self.encode_texts(flat[start:start + TEXT_BATCH])
                             for start in range(0, len(flat), TEXT_BATCH)])  # S x D
        num_templates = len(self.templates)
        synonym_means = F.normalize(encoded.view(-1, num_templates, encoded.shape[-1]).mean(dim=1), dim=-1)
        per_class = list(synonym_means.split([len(synonyms) for synonyms in sentences_per_synonym]))  # P_k x D
        most = max(len(prototypes) for prototypes in per_class)
        embeddings = torch.stack([
            torch.cat([p, p[:1].expand(most - len(p), -1)]) for p in per_class
        ])  # K x P x D
        self._vocabulary_cache[key] = embeddings
        return embeddings

    @torch.no_grad()
    def encode_vocabulary(self, class_names: list[str] | tuple[str, ...]) -> torch.Tensor:
        """One text embedding per class: the normalised mean of its synonym prototypes (which are themselves
        averages over the prompt templates). Cached through `encode_vocabulary_prototypes`.

        Arguments:
          class_names: K class names.

        Returns:
          K x D L2-normalised class embeddings.
        """
        prototypes = self.encode_vocabulary_prototypes(class_names)
        synonyms = [len(split_synonyms(name)) for name in class_names]
        # Average only the real synonyms, not the padding repeats.
        return torch.stack([F.normalize(p[:count].mean(dim=0), dim=-1) for p, count in zip(prototypes, synonyms)])

    def clear_vocabulary_cache(self) -> None:
        """Forget cached vocabulary embeddings (needed after loading new text-tower weights)."""
        self._vocabulary_cache.clear()


#: open_clip ConvNeXt CLIP key prefixes -> ClipConvNeXtBackbone key prefixes; every other key (the text tower and
#: the logit scale) goes under "text.".
CLIP_TO_BACKBONE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("visual.trunk.stem.", "stem."),
    ("visual.trunk.stages.", "stages."),
    ("visual.trunk.head.norm.", "clip_pooled_norm."),
    ("visual.head.", "clip_pooled_proj."),
)


def backbone_state_dict_from_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames an open_clip ConvNeXt CLIP state_dict to the keys of ClipConvNeXtBackbone.

    visual.trunk.stem/stages -> stem/stages (the multi-scale trunk), visual.trunk.head.norm -> clip_pooled_norm,
    visual.head -> clip_pooled_proj (the pooled-feature path into the joint space), the rest (the text tower and
    the logit scale) -> text.*. `backbone.load_state_dict(result)` then loads strictly; call
    `backbone.clear_vocabulary_cache()` afterwards.
    """
    mapped = {}
    for key, value in state.items():
        for old, new in CLIP_TO_BACKBONE_PREFIXES:
            if key.startswith(old):
                mapped[new + key[len(old):]] = value
                break
        else:
            if key.startswith("visual."):
                raise ValueError(f"{key} has no place in ClipConvNeXtBackbone (expected a timm ConvNeXt CLIP)")
            mapped["text." + key] = value
    return mapped


def clip_state_dict_from_backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `backbone_state_dict_from_clip`: ClipConvNeXtBackbone keys back to open_clip's."""
    mapped = {}
    for key, value in state.items():
        if key.startswith("text."):
            mapped[key[len("text."):]] = value
            continue
        for old, new in CLIP_TO_BACKBONE_PREFIXES:
            if key.startswith(new):
                mapped[old + key[len(new):]] = value
                break
        else:
            raise ValueError(f"backbone key {key} has no open_clip counterpart")
    return mapped


def _load_clip_file(clip_model: nn.Module, path: Path) -> None:
    """Load a CLIP from safetensors, naming the file and the keys when it does not fit.

    The file is either an open_clip state_dict (what omg_core.clip_train writes) or OMG weights (keys under
    "backbone.", e.g. the packaged omg-tiny), whose frozen CLIP is taken: so a training config can start from the
    CLIP that ships inside a trained model.
    """
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"backbone.clip_weights: {path} does not exist; train one with "
                                "`python -m omg_core.clip_train.train` or fix the path")
    state = load_file(str(path))
    if any(key.startswith("backbone.") for key in state):
        state = clip_state_dict_from_backbone({key[len("backbone."):]: value for key, value in state.items()
                                               if key.startswith("backbone.")})
    result = clip_model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"backbone.clip_weights {path} does not fit this CLIP: missing {result.missing_keys[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
