"""Procedural textures: smooth value noise plus per-material patterns, all from a seeded generator."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """H x W float32 noise in [-1, 1] varying over roughly `cells` cells across the image (bilinear upsampling)."""
    grid = torch.from_numpy(rng.uniform(-1, 1, size=(1, 1, cells + 1, cells + 1)).astype(np.float32))
    return F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=True)[0, 0].numpy()


def stuff_texture(
    name: str, base: tuple[int, int, int], rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """H x W x 3 float32 texture of a stuff class (sky gradient, grass blades, water waves, grains)."""
    base_rgb = np.asarray(base, dtype=np.float32)
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    fine = rng.normal(0, 1, size=(height, width)).astype(np.float32)
    if name == "sky":
        shade = 25 * (ys - 0.5) + 18 * np.maximum(smooth_noise(rng, height, width, 4), 0)  # clouds brighten
        return np.clip(base_rgb + shade[..., None] + 2 * fine[..., None], 0, 255)
    if name == "grass":
        blades = np.sin(xs * width * rng.uniform(0.8, 1.4) + 3 * smooth_noise(rng, height, width, 8))
        shade = 14 * blades + 10 * smooth_noise(rng, height, width, 6) + 6 * fine
        return np.clip(base_rgb + shade[..., None] * np.array([0.6, 1.0, 0.5], dtype=np.float32), 0, 255)
    if name == "water":
        waves = np.sin(ys * height * rng.uniform(0.4, 0.7) + 4 * smooth_noise(rng, height, width, 5))
        shade = 18 * waves + 4 * fine
        return np.clip(base_rgb + shade[..., None] * np.array([0.5, 0.8, 1.0], dtype=np.float32), 0, 255)
    shade = 12 * smooth_noise(rng, height, width, 10) + 9 * fine  # sand, snow, and anything else: grains
    return np.clip(base_rgb + shade[..., None], 0, 255)


def thing_texture(base: tuple[int, int, int], rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """H x W x 3 float32 mildly shaded flat colour for a thing (keeps its colour name unambiguous)."""
    shade = 10 * smooth_noise(rng, height, width, 3) + 3 * rng.normal(0, 1, size=(height, width))
    return np.clip(np.asarray(base, dtype=np.float32) + shade[..., None].astype(np.float32), 0, 255)
