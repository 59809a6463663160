"""The drills' props as simple shaded geometry: cylinders (bar, dowel, cable, band), discs (plates),
boxes (the wall, a cable column), a sphere and a handle (a kettlebell).

Each builder returns a raster.Mesh with faces wound counter-clockwise seen from outside, fine
enough that no triangle spans more than the rasterizer's largest batch at 640x480.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np

from models.synth.motion import BAR_RADIUS, PLATE_RADIUS, Props
from models.synth.raster import Mesh

Color = tuple[float, float, float]
Point = Union[Sequence[float], np.ndarray]


def _frame_for(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to `axis` and to each other."""
    a = axis / np.linalg.norm(axis)
    helper = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(a, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(a, u)


def cylinder(start: Point, end: Point, radius: float, color: Color, sides: int = 14,
             rings: int = 1, capped: bool = True) -> Mesh:
    """A closed cylinder from `start` to `end` (`rings` segments along it, for long ones)."""
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    axis = p1 - p0
    u, v = _frame_for(axis)
    angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    circle = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
    verts = [p0 + axis * (r / rings) + radius * circle for r in range(rings + 1)]
    vertices = np.concatenate(verts)
    faces = []
    for r in range(rings):
        for i in range(sides):
            a, b = r * sides + i, r * sides + (i + 1) % sides
            c, d = a + sides, b + sides
            faces += [(a, b, d), (a, d, c)]
    if capped:
        c0 = len(vertices)
        c1 = c0 + 1
        vertices = np.vstack([vertices, p0, p1])
        top = rings * sides
        for i in range(sides):
            j = (i + 1) % sides
            faces.append((c0, j, i))
            faces.append((c1, top + i, top + j))
    vertices = np.asarray(vertices)
    return Mesh(vertices, np.asarray(faces, dtype=np.int64), np.tile(np.asarray(color, float), (len(vertices), 1)))


def sphere(centre: Point, radius: float, color: Color, rings: int = 10, sides: int = 16) -> Mesh:
    c = np.asarray(centre, float)
    verts = [c + [0, 0, -radius]]
    for r in range(1, rings):
        phi = math.pi * r / rings - math.pi / 2
        for s in range(sides):
            theta = 2 * math.pi * s / sides
            verts.append(c + radius * np.array([math.cos(phi) * math.cos(theta), math.cos(phi) * math.sin(theta), math.sin(phi)]))
    verts.append(c + [0, 0, radius])
    faces = []
    for s in range(sides):
        faces.append((0, 1 + (s + 1) % sides, 1 + s))
    for r in range(rings - 2):
        for s in range(sides):
            a = 1 + r * sides + s
            b = 1 + r * sides + (s + 1) % sides
            faces += [(a, b, b + sides), (a, b + sides, a + sides)]
    top = len(verts) - 1
    base = 1 + (rings - 2) * sides
    for s in range(sides):
        faces.append((top, base + s, base + (s + 1) % sides))
    vertices = np.asarray(verts)
    return Mesh(vertices, np.asarray(faces, dtype=np.int64), np.tile(np.asarray(color, float), (len(vertices), 1)))


def box(centre: Point, size: Point, color: Color, divisions: int = 6) -> Mesh:
    """An axis-aligned box; each face split into divisions x divisions quads (a wall is big)."""
    c, half = np.asarray(centre, float), np.asarray(size, float) / 2
    vertices: list[np.ndarray] = []
    faces: list[tuple[int, int, int]] = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            a, b = [k for k in range(3) if k != axis]
            base = len(vertices)
            for i in range(divisions + 1):
                for j in range(divisions + 1):
                    p = np.zeros(3)
                    p[axis] = sign
                    p[a] = -1 + 2 * i / divisions
                    p[b] = -1 + 2 * j / divisions
                    vertices.append(c + p * half)
            for i in range(divisions):
                for j in range(divisions):
                    q00 = base + i * (divisions + 1) + j
                    q10, q01, q11 = q00 + divisions + 1, q00 + 1, q00 + divisions + 2
                    # outward normal is sign * e_axis; (a, b, axis) is a cyclic order when axis comes last
                    outward = (a, b, axis) in ((0, 1, 2), (1, 2, 0), (2, 0, 1))
                    if (sign > 0) == outward:
                        faces += [(q00, q10, q11), (q00, q11, q01)]
                    else:
                        faces += [(q00, q11, q10), (q00, q01, q11)]
    vertices_a = np.asarray(vertices)
    return Mesh(vertices_a, np.asarray(faces, dtype=np.int64), np.tile(np.asarray(color, float), (len(vertices_a), 1)))


def merge(meshes: list[Mesh]) -> Optional[Mesh]:
    if not meshes:
        return None
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return Mesh(np.concatenate([m.vertices for m in meshes]),
                np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
                np.concatenate([m.colors for m in meshes]))


STEEL = (0.62, 0.63, 0.66)
PLATE = (0.12, 0.12, 0.14)
BELL = (0.16, 0.16, 0.17)
WOOD = (0.72, 0.55, 0.33)
CABLE = (0.08, 0.08, 0.08)
BAND = (0.75, 0.18, 0.20)
COLUMN = (0.35, 0.36, 0.40)
WALL_PANEL = (0.82, 0.80, 0.74)


def prop_meshes(props: Props) -> list[Mesh]:
    """The frame's props as meshes."""
    out: list[Mesh] = []
    if props.bar is not None:
        c = props.bar
        out.append(cylinder(c + [-1.05, 0, 0], c + [1.05, 0, 0], BAR_RADIUS, STEEL, sides=10, rings=8))
        for sign in (-1.0, 1.0):
            inner = c + [sign * 0.47, 0, 0]
            outer = c + [sign * 0.54, 0, 0]
            out.append(cylinder(inner, outer, PLATE_RADIUS, PLATE, sides=28))
            out.append(cylinder(c + [sign * 0.43, 0, 0], inner, 0.03, STEEL, sides=10))  # collar
    if props.bell is not None:
        top = props.bell
        out.append(sphere(top + [0, 0, -0.19], 0.105, BELL))
        for side in (-1.0, 1.0):
            out.append(cylinder(top + [side * 0.07, 0, -0.11], top + [side * 0.06, 0, -0.01], 0.017, BELL, sides=8))
        out.append(cylinder(top + [-0.065, 0, -0.01], top + [0.065, 0, -0.01], 0.017, BELL, sides=8))
    if props.plate is not None:
        centre, normal = props.plate
        out.append(cylinder(centre - normal * 0.02, centre + normal * 0.02, 0.19, PLATE, sides=28))
    if props.dowel is not None:
        low, high = props.dowel
        out.append(cylinder(low, high, 0.016, WOOD, sides=10, rings=6))
    if props.line is not None:
        a, b, radius = props.line
        out.append(cylinder(a, b, radius, BAND if radius > 0.015 else CABLE, sides=8, rings=6))
    if props.anchor is not None:
        out.append(box(props.anchor + [0, 0.05, 1.0], (0.12, 0.12, 2.0), COLUMN, divisions=4))
    if props.wall_y is not None:
        out.append(box([0.0, props.wall_y + 0.05, 1.1], (1.6, 0.1, 2.2), WALL_PANEL, divisions=8))
    return out
