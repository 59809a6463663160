"""Plane geometry on image points (pixels, y down), shared by kinematics and model evaluation."""
from __future__ import annotations

import numpy as np


def joint_angle_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Interior angle a-b-c at b in degrees (180 = straight). Works on (2,) or (N, 2) arrays."""
    u = np.asarray(a, float) - np.asarray(b, float)
    v = np.asarray(c, float) - np.asarray(b, float)
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(-1)
    return np.degrees(np.abs(np.arctan2(cross, dot)))


def flexion_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Flexion at joint b: 0 when a-b-c is a straight line, growing as the joint bends."""
    return 180.0 - joint_angle_deg(a, b, c)

