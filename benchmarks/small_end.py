"""Figure "small-end": short clips on one machine, segenc's local runner against the ffmpeg CLI.

Most uploads are short. On one 2-core machine segenc has nothing to spread over: it wins only if
its chunks keep both cores busier than one ffmpeg process does, and it must not pay for its cuts
in bytes. For every clip (``--clips``: flavour, size, seconds) this runs the ``ladder`` figure with
the variants ``ffmpeg`` and ``segenc`` (each clip's full tables land in its own
``ladder-<flavour>-small-<size>-<fps>-<seconds>.md``), then answers the targets in one table:

    speed = ffmpeg CLI wall / segenc wall          >= 1.0 for every clip
    size  = segenc bytes / ffmpeg bytes, per rung  <= 1.02 (+2%)

Both variants encode the same ladder (480p, 720p, 1080p; rungs above the source are dropped)
with the same encoder settings; see ``python -m benchmarks ladder --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import inputs, ladder, report
from .machine import machine_info, machine_line
from .registry import register

CLIPS = "clean:1280x720:10,grain:1280x720:10,grain:1920x1080:20,clean:1920x1080:30,clean:1920x1080:60"
TARGET_SPEED = 1.0
TARGET_SIZE = 1.02


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", default=CLIPS,
                   help=f"comma-separated flavour:WxH:seconds (default {CLIPS})")
    p.add_argument("--repeat", type=int, default=2, help="measured runs per variant and clip (default 2)")
    p.add_argument("--quality", action="store_true", help="also score PSNR/SSIM (slower; off by default)")
    p.add_argument("--cache-dir", type=Path, default=None, help="inputs and scratch outputs (ladder's default)")


def _clips(text: str) -> list[tuple[str, str, float]]:
    out = []
    for item in (c.strip() for c in text.split(",") if c.strip()):
        try:
            flavour, size, seconds = item.split(":")
            inputs.parse_size(size)
            out.append((flavour, size, float(seconds)))
        except ValueError:
            raise SystemExit(f"--clips: {item!r} is not flavour:WxH:seconds (e.g. grain:1920x1080:20)") from None
    return out


def run(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    rc = 0
    for flavour, size, seconds in _clips(args.clips):
        print(f"\nsmall-end: {flavour} {size} {seconds:g} s", flush=True)
        lp = argparse.ArgumentParser()
        ladder.add_arguments(lp)
        w, h = inputs.parse_size(size)
        # Tagged: never overwrites the ladder figure's own results for the same input.
        tag = "small-" + inputs.InputSpec(flavour, w, h, 30, seconds).label.split("-", 1)[1]
        argv = ["--flavour", flavour, "--size", size, "--seconds", f"{seconds:g}", "--repeat", str(args.repeat),
                "--variants", "ffmpeg,segenc", "--tag", tag] + ([] if args.quality else ["--no-quality"])
        if args.cache_dir:
            argv += ["--cache-dir", str(args.cache_dir)]
        la = lp.parse_args(argv)
        if ladder.run(la) != 0:
            rc = 1
            continue
        secs, (w, h), fps = ladder._resolve_input(la)
        spec = inputs.InputSpec(flavour, w, h, fps, secs)
        data = json.loads((la.results_dir / f"{ladder._stem(la, spec)}.json").read_text())
        s = data["summary"]
        rows.append({"clip": spec.label, "flavour": flavour, "size": size, "seconds": seconds,
                     "ffmpeg_wall": s["ffmpeg"]["wall"], "segenc_wall": s["segenc"]["wall"],
                     "speed": s["speed"], "speed_basis": s["speed_basis"], "size_ratio": s["size_ratio"],
                     "chunk_seconds": s["segenc"].get("chunk_seconds"), "problems": data.get("problems", []),
                     "file": f"{ladder._stem(la, spec)}.md"})
    mach = machine_info()
    table = [[r["clip"], f"{r['ffmpeg_wall']:.2f}", f"{r['segenc_wall']:.2f}", f"{r['speed']:.3f}",
              "meets" if r["speed"] >= TARGET_SPEED else "MISSES",
              ", ".join(f"{k} {100 * (v - 1):+.1f}%" for k, v in r["size_ratio"].items()),
              "meets" if max(r["size_ratio"].values()) <= TARGET_SIZE else "MISSES", r["file"]] for r in rows]
    speeds = [r["speed"] for r in rows]
    sizes = [v for r in rows for v in r["size_ratio"].values()]
    cmd = "python -m benchmarks small-end" + (" " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "")
    md = f"""# small-end: short clips on one machine, segenc vs the ffmpeg CLI

- **command**: `{cmd}`; {args.repeat} runs per variant and clip, alternated; medians (quiet-run medians where both sides have them)
- **machine**: {machine_line(mach)}
- segenc = `segenc.encode` with default settings (local runner, one single-threaded x264 process per core,
  automatic chunk length); ffmpeg = one ffmpeg CLI process encoding the same ladder with the same settings
  (see `python -m benchmarks ladder --help`)

| target | wanted | measured | verdict |
|:--|--:|--:|:--|
| ffmpeg CLI wall / segenc wall, every clip | >= {TARGET_SPEED:.1f} | {min(speeds, default=float('nan')):.3f} (worst) | {"meets" if speeds and min(speeds) >= TARGET_SPEED else "MISSES"} |
| size per rung vs the ffmpeg CLI | <= +{100 * (TARGET_SIZE - 1):.0f}% | {100 * (max(sizes, default=float('nan')) - 1):+.1f}% (worst) | {"meets" if sizes and max(sizes) <= TARGET_SIZE else "MISSES"} |

{report.md_table(["clip", "ffmpeg wall s", "segenc wall s", "speed", "", "size per rung", "", "details"], table)}
"""
    warnings = [f"- {r['clip']}: {p}" for r in rows for p in r["problems"]]
    if warnings:
        md += "\n## Warnings from the runs\n\n" + "\n".join(warnings) + "\n"
    print(md)
    md_path, _ = report.write_results("small-end", md, {"figure": "small-end", "machine": mach, "args": {
        k: str(v) for k, v in vars(args).items() if k != "func"}, "rows": rows})
    print(f"wrote {md_path}")
    return rc


register("small-end", help="10-60 s clips on one machine: segenc vs the ffmpeg CLI, speed and size per rung",
         description=__doc__, add_arguments=add_arguments, run=run)
