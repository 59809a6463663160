"""A small z-buffer rasterizer with Lambert shading, in numpy.

Why hand-written: the bench needs one thing — shaded, correctly occluding triangles at 640x480 on a
CPU, frame after frame — and every GPU or OpenGL renderer needs a display or drivers this project's
machines and CI do not have. Triangles of a body seen from 3 m cover a few pixels each, so they are
rasterized in batches grouped by the size of their bounding box: every candidate pixel centre of a
batch is tested against the triangle's edges at once, and the nearest fragment per pixel wins. The
background (floor, walls, ceiling) is traced per pixel, which is exact and cheap for planes.

Colours are shaded per vertex (Lambert: ambient plus diffuse from one light) and interpolated
across each triangle (Gouraud), enough for a pose model, which sees shape and edges, not texture.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.synth.camera import Camera

# Bounding-box sizes (pixels) of the batches; a triangle larger than the last is split by the caller
# (props are built fine enough that it never happens).
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)


@dataclass
class Light:
    """One directional light plus ambient: the side facing the light is lit, the rest is ambient."""

    direction: np.ndarray  # unit vector pointing from the scene toward the light
    ambient: float = 0.38
    diffuse: float = 0.62

    def shade(self, normals: np.ndarray) -> np.ndarray:
        """Lambert intensity per unit normal (..., 3)."""
        return self.ambient + self.diffuse * np.clip(normals @ self.direction, 0.0, None)


@dataclass
class Mesh:
    """Triangles with a colour per vertex (RGB 0..1). Faces wind counter-clockwise seen from outside."""

    vertices: np.ndarray  # (N, 3) world
    faces: np.ndarray  # (F, 3) int
    colors: np.ndarray  # (N, 3)
    two_sided: bool = False  # thin things (a band, a plate's rim seen edge-on) are drawn from both sides


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit), summed with bincount (np.add.at is ~10x slower)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_normals = np.cross(v1 - v0, v2 - v0)
    n = len(vertices)
    flat = faces.ravel()
    normals = np.stack([np.bincount(flat, weights=np.repeat(face_normals[:, k], 3), minlength=n) for k in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


@dataclass
class Frame:
    """The colour and depth buffers being drawn into."""

    color: np.ndarray  # (H, W, 3) float 0..1
    depth: np.ndarray  # (H, W) metres along the view; inf where nothing is
    body_mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))  # pixels the body won

    def to_rgb8(self) -> np.ndarray:
        return (np.clip(self.color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Plane:
    """An infinite plane n.p = offset, with a colour and an optional checker (tiles in metres) so
    the floor shows perspective the way a real floor's texture does."""

    normal: tuple[float, float, float]
    offset: float
    color: tuple[float, float, float]
    tile_m: float = 0.0
    tile_contrast: float = 0.0


def draw_background(camera: Camera, planes: list[Plane], light: Light) -> Frame:
    """Trace each pixel's ray to the nearest plane in front of the camera."""
    rays = camera.pixel_rays()
    h, w = rays.shape[:2]
    color = np.zeros((h, w, 3))
    t_best = np.full((h, w), np.inf)
    for plane in planes:
        n = np.asarray(plane.normal, dtype=float)
        denom = rays @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (plane.offset - camera.position @ n) / denom
        hit = (t > 0) & (t < t_best)
        if not hit.any():
            continue
        t_best[hit] = t[hit]
        facing = n if (camera.position @ n - plane.offset) > 0 else -n
        base = np.asarray(plane.color) * light.shade(facing)
        shade = np.ones((h, w))
        if plane.tile_m > 0:
            points = camera.position + rays * t[..., None]
            # the two in-plane axes: drop the plane's own axis
            axes = [k for k in range(3) if abs(n[k]) < 0.5]
            checker = (np.floor(points[..., axes[0]] / plane.tile_m) + np.floor(points[..., axes[1]] / plane.tile_m)) % 2
            shade = 1.0 - plane.tile_contrast * checker
        color[hit] = base * shade[hit][:, None]
    depth = t_best * (rays @ camera.rotation[2])  # distance along the view axis, like the mesh depth
    return Frame(color, depth, np.zeros((h, w), bool))


def draw_mesh(frame: Frame, camera: Camera, mesh: Mesh, light: Light, is_body: bool = False) -> None:
    """Rasterize a mesh into the frame: per-vertex Lambert colours, nearest fragment wins."""
    normals = vertex_normals(mesh.vertices, mesh.faces)
    if mesh.two_sided:
        # light the side that faces the camera
        toward = camera.position - mesh.vertices
        flip = np.sum(normals * toward, axis=1) < 0
        normals = np.where(flip[:, None], -normals, normals)
    lit = mesh.colors * light.shade(normals)[:, None]
    pix, z = camera.project(mesh.vertices)
    faces = mesh.faces
    ok = np.all(z[faces] > 0.05, axis=1)
    faces = faces[ok]
    x, y = pix[faces, 0], pix[faces, 1]  # (F, 3)
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # Image y points down, so a counter-clockwise face seen from outside has negative area here.
    keep = area < 0 if not mesh.two_sided else area != 0
    faces, x, y, area = faces[keep], x[keep], y[keep], area[keep]
    h, w = frame.depth.shape
    # candidate pixel columns/rows whose centres may be inside
    x0 = np.ceil(x.min(1) - 0.5).astype(np.int64)
    x1 = np.floor(x.max(1) - 0.5).astype(np.int64)
    y0 = np.ceil(y.min(1) - 0.5).astype(np.int64)
    y1 = np.floor(y.max(1) - 0.5).astype(np.int64)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    x1, y1 = np.minimum(x1, w - 1), np.minimum(y1, h - 1)
    span = np.maximum(x1 - x0, y1 - y0) + 1
    visible = (x1 >= x0) & (y1 >= y0)
    inv_z = 1.0 / z[faces]
    pieces_pix, pieces_depth, pieces_color = [], [], []
    lower = 0
    for size in BATCH_SIZES:
        sel = np.nonzero(visible & (span > lower) & (span <= size))[0]
        lower = size
        if len(sel) == 0:
            continue
        oy, ox = np.divmod(np.arange(size * size), size)
        px = x0[sel, None] + ox[None, :]
        py = y0[sel, None] + oy[None, :]
        inside_box = (px <= x1[sel, None]) & (py <= y1[sel, None])
        cxp, cyp = px + 0.5, py + 0.5
        xs, ys = x[sel], y[sel]
        # barycentric weights of vertices 1 and 2 (edge functions over the doubled area)
        a = area[sel, None]
        b1 = ((cxp - xs[:, 0, None]) * (ys[:, 2, None] - ys[:, 0, None]) - (xs[:, 2, None] - xs[:, 0, None]) * (cyp - ys[:, 0, None])) / a
        b2 = ((xs[:, 1, None] - xs[:, 0, None]) * (cyp - ys[:, 0, None]) - (cxp - xs[:, 0, None]) * (ys[:, 1, None] - ys[:, 0, None])) / a
        b0 = 1.0 - b1 - b2
        inside = inside_box & (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
        tri, slot = np.nonzero(inside)
        if len(tri) == 0:
            continue
        w0, w1, w2 = b0[tri, slot], b1[tri, slot], b2[tri, slot]
        f = sel[tri]
        iz = w0 * inv_z[f, 0] + w1 * inv_z[f, 1] + w2 * inv_z[f, 2]  # 1/z is linear in screen space
        col = (w0[:, None] * lit[faces[f, 0]] + w1[:, None] * lit[faces[f, 1]] + w2[:, None] * lit[faces[f, 2]])
        pieces_pix.append(py[tri, slot] * w + px[tri, slot])
        pieces_depth.append(1.0 / iz)
        pieces_color.append(col)
    if not pieces_pix:
        return
    pix_all = np.concatenate(pieces_pix)
    depth_all = np.concatenate(pieces_depth)
    color_all = np.concatenate(pieces_color)
    order = np.lexsort((depth_all, pix_all))
    pix_sorted = pix_all[order]
    first = np.ones(len(order), bool)
    first[1:] = pix_sorted[1:] != pix_sorted[:-1]
    winners = order[first]
    target = pix_all[winners]
    flat_depth = frame.depth.reshape(-1)
    nearer = depth_all[winners] < flat_depth[target]
    target, winners = target[nearer], winners[nearer]
    flat_depth[target] = depth_all[winners]
    frame.color.reshape(-1, 3)[target] = color_all[winners]
    mask = frame.body_mask.reshape(-1)
    mask[target] = is_body
