"""`OMGPredictor`: the shared model behind every task, in the manner of SAM's `SamPredictor`.

    predictor = OMGPredictor.from_pretrained("omg-tiny")
    predictor.set_image(image)                       # backbone + pixel decoder once
    panoptic = predictor.panoptic()                  # PanopticMap
    masks = predictor.interactive(points=[[[40, 60]]])   # PromptMasks; more rounds reuse the features
    cats = predictor.open_vocabulary(classes=["cat", "zebra"])
    tracks = predictor.track("clip.mp4", classes=["cat"])  # Tracks

Each task method goes through the registered task plugin (its encode and decode hooks), exactly as ``omg run`` does,
so the Python API and the command line give the same results. ``omg run`` calls the predictor with a request and the
task's query plan (``predictor(request, plan)``) and gets the raw `OMGOutputs` the task decodes.

Video follows OMG-Seg's MinVIS inference: the video is cut into tubes (`VideoTubes`), each tube is decoded on its own,
its queries are matched to the previous tube's by their raw embeddings so that a query slot is one track, class
logits are averaged over tubes, and the open-vocabulary ensemble is applied on whole tracks.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from omg_core.errors import InputError, OMGError
from omg_core.model.build import create_model, get_model_config, list_models
from omg_core.model.inputs import OMGInputs
from omg_core.model.omg_model import FrameFeatures, OMGModel
from omg_core.model.outputs import OMGOutputs
from omg_core.model.vocabulary import Vocabulary, load_vocabulary

if TYPE_CHECKING:
    from omg_core.config import RunModelConfig
    from omg_core.inference.video import TrackOutputs, TubeOutputs
    from omg_core.registry import TaskRegistry
    from omg_core.results import Instances, PanopticMap, PromptMasks, SemanticMap, Tracks
    from omg_core.task_io import Prompts, QueryPlan, TaskRequest, VideoChunk

#: Test-time size: (long side, short side) limits, "native" (no resize), or "auto" (the model's setting).
SizeSetting = tuple[int, int] | Literal["native", "auto"]

#: Frames encoded at once when a video is decoded (OMG-Seg runs its backbone on 50 frames at a time).
FRAMES_PER_ENCODE = 50


def display_name(class_text: str) -> str:
    """A class's name for people: its first synonym ("cat,kitty" -> "cat")."""
    return class_text.split(",")[0].strip()


class OMGPredictor:
    """Runs an OMGModel on one image or video at a time (batch of 1), in inference mode."""

    def __init__(
        self,
        model: OMGModel,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        size: SizeSetting = "auto",
        registry: TaskRegistry | None = None,
    ) -> None:
        """
        Arguments:
          model: the model (moved to `device` here).
          device: where to run.
          dtype: float32, or bfloat16 to run under autocast (weights stay float32).
          size: test-time resize. "auto" uses the model's setting (`ModelConfig.test_scale_image` / `_video`: the
            official 1333x800 for images and 1280x736 for videos with the ConvNeXt-L model, none for omg-tiny);
            (long, short) resizes keeping the aspect ratio so the long side is at most `long` and the short side at
            most `short`; "native" runs at the input size. Masks always come back at the input size.
          registry: the task registry the task methods use (default: the installed plugins).
        """
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dtype = dtype
        self.size = size
        self._registry = registry
        self.default_vocabulary: Vocabulary = load_vocabulary(model.config.default_vocabulary)
        self._pixels: torch.Tensor | None = None  # what set_image / set_video was given (uint8, input size)
        self._features: FrameFeatures | None = None  # encoded image (set_image), reused by every prompt round
        self._frame_names: tuple[str, ...] | None = None
        self._source: Path | None = None
        #: called with (frames done, frames in the video) after each video tube, for progress bars
        self.on_frames: Callable[[int, int], None] | None = None

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = "omg-tiny",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        size: SizeSetting = "auto",
        model_name: str | None = None,
    ) -> OMGPredictor:
        """A predictor for a named model or a weights file.

        Arguments:
          name_or_path: a registered model name (its released weights, downloaded once; a model without released
            weights runs with random weights, with a warning) or a safetensors file / folder written by
            `omg convert` or `save_weights`.
          model_name: the model config a weights file was saved from, when the file does not record it.
        """
        return cls(load_model(name_or_path, model_name), device, dtype, size)

    @property
    def registry(self) -> TaskRegistry:
        if self._registry is None:
            from omg_core.registry import discover_tasks

            self._registry = discover_tasks()
        return self._registry

    # -- state -------------------------------------------------------------------------------------------------
    def set_image(self, image: Any) -> None:
        """Encode an image once (backbone and pixel decoder); the task methods then decode it as often as asked.

        Arguments:
          image: (3, H, W) uint8 RGB tensor, (H, W, 3) uint8 NumPy array, a PIL image, or an image file path.
        """
        pixels = _as_image_pixels(image)
        self._pixels, self._source, self._frame_names = pixels, _source_of(image), None
        with self._inference():
            self._features = self.model.encode_frames(self._resize(pixels, "image")[None])

    def set_video(self, video: Any, frame_names: Sequence[str] | None = None) -> None:
        """Hold a video for `track` and the video task methods.

        Arguments:
          video: (T, 3, H, W) uint8 tensor, a list of (3, H, W) frames, a video file, or a folder of frames.
          frame_names: one name per frame (for writers); taken from the files of a frame folder by default.
        """
        pixels, names = _as_video_pixels(video)
        self._pixels, self._source, self._features = pixels, _source_of(video), None
        self._frame_names = tuple(frame_names) if frame_names is not None else names
        if self._frame_names is not None and len(self._frame_names) != pixels.shape[0]:
            raise InputError(f"frame_names has {len(self._frame_names)} names for {pixels.shape[0]} frames")

    def reset(self) -> None:
        """Forget the image or video (and its features)."""
        self._pixels = self._features = self._frame_names = self._source = None

    # -- task methods ------------------------------------------------------------------------------------------
    def run(
        self,
        task: str,
        prompts: Prompts | None = None,
        vocabulary: Sequence[str] | str | None = None,
        seen: Sequence[bool] | None = None,
        **options: Any,
    ) -> Any:
        """Run any registered task on the image or video set last, through its plugin's hooks.

        Arguments:
          task: a task name or alias (`omg tasks`).
          prompts: points/boxes for interactive tasks.
          vocabulary: class names (synonyms separated by ","), a built-in vocabulary name, or an inline
            "cat,kitty;dog" spec; for open-vocabulary tasks.
          seen: one flag per class overriding which classes count as seen in training (open vocabulary).
          options: the task's options (see `omg tasks --json`).

        Returns:
          The task's typed result (`TaskResult.data`).
        """
        from omg_core.task_info import validate_options
        from omg_core.task_io import TaskRequest

        handle = self.registry.get(task)
        info = handle.info
        if self._pixels is None:
            raise InputError(f"no {info.modality} set: call set_{info.modality}(...) before {task}()")
        held = "video" if self._pixels.dim() == 4 else "image"
        if held != info.modality:
            article = {"image": "an", "video": "a"}
            raise InputError(f"task {info.name!r} takes {article[info.modality]} {info.modality}, but "
                             f"{article[held]} {held} is set; call set_{info.modality}(...) first")
        names, things = resolve_vocabulary(vocabulary)
        if seen is not None and (names is None or len(seen) != len(names)):
            raise InputError("seen needs one flag per class of the given vocabulary")
        request = TaskRequest(
            task=info.name, modality=info.modality, pixels=self._pixels, source=self._source, prompts=prompts,
            vocabulary=names, options=validate_options(info.name, info.options, options, "options"),
            thing_classes=things, seen_classes=tuple(bool(s) for s in seen) if seen is not None else None,
            frame_names=self._frame_names,
        )
        plan = handle.encode_queries(request)
        return handle.decode_outputs(request, plan, self(request, plan)).data

    def panoptic(self, **options: Any) -> PanopticMap:
        """Panoptic segmentation of the image set last (model vocabulary)."""
        return self.run("panoptic", **options)

    def instance(self, **options: Any) -> Instances:
        """Instance segmentation of the image set last (model vocabulary, things only)."""
        return self.run("instance", **options)

    def semantic(self, **options: Any) -> SemanticMap:
        """Semantic segmentation of the image set last (model vocabulary)."""
        return self.run("semantic", **options)

    def interactive(
        self,
        points: Any = None,
        point_labels: Any = None,
        boxes: Any = None,
        classes: Sequence[str] | str | None = None,
        **options: Any,
    ) -> PromptMasks:
        """One mask per prompt on the image set last; call again with more clicks to refine (features are reused).

        Arguments:
          points: N x P x 2 clicks (x, y) in input pixels (a list or tensor); one prompt per outer entry.
          point_labels: N x P, 1 positive, 0 negative, -1 padding (default: all positive).
          boxes: N x 4 (x0, y0, x1, y1) input pixels.
          classes: a vocabulary to label each mask with (open-vocabulary interactive); None: masks only.
        """
        from omg_core.task_io import Prompts

        prompts = Prompts(
            points=_float_tensor(points, "points"),
            point_labels=(_long_tensor(point_labels, "point_labels") if point_labels is not None
                          else (torch.ones(_float_tensor(points, "points").shape[:2], dtype=torch.long)
                                if points is not None else None)),
            boxes=_float_tensor(boxes, "boxes"),
        )
        task = "ov-interactive" if classes is not None else "interactive"
        return self.run(task, prompts=prompts, vocabulary=classes, **options)

    def open_vocabulary(self, classes: Sequence[str] | str, seen: Sequence[bool] | None = None,
                        **options: Any) -> PanopticMap:
        """Open-vocabulary panoptic segmentation of the image set last with any class names."""
        return self.run("ov-seg", vocabulary=classes, seen=seen, **options)

    def track(self, video: Any = None, classes: Sequence[str] | str | None = None,
              seen: Sequence[bool] | None = None, **options: Any) -> Tracks:
        """Track objects through a video (`set_video` first, or pass it): video instance segmentation with the
        model's vocabulary, or open-vocabulary video instance segmentation (ov-vis) when `classes` is given."""
        if video is not None:
            self.set_video(video)
        if classes is None:
            return self.run("video-instance", **options)
        return self.run("ov-vis", vocabulary=classes, seen=seen, **options)

    # -- raw outputs (what `omg run` calls) ---------------------------------------------------------------------
    def __call__(self, request: TaskRequest, plan: QueryPlan) -> OMGOutputs:
        """
        Returns:
          OMGOutputs for this sample with a batch dimension of 1 on the predictor's device. Images: class_logits
          1 x Q x (K + 1) over the plan's vocabulary (or the model's default) plus void, mask_logits 1 x Q x h x w at
          stride 4 of the padded, test-time resized input (image_size says that size; the request's pixels give the
          original one). Videos: the tracked video, mask_logits 1 x Q x T x h x w, class logits averaged over tubes
          (with the open-vocabulary ensemble on whole tracks). Prompt queries follow the learned ones.
        """
        pixels = request.pixels
        expected_dims = 3 if request.modality == "image" else 4
        if pixels.dim() != expected_dims or pixels.shape[-3] != 3:
            layout = "3 x H x W" if request.modality == "image" else "T x 3 x H x W"
            raise InputError(f"{request.modality} pixels must be {layout} RGB, got {tuple(pixels.shape)}")
        inputs, names, things = self._inputs(plan, pixels.shape[-2:])
        try:
            with self._inference():
                if request.modality == "video":
                    outputs = self._track_video(pixels, inputs, plan)
                else:
                    features = self._features if pixels is self._pixels and self._features is not None else None
                    if features is None:
                        features = self.model.encode_frames(self._resize(pixels, "image")[None])
                    outputs = self.model.decode(features, inputs)
        except ValueError as error:  # malformed prompts or vocabulary reach the user as input errors
            raise InputError(str(error)) from error
        outputs.class_names, outputs.thing_classes = names, things
        return outputs

    # -- internals ---------------------------------------------------------------------------------------------
    def _inference(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.dtype == torch.bfloat16:
            stack.enter_context(torch.autocast(device_type=self.device.type, dtype=torch.bfloat16))
        return stack

    def test_size(self, height: int, width: int, modality: str) -> tuple[int, int]:
        """The (height, width) an input of this size is resized to before the model (see `size`)."""
        from omg_core.inference.test_time_resize import test_time_size

        scale = self.size
        if scale == "auto":
            config = self.model.config
            scale = config.test_scale_video if modality == "video" else config.test_scale_image
        if scale is None or scale == "native":
            return height, width
        return test_time_size(height, width, tuple(scale))

    def _resize(self, pixels: torch.Tensor, modality: str) -> torch.Tensor:
        """uint8 (…, 3, H, W) on any device -> float [0, 255] at the test size, on the predictor's device."""
        from omg_core.inference.test_time_resize import resize_for_test

        size = self.test_size(int(pixels.shape[-2]), int(pixels.shape[-1]), modality)
        return resize_for_test(pixels.to(self.device), size)

    def _inputs(self, plan: QueryPlan, image_size: Sequence[int]) -> tuple[OMGInputs, tuple[str, ...], tuple[bool, ...]]:
        """Model inputs (prompts scaled to the test size, vocabulary, ensemble flags) and the class names/flags."""
        if not isinstance(plan.learned_queries, bool):
            raise InputError(
                f"QueryPlan.learned_queries must be True (all of the model's learned queries) or False (none), got "
                f"{plan.learned_queries!r}"
            )
        if plan.vocabulary is not None:
            texts = tuple(plan.vocabulary)
            things = tuple(plan.thing_classes) if plan.thing_classes is not None else (True,) * len(texts)
            if len(things) != len(texts):
                raise InputError(f"QueryPlan.thing_classes has {len(things)} flags for {len(texts)} classes")
            names = tuple(display_name(text) for text in texts)
        else:
            vocabulary = self.default_vocabulary
            texts, things, names = vocabulary.texts, vocabulary.is_thing, vocabulary.dataset_names
        points = point_labels = boxes = None
        prompts = plan.prompts
        height, width = int(image_size[0]), int(image_size[1])
        test_height, test_width = self.test_size(height, width, "image")
        scale = torch.tensor([test_width / width, test_height / height], device=self.device)
        if prompts is not None:
            if prompts.masks is not None:
                raise InputError("mask prompts are not supported by the OMG model; give points or boxes")
            if prompts.points is not None:
                points = (prompts.points.to(self.device, torch.float32) * scale)[None]
                point_labels = prompts.point_labels.to(self.device)[None]
            if prompts.boxes is not None:
                boxes = (prompts.boxes.to(self.device, torch.float32) * scale.repeat(2))[None]
        seen = None
        if plan.seen_classes is not None:
            seen = plan.seen_classes.to(self.device)
        elif plan.open_vocabulary or self.model.config.open_vocabulary.ensemble == "always":
            seen = torch.tensor(self.seen_flags(texts), dtype=torch.bool, device=self.device)
        placeholder = torch.zeros(1, 3, 1, 1, device=self.device)  # decode does not read images
        inputs = OMGInputs(images=placeholder, points=points, point_labels=point_labels, boxes=boxes,
                           class_names=list(texts), seen_classes=seen, use_learned_queries=plan.learned_queries,
                           thing_classes=torch.tensor([bool(t) for t in things], dtype=torch.bool, device=self.device))
        try:
            inputs.validate(self.model.clip_dim)
        except ValueError as error:  # malformed prompts or vocabulary reach the user as input errors
            raise InputError(str(error)) from error
        return inputs, tuple(names), tuple(bool(t) for t in things)

    def seen_flags(self, texts: Sequence[str]) -> list[bool]:
        """Which classes count as seen in training, by OMG-Seg's word-overlap rule against the classes the model was
        trained on (`ModelConfig.training_vocabulary`: the released weights' merged list of COCO, ADE, Cityscapes,
        VIPSeg and YouTube-VIS classes for the ConvNeXt-L model)."""
        from omg_core.model.vocabulary import merged_training_vocabulary, seen_flags

        name = self.model.config.training_vocabulary
        if name == "omg-seg-joint":
            training = merged_training_vocabulary()
        else:
            training = load_vocabulary(name or self.model.config.default_vocabulary)
        return seen_flags(list(texts), list(training.texts))

    def _track_video(self, pixels: torch.Tensor, inputs: OMGInputs, plan: QueryPlan) -> OMGOutputs:
        """OMG-Seg's MinVIS inference over a whole video: tubes decoded one at a time, queries matched between tubes,
        class logits averaged, the open-vocabulary ensemble applied on whole tracks."""
        from omg_core.inference.video import TrackBuilder

        tube_inputs, text_embeddings = self._video_inputs(inputs)
        builder = TrackBuilder()
        first: OMGOutputs | None = None
        num_frames = int(pixels.shape[0])
        for start, tube_pixels, _ in _video_tubes(iter(pixels), num_frames, plan):
            tube, outputs = self._decode_tube(tube_pixels, tube_inputs, inputs.seen_classes is not None)
            builder.add(tube)
            first = first or outputs
            if self.on_frames is not None:
                self.on_frames(start + len(tube_pixels), num_frames)
        assert first is not None
        track = builder.finish()
        class_logits, in_vocab, clip_logits = self._track_class_logits(track, inputs.seen_classes, text_embeddings,
                                                                       inputs.thing_classes)
        return self._video_outputs(track.mask_logits, class_logits, in_vocab, clip_logits, track.iou_logits, first)

    def stream_video(
        self,
        request: TaskRequest,
        plan: QueryPlan,
        frames: Iterable[torch.Tensor],
        num_frames: int | None = None,
        frame_names: Sequence[str] | None = None,
    ) -> Iterator[VideoChunk]:
        """Decode a video tube by tube as its frames are read, with memory that does not grow with its length.

        Each tube's queries are matched onto the track slots as offline; its chunk carries the tube's mask logits
        and the class logits averaged over the tubes so far (the open-vocabulary ensemble on features pooled over the
        frames so far), so a frame's classes can only use what came before it. The last chunk's class logits are the
        whole video's average, equal to the offline ones.

        Arguments:
          request: the video request (its pixels give only the frame size: (0, 3, H, W) is enough).
          plan: the task's query plan (its tubes setting cuts the video).
          frames: (3, H, W) uint8 frames in order, read lazily (``omg_core.run_inputs.iter_frames``).
          num_frames: the frame count the container declares, to cut the tubes as the official ``video_split`` does;
            None or a wrong count still works (tubes of ``clip_size`` frames, the last one shorter).
          frame_names: names of the frames (default 00000, 00001, ...).
        Yields:
          one ``omg_core.task_io.VideoChunk`` per tube, the last with ``is_last``.
        """
        from omg_core.inference.video import StreamingTrackBuilder
        from omg_core.task_io import VideoChunk

        height, width = int(request.pixels.shape[-2]), int(request.pixels.shape[-1])
        inputs, names, things = self._inputs(plan, (height, width))
        tube_inputs, text_embeddings = self._video_inputs(inputs)
        builder = StreamingTrackBuilder()
        for start, tube_pixels, is_last in _video_tubes(iter(frames), num_frames, plan):
            if tube_pixels.shape[-2:] != (height, width):
                raise InputError(f"{request.source}: frame {start} is {tuple(tube_pixels.shape[-2:])}, the request "
                                 f"{(height, width)}; all frames of a video must have one size")
            tube, outputs = self._decode_tube(tube_pixels, tube_inputs, inputs.seen_classes is not None)
            tube = builder.add(tube)
            track = builder.finish()
            with self._inference():
                class_logits, in_vocab, clip_logits = self._track_class_logits(track, inputs.seen_classes,
                                                                               text_embeddings, inputs.thing_classes)
            chunk_outputs = self._video_outputs(tube.mask_logits, class_logits, in_vocab, clip_logits,
                                                track.iou_logits, outputs)
            chunk_outputs.class_names, chunk_outputs.thing_classes = names, things
            count = int(tube_pixels.shape[0])
            chunk_names = (tuple(frame_names[start:start + count]) if frame_names is not None
                           else tuple(f"{frame:05d}" for frame in range(start, start + count)))
            if len(chunk_names) != count:
                raise InputError(f"{request.source}: {len(frame_names or ())} frame names for more frames")
            if self.on_frames is not None:
                self.on_frames(start + count, max(num_frames or 0, start + count))
            yield VideoChunk(first_frame=start, pixels=tube_pixels, outputs=chunk_outputs, frame_names=chunk_names,
                             is_last=is_last)

    def _video_inputs(self, inputs: OMGInputs) -> tuple[OMGInputs, torch.Tensor]:
        """Each tube's decoder inputs (learned queries over the vocabulary) and the vocabulary's CLIP embeddings."""
        if inputs.has_prompts:
            raise InputError("prompts are not supported on videos by the OMG predictor; give prompts per image")
        tube_inputs = OMGInputs(images=inputs.images, class_names=inputs.class_names,
                                use_learned_queries=inputs.use_learned_queries)
        with self._inference():
            text_embeddings = self.model.encode_vocabulary_prototypes(inputs.class_names)
        return tube_inputs, text_embeddings

    def _decode_tube(self, tube_pixels: torch.Tensor, tube_inputs: OMGInputs,
                     open_vocabulary: bool) -> tuple[TubeOutputs, OMGOutputs]:
        """Backbone, pixel decoder and decoder on one tube's frames; the CLIP pooling sums for the ensemble."""
        from omg_core.inference.video import TubeOutputs

        with self._inference():
            features = self.model.encode_frames(self._resize(tube_pixels, "video"))
            outputs = self.model.decode(features, tube_inputs, num_frames=int(tube_pixels.shape[0]))
            extras = {}
            if open_vocabulary:
                sums, areas = self.model.clip_sums(features, outputs.mask_logits)
                extras = {"clip_sums": sums[0], "clip_areas": areas[0]}
        tube = TubeOutputs(class_logits=outputs.class_logits[0], mask_logits=outputs.mask_logits[0],
                           raw_query_embeddings=outputs.raw_query_embeddings[0], iou_logits=outputs.iou_logits[0],
                           extras=extras)
        return tube, outputs

    def _track_class_logits(
        self, track: TrackOutputs, seen: torch.Tensor | None, text_embeddings: torch.Tensor,
        things: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(class logits, in-vocabulary logits, CLIP logits or None) of tracks: the averaged logits, with the
        open-vocabulary ensemble on the features pooled over the tracks' frames when ``seen`` is given."""
        from omg_core.model.ov_classifier import geometric_ensemble

        in_vocab = track.class_logits.to(self.device)
        if seen is None:
            return in_vocab, in_vocab, None
        sums, areas = track.extras["clip_sums"].to(self.device), track.extras["clip_areas"].to(self.device)
        clip_logits = self.model.clip_logits_from_pooled(sums, areas, text_embeddings)
        ov_cfg = self.model.config.open_vocabulary
        return geometric_ensemble(in_vocab, clip_logits, seen, ov_cfg.alpha, ov_cfg.beta, areas > 0,
                                  self.model.clip_voters(things)), in_vocab, \
            clip_logits

    def _video_outputs(self, mask_logits: torch.Tensor, class_logits: torch.Tensor, in_vocab: torch.Tensor,
                       clip_logits: torch.Tensor | None, iou_logits: torch.Tensor, first: OMGOutputs) -> OMGOutputs:
        """OMGOutputs of tracked queries: mask_logits (Q, T, h, w) and (Q, K + 1) logits get their batch axis."""
        queries = class_logits.shape[0]
        return OMGOutputs(
            class_logits=class_logits[None],
            mask_logits=mask_logits[None],
            query_embeddings=first.query_embeddings,
            raw_query_embeddings=None,
            iou_logits=iou_logits[None].to(self.device),
            in_vocab_logits=in_vocab[None],
            clip_logits=None if clip_logits is None else clip_logits[None],
            num_learned_queries=queries,
            is_prompt_query=torch.zeros(queries, dtype=torch.bool),
            image_size=first.image_size,
            padded_size=first.padded_size,
            num_frames=int(mask_logits.shape[1]),
        )


def _video_tubes(
    frames: Iterator[torch.Tensor], num_frames: int | None, plan: QueryPlan
) -> Iterator[tuple[int, torch.Tensor, bool]]:
    """(first frame, (t, 3, H, W) frames, is last) per tube, reading ``frames`` lazily.

    The tubes follow the official ``video_split`` for ``num_frames``; when the frames run out early the last tube
    is what is left, and frames past ``num_frames`` (a count the container got wrong, or None) go in tubes of
    ``clip_size``. One tube is read ahead, to know which is the last.
    """
    from omg_core.inference.video import tube_bounds
    from omg_core.task_io import VideoTubes

    tubes = plan.tubes or VideoTubes()
    planned = (tube_bounds(num_frames, tubes.clip_size, tubes.clip_size_small, tubes.small_clip_thr, tubes.overlap)
               if num_frames else [])
    if tubes.overlap:  # every official setting uses overlap 0
        raise InputError(f"tubes that overlap (VideoTubes.overlap={tubes.overlap}) are not supported; use overlap 0")

    def sizes() -> Iterator[int]:
        yield from (end - start for start, end in planned)
        while True:
            yield tubes.clip_size

    def read() -> Iterator[list[torch.Tensor]]:
        for size in sizes():
            tube = [frame for _, frame in zip(range(size), frames)]
            if not tube:
                return
            yield tube
            if len(tube) < size:
                return

    start, pending = 0, None
    for tube in read():
        if pending is not None:
            yield start, torch.stack(pending), False
            start += len(pending)
        pending = tube
    if pending is None:
        raise InputError("the video has no frames")
    yield start, torch.stack(pending), True


def resolve_vocabulary(vocabulary: Sequence[str] | str | None) -> tuple[tuple[str, ...] | None, tuple[bool, ...] | None]:
    """(class texts, thing flags) of a Python-API vocabulary: a list of class names (synonyms separated by ","), or
    one string naming a built-in vocabulary or giving an inline spec ("cat,kitty;dog"); None keeps the model's."""
    if vocabulary is None:
        return None, None
    from omg_core.model.vocabulary import parse_vocabulary, vocabulary_from_classes

    if isinstance(vocabulary, str):
        parsed = parse_vocabulary(vocabulary, option="vocabulary")
    else:
        parsed = vocabulary_from_classes(list(vocabulary), option="classes")
    return tuple(parsed.texts), tuple(parsed.is_thing)


def _source_of(value: Any) -> Path | None:
    return Path(value) if isinstance(value, (str, os.PathLike)) else None


def _as_image_pixels(image: Any) -> torch.Tensor:
    """(3, H, W) uint8 from a tensor, a NumPy array, a PIL image or a file path."""
    import numpy as np

    if isinstance(image, (str, os.PathLike)):
        from omg_data.image_io import load_image

        return load_image(Path(image))
    if not isinstance(image, torch.Tensor):
        if hasattr(image, "convert"):  # PIL
            image = np.asarray(image.convert("RGB"))
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[-1] != 3:
                raise InputError(f"a NumPy image must be H x W x 3 RGB, got shape {image.shape}")
            image = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)
        else:
            raise InputError(f"set_image takes a tensor, NumPy array, PIL image or path, not {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"an image tensor must be 3 x H x W RGB, got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        raise InputError(f"an image tensor must be uint8 in [0, 255], got {image.dtype}; convert with .to(torch.uint8)")
    return image


def _as_video_pixels(video: Any) -> tuple[torch.Tensor, tuple[str, ...] | None]:
    """(T, 3, H, W) uint8 and frame names from a tensor, a list of frames, a video file or a frame folder."""
    if isinstance(video, (str, os.PathLike)):
        from omg_core.run_inputs import frame_names, iter_frames, plan_inputs

        (source,) = plan_inputs(Path(video), "video")[:1]
        frames = list(iter_frames(source))
        if not frames:
            raise InputError(f"{video}: the video has no frames")
        return torch.stack(frames), tuple(frame_names(source))
    if isinstance(video, (list, tuple)):
        frames = [_as_image_pixels(frame) for frame in video]
        if not frames:
            raise InputError("the video has no frames")
        if len({tuple(frame.shape) for frame in frames}) > 1:
            raise InputError("all frames of a video must have one size")
        return torch.stack(frames), None
    if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[1] != 3:
        raise InputError("a video must be a T x 3 x H x W uint8 tensor, a list of frames, a video file or a frame folder")
    if video.dtype != torch.uint8:
        raise InputError(f"a video tensor must be uint8 in [0, 255], got {video.dtype}")
    if video.shape[0] == 0:
        raise InputError("the video has no frames")
    return video, None


def _float_tensor(value: Any, name: str) -> torch.Tensor | None:
    if value is None:
        return None
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (ValueError, TypeError, RuntimeError) as error:
        raise InputError(f"{name}: {error} (give a rectangular list of numbers; pad clicks with label -1)") from error


def _long_tensor(value: Any, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.long)
    except (ValueError, TypeError, RuntimeError) as error:
        raise InputError(f"{name}: {error} (give a rectangular list of integers)") from error


def build_predictor(model_config: RunModelConfig) -> OMGPredictor:
    """Build the predictor `omg run` uses from the run config's model section.

    Arguments:
      model_config: omg_core.config.RunModelConfig (name, weights, device, dtype, size).

    Returns:
      An OMGPredictor. With no weights file, a model with released weights is downloaded (see
      omg_core.weights.hub); any other model runs with random weights, with a warning.
    """
    device = check_device(model_config.device)
    if model_config.weights is not None:
        if not model_config.weights.exists():
            raise OMGError(f"weights file {model_config.weights} does not exist")
        model = load_model(model_config.weights, model_config.name)
    else:
        model = load_model(model_config.name)
    size: SizeSetting = "auto"
    if model_config.size is not None:
        from omg_core.inference.test_time_resize import parse_size

        parsed = parse_size(model_config.size)
        size = "native" if parsed is None else parsed
    return OMGPredictor(model, device, getattr(torch, model_config.dtype), size)


def load_model(name_or_path: str | os.PathLike[str], model_name: str | None = None) -> OMGModel:
    """A model from a weights file (with `model_name`'s config when the file does not record one), or a registered
    model by name: its released weights (see omg_core.weights.hub), else random weights with a warning."""
    from omg_core.weights.hub import RELEASED_CHECKPOINTS, embedded_weights, from_pretrained

    if model_name is not None and model_name not in list_models():
        raise OMGError(f"unknown model {model_name!r}; available models: {', '.join(list_models())}")
    config = get_model_config(model_name) if model_name is not None else None
    name = str(name_or_path)
    if not (isinstance(name_or_path, str) and name in list_models()):
        if not Path(name_or_path).exists():
            raise OMGError(f"{name!r} is neither a weights file nor a model; available models: "
                           f"{', '.join(list_models())}")
        return from_pretrained(name_or_path, config=config)
    if name in RELEASED_CHECKPOINTS or embedded_weights(name) is not None:
        return from_pretrained(name)
    warnings.warn(f"model {name!r} has no released weights and no weights file was given: running with random "
                  "weights (predictions are meaningless; set model.weights)", stacklevel=3)
    return create_model(name)


def check_device(device: str) -> torch.device:
    """The torch device a user named, or an error naming the fix (checked before anything is built or written)."""
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise OMGError(f"invalid device {device!r} ({error}); use e.g. 'cpu' or 'cuda:0'") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise OMGError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise OMGError(f"--device {device}: unsupported device type {parsed.type!r}; use cpu or cuda")
    return parsed
