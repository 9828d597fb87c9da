"""Objective quality: PSNR-Y and SSIM-Y of an output against the source scaled to its size.

Both follow FFmpeg's psnr/ssim filters so the figures can be cross-checked: PSNR is computed
from the mean squared error over all frames (not the mean of per-frame PSNRs), and SSIM uses
8x8 windows at a stride of 4 with x264's constants (FFmpeg's ``ssim`` filter).
"""

from __future__ import annotations

import math
import os
from itertools import zip_longest

import av
import numpy as np

from .errors import IntegrityError

_C1 = float(int(0.01 * 0.01 * 255 * 255 * 64 + 0.5))
_C2 = float(int(0.03 * 0.03 * 255 * 255 * 64 * 63 + 0.5))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr_from_mse(m: float, peak: float = 255.0) -> float:
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two 8-bit planes, as FFmpeg's ssim filter computes it."""
    h, w = (min(a.shape[0], b.shape[0]) // 4) * 4, (min(a.shape[1], b.shape[1]) // 4) * 4
    x = a[:h, :w].astype(np.int32)  # sums of 16 squares fit easily
    y = b[:h, :w].astype(np.int32)

    def blocks(p: np.ndarray) -> np.ndarray:  # sums over 4x4 blocks
        return p.reshape(h // 4, 4, w // 4, 4).sum(axis=(1, 3))

    s1, s2 = blocks(x), blocks(y)
    ss, s12 = blocks(x * x + y * y), blocks(x * y)

    def windows(s: np.ndarray) -> np.ndarray:  # 8x8 windows = 2x2 neighbouring blocks, stride 4
        return (s[:-1, :-1] + s[1:, :-1] + s[:-1, 1:] + s[1:, 1:]).astype(np.float64)

    f1, f2, fss, f12 = windows(s1), windows(s2), windows(ss), windows(s12)
    var = fss * 64 - f1 * f1 - f2 * f2
    cov = f12 * 64 - f1 * f2
    num = (2 * f1 * f2 + _C1) * (2 * cov + _C2)
    den = (f1 * f1 + f2 * f2 + _C1) * (var + _C2)
    return float(np.mean(num / den))


def _luma(path: str | os.PathLike, width: int, height: int, scaler: str = "bicubic"):
    """Y planes of every frame, scaled to width x height with swscale (as the encoder did)."""
    from .probe import open_input

    interpolation = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "lanczos": "LANCZOS"}.get(scaler, "BICUBIC")
    with open_input(path) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        for frame in c.decode(st):
            # yuv420p, not gray: swscale treats gray as full range and would stretch limited-range luma.
            if (frame.width, frame.height) != (width, height) or frame.format.name != "yuv420p":
                frame = frame.reformat(width, height, format="yuv420p", interpolation=interpolation)
            plane = frame.planes[0]
            yield np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, :width]


def compare(source: str | os.PathLike, output: str | os.PathLike, *, scaler: str = "bicubic",
            every: int = 1) -> dict:
    """PSNR-Y (dB) and SSIM-Y of ``output`` against ``source`` scaled to the output's size.

    ``every=N`` scores every Nth frame only (frames 0, N, 2N, ...; all are still decoded and
    counted): SSIM costs ~30 ms per 720p frame in numpy, so long benchmark clips are sampled."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    with av.open(str(output)) as c:
        w, h = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
    total_mse = 0.0
    total_ssim = 0.0
    n = scored = 0
    for ref, dist in zip_longest(_luma(source, w, h, scaler), _luma(output, w, h, scaler)):
        if ref is None or dist is None:
            raise IntegrityError(f"{output}: frame counts differ from the source (at frame {n})")
        if n % every == 0:
            total_mse += mse(ref, dist)
            total_ssim += ssim(ref, dist)
            scored += 1
        n += 1
    return {"frames": n, "scored_frames": scored, "psnr_y": psnr_from_mse(total_mse / scored),
            "ssim_y": total_ssim / scored, "width": w, "height": h}
