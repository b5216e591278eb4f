"""A procedural driving video with known camera motion (numpy only), for the ego-motion check.

A pinhole camera at `CAMERA_HEIGHT` metres drives straight down a road at a known speed. The scene:
sky with distant hills (at infinity: they never move), a textured asphalt road with dashed centre
and solid edge lines converging to the horizon, textured grass, and trees and poles at varied
distances on both sides. Every frame is a perspective projection of the same world, rendered at 2x
and averaged down (anti-aliasing), so the optical flow is the textbook forward-motion field: it
expands from the focus of expansion (FOE: the vanishing point of the road, at `foe(size)`) and a
point at depth Z moves at a rate proportional to its distance from the FOE over Z, so near things
(the bottom and sides of the frame) move faster than far ones. The original author's failure,
trees that change shape instead of moving outwards, is what `ego_motion.py` detects.

    frames = render_driving_scene(seed=0, frames=40, size=128)   # uint8 (40, 128, 128, 3)
    write_driving_scene("drive-0.mp4", seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sampling.export import write_mp4

CAPTION = "driving down a country road lined with trees and poles"
HORIZON = 0.42  # horizon (and FOE) row as a share of the frame height
CAMERA_HEIGHT = 1.4  # metres above the road
FOCAL = 0.9  # focal length as a share of the frame width (about 58 degrees field of view)
ROAD_HALF = 3.6  # metres from the centre line to the road's edge
SUPERSAMPLE = 2
NEAR, FAR = 1.0, 90.0  # objects closer/farther than this (metres) are not drawn


@dataclass
class SceneObject:
    kind: str  # "tree" or "pole"
    x: float  # metres right of the road's centre (negative: left)
    z: float  # metres along the road from the start
    height: float  # trunk height (tree) or pole height
    width: float  # trunk or pole width
    radius: float  # canopy radius (trees)
    color: tuple[float, float, float]
    phase: float  # texture phase


def foe(size: int) -> tuple[float, float]:
    """The focus of expansion (x, y) in pixels of a size x size frame: centre column, horizon row."""
    return size / 2.0, HORIZON * size


def _world(seed: int, length: float) -> tuple[list[SceneObject], np.ndarray]:
    """Objects along `length` metres of road (sorted by z) and a 256x256 value-noise table."""
    rng = np.random.default_rng(seed)
    objects: list[SceneObject] = []
    z = 3.0
    while z < length:  # trees on both sides, irregular spacing and setback
        for side in (-1, 1):
            if rng.random() < 0.8:
                objects.append(SceneObject(
                    "tree", side * rng.uniform(ROAD_HALF + 1.5, ROAD_HALF + 11.0), z + rng.uniform(-3, 3),
                    rng.uniform(1.8, 3.0), rng.uniform(0.25, 0.45), rng.uniform(1.2, 2.4),
                    (rng.uniform(0.1, 0.25), rng.uniform(0.35, 0.6), rng.uniform(0.08, 0.2)), rng.uniform(0, 6.3)))
        z += rng.uniform(5.0, 11.0)
    pole_side = 1 if rng.random() < 0.5 else -1
    spacing = rng.uniform(14.0, 20.0)
    for k in range(int(length // spacing)):  # a line of poles at a regular spacing on one side
        objects.append(SceneObject("pole", pole_side * (ROAD_HALF + 1.0), 8.0 + k * spacing, 6.5, 0.18, 0.0,
                                   (0.55, 0.55, 0.58), 0.0))
    return sorted(objects, key=lambda o: o.z), rng.random((256, 256)).astype(np.float32)


def _value_noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1] at world coordinates (u, v) (lattice units), bilinear between lattice values."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)  # smoothstep: no visible lattice
    iu, iv = iu.astype(np.int64) & 255, iv.astype(np.int64) & 255
    a, b = table[iu, iv], table[(iu + 1) & 255, iv]
    c, d = table[iu, (iv + 1) & 255], table[(iu + 1) & 255, (iv + 1) & 255]
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


def _background(s: int, f: float, yh: float, travelled: float, table: np.ndarray, seed: int) -> np.ndarray:
    """Sky, hills and textured ground at camera position `travelled`: float32 (s, s, 3) in [0, 1]."""
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5  # pixel centres
    sky_t = np.clip((yh - ys) / yh, 0, 1)[..., None]
    sky = (1 - sky_t) * np.array([0.78, 0.86, 0.95]) + sky_t * np.array([0.35, 0.55, 0.85])
    # distant hills: a fixed silhouette just above the horizon (infinitely far: no parallax)
    phase = (seed % 97) * 0.37
    hill = yh - s * (0.03 + 0.025 * np.sin(xs / s * 7.0 + phase) + 0.015 * np.sin(xs / s * 17.0 + 2 * phase))
    image = np.where(((ys > hill) & (ys <= yh))[..., None], np.array([0.45, 0.55, 0.5]), sky)

    below = ys > yh
    depth = np.where(below, f * CAMERA_HEIGHT / np.maximum(ys - yh, 1e-3), FAR * 10)  # metres ahead
    x = (xs - s / 2) * depth / f  # metres right of the centre line
    along = depth + travelled  # world position along the road: texture moves with the road
    n = 0.65 * _value_noise(table, x * 2.0, along * 2.0) + 0.35 * _value_noise(table, x * 7.0 + 91, along * 7.0)
    detail = np.clip(1.2 - depth / 50.0, 0.15, 1.0)  # fade fine texture with distance (less aliasing)
    road = np.abs(x) < ROAD_HALF
    asphalt = (0.33 + 0.18 * (n - 0.5) * detail)[..., None] * np.ones(3)
    grass = (np.array([0.28, 0.5, 0.18]) * (0.75 + 0.6 * (n - 0.5) * detail)[..., None])
    ground = np.where(road[..., None], asphalt, grass)
    dash = (np.abs(x) < 0.12) & (np.mod(along, 9.0) < 4.5)
    edge = (np.abs(np.abs(x) - (ROAD_HALF - 0.25)) < 0.1)
    ground = np.where((dash | edge)[..., None], np.array([0.92, 0.92, 0.88]), ground)
    fog = (1 - np.exp(-depth / 140.0))[..., None]  # far ground fades into the haze at the horizon
    ground = ground * (1 - fog) + np.array([0.72, 0.8, 0.88]) * fog
    return np.where(below[..., None], ground, image).astype(np.float32)


def _draw(image: np.ndarray, obj: SceneObject, depth: float, f: float, yh: float) -> None:
    """Paint one object at `depth` metres ahead onto `image` (s, s, 3) in place (perspective scale f/depth)."""
    s = image.shape[0]
    scale = f / depth  # pixels per metre at this depth
    cx = s / 2 + obj.x * scale
    ground_y = yh + CAMERA_HEIGHT * scale
    fog = 1 - np.exp(-depth / 140.0)
    haze = np.array([0.72, 0.8, 0.88])

    def paint(x0: float, x1: float, y0: float, y1: float, shade) -> None:
        c0, c1 = max(0, int(np.floor(x0))), min(s, int(np.ceil(x1)))
        r0, r1 = max(0, int(np.floor(y0))), min(s, int(np.ceil(y1)))
        if c0 >= c1 or r0 >= r1:
            return
        ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5
        mask, color = shade(xs, ys)
        region = image[r0:r1, c0:c1]
        color = color * (1 - fog) + haze * fog
        region[mask] = color[mask]

    trunk_w = obj.width * scale
    top = ground_y - obj.height * scale
    if obj.kind == "pole":
        def pole(xs, ys):
            stripe = 0.9 + 0.1 * np.sin((ys - top) / max(scale, 1e-3) * 3.0)[..., None]
            return np.ones(xs.shape, bool), np.array(obj.color) * stripe * np.ones(xs.shape + (3,))
        paint(cx - trunk_w / 2, cx + trunk_w / 2, top, ground_y, pole)
        arm = 0.12 * scale  # a crossarm near the top
        paint(cx - 0.9 * scale, cx + 0.9 * scale, top + 0.4 * scale, top + 0.4 * scale + arm,
              lambda xs, ys: (np.ones(xs.shape, bool), np.array([0.4, 0.38, 0.36]) * np.ones(xs.shape + (3,))))
        return

    def bark(xs, ys):
        u = (xs - cx) / max(trunk_w, 1e-3)
        return np.ones(xs.shape, bool), (np.array([0.35, 0.24, 0.14]) * (0.8 + 0.3 * u)[..., None]) * np.ones(3)
    paint(cx - trunk_w / 2, cx + trunk_w / 2, top, ground_y, bark)
    r = obj.radius * scale
    cy = top - 0.6 * r

    def canopy(xs, ys):
        u, v = (xs - cx) / max(r, 1e-3), (ys - cy) / max(r, 1e-3)  # object-local: texture moves with it
        inside = u * u + (v * 1.1) ** 2 < 1.0
        leaves = 0.75 + 0.2 * np.sin(9.0 * u + obj.phase) * np.sin(8.0 * v + 2 * obj.phase) + 0.12 * np.sin(23.0 * u * v)
        light = (1.05 - 0.3 * v - 0.15 * u)  # lit from the upper left
        return inside, np.array(obj.color) * (leaves * light)[..., None]
    paint(cx - r, cx + r, cy - r, cy + r, canopy)


def render_driving_scene(seed: int = 0, frames: int = 40, size: int = 128, fps: float = 10.0,
                         speed: float = 12.0) -> np.ndarray:
    """uint8 (frames, size, size, 3): the camera moves `speed` m/s forward, `fps` frames a second.

    Deterministic for a seed (object layout, colours, textures); different seeds give different roads.
    """
    if frames < 1 or size < 8 or fps <= 0 or speed < 0:
        raise ValueError(f"need frames >= 1, size >= 8, fps > 0, speed >= 0; got {frames}, {size}, {fps}, {speed}")
    s = size * SUPERSAMPLE
    f = FOCAL * s
    yh = HORIZON * s
    step = speed / fps  # metres per frame
    objects, table = _world(seed, length=frames * step + FAR + 10)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        travelled = t * step
        image = _background(s, f, yh, travelled, table, seed)
        for obj in reversed(objects):  # far to near: nearer objects paint over farther ones
            depth = obj.z - travelled
            if NEAR < depth < FAR:
                _draw(image, obj, depth, f, yh)
        small = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
        out[t] = np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def write_driving_scene(path: str | Path, seed: int = 0, frames: int = 40, size: int = 128, fps: float = 10.0,
                        speed: float = 12.0, caption: str | None = CAPTION) -> Path:
    """Render and write an H.264 .mp4 (plus a sidecar `<stem>.txt` caption for `prepare`)."""
    path = Path(path)
    write_mp4(render_driving_scene(seed, frames, size, fps, speed), path, fps)
    if caption:
        path.with_suffix(".txt").write_text(caption + "\n")
    return path
