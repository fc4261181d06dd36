"""How much ``--video-mode stream`` changes video-semantic and video-panoptic results, on shapes-world videos.

Streaming fuses each tube's frames with the class logits averaged over the tubes seen so far; offline (the official
way) fuses every frame with the whole video's average. Instance tracks are chosen from the whole video in both modes
and are equal (tests/test_video_stream.py), so only the per-frame fusions are measured here, with the offline result
as the reference:

  semantic agreement   share of pixels with the same class in both modes
  semantic mIoU        mIoU of the streamed labels against the offline labels (VSPW mIoU, omg_eval)
  panoptic agreement   share of pixels with the same class in both modes
  panoptic VPQ         VPQ of the streamed video against the offline one (omg_eval's VPQ, windows 1/2/3/4)

Usage: python tools/stream_vs_offline.py [--weights FILE | --random] [--videos 6] [--frames 30] [--seed 11]
By default it runs the packaged omg-tiny; --random uses seeded random weights (figures about the plumbing only).
"""

from __future__ import annotations

import argparse
import json
import warnings

import torch

from omg_core.model.build import create_model
from omg_core.model.predictor import OMGPredictor, load_model
from omg_core.registry import discover_tasks
from omg_core.results import PanopticVideo, SemanticVideo
from omg_core.task_info import validate_options
from omg_core.task_io import TaskRequest
from omg_data.synthetic import ShapesWorld
from omg_eval.video_panoptic_quality import VideoPanopticQuality
from omg_eval.video_semantic import VideoSemanticMetric

DIVISOR = 1000


def decode(predictor: OMGPredictor, task: str, pixels: torch.Tensor, stream: bool) -> SemanticVideo | PanopticVideo:
    handle = predictor.registry.get(task)
    options = validate_options(task, handle.info.options, {}, "options")
    request = TaskRequest(task=task, modality="video", pixels=pixels, options=options)
    plan = handle.encode_queries(request)
    if not stream:
        return handle.decode_outputs(request, plan, predictor(request, plan)).data
    streamed = TaskRequest(task=task, modality="video", pixels=pixels[:0], options=options)
    decoder = handle.open_video_stream(streamed, plan)
    parts = [decoder.decode_chunk(chunk).data
             for chunk in predictor.stream_video(streamed, plan, iter(pixels), int(pixels.shape[0]))]
    if isinstance(parts[0], SemanticVideo):
        return SemanticVideo(torch.cat([part.labels for part in parts]), parts[0].vocabulary)
    segments = {segment.id: segment for part in parts for segment in part.segments}
    return PanopticVideo(torch.cat([part.segment_ids for part in parts]),
                         tuple(segments[key] for key in sorted(segments)), parts[0].vocabulary)


def panoptic_ids(video: PanopticVideo, void: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(category * DIVISOR + instance, class) maps; unpainted pixels are void."""
    ids = torch.full_like(video.segment_ids, void * DIVISOR)
    classes = torch.full_like(video.segment_ids, void)
    for segment in video.segments:
        where = video.segment_ids == segment.id
        ids[where] = segment.label * DIVISOR + (segment.id % DIVISOR if segment.is_thing else 0)
        classes[where] = segment.label
    return ids, classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", help="a safetensors file (default: the packaged weights of --model)")
    parser.add_argument("--random", action="store_true", help="seeded random weights instead of trained ones")
    parser.add_argument("--model", default="omg-tiny")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    if args.random:
        model = create_model(args.model)
    else:
        model = load_model(args.weights, args.model) if args.weights else create_model(args.model, pretrained=True)
    predictor = OMGPredictor(model, registry=discover_tasks())
    world = ShapesWorld(seed=args.seed, image_size=(96, 128))
    num_classes = len(predictor.default_vocabulary.texts)
    things = [index for index, flag in enumerate(predictor.default_vocabulary.is_thing) if flag]
    semantic_metric = VideoSemanticMetric(num_classes=num_classes)
    panoptic_metric = VideoPanopticQuality(num_classes, things, DIVISOR, void_label=255)
    agree = {"semantic": [0, 0], "panoptic": [0, 0]}
    for index in range(args.videos):
        pixels = world.video(index, num_frames=args.frames).frames
        offline = decode(predictor, "video-semantic", pixels, stream=False)
        streamed = decode(predictor, "video-semantic", pixels, stream=True)
        agree["semantic"][0] += int((offline.labels == streamed.labels).sum())
        agree["semantic"][1] += offline.labels.numel()
        semantic_metric.update(streamed.labels.clamp(min=0), offline.labels.masked_fill(offline.labels < 0, 255))
        offline_pan = decode(predictor, "video-panoptic", pixels, stream=False)
        streamed_pan = decode(predictor, "video-panoptic", pixels, stream=True)
        offline_ids, offline_classes = panoptic_ids(offline_pan, 255)
        streamed_ids, streamed_classes = panoptic_ids(streamed_pan, 255)
        agree["panoptic"][0] += int((offline_classes == streamed_classes).sum())
        agree["panoptic"][1] += offline_classes.numel()
        panoptic_metric.update(streamed_ids, offline_ids)
    figures = {
        "model": f"{args.model} (seeded random weights)" if args.random else args.weights or f"{args.model} (packaged)",
        "videos": args.videos, "frames": args.frames,
        "semantic_pixel_agreement": agree["semantic"][0] / agree["semantic"][1],
        "semantic_miou_stream_vs_offline": float(semantic_metric.compute()["mIoU"]),
        "panoptic_class_agreement": agree["panoptic"][0] / agree["panoptic"][1],
        "panoptic_vpq_stream_vs_offline": float(panoptic_metric.compute()["vpq"]),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
