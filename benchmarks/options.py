"""Command-line options shared by the figures that encode (``ladder``, ``sweep``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import inputs, report


def add_input_arguments(p: argparse.ArgumentParser, *, flavours: list[str], default_flavour: str,
                        default: dict, quick: dict) -> argparse._ArgumentGroup:
    g = p.add_argument_group("input (generated once, cached)")
    g.add_argument("--flavour", choices=flavours, default=default_flavour,
                   help=f"clean: testsrc2 pattern; grain: same + temporal noise (hard to encode). "
                        f"Default: {default_flavour}")
    g.add_argument("--seconds", type=float, default=None, help=f"clip duration (default {default['seconds']:g})")
    g.add_argument("--size", default=None, help=f"WxH of the source (default {default['size']})")
    g.add_argument("--fps", type=int, default=None, help=f"source frame rate (default {default['fps']})")
    g.add_argument("--quick", action="store_true",
                   help=f"{quick['seconds']:g} s at {quick['size']} (explicit --seconds/--size/--fps still win); "
                        "a few minutes in all")
    g.add_argument("--cache-dir", type=Path, default=inputs.DEFAULT_CACHE,
                   help="inputs and scratch outputs (default benchmarks/.cache, gitignored)")
    g.add_argument("--regenerate", action="store_true", help="regenerate inputs even if cached")
    return g


def add_run_arguments(g: argparse._ArgumentGroup) -> None:
    """Timeouts, waiting for a quiet machine, redoing noisy runs, keeping outputs."""
    g.add_argument("--warmup", type=int, default=0, help="unrecorded rounds before measuring (default 0)")
    g.add_argument("--timeout", type=float, default=3600.0, help="seconds before a single run is killed")
    g.add_argument("--quiet-wait", type=float, default=120.0,
                   help="before each run, wait up to this many seconds for other processes to leave the CPU "
                        "idle (< 0.3 busy cores); 0 disables (default 120)")
    g.add_argument("--noise-retries", type=int, default=2,
                   help="redo a run during which other processes used > 10%% of its CPU time, up to N times "
                        "(default 2; the last attempt is kept and flagged)")
    g.add_argument("--keep-outputs", action="store_true", help="keep every run's outputs under CACHE/work/")


def add_quality_arguments(p: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    g = p.add_argument_group(title)
    g.add_argument("--no-quality", action="store_true", help="skip PSNR/SSIM scoring")
    g.add_argument("--quality-every", type=int, default=None, metavar="N",
                   help="score every Nth frame (default: about 450 frames per output, every frame of short clips)")
    return g


def add_result_arguments(p: argparse.ArgumentParser, figure: str, files: str = ".md/.json") -> None:
    g = p.add_argument_group("results")
    g.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR, help="default benchmarks/results")
    g.add_argument("--tag", default=None,
                   help=f"result file stem suffix: results/{figure}-<flavour>[-TAG]{files}; default: none for "
                        "the default input, else the input label (e.g. 1280x720-30fps-10s)")
    g.add_argument("--no-save", action="store_true", help="print only, write no result files")
    g.add_argument("--rerender", action="store_true",
                   help="run nothing: rebuild the results (and the JSON summary) from the runs stored in the JSON "
                        "selected by --flavour/--quick/--size/--seconds/--fps/--tag (after a report-code change)")
