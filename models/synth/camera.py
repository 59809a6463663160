"""The camera of the bench: a pinhole like the station's, placed around the athlete by yaw, height and distance.

World frame (the body model's, with the feet on the floor): x toward the athlete's left, y toward
their back, z up, in metres; the floor is z = 0 and the athlete faces -y. Yaw 0 puts the camera on
the athlete's left, looking straight at their side (the placement deploy/README.md asks for); a
positive yaw swings it round toward the athlete's front (front-oblique, the usual way a wall
camera ends up off side-on). The camera is aimed at a point on the athlete, so a high or low camera
tilts, as one mounted above or below hip height and pointed at the athlete does.

Camera Module 3 has a 66 degree horizontal field of view; at 640x480 with square pixels that is 52
degrees vertically (the station's lores stream, 4:3). Image coordinates are pixels with (0, 0) at
the top-left corner of the image, so a pixel's centre is at (i + 0.5, j + 0.5), as BlazePose's
landmarks are scaled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Camera Module 3 (standard lens): 66 degrees across.
MODULE3_HFOV_DEG = 66.0
WIDTH, HEIGHT = 640, 480


@dataclass(frozen=True)
class Placement:
    """Where the camera stands, relative to the athlete: yaw (degrees off side-on, toward their
    front), lens height above the floor (m), horizontal distance to the aim point (m)."""

    yaw_deg: float = 0.0
    height_m: float = 1.0
    distance_m: float = 3.0


class Camera:
    """A pinhole camera with square pixels. `project` maps world points to pixels and depth."""

    def __init__(self, position: np.ndarray, target: np.ndarray, width: int = WIDTH, height: int = HEIGHT,
                 hfov_deg: float = MODULE3_HFOV_DEG):
        self.position = np.asarray(position, dtype=float)
        self.target = np.asarray(target, dtype=float)
        self.width, self.height = width, height
        forward = self.target - self.position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        self.rotation = np.stack([right, down, forward])  # rows: image x, image y, depth
        self.focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
        self.cx, self.cy = width / 2, height / 2

    @classmethod
    def placed(cls, placement: Placement, aim: np.ndarray, **kwargs) -> "Camera":
        """The camera `placement.distance_m` from `aim` (horizontally), swung `yaw_deg` from the
        athlete's left toward their front, its lens `height_m` above the floor, aimed at `aim`."""
        yaw = math.radians(placement.yaw_deg)
        aim = np.asarray(aim, dtype=float)
        position = aim + placement.distance_m * np.array([math.cos(yaw), -math.sin(yaw), 0.0])
        position[2] = placement.height_m
        return cls(position, aim, **kwargs)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) in camera axes: x right, y down, z along the view (depth)."""
        return (np.asarray(points, dtype=float) - self.position) @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> (pixels (..., 2), depth (...)). Points behind the lens get NaN."""
        cam = self.to_camera(points)
        z = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.cx + self.focal * cam[..., 0] / z
            v = self.cy + self.focal * cam[..., 1] / z
        pix = np.stack([u, v], axis=-1)
        pix[z <= 1e-6] = np.nan
        return pix, z

    def pixel_rays(self) -> np.ndarray:
        """Unit world direction of the ray through each pixel centre, (H, W, 3)."""
        u = (np.arange(self.width) + 0.5 - self.cx) / self.focal
        v = (np.arange(self.height) + 0.5 - self.cy) / self.focal
        uu, vv = np.meshgrid(u, v)
        cam = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
        world = cam @ self.rotation
        return world / np.linalg.norm(world, axis=-1, keepdims=True)

    @property
    def tilt_deg(self) -> float:
        """How far the view points below the horizon (negative: above)."""
        return math.degrees(math.asin(-self.rotation[2, 2]))
