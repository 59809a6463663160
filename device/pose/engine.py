"""BlazePose on the device: person detector, rotated region-of-interest tracking, landmark model.

Two stages, as BlazePose was designed: the detector (SSD anchors, weighted NMS) finds the person on
the first frame and whenever tracking is lost; afterwards the previous frame's landmarks 33 (hips
centre) and 34 (body scale/rotation point) give the next region of interest, so the detector stays
idle on a continuous clip. Everything downstream sees only `Pose`: pixels, visibility, presence.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

import cv2
import numpy as np

from device.pose.landmarks import LANDMARK_INDEX, NUM_LANDMARKS, Pose, Roi, empty_landmarks
from device.pose.outline import torso_outline
from device.pose.tflite import TFLiteModel

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
HEATMAP_KERNEL = 7
# A frame whose brightness varies by less than this share of full scale (RMS over the image; 8 grey
# levels) shows nothing a model can place joints on: a fade to black, a covered lens, the lights out.
# Real frames read far above it: the darkest gym clip 0.08, a colour wipe between scenes 0.045. The
# model still returns confident-looking landmarks on such a frame; they are not used.
MIN_FRAME_CONTRAST = 0.03
# BlazePose's ROI is the circle through the alignment keypoints enlarged by 25%, so the whole body fits.
ROI_SCALE = 1.25
NMS_IOU = 0.3
SCORE_CLIP = 100.0


def frame_contrast(rgb: np.ndarray) -> float:
    """The RMS spread of the frame's luminance, 0..1, on every 4th pixel (about 0.2 ms at 640x480)."""
    sample = rgb[::4, ::4].astype(np.float32)
    luma = sample[..., 0] * 0.299 + sample[..., 1] * 0.587 + sample[..., 2] * 0.114
    return float(luma.std()) / 255.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


# --- detector -----------------------------------------------------------------------------------


def ssd_anchors(size: int = DETECTOR_SIZE, strides: tuple[int, ...] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1] for the BlazePose detector.

    Layers sharing a stride share one feature map; each layer adds two anchors per cell (aspect 1.0
    and the interpolated scale), all of fixed unit size: 28²·2 + 14²·2 + 7²·6 = 2254.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        cells = math.ceil(size / strides[layer])
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    score: float
    box: np.ndarray  # xmin, ymin, xmax, ymax in image pixels
    keypoints: np.ndarray  # (4, 2) image pixels: hips centre, body scale point, shoulders centre, upper-body point


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, iou_threshold: float = NMS_IOU) -> list[Detection]:
    """Blend every overlapping candidate into the best one, weighted by score (BlazeFace/BlazePose NMS)."""
    order = np.argsort(-scores)
    remaining = list(order)
    out: list[Detection] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while remaining:
        best = remaining[0]
        rest = np.array(remaining)
        ix0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        iou = inter / np.maximum(area[best] + area[rest] - inter, 1e-9)
        members = rest[iou > iou_threshold]
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kps = (keypoints[members] * w[:, :, None]).sum(0) / w.sum()
        out.append(Detection(float(scores[best]), box, kps))
        remaining = [i for i in remaining if i not in set(members.tolist())]
    return out


class PoseDetector:
    """Finds people in a whole frame; used only when there is no region of interest to track."""

    def __init__(self, model: TFLiteModel, min_score: float = 0.5):
        self.model = model
        self.min_score = min_score
        self.anchors = ssd_anchors()
        if len(self.anchors) != model.output_shapes[model.output_index((1, len(self.anchors), 12))][1]:
            raise ValueError("anchor count does not match the detector")
        self._reg = model.output_index((1, len(self.anchors), 12))
        self._cls = model.output_index((1, len(self.anchors), 1))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        scale = DETECTOR_SIZE / max(w, h)
        nw, nh = round(w * scale), round(h * scale)
        pad_x, pad_y = (DETECTOR_SIZE - nw) // 2, (DETECTOR_SIZE - nh) // 2
        canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized.astype(np.float32) / 127.5 - 1.0
        outputs = self.model.run(canvas[None])
        raw = outputs[self._reg][0]
        scores = sigmoid(np.clip(outputs[self._cls][0, :, 0], -SCORE_CLIP, SCORE_CLIP))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        centre = raw[:, 0:2] / DETECTOR_SIZE + anchors
        half = raw[:, 2:4] / DETECTOR_SIZE / 2
        kps = raw[:, 4:12].reshape(-1, 4, 2) / DETECTOR_SIZE + anchors[:, None, :]

        def to_image(p: np.ndarray) -> np.ndarray:
            pad = np.array([pad_x, pad_y], np.float32)
            return (p * DETECTOR_SIZE - pad) / scale

        boxes = np.concatenate([to_image(centre - half), to_image(centre + half)], axis=1)
        return weighted_nms(scores, boxes, to_image(kps))


def roi_from_alignment(centre: np.ndarray, scale_point: np.ndarray) -> Roi:
    """A square ROI around `centre`, sized by the circle through `scale_point` and rotated so the
    body's axis (centre -> scale point) points up in the crop."""
    dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
    radius = math.hypot(dx, dy)
    rotation = math.pi / 2 - math.atan2(-dy, dx)
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    return Roi(float(centre[0]), float(centre[1]), 2 * radius * ROI_SCALE, rotation)


def crop_matrix(roi: Roi, out_size: int) -> np.ndarray:
    """2x3 affine matrix mapping crop pixels to image pixels."""
    s = roi.size / out_size
    c, sn = math.cos(roi.rotation) * s, math.sin(roi.rotation) * s
    half = out_size / 2
    return np.array(
        [[c, -sn, roi.cx - c * half + sn * half], [sn, c, roi.cy - sn * half - c * half]], np.float64
    )


# --- landmark model -----------------------------------------------------------------------------


def segmentation_output(model: TFLiteModel) -> Optional[int]:
    """The index of the model's person mask (1, S, S, 1), or None for a variant built without it."""
    for index, shape in enumerate(model.output_shapes):
        if len(shape) == 4 and shape[0] == 1 and shape[3] == 1 and shape[1] == shape[2]:
            return index
    return None


HIP_POINTS = [LANDMARK_INDEX["left_hip"], LANDMARK_INDEX["right_hip"]]
SHOULDER_POINTS = [LANDMARK_INDEX["left_shoulder"], LANDMARK_INDEX["right_shoulder"]]


class LandmarkModel:
    """Runs BlazePose's landmark model on a 256x256 crop of a region of interest.

    Per frame the engine calls `load` (the crop, warped straight into the model's input), `run` and
    `read` (landmarks decoded): three steps so each is timed, and nothing frame-sized is allocated
    on the way (the crop's pixels, the mask and the heatmap live in buffers kept between frames).
    `crop` and `infer` do the same on a crop held by the caller (the model tooling, the bench)."""

    def __init__(self, model: TFLiteModel, refine_with_heatmap: bool = True):
        self.model = model
        self.refine = refine_with_heatmap
        self._points = model.output_index((1, 195))
        self._flag = model.output_index((1, 1))
        self._heatmap = model.output_index((1, 64, 64, 39))
        self._mask = segmentation_output(model)
        self._world = model.find_output((1, 39 * 3))  # world landmarks: None for a model without them
        size = model.output_shapes[self._mask][1] if self._mask is not None else 0
        self._mask_buffer = np.zeros((size, size), np.float32)
        self._mask_logits: Optional[np.ndarray] = None  # the buffer, once an inference filled it
        self._patch = np.zeros((LANDMARK_SIZE, LANDMARK_SIZE, 3), np.uint8)

    @property
    def segments(self) -> bool:
        """Whether this variant outputs the person mask (and so the torso outline)."""
        return self._mask is not None

    def crop(self, rgb: np.ndarray, roi: Roi) -> np.ndarray:
        """The model input: float32 (256, 256, 3) in [0, 1]."""
        return self._warp(rgb, roi).astype(np.float32) / np.float32(255.0)

    def _warp(self, rgb: np.ndarray, roi: Roi) -> np.ndarray:
        """The ROI's pixels, rotated upright and scaled to 256x256, into the kept uint8 buffer."""
        return cv2.warpAffine(
            rgb, crop_matrix(roi, LANDMARK_SIZE), (LANDMARK_SIZE, LANDMARK_SIZE), dst=self._patch,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
        )

    def load(self, rgb: np.ndarray, roi: Roi) -> None:
        """The ROI's crop as the next input, scaled to [0, 1] in place: the same values `crop` gives."""
        patch = self._warp(rgb, roi)
        self.model.fill_input(lambda tensor: np.divide(patch, np.float32(255.0), out=tensor[0], casting="unsafe"))

    def load_crop(self, crop: np.ndarray) -> None:
        """A float32 (256, 256, 3) crop as the next input."""
        self.model.fill_input(lambda tensor: np.copyto(tensor[0], crop, casting="same_kind"))

    def run(self) -> None:
        self.model.invoke()

    def read(self) -> tuple[np.ndarray, float]:
        """The last run's (39, 5) points in crop pixels with visibility/presence as probabilities,
        and the pose presence score; keeps the mask for `torso_outline`."""
        points = self.model.output(self._points).reshape(39, 5).astype(np.float64)
        presence = float(np.asarray(self.model.output(self._flag)).ravel()[0])
        if self._mask is not None:
            self.model.read_output(self._mask, self._keep_mask)
            self._mask_logits = self._mask_buffer
        if self.refine:
            self.model.read_output(self._heatmap, lambda heatmap: refine_from_heatmap(points, heatmap[0]))
        points[:, 3] = sigmoid(points[:, 3])
        points[:, 4] = sigmoid(points[:, 4])
        return points, presence

    def world(self) -> Optional[np.ndarray]:
        """The last run's world landmarks, (33, 3) metres in the crop's axes (upright body), or None
        for a model without them."""
        if self._world is None:
            return None
        return self.model.output(self._world).reshape(39, 3)[:NUM_LANDMARKS].astype(np.float64)

    def _keep_mask(self, mask: np.ndarray) -> None:
        np.copyto(self._mask_buffer, mask[0, :, :, 0])

    def infer(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """`read`'s points and presence for a crop the caller holds."""
        self.load_crop(crop)
        self.run()
        return self.read()

    def mask(self, copy: bool = False) -> Optional[np.ndarray]:
        """The person mask's logits of the crop last inferred (the kept buffer, which the next read
        overwrites; `copy` for one to keep), or None for a variant without the mask."""
        if self._mask_logits is None:
            return None
        return self._mask_logits.copy() if copy else self._mask_logits

    def torso_outline(self, points: np.ndarray, mask: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """The silhouette across the trunk (device/pose/outline.py), in crop pixels, from a crop's
        `points` and its `mask` (default: the crop last inferred); None for a variant without the mask."""
        logits = self.mask() if mask is None else mask
        if logits is None:
            return None
        hips = points[HIP_POINTS, :2].mean(axis=0)
        shoulders = points[SHOULDER_POINTS, :2].mean(axis=0)
        return torso_outline(logits, hips, shoulders, LANDMARK_SIZE)


def refine_from_heatmap(points: np.ndarray, heatmap: np.ndarray, kernel: int = HEATMAP_KERNEL, min_confidence: float = 0.5) -> None:
    """Move each x/y to the confidence-weighted centre of the heatmap around it (in place).

    The regression head is coarse; the 64x64 heatmap is sharper near the joint. Only refined where the
    heatmap is confident, so an occluded joint keeps the regressed guess. The points whose window lies
    whole on the heatmap (nearly all) are refined together in a few array operations, on the pose
    thread's hot path; each sum runs over the same window in the same order as one at a time, so the
    result is bit-identical to refining them one by one, as the few at the heatmap's edge still are.
    """
    hm_h, hm_w, _ = heatmap.shape
    offset = (kernel - 1) // 2
    with np.errstate(invalid="ignore"):  # int() truncates toward zero; NaN stays off the heatmap
        cols = np.trunc(points[:, 0] / LANDMARK_SIZE * hm_w)
        rows = np.trunc(points[:, 1] / LANDMARK_SIZE * hm_h)
        whole = (rows >= offset) & (rows < hm_h - offset) & (cols >= offset) & (cols < hm_w - offset)
        edge = ~whole & (rows >= 0) & (rows < hm_h) & (cols >= 0) & (cols < hm_w)
    inner = np.flatnonzero(whole)
    if inner.size:
        span = np.arange(-offset, offset + 1)
        at_rows = np.broadcast_to(rows[inner].astype(np.intp)[:, None, None] + span[None, :, None], (inner.size, kernel, kernel))
        at_cols = np.broadcast_to(cols[inner].astype(np.intp)[:, None, None] + span[None, None, :], (inner.size, kernel, kernel))
        window = sigmoid(heatmap[at_rows, at_cols, inner[:, None, None]].astype(np.float64)).reshape(inner.size, -1)
        total = window.sum(axis=1)
        confident = (window.max(axis=1) >= min_confidence) & (total > 0)
        x = (at_cols.reshape(inner.size, -1) * window).sum(axis=1) / total / hm_w * LANDMARK_SIZE
        y = (at_rows.reshape(inner.size, -1) * window).sum(axis=1) / total / hm_h * LANDMARK_SIZE
        points[inner[confident], 0] = x[confident]
        points[inner[confident], 1] = y[confident]
    for i in np.flatnonzero(edge):
        _refine_at_edge(points, heatmap, int(i), int(rows[i]), int(cols[i]), offset, min_confidence)


def _refine_at_edge(points: np.ndarray, heatmap: np.ndarray, i: int, row: int, col: int, offset: int,
                    min_confidence: float) -> None:
    """refine_from_heatmap for a point whose window the heatmap's edge cuts."""
    hm_h, hm_w, _ = heatmap.shape
    r0, r1 = max(0, row - offset), min(hm_h, row + offset + 1)
    c0, c1 = max(0, col - offset), min(hm_w, col + offset + 1)
    # The confidence of this window alone: the rest of the heatmap is never read.
    window = sigmoid(heatmap[r0:r1, c0:c1, i].astype(np.float64))
    total = window.sum()
    if window.max() < min_confidence or total <= 0:
        return
    grid_rows, grid_cols = np.mgrid[r0:r1, c0:c1]
    points[i, 0] = (grid_cols * window).sum() / total / hm_w * LANDMARK_SIZE
    points[i, 1] = (grid_rows * window).sum() / total / hm_h * LANDMARK_SIZE


def project_xy(xy: np.ndarray, roi: Roi) -> np.ndarray:
    """Crop-pixel points (N, 2) -> image pixels (NaN stays NaN)."""
    m = crop_matrix(roi, LANDMARK_SIZE)
    return xy @ m[:, :2].T + m[:, 2]


def turn_world(world: np.ndarray, roi: Roi) -> np.ndarray:
    """World landmarks from the crop's axes into the image's: the crop stands the body upright, so
    its world points lean with the ROI; turned back by the ROI's rotation (about the camera's axis),
    "down" is the image's down again and a thigh's angle to it means what it does side-on."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    out = world.copy()
    out[:, :2] = world[:, :2] @ np.array([[c, s], [-s, c]])
    return out


def project(points: np.ndarray, roi: Roi) -> np.ndarray:
    """Crop-pixel points (N, 5) -> image pixels, z scaled alike."""
    m = crop_matrix(roi, LANDMARK_SIZE)
    out = points.copy()
    xy1 = np.concatenate([points[:, :2], np.ones((len(points), 1))], axis=1)
    out[:, :2] = xy1 @ m.T
    out[:, 2] = points[:, 2] * roi.size / LANDMARK_SIZE
    return out


# --- engine -------------------------------------------------------------------------------------


def _nothing() -> None:
    """A pose with nothing left to finish; no call before the model."""


class _Once:
    """A callable that calls `call` the first time only (a frame may run the models more than once)."""

    def __init__(self, call: Callable[[], None]):
        self._call: Optional[Callable[[], None]] = call

    def __call__(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call()


class PoseEngine:
    """Frame in, Pose out. Keeps the tracking state between calls; `reset()` forgets it."""

    def __init__(
        self,
        detector: PoseDetector,
        landmarks: LandmarkModel,
        min_tracking_presence: float = 0.5,
        clock=time.perf_counter,
    ):
        self.detector = detector
        self.landmarks = landmarks
        self.min_tracking_presence = min_tracking_presence
        self.clock = clock
        self._roi: Optional[Roi] = None
        self.landmark_variant = "float16"
        self.frames = 0
        self.detector_runs = 0

    @classmethod
    def from_settings(cls, settings) -> "PoseEngine":
        """Build the engine from the verified model files named by settings (raises ModelError)."""
        from device.pose.model_files import resolve_models

        resolved = resolve_models(settings.models_dir, settings.models.landmark_variant)
        threads, runtime = settings.models.threads, settings.models.runtime
        engine = cls(
            PoseDetector(TFLiteModel(resolved.detector, threads, runtime), settings.pose.min_detection_score),
            LandmarkModel(TFLiteModel(resolved.landmark, threads, runtime), settings.pose.refine_with_heatmap),
            settings.pose.min_tracking_presence,
        )
        engine.landmark_variant = resolved.landmark_variant
        return engine

    def reset(self) -> None:
        self._roi = None

    def process(self, rgb: np.ndarray, timestamp: float, contrast: Optional[float] = None) -> Pose:
        """The frame's pose. `contrast`: the frame's `frame_contrast` when the caller already has it
        (the live loop measures it on the capture thread, while the model runs on the last frame)."""
        pose, finish = self._process(rgb, timestamp, contrast, keep_mask=False)
        finish()
        return pose

    def process_deferred(self, rgb: np.ndarray, timestamp: float, contrast: Optional[float] = None,
                         before_model: Callable[[], None] = _nothing) -> tuple[Pose, Callable[[], None]]:
        """`process`, with the torso outline left to `finish()`, which fills it in on the pose: the
        live loop's worker calls it while the model runs on the next frame, so the outline is off
        the model's thread. It reads a copy of this frame's mask, so it is the same outline.
        `before_model` is called once, just before this frame's first model run (the frame's crop is
        ready by then), and never when no model runs (a dark frame): the live loop hands the last
        pose to its worker there, so the worker's Python runs while the model holds no lock."""
        once = _Once(before_model)
        return self._process(rgb, timestamp, contrast, keep_mask=True, before_model=once)

    def _process(self, rgb: np.ndarray, timestamp: float, contrast: Optional[float],
                 keep_mask: bool, before_model: Callable[[], None] = _nothing) -> tuple[Pose, Callable[[], None]]:
        h, w = rgb.shape[:2]
        timings: dict[str, float] = {}
        self.frames += 1
        if (frame_contrast(rgb) if contrast is None else contrast) < MIN_FRAME_CONTRAST:
            # Nearly black or flat: nobody can be seen; look afresh once the picture is back.
            self._roi = None
            return Pose(timestamp, empty_landmarks(), 0.0, False, (w, h), None, timings), _nothing
        roi = self._roi
        detector_ran = False
        if roi is None:
            before_model()
            t0 = self.clock()
            detections = self.detector.detect(rgb)
            timings["detector_ms"] = (self.clock() - t0) * 1000
            self.detector_runs += 1
            detector_ran = True
            if not detections:
                return Pose(timestamp, empty_landmarks(), 0.0, True, (w, h), None, timings), _nothing
            best = detections[0]
            roi = roi_from_alignment(best.keypoints[0], best.keypoints[1])

        t0 = self.clock()
        self.landmarks.load(rgb, roi)
        t1 = self.clock()
        before_model()
        t1b = self.clock()
        self.landmarks.run()
        t2 = self.clock()
        points, presence = self.landmarks.read()
        image_points = project(points, roi)
        t3 = self.clock()
        timings["crop_ms"] = (t1 - t0) * 1000
        timings["inference_ms"] = (t2 - t1b) * 1000
        timings["decode_ms"] = (t3 - t2) * 1000
        timings["landmark_ms"] = (t3 - t0) * 1000

        if presence < self.min_tracking_presence:
            self._roi = None
            if not detector_ran:
                # Tracking slipped off the body (a fast move): look again on this same frame.
                self.frames -= 1
                return self._process(rgb, timestamp, contrast, keep_mask, before_model)
            return Pose(timestamp, empty_landmarks(), presence, detector_ran, (w, h), roi, timings), _nothing
        self._roi = roi_from_alignment(image_points[33, :2], image_points[34, :2])
        world = self.landmarks.world()
        pose = Pose(timestamp, image_points[:NUM_LANDMARKS], presence, detector_ran, (w, h), roi, timings, None,
                    None if world is None else turn_world(world, roi))
        mask = self.landmarks.mask(copy=keep_mask)
        if mask is None:
            return pose, _nothing

        def finish() -> None:
            t0 = self.clock()
            outline = self.landmarks.torso_outline(points, mask)
            if outline is not None:
                pose.torso_outline = project_xy(outline.reshape(-1, 2), roi).reshape(outline.shape)
                timings["outline_ms"] = (self.clock() - t0) * 1000
        return pose, finish


def iter_poses(engine: PoseEngine, frames: Iterable) -> Iterator[tuple[Any, Pose]]:
    """(frame, pose) for each frame of a clip or camera, tracking from a fresh start."""
    engine.reset()
    for frame in frames:
        yield frame, engine.process(frame.image, frame.timestamp)
