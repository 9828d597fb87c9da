"""Objective quality of benchmark outputs (not timed): PSNR-Y / SSIM-Y against the scaled source.

Scoring runs after the timed runs, one output per process (``segenc.quality.compare`` is
numpy-bound and single-threaded), sampling every ``every``-th frame on long clips.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Mapping

from .runs import cores


def _score(source: str, output: str, scaler: str, every: int) -> dict:
    from segenc.quality import compare

    return compare(source, output, scaler=scaler, every=every)


def score_outputs(source: str | Path, outputs: Mapping[str, str | Path], *, scaler: str = "bicubic",
                  every: int = 1, processes: int | None = None) -> dict[str, dict]:
    """``{key: {"psnr_y", "ssim_y", "frames", "scored_frames", ...}}`` for every output path."""
    with ProcessPoolExecutor(processes or cores(), mp_context=mp.get_context("spawn")) as pool:
        futures = {k: pool.submit(_score, str(source), str(p), scaler, every) for k, p in outputs.items()}
        return {k: f.result() for k, f in futures.items()}


def default_every(frames: int, budget: int = 450) -> int:
    """Sample so that about ``budget`` frames per output are scored (every frame on short clips)."""
    return max(1, -(-frames // budget))
