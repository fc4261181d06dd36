"""Shape outlines as COCO polygons, rasterised with pycocotools so annotation polygons match masks exactly."""

from __future__ import annotations

import math

import numpy as np

from omg_data.rle import rasterize_polygons


def _unit_outline(shape: str) -> np.ndarray:
    """N x 2 outline of a shape of radius ~1 centred at the origin (counter-clockwise)."""
    if shape == "circle":
        angles = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * 0.8
    if shape == "triangle":
        angles = np.array([-90, 30, 150]) * math.pi / 180
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "star":
        angles = np.arange(10) * math.pi / 5 - math.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if shape == "hexagon":
        angles = np.arange(6) * math.pi / 3
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "cross":
        a, b = 1.0, 0.33
        return np.array(
            [
                [-b, -a],
                [b, -a],
                [b, -b],
                [a, -b],
                [a, b],
                [b, b],
                [b, a],
                [-b, a],
                [-b, b],
                [-a, b],
                [-a, -b],
                [-b, -b],
            ],
            dtype=float,
        )
    if shape == "diamond":
        return np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]], dtype=float)
    if shape == "heart":
        t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x, y], axis=1) / 16.0
    raise ValueError(f"unknown shape {shape!r}")


def shape_polygon(shape: str, centre_x: float, centre_y: float, radius: float, angle: float) -> list[float]:
    """COCO polygon [x0, y0, x1, y1, ...] of a shape, scaled by `radius` and rotated by `angle` radians."""
    outline = _unit_outline(shape) * radius
    cos, sin = math.cos(angle), math.sin(angle)
    x = outline[:, 0] * cos - outline[:, 1] * sin + centre_x
    y = outline[:, 0] * sin + outline[:, 1] * cos + centre_y
    return np.round(np.stack([x, y], axis=1), 2).reshape(-1).tolist()


def rasterize_shape(polygon: list[float], height: int, width: int) -> np.ndarray:
    """H x W bool mask of a shape polygon (pycocotools' rasteriser, clipped to the image)."""
    return rasterize_polygons([polygon], height, width)
