"""A procedural driving world with known camera motion (numpy only): many distinct scenes, one per seed.

Why: an experiment must show that a video diffusion model's temporal layers learn *motion*, and the
ego-motion check (`ego_motion.py`) needs clips whose optical flow is known. Training on a few
look-alike videos lets a model memorise them, so every seed here draws a visibly different scene,
while the camera model, and with it the flow field, stays the same for all of them.

What: a pinhole camera (no pitch, no roll) drives straight down a straight road at a constant speed.
Per seed (`scene_info`): the time of day (sky gradient, sun, clouds, haze and light colour), the
terrain (green grass, dry yellow fields, desert sand, snow, autumn), the distant hill or mountain
silhouette, the road (width, asphalt tone or dirt, lane markings: dashed, double solid or none, edge
lines or not, dash length, lanes), the camera's lane, height and speed (`SPEED_RANGE`), and a setting
(countryside, forest, village, town, highway) that sets the mix and density of roadside objects:
round-canopy trees, conifers, bushes, cacti, power poles or street lamps, road signs, fences, guard
rails, hedges, houses, buildings and parked cars, on both sides at varied setbacks.

Geometry: everything in the world is static, only the camera moves (along +z). Trees, poles, signs
and the like are flat cut-outs facing the camera at one depth, drawn with perspective scale f/depth;
houses, buildings and cars are boxes (a face towards the camera plus the wall facing the road, a
pitched roof) and fences/rails are long vertical strips, all intersected per pixel with the ray
through it, so their walls recede correctly. A depth buffer resolves what is in front; texture
coordinates are fixed to each object (metres on the object), so textures move with it. The sky,
sun, clouds and hills are at infinity and do not move. Objects fade in between 0.75 FAR and FAR,
and everything fades into the haze with distance. Frames are rendered at SUPERSAMPLE x the size and
averaged down (anti-aliasing); lane markings and road edges are box-filtered per pixel as well.

So the optical flow is the textbook forward-motion field: it expands from the focus of expansion
(FOE: the road's vanishing point, at `foe(size)`, the centre column and the horizon row HORIZON)
and a point at depth Z moves at a rate proportional to its distance from the FOE over Z: near
things (the bottom and sides of the frame) move faster than far ones, and all of it scales with
speed / fps. The same seed always gives the same frames, and a longer clip of a seed starts with
the frames of a shorter one.

    frames = render_driving_scene(seed=0, frames=40, size=128)   # uint8 (40, 128, 128, 3)
    scene_info(0).speed, scene_caption(0)                         # metres/second, a caption naming the scene
    write_driving_scene("drive-0.mp4", seed=0, caption=scene_caption(0))
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..sampling.export import write_mp4

CAPTION = "driving down a country road lined with trees and poles"  # the generic caption (any seed)
HORIZON = 0.42  # horizon (and FOE) row as a share of the frame height
CAMERA_HEIGHT_RANGE = (1.3, 1.9)  # camera height of a seed, metres above the road
CAMERA_HEIGHT = 1.6  # the typical camera height
FOCAL = 0.9  # focal length as a share of the frame width (about 58 degrees field of view)
ROAD_HALF = 3.6  # the typical distance (metres) from the road's centre line to its edge
SUPERSAMPLE = 2
NEAR, FAR = 1.0, 90.0  # objects closer/farther than this (metres) are not drawn
FADE = 0.25 * FAR  # objects fade in over the last FADE metres before FAR
SPEED_RANGE = (8.0, 16.0)  # camera speed of a seed, metres per second

TIMES_OF_DAY = ("morning", "midday", "afternoon", "dusk", "overcast")
TERRAINS = ("grass", "dry field", "desert", "snow", "autumn")
SETTINGS = ("countryside", "forest", "village", "town", "highway")
OBJECT_KINDS = ("tree", "conifer", "bush", "cactus", "pole", "post", "sign", "fence", "guard rail", "hedge",
                "house", "building", "car")

# time of day: sky at the top, sky at the horizon, haze, light (multiplies lit colours), clouds
_TIMES = {
    "morning": ((0.42, 0.60, 0.86), (0.92, 0.84, 0.74), (0.86, 0.82, 0.78), (1.00, 0.94, 0.86), (1.0, 0.92, 0.88)),
    "midday": ((0.22, 0.46, 0.86), (0.72, 0.84, 0.96), (0.74, 0.82, 0.90), (1.05, 1.05, 1.02), (1.0, 1.0, 1.0)),
    "afternoon": ((0.30, 0.50, 0.84), (0.94, 0.86, 0.66), (0.86, 0.82, 0.70), (1.06, 0.96, 0.80), (1.0, 0.94, 0.82)),
    "dusk": ((0.16, 0.16, 0.42), (0.98, 0.54, 0.30), (0.72, 0.50, 0.44), (0.80, 0.62, 0.56), (0.95, 0.56, 0.46)),
    "overcast": ((0.55, 0.58, 0.62), (0.80, 0.81, 0.83), (0.76, 0.78, 0.80), (0.84, 0.86, 0.88), (0.88, 0.89, 0.90)),
}
# terrain: ground colours A and B (large patches), texture contrast, shoulder colour, hill colour
_TERRAINS = {
    "grass": ((0.26, 0.48, 0.16), (0.40, 0.56, 0.20), 0.9, (0.50, 0.46, 0.38), (0.30, 0.45, 0.30)),
    "dry field": ((0.78, 0.66, 0.34), (0.62, 0.52, 0.26), 0.8, (0.60, 0.54, 0.42), (0.55, 0.50, 0.36)),
    "desert": ((0.86, 0.70, 0.48), (0.76, 0.56, 0.36), 0.72, (0.80, 0.68, 0.52), (0.72, 0.50, 0.36)),
    "snow": ((0.93, 0.95, 0.99), (0.80, 0.85, 0.93), 0.8, (0.72, 0.72, 0.74), (0.62, 0.66, 0.76)),
    "autumn": ((0.46, 0.44, 0.20), (0.58, 0.38, 0.16), 0.9, (0.50, 0.44, 0.36), (0.52, 0.40, 0.28)),
}
# setting: kind -> expected number per 100 m of one side (for pole, post, fence, guard rail, hedge:
# the chance of a line of them on a side)
_SETTINGS = {
    "countryside": {"tree": 7, "bush": 6, "conifer": 2, "house": 1.0, "sign": 1.2, "pole": 0.6, "post": 0.8,
                    "fence": 0.4, "hedge": 0.2},
    "forest": {"conifer": 15, "tree": 6, "bush": 5, "sign": 1.0, "post": 0.7, "guard rail": 0.3},
    "village": {"house": 5.5, "tree": 4, "bush": 4, "car": 2.5, "sign": 2, "pole": 0.7, "post": 0.3, "fence": 0.3,
                "hedge": 0.3},
    "town": {"building": 6, "house": 1, "car": 3, "sign": 3, "pole": 0.8, "tree": 3},
    "highway": {"guard rail": 0.8, "sign": 2.5, "pole": 0.5, "post": 0.6, "bush": 4, "tree": 2, "conifer": 1,
                "fence": 0.3},
}
_LINES = ("pole", "post", "fence", "guard rail", "hedge")  # kinds that come as a line along the road
_BOXES = ("house", "building", "car")
_SETBACK = {  # metres beyond the road's edge (shoulder included)
    "tree": (1.5, 14.0), "conifer": (1.5, 16.0), "bush": (0.8, 12.0), "cactus": (1.0, 14.0),
    "sign": (0.4, 1.5), "house": (3.0, 12.0), "building": (1.5, 5.0), "car": (0.2, 0.6),
}
# how much a kind stands out (times its density), to order `SceneInfo.objects` and name the first three
_SALIENCE = {"tree": 1.0, "conifer": 1.0, "bush": 0.5, "cactus": 0.8, "pole": 8.0, "post": 0.5, "sign": 0.8,
             "fence": 6.0, "guard rail": 6.0, "hedge": 6.0, "house": 3.0, "building": 4.0, "car": 1.5}
_NAMES = {"tree": "trees", "conifer": "pine trees", "bush": "bushes", "cactus": "cacti", "pole": "power poles",
          "post": "marker posts", "sign": "road signs", "fence": "fences", "guard rail": "guard rails",
          "hedge": "hedges", "house": "houses", "building": "buildings", "car": "parked cars"}


@dataclass(frozen=True)
class SceneInfo:
    """What a seed's scene is (`scene_info`): its motion, its look, and a caption naming it."""

    seed: int
    speed: float  # camera speed, metres per second (in SPEED_RANGE)
    time_of_day: str  # one of TIMES_OF_DAY
    terrain: str  # one of TERRAINS
    setting: str  # one of SETTINGS
    road: str  # "asphalt" or "dirt"
    road_half: float  # metres from the centre line to the road's edge
    lanes: int  # lanes each way (1 or 2)
    markings: str  # centre line: "dashed", "double solid" or "none"
    edge_lines: bool
    hills: str  # "flat", "rolling", "mountains" or "mesas"
    camera_x: float  # metres right of the centre line
    camera_height: float  # metres above the road
    objects: tuple[str, ...]  # object kinds in the scene, most prominent first
    caption: str


@dataclass
class _Style:
    """Everything drawn from a seed that is not the object layout (`_style`)."""

    info: SceneInfo
    sky_top: np.ndarray  # float32 (3, 1, 1) colours
    sky_horizon: np.ndarray
    haze: np.ndarray
    light: np.ndarray
    cloud: np.ndarray
    haze_dist: float  # metres: fog = 1 - exp(-depth / haze_dist)
    cloud_cover: float  # 0..1
    sun: tuple[float, float, float] | None  # sun (x, y above the horizon, radius) as shares of the width
    sun_side: int  # +1: sunlight from the right, -1: from the left
    shadow: float  # brightness of faces turned away from the sun
    ground_a: np.ndarray
    ground_b: np.ndarray
    contrast: float
    shoulder: np.ndarray
    shoulder_w: float  # metres
    hill_layers: list  # [(colour (3, 1, 1), base, [(amp, freq, phase)], shape)]
    road_color: np.ndarray
    paint: np.ndarray  # edge line / dashed line colour
    centre_paint: np.ndarray
    line_w: float  # metres
    dash: float  # metres of paint in each period
    period: float
    dash_phase: float
    seams: tuple  # (period, width, darkening): joints across the road, metres
    patches: list  # [(x0, x1, period, length, phase, tone)]: repaired stretches of one lane, metres
    density: dict = field(default_factory=dict)  # kind -> (left, right): per 100 m or chance of a line
    lamp: bool = False  # poles are street lamps
    dusk_windows: bool = False  # windows lit


@dataclass
class SceneObject:
    """One object by the road, in world metres (the camera starts at z = 0 on the road, looking along +z)."""

    kind: str  # one of OBJECT_KINDS
    x: float  # metres right of the centre line: centre (cut-outs), wall facing the road (boxes, lines)
    z: float  # metres along the road: position (cut-outs), start (boxes, lines)
    length: float  # metres along the road (boxes, lines; 0 for cut-outs)
    width: float  # metres across (trunk, pole, box width away from the road)
    height: float  # metres: trunk (tree), total (others), walls (house)
    radius: float  # canopy radius (tree, bush, conifer), plate size (sign), roof height (house)
    colors: tuple  # float32 (3, 1, 1) colours, kind-specific
    phase: float  # texture phase
    variant: int = 0  # kind-specific shape variant
    bounds: tuple = (0.0, 0.0, 0.0, 0.0)  # cut-outs: (u0, u1, v0, v1) metres around (x, ground)

    @property
    def z_end(self) -> float:
        return self.z + self.length


def foe(size: int) -> tuple[float, float]:
    """The focus of expansion (x, y) in pixels of a size x size frame: centre column, horizon row."""
    return size / 2.0, HORIZON * size


def _c(*rgb) -> np.ndarray:
    """A colour as float32 (3, 1, 1): images are channel-first (3, H, W), so colour * field (H, W) broadcasts."""
    return np.array(rgb, np.float32).reshape(3, 1, 1)


def _jitter(rng: np.random.Generator, color, amount: float) -> np.ndarray:
    jitter = rng.uniform(-amount, amount, 3).reshape(3, 1, 1)
    return np.clip(np.asarray(color, np.float32).reshape(3, 1, 1) + jitter, 0, 1).astype(np.float32)


@lru_cache(maxsize=256)
def _style(seed: int) -> _Style:
    """The seed's scene style, drawn from its own random stream (independent of clip length)."""
    rng = np.random.default_rng([seed, 1])
    time = TIMES_OF_DAY[rng.integers(len(TIMES_OF_DAY))]
    terrain = TERRAINS[rng.integers(len(TERRAINS))]
    setting = SETTINGS[rng.choice(len(SETTINGS), p=[0.28, 0.2, 0.2, 0.14, 0.18])]
    speed = float(rng.uniform(*SPEED_RANGE))
    top, hor, haze, light, cloud = (_jitter(rng, c, 0.04) for c in _TIMES[time])
    haze_dist = float(rng.uniform(60, 120) if time == "overcast" else rng.uniform(110, 260))
    cloud_cover = float(rng.uniform(0.6, 1.0) if time == "overcast" else rng.uniform(0.0, 0.6))
    sun_side = 1 if rng.random() < 0.5 else -1
    sun = None
    if time != "overcast" and time != "midday":
        sun = (0.5 + sun_side * rng.uniform(0.12, 0.42), rng.uniform(0.02, 0.12), rng.uniform(0.02, 0.035))
    shadow = 0.86 if time == "overcast" else float(rng.uniform(0.62, 0.76))

    ga, gb, contrast, shoulder, hill = _TERRAINS[terrain]
    ground_a, ground_b, shoulder, hill = (_jitter(rng, c, 0.05) for c in (ga, gb, shoulder, hill))
    shoulder_w = float(rng.uniform(0.0, 1.2))
    hills = ("mesas" if terrain == "desert" and rng.random() < 0.5
             else ("flat", "rolling", "rolling", "mountains")[rng.integers(4)])
    hill_layers = []
    for layer, mix in ((0, 0.35), (1, 0.6)):  # far, then near (drawn over the far one)
        base = {"flat": 0.004, "rolling": 0.012, "mountains": 0.02, "mesas": 0.0}[hills] * (1 + layer * 0.3)
        amp = {"flat": 0.006, "rolling": 0.035, "mountains": 0.09, "mesas": 0.06}[hills] * (1.0 - 0.45 * layer)
        waves = [(amp * rng.uniform(0.4, 1.0) / (k + 1) ** 0.7, rng.uniform(1.5, 3.5) * (k + 1) ** 1.6,
                  rng.uniform(0, 2 * np.pi)) for k in range(3)]
        color = (haze * (1 - mix) + hill * mix * (0.85 if layer else 1.0)).astype(np.float32)
        hill_layers.append((color, base, waves, hills))
    if setting == "forest":  # a far treeline on the horizon
        treeline = (haze * 0.4 + _c(0.12, 0.24, 0.12) * 0.6).astype(np.float32)
        hill_layers.append((treeline, 0.008, [(0.008, 40.0, rng.uniform(0, 6.3)), (0.005, 97.0, rng.uniform(0, 6.3)),
                                              (0.004, 11.0, rng.uniform(0, 6.3))], "trees"))

    dirt = setting in ("countryside", "forest") and terrain in ("dry field", "desert", "grass") and rng.random() < 0.3
    lanes = 2 if setting == "highway" else 1
    road_half = float(rng.uniform(5.6, 7.2) if lanes == 2 else rng.uniform(2.6, 4.4) if not dirt
                      else rng.uniform(2.2, 3.2))
    if dirt:
        road_color = _jitter(rng, (0.50, 0.40, 0.28) if terrain != "desert" else (0.66, 0.54, 0.38), 0.05)
        markings, edge_lines = "none", False
    else:
        tone = rng.uniform(0.2, 0.45)
        road_color = _jitter(rng, (tone, tone, tone), 0.02)
        markings = ("dashed", "dashed", "double solid", "none")[rng.integers(4)] if lanes == 1 else "double solid"
        edge_lines = bool(rng.random() < 0.65) or lanes == 2
    yellow = _jitter(rng, (0.92, 0.76, 0.16), 0.04)
    white = _jitter(rng, (0.93, 0.93, 0.89), 0.03)
    centre_paint = yellow if markings == "double solid" or rng.random() < 0.3 else white
    dash = float(rng.uniform(1.5, 5.0))
    period = dash * float(rng.uniform(2.0, 3.2))
    # wear that moves with the road whatever the markings (lines along the road show no motion along them)
    seams = (float(rng.uniform(4.0, 12.0)), float(rng.uniform(0.08, 0.2)), float(rng.uniform(0.3, 0.55)))
    patches = []
    for _ in range(2):
        x0, width = rng.uniform(-road_half, road_half - 1.2), rng.uniform(1.2, 3.0)
        tone = rng.uniform(0.7, 0.85) if rng.random() < 0.6 else rng.uniform(1.12, 1.25)
        patches.append((float(x0), float(min(x0 + width, road_half)), float(rng.uniform(10.0, 30.0)),
                        float(rng.uniform(1.5, 5.0)), float(rng.uniform(0.0, 30.0)), float(tone)))

    if markings != "none" or lanes == 2:  # drive in the right lane
        lane = road_half / (2 * lanes)
        camera_x = lane * (2 * lanes - 1 if lanes == 2 and rng.random() < 0.5 else 1) + rng.uniform(-0.3, 0.3)
    else:
        camera_x = road_half * rng.uniform(-0.15, 0.35)
    camera_height = float(rng.uniform(*CAMERA_HEIGHT_RANGE))

    base = dict(_SETTINGS[setting])
    tree = base.get("tree", 0.0)
    if terrain == "snow":
        base["conifer"] = base.get("conifer", 0.0) + 0.7 * tree
        base["tree"] = 0.3 * tree
        base["bush"] = 0.5 * base.get("bush", 0.0)
    elif terrain == "desert":
        base["cactus"] = 0.5 * (tree + base.get("conifer", 0.0)) + 1.5
        base["tree"], base["conifer"] = 0.1 * tree, 0.0
        base["bush"] = 1.2 * base.get("bush", 0.0)
        base["hedge"] = 0.0
    elif terrain == "dry field":
        base["tree"], base["conifer"] = 0.7 * tree, 0.3 * base.get("conifer", 0.0)
    primary = max(base, key=lambda k: base[k] * _SALIENCE[k] if k not in _LINES else 0.0)
    density: dict[str, tuple[float, float]] = {}
    for kind in OBJECT_KINDS:  # always the same draws, whatever the setting: styles stay comparable
        d = base.get(kind, 0.0)
        scale, drop = rng.uniform(0.5, 1.6), rng.random() < 0.25
        sides = [(1, 1), (1, 1), (1.4, 0.5), (0.5, 1.4), (1.6, 0), (0, 1.6)][rng.integers(6)]
        line_draws = rng.random(2)
        if kind in _LINES:
            left, right = (float(line_draws[0] < d), float(line_draws[1] < d))
        elif d > 0 and (kind == primary or not drop):
            if kind in ("building", "house") and setting in ("town", "village"):
                sides = (1, 1)
            left, right = d * scale * sides[0], d * scale * sides[1]
        else:
            left = right = 0.0
        if left or right:
            density[kind] = (left, right)
    lamp = "pole" in density and (setting == "town" or (setting == "village" and rng.random() < 0.5))
    dusk_windows = time == "dusk" or (time == "overcast" and rng.random() < 0.3)

    prominence = {k: (l + r) * _SALIENCE[k] for k, (l, r) in density.items()}
    kinds = tuple(sorted(prominence, key=lambda k: -prominence[k]))
    names = [("street lamps" if k == "pole" and lamp else _NAMES[k]) for k in kinds[:3]]
    info = SceneInfo(seed=seed, speed=speed, time_of_day=time, terrain=terrain, setting=setting,
                     road="dirt" if dirt else "asphalt", road_half=road_half, lanes=lanes, markings=markings,
                     edge_lines=edge_lines, hills=hills, camera_x=float(camera_x), camera_height=camera_height,
                     objects=kinds, caption=_caption(time, terrain, setting, dirt, names))
    return _Style(info=info, sky_top=top, sky_horizon=hor, haze=haze, light=light, cloud=cloud, haze_dist=haze_dist,
                  cloud_cover=cloud_cover, sun=sun, sun_side=sun_side, shadow=shadow, ground_a=ground_a,
                  ground_b=ground_b, contrast=contrast, shoulder=shoulder, shoulder_w=shoulder_w,
                  hill_layers=hill_layers, road_color=road_color, paint=white, centre_paint=centre_paint,
                  line_w=float(rng.uniform(0.1, 0.18)), dash=dash, period=period,
                  dash_phase=float(rng.uniform(0, period)), seams=seams, patches=patches, density=density, lamp=lamp,
                  dusk_windows=dusk_windows)


def _caption(time: str, terrain: str, setting: str, dirt: bool, names: list[str]) -> str:
    adjective = {"snow": "snowy ", "desert": "desert "}.get(terrain, "")
    noun = {"countryside": "country road", "forest": "forest road", "village": "village road",
            "town": "town street", "highway": "highway"}[setting]
    if dirt:
        noun = "dirt road" if setting != "forest" else "forest dirt road"
    where = {"dry field": " through dry yellow fields", "autumn": " in autumn"}.get(terrain, "")
    if len(names) > 1:
        things = ", ".join(names[:-1]) + " and " + names[-1]
    else:
        things = names[0] if names else "open land"
    when = {"morning": "in the morning", "midday": "at midday", "afternoon": "in the afternoon", "dusk": "at dusk",
            "overcast": "on an overcast day"}[time]
    article = "an" if (adjective or noun)[0] in "aeiou" else "a"
    return f"driving down {article} {adjective}{noun}{where} lined with {things} {when}"


def scene_info(seed: int) -> SceneInfo:
    """The seed's scene: speed (m/s), time of day, terrain, setting, road, camera, object kinds, caption."""
    return _style(int(seed)).info


def scene_speed(seed: int) -> float:
    """The seed's camera speed in metres per second (in SPEED_RANGE); `render_driving_scene`'s default."""
    return scene_info(seed).speed


def scene_caption(seed: int) -> str:
    """A caption naming what is in the seed's scene, e.g. 'driving down a snowy forest road lined with ...'."""
    return scene_info(seed).caption


# ----------------------------------------------------------------------------------------------- the world


def _object(kind: str, rng: np.random.Generator, st: _Style, x: float, z: float, side: int) -> SceneObject:
    """One cut-out object of `kind` at (x, z) (all random draws of a kind happen here, accepted or not)."""
    terrain = st.info.terrain
    r = rng.random(8)
    phase = float(r[0] * 6.283)
    if kind == "tree":
        height, width, radius = 1.6 + 1.6 * r[1], 0.22 + 0.22 * r[2], 1.1 + 1.5 * r[3]
        if terrain == "autumn":
            leaves = [(0.86, 0.46, 0.10), (0.72, 0.20, 0.10), (0.86, 0.70, 0.16), (0.45, 0.42, 0.12)][int(r[4] * 4)]
        elif terrain == "snow":
            leaves = (0.80, 0.83, 0.88)
        elif terrain in ("dry field", "desert"):
            leaves = (0.38, 0.42, 0.16)
        else:
            leaves = (0.10 + 0.15 * r[4], 0.35 + 0.25 * r[5], 0.08 + 0.12 * r[6])
        return SceneObject(kind, x, z, 0.0, width, height, radius, (_jitter(rng, leaves, 0.04), _c(0.35, 0.24, 0.14)),
                           phase, bounds=(-radius, radius, 0.0, height + 1.62 * radius))
    if kind == "conifer":
        height = 4.0 + 8.0 * r[1] ** 1.5
        radius = height * (0.22 + 0.12 * r[2])
        leaves = (0.06 + 0.08 * r[3], 0.22 + 0.14 * r[4], 0.12 + 0.08 * r[5])
        return SceneObject(kind, x, z, 0.0, 0.25, height, radius, (_jitter(rng, leaves, 0.02), _c(0.30, 0.20, 0.12)),
                           phase, variant=3 + int(r[6] * 3), bounds=(-radius, radius, 0.0, height))
    if kind == "bush":
        radius, height = 0.6 + 1.0 * r[1], 0.5 + 0.9 * r[2]
        if terrain in ("desert", "dry field"):
            leaves = (0.46 + 0.1 * r[3], 0.48 + 0.08 * r[4], 0.30)
        elif terrain == "autumn":
            leaves = (0.62, 0.30 + 0.2 * r[3], 0.12)
        elif terrain == "snow":
            leaves = (0.55, 0.60, 0.56)
        else:
            leaves = (0.14 + 0.1 * r[3], 0.36 + 0.16 * r[4], 0.10)
        return SceneObject(kind, x, z, 0.0, radius, height, radius, (_c(*leaves),), phase,
                           bounds=(-radius * 1.1, radius * 1.1, 0.0, height * 1.1))
    if kind == "cactus":
        height = 2.0 + 3.5 * r[1]
        return SceneObject(kind, x, z, 0.0, 0.2 + 0.12 * r[2], height, 0.0, (_jitter(rng, (0.24, 0.44, 0.24), 0.05),),
                           phase, variant=int(r[3] * 3), bounds=(-1.0, 1.0, 0.0, height + 0.2))
    if kind == "pole":
        height = 7.0 + 3.0 * r[1]
        color = _c(0.62, 0.62, 0.60) if (r[2] < 0.4 or st.lamp) else _c(0.40, 0.30, 0.20)
        arm = 1.8 if st.lamp else 0.8 + 0.5 * r[3]
        return SceneObject(kind, x, z, 0.0, 0.22, height, arm, (color, _c(0.35, 0.33, 0.31)), phase,
                           variant=(2 if st.lamp else 1 + int(r[4] < 0.4)),
                           bounds=(-max(arm, 0.2), max(arm, 0.2), 0.0, height + 0.3))
    if kind == "post":  # a delineator: white, a black band with a reflector facing the traffic
        reflector = _c(0.95, 0.55, 0.1) if side > 0 else _c(0.95, 0.95, 0.95)
        return SceneObject(kind, x, z, 0.0, 0.12, 1.0, 0.0, (_c(0.92, 0.92, 0.9), _c(0.1, 0.1, 0.1), reflector), phase,
                           bounds=(-0.06, 0.06, 0.0, 1.0))
    if kind == "sign":
        shape = int(r[1] * 4)  # 0: board, 1: diamond, 2: round, 3: triangle
        size = 0.7 + 0.4 * r[2] if shape else 1.2 + 1.0 * r[2]
        post = 1.8 + 0.6 * r[3]
        face = [(0.12, 0.42, 0.22), (0.18, 0.32, 0.65)][int(r[4] * 2)] if shape == 0 else \
            [(0.1, 0.1, 0.1), (0.92, 0.76, 0.1), (0.8, 0.1, 0.1), (0.8, 0.1, 0.1)][shape]
        inner = (0.95, 0.95, 0.95) if shape != 1 else (0.95, 0.78, 0.12)
        half = size * (1.3 if shape == 0 else 0.6)
        return SceneObject(kind, x, z, 0.0, 0.09, post, size, (_c(*face), _c(*inner), _c(0.6, 0.6, 0.62)), phase,
                           variant=shape + (4 if side < 0 else 0), bounds=(-half, half, 0.0, post + size * 1.05))
    raise ValueError(kind)


def _box(kind: str, rng: np.random.Generator, st: _Style, x: float, z: float, side: int) -> SceneObject:
    """A house, building or car: x is its wall facing the road, it reaches `width` further out."""
    r = rng.random(8)
    if kind == "house":
        storeys = 1 + int(r[1] < 0.4)
        walls = [(0.92, 0.9, 0.84), (0.86, 0.76, 0.56), (0.64, 0.30, 0.22), (0.92, 0.84, 0.52), (0.62, 0.74, 0.82),
                 (0.52, 0.38, 0.26), (0.86, 0.86, 0.88)][int(r[2] * 7)]
        roof = [(0.30, 0.30, 0.32), (0.52, 0.22, 0.16), (0.24, 0.30, 0.26), (0.40, 0.32, 0.28)][int(r[3] * 4)]
        if st.info.terrain == "snow" and r[4] < 0.7:
            roof = (0.9, 0.92, 0.96)
        return SceneObject(kind, x, z, 7.0 + 7.0 * r[5], 6.0 + 4.0 * r[6], 2.8 * storeys + 0.3, 1.5 + 2.0 * r[7],
                           (_jitter(rng, walls, 0.03), _jitter(rng, roof, 0.03), _c(0.40, 0.26, 0.18)),
                           float(r[0] * 6.28), variant=storeys)
    if kind == "building":
        floors = 3 + int(r[1] * 6)
        walls = [(0.66, 0.66, 0.64), (0.62, 0.34, 0.26), (0.84, 0.78, 0.64), (0.42, 0.52, 0.62), (0.78, 0.74, 0.70),
                 (0.52, 0.50, 0.46)][int(r[2] * 6)]
        shop = [(0.7, 0.15, 0.12), (0.15, 0.35, 0.6), (0.2, 0.5, 0.3), (0.85, 0.65, 0.15)][int(r[3] * 4)]
        return SceneObject(kind, x, z, 10.0 + 14.0 * r[4], 10.0 + 8.0 * r[5], 3.1 * floors + 0.6, 0.0,
                           (_jitter(rng, walls, 0.04), _c(*shop)), float(r[0] * 6.28), variant=floors)
    if kind == "car":
        body = [(0.75, 0.1, 0.1), (0.15, 0.25, 0.6), (0.85, 0.85, 0.85), (0.15, 0.15, 0.16), (0.55, 0.57, 0.6),
                (0.85, 0.7, 0.1), (0.2, 0.45, 0.3)][int(r[1] * 7)]
        return SceneObject(kind, x, z, 4.0 + 0.7 * r[2], 1.75 + 0.1 * r[3], 1.42 + 0.1 * r[4], 0.0,
                           (_jitter(rng, body, 0.04),), float(r[0] * 6.28), variant=int(side < 0))
    raise ValueError(kind)


def _world(seed: int, length: float) -> list[SceneObject]:
    """The objects along `length` metres of the seed's road, sorted by z.

    Each kind and side draws from its own random stream, so a longer road starts with the objects
    of a shorter one (a longer clip starts with the frames of a shorter one).
    """
    st = _style(seed)
    edge = st.info.road_half + st.shoulder_w
    objects: list[SceneObject] = []
    footprints: list[tuple[float, float, float, float]] = []  # boxes: (x0, x1, z0, z1)

    def free(x0: float, x1: float, z0: float, z1: float) -> bool:
        return all(x1 <= a0 or x0 >= a1 or z1 <= b0 or z0 >= b1 for a0, a1, b0, b1 in footprints)

    for k, kind in enumerate(OBJECT_KINDS):
        if kind not in st.density:
            continue
        for side_i, side in enumerate((-1, 1)):
            amount = st.density[kind][side_i]
            if amount <= 0:
                continue
            rng = np.random.default_rng([seed, 2, k, side_i])
            if kind in ("pole", "post"):
                if kind == "pole":
                    x, spacing = side * (edge + rng.uniform(0.6, 2.0)), rng.uniform(16.0, 32.0)
                else:  # delineator posts at the road's edge
                    x, spacing = side * (st.info.road_half + rng.uniform(0.4, 0.9)), rng.uniform(18.0, 45.0)
                z = rng.uniform(2.0, spacing)
                while z < length:
                    objects.append(_object(kind, rng, st, x, z, side))
                    z += spacing * rng.uniform(0.95, 1.05)
            elif kind in ("fence", "guard rail", "hedge"):
                if kind == "guard rail":
                    x, height = side * (st.info.road_half + rng.uniform(0.3, 0.6)), 0.8
                else:
                    x, height = side * (edge + rng.uniform(0.8, 2.5)), (1.1 if kind == "fence" else 1.6)
                z = rng.uniform(-20.0, 20.0)
                while z < length:
                    run, gap = rng.uniform(30.0, 150.0), rng.uniform(8.0, 60.0)
                    color = _jitter(rng, {"fence": (0.52, 0.40, 0.28), "guard rail": (0.70, 0.72, 0.74),
                                          "hedge": (0.16, 0.36, 0.12)}[kind], 0.04)
                    if st.info.terrain == "snow" and kind == "hedge":
                        color = _c(0.30, 0.40, 0.32)
                    objects.append(SceneObject(kind, x, z, run, 0.0, height, rng.uniform(2.0, 3.5), (color,),
                                               float(rng.uniform(0, 6.28))))
                    z += run + gap
            elif kind in _BOXES:
                spacing = 100.0 / amount
                z = rng.uniform(0.0, spacing)
                while z < length:
                    setback = rng.uniform(*_SETBACK[kind])
                    obj = _box(kind, rng, st, side * (edge + setback), z, side)
                    x0, x1 = sorted((obj.x, obj.x + side * obj.width))
                    if free(x0 - 0.5, x1 + 0.5, z - 1.0, obj.z_end + 1.0):
                        footprints.append((x0, x1, z, obj.z_end))
                        objects.append(obj)
                    z += obj.length + spacing * rng.uniform(0.2, 1.4)
            else:
                spacing = 100.0 / amount
                z = rng.uniform(0.0, spacing)
                while z < length:
                    setback = rng.uniform(*_SETBACK[kind])
                    obj = _object(kind, rng, st, side * (edge + setback), z, side)
                    half = max(obj.bounds[1], 0.3)
                    if free(obj.x - half, obj.x + half, z - half, z + half):
                        objects.append(obj)
                    z += spacing * rng.uniform(0.3, 1.7)
    return sorted(objects, key=lambda o: o.z)


# ----------------------------------------------------------------------------------------------- textures


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def _value_noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1] at world coordinates (u, v) (lattice units), bilinear between lattice values."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = _smooth(u - iu), _smooth(v - iv)  # smoothstep: no visible lattice
    iu, iv = iu.astype(np.int64) & 255, iv.astype(np.int64) & 255
    a, b = table[iu, iv], table[(iu + 1) & 255, iv]
    c, d = table[iu, (iv + 1) & 255], table[(iu + 1) & 255, (iv + 1) & 255]
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


class _Octave:
    """Value noise on the ground, n(x * freq, along * freq): the lateral half precomputed per render.

    Each ground row lies at one depth, so `along` is one number per row; x (metres across) per pixel
    does not change while the camera drives straight on.
    """

    def __init__(self, table: np.ndarray, x: np.ndarray, freq: float, offset: float):
        u = x * freq + offset  # (hg, s)
        iu = np.floor(u)
        self.fu = _smooth(u - iu).astype(np.float32)  # (hg, s)
        iu = iu.astype(np.int64)
        self.i0 = ((iu & 255) * 256).astype(np.int32)  # (hg, s) row offsets into the flat table
        self.i1 = (((iu + 1) & 255) * 256).astype(np.int32)
        self.table, self.freq, self.offset = table.ravel(), freq, offset * 0.37

    def __call__(self, along: np.ndarray) -> np.ndarray:
        """float32 (hg, s) in [0, 1] for `along` (hg, 1) metres."""
        v = along * self.freq + self.offset
        iv = np.floor(v)
        fv = _smooth(v - iv).astype(np.float32)  # (hg, 1)
        iv = iv.astype(np.int32)
        v0, v1 = iv & 255, (iv + 1) & 255
        t = self.table
        a = t.take(self.i0 + v0)
        b = t.take(self.i1 + v0)
        c = t.take(self.i0 + v1)
        d = t.take(self.i1 + v1)
        top = a + (b - a) * self.fu
        return top + (c + (d - c) * self.fu - top) * fv


def _coverage(x: np.ndarray, half_pixel: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """Share of each pixel's span [x - half_pixel, x + half_pixel] inside [centre - half_width, centre + half_width]."""
    lo = np.maximum(x - half_pixel, centre - half_width)
    hi = np.minimum(x + half_pixel, centre + half_width)
    return np.clip((hi - lo) / (2 * half_pixel), 0, 1)


def _dash_coverage(a0: np.ndarray, a1: np.ndarray, dash: float, period: float) -> np.ndarray:
    """Share of [a0, a1] (metres along the road) painted by dashes [k period, k period + dash)."""
    def painted(a):  # painted metres in [0, a)
        return np.floor(a / period) * dash + np.minimum(np.mod(a, period), dash)
    return (painted(a1) - painted(a0)) / np.maximum(a1 - a0, 1e-6)


# ----------------------------------------------------------------------------------------------- rendering


class _Canvas:
    """One render's fixed geometry (sky, ground lattice, markings) and one frame's image and depth buffer."""

    def __init__(self, st: _Style, seed: int, size: int):
        info = st.info
        s = size * SUPERSAMPLE
        self.st, self.s, self.s2 = st, s, s / 2.0
        self.f, self.yh = FOCAL * s, HORIZON * s
        self.cam_x, self.cam_h = info.camera_x, info.camera_height
        self.haze, self.light, self.haze_dist = st.haze, st.light, st.haze_dist
        self.xs = np.arange(s, dtype=np.float32) + 0.5  # (s,) pixel centres
        self.ys = self.xs
        self.rg = int(math.floor(self.yh - 0.5)) + 1  # first ground row (its centre is below the horizon)
        table_rng = np.random.default_rng([seed, 3])
        self.sky = self._sky(table_rng.random((256, 256)).astype(np.float32))  # (3, rg, s)
        self._ground_setup(table_rng.random((256, 256)).astype(np.float32))
        self.image = np.empty((3, s, s), np.float32)  # channel-first: colour * (h, w) fields broadcast fast
        self.zbuf = np.empty((s, s), np.float32)
        self.travelled = 0.0

    # ---- sky and hills: at infinity, the same in every frame
    def _sky(self, table: np.ndarray) -> np.ndarray:
        st, s, yh = self.st, self.s, self.yh
        ys = self.ys[: self.rg, None]  # (rg, 1)
        xs = self.xs[None, :]  # (1, s)
        t = np.clip((yh - ys) / yh, 0, 1) ** 0.7
        sky = (st.sky_horizon * (1 - t) + st.sky_top * t) * np.ones((1, s), np.float32)  # (3, rg, s)
        if st.sun is not None:
            sx, sy, sr = st.sun[0] * s, yh - st.sun[1] * s, st.sun[2] * s
            r2 = ((xs - sx) ** 2 + (ys - sy) ** 2) / (sr * sr)
            glow = np.minimum(0.35 * np.exp(-r2 / 18.0) + (r2 < 1.0), 1)  # (rg, s)
            sun_color = _c(1.0, 0.96, 0.85) if st.info.time_of_day != "dusk" else _c(1.0, 0.78, 0.45)
            sky = sky * (1 - glow) + sun_color * glow
        if st.cloud_cover > 0.05:
            n = 0.6 * _value_noise(table, xs / s * 5.0 + 17.3, ys / s * 16.0) \
                + 0.4 * _value_noise(table, xs / s * 13.0 + 3.1, ys / s * 40.0 + 7.7)
            cover = np.clip((n - (1.0 - 0.55 * st.cloud_cover)) * 4.0, 0, 1) * np.clip((yh - ys) / (0.05 * s), 0, 1)
            sky = sky * (1 - cover) + (st.cloud * (0.92 + 0.12 * (n - 0.5))) * cover
        x = xs / s  # (1, s)
        for color, base, waves, shape in st.hill_layers:
            h = np.full(x.shape, base, np.float32)
            for amp, freq, phase in waves:
                w = np.sin(x * freq * 2 * np.pi + phase)
                if shape == "mountains":
                    w = 1 - 2 * np.abs(np.sin(x * freq * np.pi + phase))  # sharp peaks
                elif shape == "trees":
                    w = np.abs(w)
                h = h + amp * (w + 1) / 2
            if shape == "mesas":
                h = np.clip(h * 2.2 - 0.05, 0, None) * 0.55
            top = yh - h * s  # (1, s) silhouette row
            hill = (ys > top) & (ys <= yh + 1)  # (rg, s)
            up = np.clip((yh - ys) / max(float(h.max()) * s, 1e-3), 0, 1)  # 0 at the horizon, 1 at the peaks
            col = color * (0.9 + 0.15 * up)  # (3, rg, 1)
            if shape == "mountains" and (st.info.terrain == "snow" or st.sun_side > 0):
                col = np.where(up > 0.55, st.haze * 0.3 + _c(0.95, 0.96, 1.0) * 0.7, col)  # snow caps
            sky = np.where(hill, col, sky)
        return sky.astype(np.float32)

    # ---- the ground: rows at fixed depths, texture moves with `along`
    def _ground_setup(self, table: np.ndarray) -> None:
        st, s, info = self.st, self.s, self.st.info
        ys = self.ys[self.rg:, None]  # (hg, 1)
        dy = ys - self.yh
        self.depth = (self.f * self.cam_h / dy).astype(np.float32)  # (hg, 1) metres ahead of each row
        self.depth_near = self.f * self.cam_h / (dy + 0.5)  # (hg, 1) at each row's lower and upper edge
        self.depth_far = self.f * self.cam_h / np.maximum(dy - 0.5, 0.05)
        x = self.cam_x + (self.xs[None, :] - self.s2) * self.depth / self.f  # (hg, s) metres right of the centre
        half_px = self.depth / (2 * self.f)  # (hg, 1) half a pixel in metres across
        self.detail = np.clip(1.2 - self.depth / 50.0, 0.15, 1.0).astype(np.float32)  # fade fine texture far away
        self.fog = (1 - np.exp(-self.depth / st.haze_dist)).astype(np.float32)  # (hg, 1)
        self.oct_patch = _Octave(table, x, 0.06, 11.0)
        self.oct_mid = _Octave(table, x, 0.6, 37.0)  # blobs larger than the near ground's motion per frame
        self.oct_coarse = _Octave(table, x, 2.0, 0.0)
        self.oct_fine = _Octave(table, x, 7.0, 91.0)
        ax = np.abs(x)
        self.road_a = _coverage(ax, half_px, 0.0, info.road_half).astype(np.float32)  # (hg, s) road's share
        self.shoulder_a = _coverage(ax, half_px, 0.0, info.road_half + st.shoulder_w).astype(np.float32)
        lines = []  # (lateral coverage (hg, s), dashed?, colour)
        if info.markings == "dashed":
            lines.append((_coverage(x, half_px, 0.0, st.line_w / 2), True, st.centre_paint))
        elif info.markings == "double solid":
            cover = _coverage(x, half_px, -0.15, st.line_w / 2) + _coverage(x, half_px, 0.15, st.line_w / 2)
            lines.append((cover, False, st.centre_paint))
        if info.lanes == 2:
            half = info.road_half / 2
            lines.append((_coverage(x, half_px, -half, 0.07) + _coverage(x, half_px, half, 0.07), True, st.paint))
        if info.edge_lines:
            e = info.road_half - 0.3
            lines.append((_coverage(x, half_px, -e, st.line_w / 2) + _coverage(x, half_px, e, st.line_w / 2), False,
                          st.paint))
        self.lines = [(c.astype(np.float32), dashed, color) for c, dashed, color in lines]
        self.patch_cover = [_coverage(x, half_px, (x0 + x1) / 2, (x1 - x0) / 2).astype(np.float32)
                            for x0, x1, *_ in st.patches]  # (hg, s) lateral extent of each lane patch
        if info.road == "dirt":  # faint wheel tracks
            tracks = _coverage(x, half_px, -0.8, 0.4) + _coverage(x, half_px, 0.8, 0.4)
            self.tracks = (1 - 0.12 * tracks).astype(np.float32)  # (hg, s)
        else:
            self.tracks = None

    def ground(self, travelled: float) -> np.ndarray:
        """float32 (3, hg, s): terrain, shoulder, road and markings with the camera `travelled` metres on."""
        st = self.st
        along = self.depth + travelled  # (hg, 1): world position of each row along the road
        coarse, fine = self.oct_coarse(along), self.oct_fine(along)
        n = 0.6 * self.oct_mid(along) + 0.26 * coarse + 0.14 * fine  # (hg, s)
        patch = np.clip((self.oct_patch(along) - 0.5) * 3.0 + 0.5, 0, 1)  # (hg, s) large fields of colour A or B
        tex = (n - 0.5) * self.detail  # (hg, s)
        shade = 1 + st.contrast * tex
        a0, a1 = self.depth_near + travelled, self.depth_far + travelled  # (hg, 1): each row's span along
        terrain = st.info.terrain
        if terrain == "dry field":  # crop rows across the road, faded once they are under a pixel apart
            shade = shade + 0.14 * np.sin(along * (2 * np.pi / 1.2)) * np.clip(1 - 2 * (a1 - a0) / 1.2, 0, 1)
        if terrain == "desert":  # wind ripples across the road's direction
            shade = shade + 0.12 * np.sin(along * 3.0 + 5.0 * coarse) * self.detail
        ground = (st.ground_a + (st.ground_b - st.ground_a) * patch) * shade  # (3, hg, s)
        if terrain == "autumn":  # fallen leaves
            leaves = np.clip((fine - 0.66) * 6.0, 0, 1) * self.detail
            ground = ground * (1 - leaves) + _c(0.85, 0.42, 0.10) * leaves
        gravel = st.shoulder * (1 + 0.5 * tex)
        ground = ground + (gravel - ground) * self.shoulder_a
        road_shade = 1 + 0.85 * tex  # (hg, s)
        if self.tracks is not None:  # dirt: wheel tracks and potholes
            road_shade = road_shade * self.tracks * (1 - 0.35 * np.clip((coarse - 0.7) * 8.0, 0, 1))
        else:  # asphalt: joints across the road and repaired patches
            period, width, dark = st.seams
            road_shade = road_shade * (1 - dark * _dash_coverage(a0, a1, width, period))  # seams: (hg, 1)
            for cover, (_, _, p_period, p_len, p_phase, tone) in zip(self.patch_cover, st.patches):
                along_cover = _dash_coverage(a0 + p_phase, a1 + p_phase, p_len, p_period)  # (hg, 1)
                road_shade = road_shade * (1 + (tone - 1) * cover * along_cover)
        road = st.road_color * road_shade + 0.12 * tex  # dark asphalt keeps its texture
        ground = ground + (road - ground) * self.road_a
        for cover, dashed, color in self.lines:
            if dashed:
                cover = cover * _dash_coverage(a0 + st.dash_phase, a1 + st.dash_phase, st.dash, st.period)
            ground = ground + (color * (1 + 0.1 * tex) - ground) * cover
        return ground * self.light * (1 - self.fog) + self.haze * self.fog

    # ---- one frame
    def begin(self, travelled: float) -> None:
        self.travelled = travelled
        self.image[:, : self.rg] = self.sky
        self.image[:, self.rg:] = self.ground(travelled)
        self.zbuf.fill(np.inf)

    def put(self, r0: int, r1: int, c0: int, c1: int, mask: np.ndarray, depth, color: np.ndarray) -> None:
        """Paint `color` (3, h, w) (or broadcastable) where `mask` (h, w) and nearer than the depth buffer.

        depth: metres, a scalar or (h, w). Lit by the scene's light, faded into the haze with depth and
        blended in over the last FADE metres before FAR."""
        zb = self.zbuf[r0:r1, c0:c1]
        m = mask & (depth < zb)  # (h, w)
        if not m.any():
            return
        region = self.image[:, r0:r1, c0:c1]  # (3, h, w) view
        if np.ndim(depth) == 0:
            fog = 1.0 - math.exp(-depth / self.haze_dist)
            alpha = min(1.0, (FAR - depth) / FADE)
            col = color * (self.light * ((1 - fog) * alpha)) + self.haze * (fog * alpha)
            if alpha < 1.0:
                col = col + region * (1 - alpha)
        else:
            fog = 1 - np.exp(-depth / self.haze_dist)  # (h, w)
            alpha = np.clip((FAR - depth) / FADE, 0, 1)
            col = region * (1 - alpha) + (color * self.light * (1 - fog) + self.haze * fog) * alpha
        np.copyto(region, col, where=m)
        np.copyto(zb, depth, where=m)

    def cutout(self, obj: SceneObject, depth: float, shade, x: float | None = None, bounds=None) -> None:
        """A flat object facing the camera at `depth`: shade(obj, u (1, w), v (h, 1)) -> (mask, colour (3, h, w)),
        u metres right of its anchor x, v metres above the ground."""
        sc = self.f / depth  # pixels per metre
        u0, u1, v0, v1 = obj.bounds if bounds is None else bounds
        if max(u1 - u0, v1 - v0) * sc < 0.6:
            return  # under a third of an output pixel: invisible
        cx = self.s2 + ((obj.x if x is None else x) - self.cam_x) * sc
        gy = self.yh + self.cam_h * sc  # the ground line at this depth
        c0, c1 = max(0, int(cx + u0 * sc)), min(self.s, int(math.ceil(cx + u1 * sc)))
        r0, r1 = max(0, int(gy - v1 * sc)), min(self.s, int(math.ceil(gy - v0 * sc)))
        if c0 >= c1 or r0 >= r1:
            return
        u = ((self.xs[c0:c1] - cx) / sc)[None, :]  # (1, w)
        v = ((gy - self.ys[r0:r1]) / sc)[:, None]  # (h, 1)
        mask, color = shade(self, obj, u, v)
        self.put(r0, r1, c0, c1, mask, depth, color)

    def strip(self, obj: SceneObject, a: tuple[float, float], b: tuple[float, float], shade, z0: float | None = None,
              z1: float | None = None) -> None:
        """A planar patch: the cross-section segment a -> b ((x, y) metres: across, up) swept along the road over
        world z in [z0, z1]. shade(obj, t, zl) -> (mask, colour (3, h, w)), t metres from a along the segment,
        zl metres from z0 (both (h, w))."""
        z0 = obj.z if z0 is None else z0
        z1 = obj.z_end if z1 is None else z1
        d0, d1 = max(z0 - self.travelled, NEAR), min(z1 - self.travelled, FAR)
        if d0 >= d1:
            return
        (xa, ya), (xb, yb) = a, b
        f, s = self.f, self.s
        near, far = f / d0, f / d1  # pixels per metre at the two ends
        xa_, xb_, ya_, yb_ = xa - self.cam_x, xb - self.cam_x, ya - self.cam_h, yb - self.cam_h
        px = (xa_ * near, xa_ * far, xb_ * near, xb_ * far)  # the four corners, relative to the FOE
        py = (ya_ * near, ya_ * far, yb_ * near, yb_ * far)
        x0, x1, y0, y1 = min(px), max(px), min(py), max(py)
        if x1 - x0 < 0.6 and y1 - y0 < 0.6:
            return
        c0, c1 = max(0, int(self.s2 + x0)), min(s, int(math.ceil(self.s2 + x1)))
        r0, r1 = max(0, int(self.yh - y1)), min(s, int(math.ceil(self.yh - y0)))
        if c0 >= c1 or r0 >= r1:
            return
        du = ((self.xs[c0:c1] - self.s2) / f)[None, :]  # (1, w) ray direction per unit depth
        dv = ((self.yh - self.ys[r0:r1]) / f)[:, None]  # (h, 1)
        ex, ey = xb - xa, yb - ya
        length = math.hypot(ex, ey)
        nx, ny = ey, -ex  # the plane's normal in the cross-section
        depth = (nx * xa_ + ny * ya_) / (nx * du + ny * dv)  # (h, w), or (1, w) for a wall, (h, 1) for a floor
        if depth.shape != (r1 - r0, c1 - c0):
            depth = depth + np.zeros((r1 - r0, c1 - c0), np.float32)
        t = ((depth * du - xa_) * ex + (depth * dv - ya_) * ey) / length
        mask = (depth >= d0) & (depth <= d1) & (t >= 0) & (t <= length)
        if not mask.any():
            return
        zl = depth + (self.travelled - z0)
        m2, color = shade(self, obj, t, zl)
        self.put(r0, r1, c0, c1, mask & m2, depth, color)

    def face(self, normal_x: int) -> float:
        """Brightness of a wall facing -x (normal_x -1), +x (1) or the camera (0)."""
        if normal_x == 0:
            return 0.5 * (1 + self.st.shadow)
        return 1.0 if normal_x == self.st.sun_side else self.st.shadow

    def window(self) -> np.ndarray:
        return _c(1.0, 0.84, 0.5) if self.st.dusk_windows else _c(0.22, 0.28, 0.36)


def _shade_tree(cv: _Canvas, o: SceneObject, u, v):
    r = o.radius
    vc = o.height + 0.6 * r
    uu, vv = u / r, (v - vc) / r  # canopy coordinates, fixed to the tree
    bump = 1 + 0.12 * np.sin(7 * uu + o.phase) * np.sin(6 * vv + 2 * o.phase)
    canopy = uu * uu + (1.1 * vv) ** 2 < bump  # (h, w)
    trunk = (np.abs(u) < o.width / 2) & (v >= 0) & (v < vc)
    leaves = 0.75 + 0.2 * np.sin(9.0 * uu + o.phase) * np.sin(8.0 * vv + 2 * o.phase) + 0.12 * np.sin(23.0 * uu * vv)
    light = 1.05 + 0.3 * vv * -1 + 0.15 * cv.st.sun_side * uu  # lit from above and the sun's side
    canopy_col = o.colors[0] * (leaves * light)
    bark = o.colors[1] * (0.8 + 0.3 * cv.st.sun_side * u / o.width)
    return canopy | trunk, np.where(canopy, canopy_col, bark)


def _shade_conifer(cv: _Canvas, o: SceneObject, u, v):
    trunk_h = 0.12 * o.height
    n = o.variant  # tiers, each a triangle two steps tall, overlapping the next by one step
    step = (o.height - trunk_h) / (n + 1)
    k = np.arange(n, dtype=np.float32)[:, None, None]  # (n, 1, 1)
    s_k = (v[None] - (trunk_h + k * step)) / (2 * step)  # (n, h, 1): 0 at a tier's base, 1 at its tip
    half = np.where((s_k >= 0) & (s_k <= 1), o.radius * (1 - 0.75 * k / n) * (1 - s_k), -1.0)  # (n, h, 1)
    widest = half.argmax(axis=0)[None]  # (1, h, 1): the tier whose outline is outermost in each row
    rel = np.take_along_axis(s_k, widest, 0)[0]  # (h, 1)
    canopy = np.abs(u) < half.max(axis=0)  # (h, w): the union of the tiers
    trunk = (np.abs(u) < o.width / 2) & (v >= 0) & (v < trunk_h + step)
    shade = (0.7 + 0.45 * rel + 0.12 * cv.st.sun_side * u / o.radius
             + 0.08 * np.sin(13 * u + o.phase) * np.sin(11 * v))
    col = o.colors[0] * shade
    if cv.st.info.terrain == "snow":  # snow along the lower edge of each tier
        snow = canopy & (rel < 0.22) & (np.sin(7 * u + o.phase) > -0.3)
        col = np.where(snow, _c(0.88, 0.9, 0.95), col)
    return canopy | trunk, np.where(canopy, col, o.colors[1])


def _shade_bush(cv: _Canvas, o: SceneObject, u, v):
    h = o.height
    uu, vv = u / o.radius, (v - 0.5 * h) / (0.55 * h)
    bump = 1 + 0.15 * np.sin(6 * uu + o.phase) * np.sin(5 * vv + o.phase)
    mask = (uu * uu + vv * vv < bump) & (v >= 0)
    shade = 0.8 + 0.15 * np.sin(11 * uu + o.phase) * np.sin(9 * vv) + 0.15 * vv + 0.1 * cv.st.sun_side * uu
    return mask, o.colors[0] * shade


def _shade_cactus(cv: _Canvas, o: SceneObject, u, v):
    w = o.width
    mask = (np.abs(u) < w) & (v >= 0) & (v < o.height - w + np.sqrt(np.clip(w * w - u * u, 0, None)))  # rounded top
    for k in range(o.variant + 1 if o.variant < 2 else 2):  # 0 to 2 arms
        side = 1 if (k + int(o.phase)) % 2 == 0 else -1
        a = o.height * (0.35 + 0.2 * k)
        au = u * side
        elbow = (au >= 0) & (au < 0.8) & (v >= a) & (v < a + 0.7 * w)
        arm = (np.abs(au - 0.65) < 0.7 * w) & (v >= a) & (v < a + 1.2)
        mask = mask | elbow | arm
    shade = 0.8 + 0.15 * np.cos(u * 40.0) + 0.12 * cv.st.sun_side * np.clip(u, -1, 1)
    return mask, o.colors[0] * shade


def _shade_pole(cv: _Canvas, o: SceneObject, u, v):
    H, w = o.height, o.width
    mask = (np.abs(u) < w / 2) & (v >= 0) & (v < H)
    col = o.colors[0] * (0.9 + 0.1 * np.sin(v * 3.0))  # (3, h, 1)
    arms = np.zeros_like(mask)
    if o.variant == 2:  # street lamp: an arm over the road and a lamp head
        out = -np.sign(o.x) * u  # metres towards the road
        arms = (out > 0) & (out < o.radius) & (np.abs(v - (H - 0.15)) < 0.08)
        head = (out > o.radius - 0.55) & (out < o.radius + 0.05) & (v > H - 0.32) & (v < H - 0.1)
        col = np.where(head, _c(0.95, 0.92, 0.8) if cv.st.dusk_windows else _c(0.3, 0.3, 0.32), col)
        arms = arms | head
    else:
        for k in range(o.variant):
            va = H - 0.5 - 0.9 * k
            bar = (np.abs(v - va) < 0.07) & (np.abs(u) < o.radius)
            ins = (np.abs(np.abs(u) - 0.75 * o.radius) < 0.05) & (v > va) & (v < va + 0.28)
            arms = arms | bar | ins
        col = np.where((arms & ~mask), o.colors[1], col)
    return mask | arms, col


def _shade_post(cv: _Canvas, o: SceneObject, u, v):
    band = (v > 0.72) & (v < 0.9)
    reflector = (np.abs(u) < 0.035) & (np.abs(v - 0.81) < 0.05)
    col = np.where(band, np.where(reflector, o.colors[2], o.colors[1]), o.colors[0])
    shade = 1 + 0.15 * cv.st.sun_side * u / 0.06
    return (np.abs(u) < 0.06) & (v >= 0) & (v < 1.0), col * shade


def _shade_sign(cv: _Canvas, o: SceneObject, u, v):
    shape, back = o.variant % 4, o.variant >= 4
    size, post = o.radius, o.height
    c = post + size / 2
    dv = v - c
    if shape == 0:  # rectangular board, on two posts
        hw, hh = size * 1.3, size / 2
        plate = (np.abs(u) < hw) & (np.abs(dv) < hh)
        inner = (np.abs(u) < hw - 0.08) & (np.abs(dv) < hh - 0.08)
        posts = (np.abs(np.abs(u) - 0.6 * hw) < o.width / 2) & (v >= 0) & (v < c)
        text = inner & (np.sin(u * 14) > 0.3) & (np.abs(np.abs(dv) - 0.15 * size) < 0.07 * size)
    else:
        r = size / 2
        if shape == 1:
            dist = (np.abs(u) + np.abs(dv)) / r
        elif shape == 2:
            dist = np.sqrt(u * u + dv * dv) / r
        else:  # triangle, point up (apex r above the centre, base r / 2 below)
            dist = np.maximum((np.abs(u) * 1.732 + dv) / r, -dv / (0.5 * r))
        plate = dist < 1
        inner = dist < 0.72
        posts = (np.abs(u) < o.width / 2) & (v >= 0) & (v < c)
        text = inner & (np.abs(u) < 0.08 * size) & (np.abs(dv) < 0.25 * size) & (shape == 1)
    if back:
        col = np.where(plate, o.colors[2] * 0.85, o.colors[2])
        return plate | posts, col
    face, rim = (o.colors[0], o.colors[1]) if shape == 0 else (o.colors[1], o.colors[0])
    col = np.where(inner, face, rim)
    col = np.where(text, _c(0.1, 0.1, 0.1) if shape else _c(0.95, 0.95, 0.95), col)
    col = np.where(plate, col, o.colors[2])
    return plate | posts, col * cv.face(0)


def _shade_line(cv: _Canvas, o: SceneObject, t, zl):
    """Fence, guard rail, hedge: t metres up, zl metres along."""
    if o.kind == "hedge":
        top = o.height * (0.9 + 0.08 * np.sin(zl * 1.7 + o.phase) + 0.04 * np.sin(zl * 5.3))
        shade = 0.75 + 0.18 * np.sin(zl * 9.0 + o.phase) * np.sin(t * 8.0) + 0.1 * t / o.height
        return t < top, o.colors[0] * (shade * cv.face(-int(np.sign(o.x))))
    post = np.mod(zl, o.radius) < 0.16
    if o.kind == "guard rail":
        rail = (t > 0.45) & (t < 0.75)
        post = post & (t < 0.72)
        shade = np.where(rail, 0.85 + 0.2 * np.cos((t - 0.45) * (4 * np.pi / 0.3)), 0.45)
    else:
        rail = (np.abs(t - 0.45) < 0.06) | (np.abs(t - 0.95) < 0.06)
        post = post & (t < o.height)
        shade = np.where(rail, 1.0, 0.8)
    shade = shade * cv.face(-int(np.sign(o.x)))
    return post | rail, o.colors[0] * shade


def _grid(a, b, pitch_a: float, pitch_b: float, phase: float, keep: float = 1.0, lo: float = 0.3, hi: float = 0.7,
          lo_b: float = 0.3, hi_b: float = 0.75):
    """Windows on a facade, a (metres across) and b (metres up), (h, w) each: (mask, tone in [0.7, 1.3]).

    A window where a and b fall in the window part of their pitch; per window a hash of its column and
    row drops some (all but `keep` of them) and varies the tone, so a facade is not strictly periodic
    (a periodic texture that moves more than its period between frames aliases in optical flow).
    """
    ka, kb = np.floor(a / pitch_a), np.floor(b / pitch_b)
    fa, fb = a / pitch_a - ka, b / pitch_b - kb
    cell = np.sin(ka * 12.9898 + kb * 4.1414 + phase * 78.233) * 43758.5453
    cell = cell - np.floor(cell)  # (h, w) in [0, 1): one value per window
    mask = (fa > lo) & (fa < hi) & (fb > lo_b) & (fb < hi_b) & (cell < keep)
    return mask, 0.7 + 0.6 * cell / keep


def _draw_house(cv: _Canvas, o: SceneObject) -> None:
    side = 1 if o.x > 0 else -1
    xn, xf = o.x, o.x + side * o.width
    xm = (xn + xf) / 2
    H, R, W = o.height, o.radius, o.width
    wall, roof, door = o.colors
    storey = (H - 0.3) / o.variant
    face_road = cv.face(-side)

    def front(cv, o, u, v):
        body = (np.abs(u) <= W / 2) & (v <= H) & (v >= 0)
        gable = (v > H) & (np.abs(u) <= (W / 2) * (H + R - v) / R)
        pitch = W / max(2, round(W / 2.6))
        win, tone = _grid(u + W / 2, v - 0.3, pitch, storey, o.phase)
        win = win & (np.abs(u) < W / 2 - 0.5) & (v < H - 0.2)
        is_door = (np.abs(u - 0.2 * W * math.cos(o.phase)) < 0.5) & (v < 2.1)
        col = np.where(win, cv.window() * tone, wall * (0.95 + 0.05 * np.cos(v * 25.0)))
        col = np.where(is_door, door, col)
        col = np.where(gable, wall * 0.92, col)
        return body | gable, col * cv.face(0)

    def side_wall(cv, o, t, zl):
        win, tone = _grid(zl, t - 0.3, 2.4 + 0.2 * o.phase, storey, o.phase, keep=0.7)
        win = win & (zl > 0.8) & (zl < o.length - 0.8) & (t < H - 0.2)
        col = np.where(win, cv.window() * tone, wall * (0.95 + 0.05 * np.cos(t * 25.0)))
        return True, col * face_road

    def roof_side(cv, o, t, zl):
        shade = (0.85 + 0.12 * np.cos(t * (2 * np.pi / 0.4))) * (0.8 + 0.2 * np.clip(t, 0, 1))
        return True, roof * shade

    cv.strip(o, (xn - side * 0.3, H - 0.2), (xm, H + R), roof_side, o.z - 0.3, o.z_end + 0.3)
    cv.strip(o, (xn, 0.0), (xn, H), side_wall)
    d = o.z - cv.travelled
    if NEAR < d < FAR:
        cv.cutout(o, d, front, x=xm, bounds=(-W / 2, W / 2, 0.0, H + R))


def _draw_building(cv: _Canvas, o: SceneObject) -> None:
    side = 1 if o.x > 0 else -1
    xm = o.x + side * o.width / 2
    H, W = o.height, o.width
    wall, shop = o.colors
    face_road = cv.face(-side)

    def texture(a, b, length):
        win, tone = _grid(a, b - 3.4, 2.2 + 0.15 * o.phase, 3.1, o.phase, 0.9, 0.25, 0.75, 0.25, 0.8)
        win = win & (b > 3.4) & (b < H - 0.8) & (a > 0.8) & (a < length - 0.8)
        col = np.where(win, cv.window() * tone, wall * (0.95 + 0.05 * np.cos(b * 20.0)))
        shopfront = (b < 3.2) & (b > 0.3)
        col = np.where((shopfront & (b > 2.4)), shop, col)
        col = np.where((shopfront & (b <= 2.4) & (np.mod(a, 3.0) > 0.3)), cv.window() * 0.8, col)
        col = np.where((b > H - 0.5), wall * 0.7, col)  # parapet
        return col

    def front(cv, o, u, v):
        mask = (np.abs(u) <= W / 2) & (v >= 0) & (v <= H)
        return mask, texture(u + W / 2, v, W) * cv.face(0)

    def side_wall(cv, o, t, zl):
        return True, texture(zl, t, o.length) * face_road

    cv.strip(o, (o.x, 0.0), (o.x, H), side_wall)
    d = o.z - cv.travelled
    if NEAR < d < FAR:
        cv.cutout(o, d, front, x=xm, bounds=(-W / 2, W / 2, 0.0, H))


def _draw_car(cv: _Canvas, o: SceneObject) -> None:
    side = 1 if o.x > 0 else -1
    xn, xf = o.x, o.x + side * o.width
    xm = (xn + xf) / 2
    H, W, L = o.height, o.width, o.length
    body = o.colors[0]
    belt = 0.9
    glass = _c(0.16, 0.2, 0.26)
    facing = o.variant == 1  # parked facing the camera: we see its front

    def end(cv, o, u, v):  # the face towards the camera
        taper = (v - belt) * 0.35
        lower = (np.abs(u) <= W / 2) & (v >= 0.12) & (v <= belt)
        cabin = (v > belt) & (v <= H) & (np.abs(u) <= W / 2 - 0.1 - taper)
        wheels = (v < 0.3) & (np.abs(np.abs(u) - (W / 2 - 0.25)) < 0.18)
        win = (v > belt + 0.06) & (v < H - 0.07) & (np.abs(u) <= W / 2 - 0.22 - taper)
        lamps = (np.abs(v - 0.72) < 0.08) & (np.abs(np.abs(u) - (W / 2 - 0.22)) < 0.15)
        col = np.where(win, glass, body * (1 - 0.25 * (v < 0.35)))
        col = np.where(lamps, _c(0.95, 0.92, 0.75) if facing else _c(0.8, 0.1, 0.08), col)
        col = np.where(wheels, _c(0.06, 0.06, 0.06), col)
        return lower | cabin | wheels, col * cv.face(0)

    def side_face(cv, o, t, zl):
        lower = (t >= 0.12) & (t <= belt)
        front_slope, back_slope = (1.2, 0.8) if facing else (0.8, 1.2)
        cabin = (t > belt) & (zl > 0.9 + (t - belt) * front_slope) & (zl < L - 0.9 - (t - belt) * back_slope)
        win = cabin & (t > belt + 0.06) & (t < H - 0.06) & (np.abs(zl - L / 2) > 0.06)
        r = np.minimum((zl - 0.8) ** 2, (zl - (L - 0.8)) ** 2) + (t - 0.32) ** 2
        wheel = r < 0.32 ** 2
        col = np.where(win, glass, body * (1 - 0.2 * (t < 0.4)))
        col = np.where(wheel, np.where((r < 0.13 ** 2), _c(0.5, 0.5, 0.52), _c(0.06, 0.06, 0.06)),
                       col)
        return lower | cabin | wheel, col * cv.face(-side)

    def top(cv, o, t, zl):
        return True, body * 0.95

    d0 = max(o.z - cv.travelled, NEAR)
    if (cv.cam_h - belt) * cv.f * (1 / d0 - 1 / max(o.z_end - cv.travelled, d0 + 1e-3)) > 0.5:
        cv.strip(o, (xn, belt), (xf, belt), top)  # hood and boot (seen from above; under half a pixel far away)
    if cv.cam_h > H:
        cv.strip(o, (xn + side * 0.2, H), (xf - side * 0.2, H), top, o.z + 1.4, o.z_end - 1.4)
    cv.strip(o, (xn, 0.0), (xn, H), side_face)
    d = o.z - cv.travelled
    if NEAR < d < FAR:
        cv.cutout(o, d, end, x=xm, bounds=(-W / 2, W / 2, 0.0, H))


_CUTOUTS = {"tree": _shade_tree, "conifer": _shade_conifer, "bush": _shade_bush, "cactus": _shade_cactus,
            "pole": _shade_pole, "post": _shade_post, "sign": _shade_sign}
_DRAW_BOX = {"house": _draw_house, "building": _draw_building, "car": _draw_car}


def _draw(cv: _Canvas, obj: SceneObject) -> None:
    shade = _CUTOUTS.get(obj.kind)
    if shade is not None:
        depth = obj.z - cv.travelled
        if NEAR < depth < FAR:
            cv.cutout(obj, depth, shade)
    elif obj.kind in _DRAW_BOX:
        _DRAW_BOX[obj.kind](cv, obj)
    else:  # fence, guard rail, hedge: a vertical strip facing the road
        cv.strip(obj, (obj.x, 0.0), (obj.x, obj.height), _shade_line)


def render_driving_scene(seed: int = 0, frames: int = 40, size: int = 128, fps: float = 10.0,
                         speed: float | None = None) -> np.ndarray:
    """uint8 (frames, size, size, 3): the seed's scene, the camera moving `speed` m/s forward at `fps`.

    speed None: the seed's own speed (`scene_speed(seed)`). Deterministic for a seed (style, object
    layout, colours, textures); different seeds give different scenes.
    """
    if speed is None:
        speed = scene_speed(seed)
    if frames < 1 or size < 8 or fps <= 0 or speed < 0:
        raise ValueError(f"need frames >= 1, size >= 8, fps > 0, speed >= 0; got {frames}, {size}, {fps}, {speed}")
    step = speed / fps  # metres per frame
    objects = _world(seed, length=(frames - 1) * step + FAR + 20)
    starts = [o.z for o in objects]
    longest = max((o.length for o in objects), default=0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cv = _Canvas(_style(seed), seed, size)
        out = np.empty((frames, size, size, 3), np.uint8)
        for t in range(frames):
            travelled = t * step
            cv.begin(travelled)
            lo = bisect.bisect_left(starts, travelled + NEAR - longest)
            hi = bisect.bisect_left(starts, travelled + FAR)
            for obj in reversed(objects[lo:hi]):  # far to near (the depth buffer sorts out the rest)
                if obj.z_end > travelled + NEAR or obj.length == 0.0:
                    _draw(cv, obj)
            im = cv.image  # (3, s, s)
            if SUPERSAMPLE == 2:
                small = im[:, 0::2, 0::2] + im[:, 1::2, 0::2] + im[:, 0::2, 1::2] + im[:, 1::2, 1::2]
            else:
                small = im.reshape(3, size, SUPERSAMPLE, size, SUPERSAMPLE).sum(axis=(2, 4))
            out[t] = np.clip(small * (255.0 / SUPERSAMPLE ** 2) + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return out


def write_driving_scene(path: str | Path, seed: int = 0, frames: int = 40, size: int = 128, fps: float = 10.0,
                        speed: float | None = None, caption: str | None = CAPTION) -> Path:
    """Render and write an H.264 .mp4 (plus a sidecar `<stem>.txt` caption for `prepare`).

    speed None: the seed's speed. caption: CAPTION (generic) by default, `scene_caption(seed)` names the
    scene, None writes no caption.
    """
    path = Path(path)
    write_mp4(render_driving_scene(seed, frames, size, fps, speed), path, fps)
    if caption:
        path.with_suffix(".txt").write_text(caption + "\n")
    return path
