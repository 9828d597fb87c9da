"""Figure "sweep": segenc's chunk length x task granularity against one ffmpeg process.

Variants, alternated round-robin (ffmpeg, then every config in order) ``--repeat`` times:

* ``ffmpeg``: the one-process ffmpeg CLI ladder with default threading (as in ``ladder``);
* ``<granularity>-<chunk>s``: ``segenc.encode`` (local runner, default workers) with
  ``--chunk-seconds <chunk>`` (``auto``: segenc's own default) and
  ``Settings(granularity=...)``: ``segment`` = one task per segment decoding it once and
  encoding every rendition, ``rendition`` = one task per segment x rendition, each decoding
  its segment.

After the timed runs, one round's outputs of every variant are scored (PSNR-Y and SSIM-Y
against the source scaled to the output's size, ``benchmarks.scores``). Reported per config:
speed = ffmpeg wall / segenc wall (target >= 1.0 on 2 cores), CPU ratio, per rendition
size ratio = segenc bytes / ffmpeg bytes (target <= 1.01) and PSNR-Y / SSIM deltas
segenc - ffmpeg (target >= -0.05 dB), in one table and one PNG plot (``benchmarks.plot``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import baseline, inputs, machine, media, options, report, runs, scores, variants
from .registry import register

REPO = Path(__file__).resolve().parent.parent
DEFAULT = {"seconds": 60.0, "size": "1920x1080", "fps": 30}
# --quick: long enough that every chunk length still gives several segments (20 s: 10 at 2 s, 1 at 20 s),
# 720p so a run takes seconds; ~5 min in all with quality scoring on 2 cores.
QUICK = {"seconds": 20.0, "size": "1280x720", "fps": 30}
DEFAULT_CHUNKS = "2,4,6,10,20"
GRANULARITIES = ("segment", "rendition")
TARGET_SPEED = 1.0    # ffmpeg wall / segenc wall, on 2 cores
TARGET_SIZE = 1.01    # segenc bytes / ffmpeg bytes, per rendition
TARGET_PSNR = -0.05   # dB, segenc - ffmpeg, per rendition
NOISE_LIMIT = 0.10    # a run is "noisy" when other processes used more than this share of its own CPU
AUTO = ("auto", "default")


@dataclass(frozen=True)
class Config:
    chunk: float | None   # requested chunk length; None: segenc's default (automatic)
    granularity: str

    @property
    def key(self) -> str:
        return f"{self.granularity}-" + ("auto" if self.chunk is None else f"{self.chunk:g}s")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "chunk": self.chunk, "granularity": self.granularity}


# ----------------------------------------------------------------------------- arguments

def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_input_arguments(p, flavours=["clean", "grain"], default_flavour="clean", default=DEFAULT, quick=QUICK)

    g = p.add_argument_group("what to sweep")
    g.add_argument("--chunks", default=DEFAULT_CHUNKS,
                   help=f"segenc chunk lengths in seconds, comma-separated; 'auto' = segenc's default "
                        f"(no --chunk-seconds). Default {DEFAULT_CHUNKS}")
    g.add_argument("--granularities", default=",".join(GRANULARITIES),
                   help="task granularities: segment (one task per segment, decoded once, every rendition) "
                        "and/or rendition (one task per segment x rendition). Default both")
    g.add_argument("--ladder", default=",".join(baseline.DEFAULT_LADDER), help="rungs (default 480p,720p,1080p)")
    g.add_argument("--workers", type=int, default=None, help="segenc pool size (default: segenc's, all cores)")
    g.add_argument("--preset", default=None, help="x264 preset for all (default: segenc's Settings)")
    g.add_argument("--crf", type=int, default=None, help="CRF for all (default: segenc's Settings)")

    g = p.add_argument_group("runs")
    g.add_argument("--repeat", type=int, default=3,
                   help="measured rounds; each round runs ffmpeg and every config once, in order (default 3)")

    options.add_run_arguments(g)
    options.add_quality_arguments(p, "quality (after the timed runs, not timed)")
    options.add_result_arguments(p, "sweep", ".md/.json/.png")


def parse_chunks(text: str) -> list[float | None]:
    out: list[float | None] = []
    for tok in (t.strip().lower() for t in text.split(",")):
        if not tok:
            continue
        if tok in AUTO:
            val: float | None = None
        else:
            try:
                val = float(tok)
            except ValueError:
                raise SystemExit(f"--chunks: {tok!r} is neither a number of seconds nor 'auto'") from None
            if val <= 0:
                raise SystemExit(f"--chunks: {tok!r} must be positive")
        if val not in out:
            out.append(val)
    if not out:
        raise SystemExit("--chunks is empty")
    return out


def parse_granularities(text: str) -> list[str]:
    out = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [g for g in out if g not in GRANULARITIES]
    if not out or bad:
        raise SystemExit(f"--granularities must name {' and/or '.join(GRANULARITIES)}, got {text!r}")
    return out


def _encoder_defaults() -> dict[str, Any]:
    """segenc's Settings defaults (what the ffmpeg baseline is given too)."""
    from segenc.settings import Settings

    s = Settings()
    return {"preset": s.preset, "crf": s.crf, "audio_bitrate": s.audio_bitrate, "scaler": s.scaler,
            "chunk_seconds": s.chunk_seconds, "granularity": s.granularity}


def _resolve_input(args: argparse.Namespace) -> tuple[float, tuple[int, int], int]:
    base = QUICK if args.quick else DEFAULT
    seconds = args.seconds if args.seconds is not None else base["seconds"]
    size = inputs.parse_size(args.size if args.size is not None else base["size"])
    fps = args.fps if args.fps is not None else base["fps"]
    return seconds, size, fps


def _stem(args: argparse.Namespace, spec: inputs.InputSpec) -> str:
    default_input = ((spec.seconds, (spec.width, spec.height), spec.fps)
                     == (DEFAULT["seconds"], inputs.parse_size(DEFAULT["size"]), DEFAULT["fps"]))
    tag = args.tag if args.tag is not None else ("" if default_input else spec.label.split("-", 1)[1])
    return f"sweep-{spec.flavour}" + (f"-{tag}" if tag else "")


def _rungs_for(ladder: Sequence[str], short: int) -> tuple[str, ...]:
    """The requested rungs that fit the source (nobody upscales); for a small test source whose short
    side is below every requested rung, the standard rungs that fit instead (240p, 360p)."""
    rungs = tuple(r for r in ladder if baseline.RUNGS[r] <= short)
    if rungs:
        return rungs
    return tuple(r for r in ("240p", "360p") if baseline.RUNGS[r] <= short)


# ----------------------------------------------------------------------------- variants

def count_tasks(events: Sequence[dict[str, Any]]) -> int | None:
    """Pool tasks that ran, from the runner's chunk_started/chunk_done events.

    A task announces all its chunks (one segment's renditions) before encoding, so on one worker
    a chunk start begins a new task when none of that worker's chunks is open or it belongs to
    another segment. The audio track is a task of its own."""
    open_chunks: dict[str, set[str]] = {}
    segment: dict[str, str] = {}
    tasks = 0
    for e in events:
        cid, kind = e.get("chunk_id"), e.get("kind")
        if not cid:
            continue
        w = e.get("worker") or cid
        seg = cid.split("-", 1)[0]
        if kind == "chunk_started":
            if not open_chunks.get(w) or segment.get(w) != seg:
                tasks += 1
                open_chunks[w], segment[w] = set(), seg
            open_chunks[w].add(cid)
        elif kind in ("chunk_done", "chunk_failed"):
            open_chunks.get(w, set()).discard(cid)
    return tasks or None


def _segenc_variant(src: Path, work: Path, rungs: Sequence[str], cfg: Config, base_settings: dict[str, Any],
                    args: argparse.Namespace, chunk_used: float | None, keep: Any):
    """segenc with the local runner (``variants.segenc_local``) at this config's chunk length and
    granularity; adds the tasks that ran and the chunk length used."""
    fn = variants.segenc_local(src, work, rungs, timeout=args.timeout, workers=args.workers, chunk_seconds=cfg.chunk,
                               settings={**base_settings, "granularity": cfg.granularity}, name=cfg.key, keep=keep)

    def run(rnd: int) -> runs.Measurement:
        m = fn(rnd)
        m.extra["tasks"] = count_tasks(m.extra.get("events") or [])
        m.extra["chunk_seconds"] = chunk_used
        return m
    return run


# ----------------------------------------------------------------------------- summary

def _renditions(ms: Sequence[runs.Measurement], rungs: Sequence[str]) -> dict[str, dict[str, Any]]:
    last = ms[-1].extra.get("outputs", {})
    return {r: {"bytes": int(runs.median(m.extra["outputs"][r]["bytes"] for m in ms if r in m.extra["outputs"])),
                "frames": last[r]["frames"], "width": last[r]["width"], "height": last[r]["height"],
                "x264_core": last[r].get("x264_core")}
            for r in rungs if r in last}


def resolve_auto_chunk(src: Path, rungs: Sequence[str], granularity: str, workers: int | None) -> float:
    """The chunk length segenc's planner chooses for this input when left automatic."""
    from segenc.plan import plan
    from segenc.probe import probe
    from segenc.settings import Settings

    p = plan(probe(src), tuple(rungs), Settings(granularity=granularity), job_id="sweep", workdir="sweep",
             workers=workers or os.cpu_count())   # LocalRunner's default pool size
    return float(p.settings.chunk_seconds)


def _default_key(configs: Sequence[Config], defaults: dict[str, Any], effective: dict[str, float | None]
                 ) -> tuple[str | None, str]:
    """Which config is segenc's current default, and how to say so."""
    gran, chunk = defaults.get("granularity"), defaults.get("chunk_seconds")
    same = [c for c in configs if c.granularity == gran]
    if chunk is None:   # automatic chunk length
        for c in same:
            if c.chunk is None:
                return c.key, f"chunk length auto ({effective.get(c.key) or '?'} s here), granularity {gran}"
        auto = defaults.get("auto_chunk_seconds")   # what segenc's planner picks for this input
        if not isinstance(auto, (int, float)):
            return None, f"chunk length auto, granularity {gran} (not in this sweep; add 'auto' to --chunks)"
        for c in same:
            if c.chunk is not None and abs(c.chunk - auto) < 1e-6:
                return c.key, f"chunk length auto (= {auto:g} s for this clip), granularity {gran}"
        return None, (f"chunk length auto (= {auto:g} s for this clip, not in this sweep; add 'auto' to --chunks), "
                      f"granularity {gran}")
    for c in same:
        if c.chunk is not None and abs(c.chunk - float(chunk)) < 1e-6:
            return c.key, f"chunk length {float(chunk):g} s, granularity {gran}"
    return None, f"chunk length {chunk} s, granularity {gran} (not in this sweep)"


def summarize(results: dict[str, list[runs.Measurement]], configs: Sequence[Config], rungs: Sequence[str],
              quality: dict[str, dict[str, Any]], src_frames: int, duration: float,
              defaults: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {"targets": {"speed": TARGET_SPEED, "size": TARGET_SIZE, "psnr": TARGET_PSNR}}
    stats = {k: runs.summarize(ms, NOISE_LIMIT) for k, ms in results.items() if ms}
    quiet = all(st["quiet_runs"] for st in stats.values())
    s["basis"] = "quiet" if quiet else "all"
    s["basis_text"] = ("medians of the quiet runs (other load <= 10% of the run's own CPU)" if quiet else
                       "medians of all runs (some variant had no quiet run)")
    wall_key = "wall_quiet" if quiet else "wall"
    if "ffmpeg" not in stats:
        return s
    f = {**stats["ffmpeg"], "wall_used": stats["ffmpeg"][wall_key], "renditions": _renditions(results["ffmpeg"], rungs),
         "quality": {r: quality[f"ffmpeg/{r}"] for r in rungs if f"ffmpeg/{r}" in quality}}
    s["ffmpeg"] = f
    cfgs: dict[str, Any] = {}
    for c in configs:
        ms = results.get(c.key) or []
        if not ms:
            continue
        st = stats[c.key]
        rend = _renditions(ms, rungs)
        eff = [m.extra.get("chunk_seconds") for m in ms if m.extra.get("chunk_seconds")]
        segments = ms[-1].extra.get("segments")
        chunk_eff = runs.median(eff) if eff else (c.chunk if c.chunk is not None else
                                                  (duration / segments if segments else None))
        tasks = [m.extra["tasks"] for m in ms if m.extra.get("tasks")]
        d: dict[str, Any] = {
            **c.to_dict(), **st, "wall_used": st[wall_key], "chunk_effective": chunk_eff, "segments": segments,
            "tasks": int(runs.median(tasks)) if tasks else None, "renditions": rend,
            "speed": f["wall_used"] / st[wall_key], "speed_all": f["wall"] / st["wall"],
            "cpu_ratio": st["cpu"] / f["cpu"],
            "size_ratio": {r: rend[r]["bytes"] / f["renditions"][r]["bytes"] for r in rungs
                           if r in rend and r in f["renditions"]},
            "quality": {r: quality[f"{c.key}/{r}"] for r in rungs if f"{c.key}/{r}" in quality},
        }
        d["psnr_delta"] = {r: q["psnr_y"] - f["quality"][r]["psnr_y"] for r, q in d["quality"].items()
                           if r in f["quality"]}
        d["ssim_delta"] = {r: q["ssim_y"] - f["quality"][r]["ssim_y"] for r, q in d["quality"].items()
                           if r in f["quality"]}
        bad = [f"{r} {rend[r]['frames']}/{src_frames}" for r in rungs
               if r in rend and rend[r]["frames"] != src_frames]
        bad += [f"{r} missing" for r in rungs if r not in rend]
        bad += [f"{r} decoded {q['frames']}" for r, q in d["quality"].items()
                if q.get("frames") not in (None, src_frames)]
        d["frames_ok"], d["frames_problems"] = not bad, bad
        d["meets"] = {
            "speed": d["speed"] >= TARGET_SPEED,
            "size": all(v <= TARGET_SIZE for v in d["size_ratio"].values()),
            "psnr": all(v >= TARGET_PSNR for v in d["psnr_delta"].values()) if d["psnr_delta"] else None,
        }
        cfgs[c.key] = d
    s["configs"] = cfgs
    ok = [k for k, d in cfgs.items() if d["frames_ok"] and d["meets"]["size"] and d["meets"]["psnr"] is not False]
    pool = ok or [k for k, d in cfgs.items() if d["frames_ok"]] or list(cfgs)
    s["best"] = max(pool, key=lambda k: cfgs[k]["speed"]) if pool else None
    s["best_meets_quality_targets"] = bool(ok)
    effective = {k: d["chunk_effective"] for k, d in cfgs.items()}
    s["default"], s["default_text"] = _default_key([c for c in configs if c.key in cfgs], defaults, effective)
    return s


# ----------------------------------------------------------------------------- tables

def _flag(text: str, ok: bool | None) -> str:
    return text + (" !" if ok is False else "")


def _chunk_label(d: dict[str, Any]) -> str:
    if d["chunk"] is None:
        eff = d.get("chunk_effective")
        return f"auto ({eff:.3g})" if isinstance(eff, (int, float)) else "auto"
    return f"{d['chunk']:g}"


def main_table(s: dict[str, Any], rungs: Sequence[str], md: bool) -> str:
    table = report.md_table if md else report.text_table
    headers = ["chunk s", "granularity", "segments", "tasks", "wall s", "speed", "CPU ratio"]
    headers += [f"size {r}" for r in rungs] + [f"ΔPSNR-Y {r}" for r in rungs] + [f"ΔSSIM {r}" for r in rungs]
    headers += ["frames", "note"]
    rows = []
    f = s.get("ffmpeg")
    if f:
        rows.append(["ffmpeg CLI", "-", "-", "-", f["wall_used"], "1 (ref)", "1 (ref)"]
                    + ["ref"] * (3 * len(rungs))
                    + ["ok" if all(d["frames"] == s.get("src_frames", d["frames"]) for d in f["renditions"].values())
                       else "NO", "reference"])
    for key, d in s.get("configs", {}).items():
        size = [_flag(f"{d['size_ratio'][r]:.3f}", d["size_ratio"][r] <= TARGET_SIZE) if r in d["size_ratio"] else "-"
                for r in rungs]
        psnr = [_flag(f"{d['psnr_delta'][r]:+.3f}", d["psnr_delta"][r] >= TARGET_PSNR) if r in d["psnr_delta"] else "-"
                for r in rungs]
        ssim = [f"{d['ssim_delta'][r]:+.5f}" if r in d["ssim_delta"] else "-" for r in rungs]
        note = [x for x, on in (("best", key == s.get("best")), ("default", key == s.get("default"))) if on]
        note_s = ", ".join(note)
        if md and note_s:
            note_s = f"**{note_s}**"
        rows.append([_chunk_label(d), d["granularity"], d["segments"] if d["segments"] is not None else "-",
                     d["tasks"] if d["tasks"] is not None else "-", d["wall_used"],
                     _flag(f"{d['speed']:.3f}", d["speed"] >= TARGET_SPEED), f"{d['cpu_ratio']:.3f}",
                     *size, *psnr, *ssim, "ok" if d["frames_ok"] else "NO " + "; ".join(d["frames_problems"]),
                     note_s])
    return table(headers, rows)


def reference_line(s: dict[str, Any], rungs: Sequence[str]) -> str:
    f = s.get("ffmpeg")
    if not f:
        return ""
    parts = []
    for r in rungs:
        d = f["renditions"].get(r)
        if not d:
            continue
        q = f["quality"].get(r)
        parts.append(f"{r} {report.mb(d['bytes'])}"
                     + (f", PSNR-Y {q['psnr_y']:.2f} dB, SSIM {q['ssim_y']:.4f}" if q else ""))
    return (f"ffmpeg reference: wall {f['wall_used']:.2f} s, CPU {f['cpu']:.2f} s; " + "; ".join(parts))


def verdict_lines(s: dict[str, Any]) -> list[str]:
    out = []
    cf = s.get("configs", {})
    if s.get("best"):
        d = cf[s["best"]]
        targets = "size and quality targets" if d["psnr_delta"] else "size target (quality not scored)"
        why = (f"the fastest config meeting the {targets} on every rendition" if s.get("best_meets_quality_targets")
               else f"the fastest config (none met every {targets.split(' (')[0]})")
        out.append(f"best: {s['best']} ({why}): speed {d['speed']:.3f}x, CPU ratio {d['cpu_ratio']:.3f}, "
                   f"size ratio max {max(d['size_ratio'].values(), default=float('nan')):.3f}"
                   + (f", PSNR-Y delta min {min(d['psnr_delta'].values()):+.3f} dB" if d["psnr_delta"] else ""))
    if s.get("default_text"):
        out.append(f"current default: {s['default_text']}"
                   + (f" = row {s['default']}: speed {cf[s['default']]['speed']:.3f}x" if s.get("default") else ""))
    out.append(f"speed = ffmpeg wall / segenc wall from {s.get('basis_text', '?')}; '!' marks a miss of its target "
               f"(speed >= {TARGET_SPEED:g}, size <= {TARGET_SIZE:g}, PSNR-Y delta >= {TARGET_PSNR:g} dB)")
    return out


def runs_table(s: dict[str, Any], md: bool) -> str:
    table = report.md_table if md else report.text_table
    rows = []
    for name, d in [("ffmpeg", s.get("ffmpeg"))] + list(s.get("configs", {}).items()):
        if not d:
            continue
        rows.append([name, d["wall"], f"{d['wall_min']:.2f}-{d['wall_max']:.2f}",
                     f"{d['wall_quiet']:.2f} ({d['quiet_runs']}/{d['runs']})" if d["quiet_runs"] else "-",
                     d["cpu"], f"{d['utilization'] * 100:.0f}%", d["idle_core_seconds"], d["foreign_cpu"],
                     d.get("serial_seconds", "-")])
    return table(["variant", "wall s", "wall range", "quiet wall s", "CPU s", "cores used", "idle core-s",
                  "other load core-s", "split+concat s"], rows)


def _profiles(results: dict[str, list[runs.Measurement]]) -> list[str]:
    width = max((len(k) for k in results), default=6)
    return [f"{name:<{width}} r{i} {m.wall:6.1f}s |{runs.sparkline(m.profile, m.cores)}|"
            for name, ms in results.items() for i, m in enumerate(ms)]


def _serial_seconds(results: dict[str, list[runs.Measurement]], s: dict[str, Any]) -> None:
    for key, d in s.get("configs", {}).items():
        vals = [sum(m.extra.get("timings", {}).get(k, 0.0) for k in ("split", "concat"))
                for m in results.get(key, []) if m.extra.get("timings")]
        d["serial_seconds"] = runs.median(vals) if vals else None


def check(s: dict[str, Any], results: dict[str, list[runs.Measurement]], src_frames: int) -> list[str]:
    problems = []
    f = s.get("ffmpeg")
    if f:
        for r, d in f["renditions"].items():
            if d["frames"] != src_frames:
                problems.append(f"ffmpeg {r}: {d['frames']} frames, source has {src_frames}")
    for key, d in s.get("configs", {}).items():
        if not d["frames_ok"]:
            problems.append(f"{key}: frame counts {'; '.join(d['frames_problems'])} (source has {src_frames})")
    if f and s.get("configs"):
        d = next(iter(s["configs"].values()))
        for r, x in d["renditions"].items():
            y = f["renditions"].get(r)
            if y and x.get("x264_core") != y.get("x264_core"):
                problems.append(f"{r}: x264 core {y.get('x264_core')} (ffmpeg CLI) vs {x.get('x264_core')} (PyAV)")
    hashes = {m.extra.get("runner", {}).get("segenc_source_sha1") for k, ms in results.items() if k != "ffmpeg"
              for m in ms}
    if len(hashes) > 1:
        problems.append(f"segenc's source changed between runs ({', '.join(sorted(map(str, hashes)))}): "
                        "the runs measured different code")
    for name, d in [("ffmpeg", f)] + list(s.get("configs", {}).items()):
        if d and d["foreign_cpu"] > NOISE_LIMIT * d["cpu"]:
            problems.append(f"{name}: other processes used {d['foreign_cpu']:.1f} core-s during a median run "
                            f"({d['foreign_cpu'] / d['cpu'] * 100:.0f}% of its own CPU): timings are noisy")
    return problems


def markdown(s: dict[str, Any], results: dict[str, list[runs.Measurement]], rungs: Sequence[str],
             mach: dict[str, Any], spec: inputs.InputSpec, src_info: dict[str, Any], args: argparse.Namespace,
             problems: list[str], png: str | None, quality_every: int | None) -> str:
    lines = [f"# sweep / {spec.flavour}: segenc chunk length x task granularity vs one ffmpeg process", ""]
    lines.append(f"- **machine**: {mach['cores']} cores, {mach['cpu_model']} ({', '.join(mach['simd'])}), "
                 f"{mach['memory_gb']} GB RAM, Linux {mach['kernel']}")
    lines.append(f"- **software**: Python {mach['python']}, PyAV {mach['pyav']} (FFmpeg {mach['pyav_ffmpeg']}), "
                 f"ffmpeg CLI {mach['ffmpeg_cli']} (imageio-ffmpeg), segenc {mach['git']}")
    load = mach.get("loadavg_at_start")
    load = ", ".join(f"{x:.2f}" for x in load) if load else "-"
    lines.append(f"- **date**: {mach['date']}; load average at start {load}")
    lines.append(f"- **input**: {spec.label} ({src_info['frames']} frames, {report.mb(src_info['bytes'])}, "
                 f"{src_info['video_bitrate'] / 1e6:.1f} Mb/s H.264 High, GOP {spec.gop}, {spec.bframes} B-frames, "
                 "AAC)")
    lines.append(f"- **ladder**: {', '.join(rungs)}; {args.repeat} rounds, each running ffmpeg and every config "
                 f"once in table order ({args.warmup} warm-up rounds); medians below")
    q = ("not scored (--no-quality)" if quality_every is None else
         f"PSNR-Y / SSIM-Y of one round's outputs against the source scaled to each output (bicubic), every "
         f"{quality_every}{'st' if quality_every == 1 else 'th'} frame")
    lines.append(f"- **quality**: {q}")
    lines.append(f"- **command**: `{' '.join(['python -m benchmarks sweep'] + _argv_repr(args))}`")
    lines += ["", "## Results", ""]
    if png:
        lines += [f"![speed, size and PSNR-Y vs chunk length]({png})", ""]
    lines += [main_table(s, rungs, md=True), "", reference_line(s, rungs), ""]
    lines += [f"- {x}" for x in verdict_lines(s)] + [""]
    lines += ["Columns: *segments* = segments segenc cut; *tasks* = pool tasks that ran (audio included); "
              "*wall s* = the median used for *speed* (ffmpeg wall / segenc wall); *CPU ratio* = segenc CPU / "
              "ffmpeg CPU; *size* = segenc bytes / ffmpeg bytes (whole MP4); *ΔPSNR-Y*, *ΔSSIM* = segenc - "
              "ffmpeg; *frames* = every output has the source's frame count.", ""]
    lines += ["## Runs", "", runs_table(s, md=True), "",
              "## Busy cores over each run", "",
              "Machine-wide, sampled from /proc/stat every 0.25 s; a full bar is all cores busy.", "", "```"]
    lines += _profiles(results) + ["```", ""]
    if problems:
        lines += ["## Warnings", ""] + [f"- {p}" for p in problems] + [""]
    lines += ["## Commands", ""]
    shown = 0
    for name, ms in results.items():
        if ms and shown < 3:
            cmd = " ".join(f'"{c}"' if any(ch in c for ch in " ;[]{}\"") else c for c in ms[0].extra["command"])
            cmd = cmd.replace(inputs.ffmpeg_exe(), "ffmpeg").replace(sys.executable, "python").replace(f"{REPO}/", "")
            lines += [f"{name}:", "", "```", cmd, "```", ""]
            shown += 1
    lines += ["(the other configs differ only in `--chunk-seconds` and `granularity`). Per-run numbers and "
              "per-output PSNR/SSIM are in the JSON file next to this one."]
    return "\n".join(lines)


def _argv_repr(args: argparse.Namespace) -> list[str]:
    out = [f"--flavour {args.flavour}"] if args.flavour != "clean" else []
    if args.quick:
        out.append("--quick")
    for k in ("seconds", "size", "fps", "workers", "preset", "crf", "quality_every"):
        v = getattr(args, k, None)
        if v is not None:
            out.append(f"--{k.replace('_', '-')} {v}")
    if args.chunks != DEFAULT_CHUNKS:
        out.append(f"--chunks {args.chunks}")
    if args.granularities != ",".join(GRANULARITIES):
        out.append(f"--granularities {args.granularities}")
    if args.repeat != 3:
        out.append(f"--repeat {args.repeat}")
    if args.warmup:
        out.append(f"--warmup {args.warmup}")
    if args.ladder != ",".join(baseline.DEFAULT_LADDER):
        out.append(f"--ladder {args.ladder}")
    if getattr(args, "no_quality", False):
        out.append("--no-quality")
    return out


# ----------------------------------------------------------------------------- output

def _plot_points(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"chunk": d["chunk"], "chunk_effective": d["chunk_effective"], "granularity": d["granularity"],
             "speed": d["speed"], "size_ratio": d["size_ratio"], "psnr_delta": d["psnr_delta"],
             "best": k == s.get("best"), "default": k == s.get("default")} for k, d in s.get("configs", {}).items()]


def _write(stem: str, s: dict[str, Any], results, rungs, mach, spec, src_info, args, problems, quality_every,
           data: dict[str, Any], results_dir: Path) -> Path:
    from . import plot

    png_path = results_dir / f"{stem}.png"
    title = (f"segenc sweep: {spec.label}, {mach['cores']} cores, "
             f"{'quiet-run' if s.get('basis') == 'quiet' else 'all-run'} medians")
    drawn = plot.sweep(_plot_points(s), rungs, png_path, title=title,
                       targets={"speed": TARGET_SPEED, "size": TARGET_SIZE,
                                "psnr": TARGET_PSNR if quality_every is not None else None})
    if drawn is None:
        png_path.unlink(missing_ok=True)   # a stale picture would contradict the new table
    md = markdown(s, results, rungs, mach, spec, src_info, args, problems, drawn.name if drawn else None,
                  quality_every)
    md_path, json_path = report.write_results(stem, md, data, results_dir)
    print(f"wrote {md_path}, {json_path.name}" + (f" and {drawn.name}" if drawn else ""))
    return md_path


def _score(src: Path, outputs: dict[str, Path], scaler: str, every: int) -> dict[str, dict[str, Any]]:
    try:
        return scores.score_outputs(src, outputs, scaler=scaler, every=every)
    except Exception as e:   # find the culprit(s); keep the rest
        print(f"WARNING: scoring failed ({e}); scoring one output at a time", file=sys.stderr)
    out: dict[str, dict[str, Any]] = {}
    for k, p in outputs.items():
        try:
            out.update(scores.score_outputs(src, {k: p}, scaler=scaler, every=every, processes=1))
        except Exception as e:
            print(f"WARNING: {k}: {e}", file=sys.stderr)
    return out


def _print_result(s: dict[str, Any], results, rungs, problems) -> None:
    print()
    print(main_table(s, rungs, md=False))
    print(reference_line(s, rungs))
    for x in verdict_lines(s):
        print(x)
    print()
    print(runs_table(s, md=False))
    print("\nmachine-wide busy cores over each run (sampled /proc/stat, full bar = all cores):")
    print("\n".join(_profiles(results)))
    for p in problems:
        print(f"WARNING: {p}")


def rerender(args: argparse.Namespace) -> int:
    """Rewrite results/<stem>.md, .png and the JSON's summary from the runs stored in the JSON."""
    seconds, (w, h), fps = _resolve_input(args)
    spec = inputs.InputSpec(args.flavour, w, h, fps, seconds)
    stem = _stem(args, spec)
    path = args.results_dir / f"{stem}.json"
    if not path.exists():
        print(f"no {path}", file=sys.stderr)
        return 1
    data = json.loads(path.read_text())
    results = {k: [runs.from_dict(d) for d in v] for k, v in data["runs"].items()}
    configs = [Config(c["chunk"], c["granularity"]) for c in data["configs"]]
    inp = dict(data["input"])
    spec = inputs.InputSpec(**inp.pop("spec"))
    stored = argparse.Namespace(**{**vars(args), **data["args"]})
    rungs = data["rungs"]
    s = summarize(results, configs, rungs, data.get("quality", {}), inp["frames"], spec.seconds,
                  data.get("segenc_defaults", {}))
    s["src_frames"] = inp["frames"]
    _serial_seconds(results, s)
    problems = check(s, results, inp["frames"])
    data.update(summary=s, problems=problems)
    _print_result(s, results, rungs, problems)
    _write(stem, s, results, rungs, data["machine"], spec, inp, stored, problems, data.get("quality_every"), data,
           args.results_dir)
    return 0


# ----------------------------------------------------------------------------- main

def run(args: argparse.Namespace) -> int:
    if args.rerender:
        return rerender(args)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    seconds, (w, h), fps = _resolve_input(args)
    chunks = parse_chunks(args.chunks)
    grans = parse_granularities(args.granularities)
    configs = [Config(c, g) for c in chunks for g in grans]
    ladder = baseline.parse_ladder(args.ladder)
    exe = inputs.ffmpeg_exe()
    defaults = _encoder_defaults()
    enc = {k: defaults[k] for k in ("preset", "crf", "audio_bitrate", "scaler")}
    base_settings = {k: v for k, v in (("preset", args.preset), ("crf", args.crf)) if v is not None}
    enc.update(base_settings)
    mach = machine.machine_info(exe)
    print(f"machine: {machine.machine_line(mach)}")
    if mach["cores"] != 2:
        print(f"note: {mach['cores']} cores here; the speed target is stated for 2 cores")

    spec = inputs.InputSpec(args.flavour, w, h, fps, seconds)
    src = inputs.ensure_input(spec, args.cache_dir, exe=exe, force=args.regenerate)
    src_info = media.describe(src)
    short = min(src_info["width"], src_info["height"])
    rungs = _rungs_for(ladder, short)
    if not rungs:
        raise SystemExit(f"no rung fits a {short}p source")
    if rungs != ladder:
        print(f"note: ladder {','.join(rungs)} for a {short}p source (nobody upscales; ffmpeg gets the same rungs)")
    if defaults["chunk_seconds"] is None:
        defaults["auto_chunk_seconds"] = resolve_auto_chunk(src, rungs, defaults["granularity"], args.workers)
    work = args.cache_dir / "work" / f"sweep-{spec.label}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    keep_round = None if args.no_quality else 0   # this round's outputs are scored after the timed runs
    keep: Any = True if args.keep_outputs else ({keep_round} if keep_round is not None else False)
    fns = {"ffmpeg": variants.ffmpeg(exe, src, work, rungs, enc, args.timeout, name="ffmpeg", keep=keep)}
    for c in configs:
        used = c.chunk if c.chunk is not None else resolve_auto_chunk(src, rungs, c.granularity, args.workers)
        fns[c.key] = _segenc_variant(src, work, rungs, c, base_settings, args, used, keep)
    total_runs = len(fns) * (args.repeat + args.warmup)
    print(f"\n== sweep / {args.flavour}: {src.name} ({report.mb(src_info['bytes'])}, {src_info['frames']} frames, "
          f"{src_info['video_bitrate'] / 1e6:.1f} Mb/s) ladder {','.join(rungs)}\n"
          f"   {len(fns)} variants (ffmpeg + {len(chunks)} chunk lengths x {len(grans)} granularities) x "
          f"{args.repeat} rounds{f' + {args.warmup} warm-up' if args.warmup else ''} = {total_runs} runs, "
          f"alternating {' '.join(fns)}")

    t_start = time.perf_counter()
    done = [0]

    def on_result(rnd: int, m: runs.Measurement) -> None:
        done[0] += 1
        tag = "warmup" if rnd < 0 else f"run {rnd + 1}/{args.repeat}"
        waited = m.extra.get("settle_seconds") or 0
        extra = ""
        if m.variant != "ffmpeg":
            extra = f"  segments {m.extra.get('segments')}, tasks {m.extra.get('tasks')}"
        print(f"  {tag:>10} {m.variant:<15} wall {m.wall:7.2f} s  CPU {m.cpu:7.2f} s  "
              f"cores used {m.utilization * 100:3.0f}%{extra}"
              + (f"  (other load {m.foreign_cpu:.1f} core-s)" if m.foreign_cpu > 0.05 * m.cpu else "")
              + (f"  (waited {waited:.0f} s for a quiet machine)" if waited > 2 else ""), flush=True)
        if done[0] == len(fns) and total_runs > done[0]:
            per_round = time.perf_counter() - t_start
            print(f"  (first round took {per_round:.0f} s: about {per_round * (total_runs / len(fns) - 1) / 60:.0f} "
                  f"min of runs to go, plus quality scoring)", flush=True)

    def on_retry(rnd: int, m: runs.Measurement) -> None:
        print(f"  {'':>10} {m.variant:<15} wall {m.wall:7.2f} s  other load {m.foreign_cpu:.1f} core-s: noisy, "
              "redoing", flush=True)

    settle = (lambda: runs.wait_for_quiet(timeout=args.quiet_wait)) if args.quiet_wait > 0 else None
    try:
        results = runs.alternate(fns, args.repeat, warmup=args.warmup, on_result=on_result, settle=settle,
                                 accept=lambda m: m.foreign_cpu <= NOISE_LIMIT * m.cpu,
                                 retries=args.noise_retries, on_retry=on_retry)
    except runs.CommandFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        if not args.keep_outputs:
            shutil.rmtree(work, ignore_errors=True)
        return 1
    print(f"timed runs: {(time.perf_counter() - t_start) / 60:.1f} min")

    quality: dict[str, dict[str, Any]] = {}
    quality_every = None
    if keep_round is not None:
        quality_every = args.quality_every or scores.default_every(src_info["frames"])
        outputs = {f"{k}/{r}": Path(d["path"]) for k, ms in results.items()
                   for r, d in ms[keep_round].extra["outputs"].items()}
        print(f"scoring {len(outputs)} outputs of round 1 (PSNR-Y, SSIM-Y; every {quality_every} frame(s)) ...",
              flush=True)
        t = time.perf_counter()
        quality = _score(src, outputs, enc["scaler"], quality_every)
        print(f"  scored in {time.perf_counter() - t:.0f} s")
    if not args.keep_outputs:
        shutil.rmtree(work, ignore_errors=True)

    s = summarize(results, configs, rungs, quality, src_info["frames"], seconds, defaults)
    s["src_frames"] = src_info["frames"]
    _serial_seconds(results, s)
    problems = check(s, results, src_info["frames"])
    _print_result(s, results, rungs, problems)
    if not args.no_save:
        stem = _stem(args, spec)
        data = {"figure": "sweep", "machine": mach, "input": {"spec": spec.__dict__, "path": str(src), **src_info},
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
                "rungs": list(rungs), "configs": [c.to_dict() for c in configs], "segenc_defaults": defaults,
                "encoder": enc, "quality_every": quality_every, "quality": quality, "summary": s,
                "runs": {k: [m.to_dict() for m in ms] for k, ms in results.items()}, "problems": problems}
        _write(stem, s, results, rungs, mach, spec, src_info, args, problems, quality_every, data, args.results_dir)
    return 0


register("sweep", help="segenc chunk length x task granularity vs one ffmpeg process: speed, size, quality",
         description=__doc__, add_arguments=add_arguments, run=run)
