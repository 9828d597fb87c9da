"""Figure "ladder": segenc vs one ffmpeg process encoding the same 3-rung ladder.

Variants (``--variants``, alternated in this order, A B C D E A B C D E ...):

``ffmpeg``     one ffmpeg CLI process, split -> 3 x scale (bicubic) -> 3 x libx264 (default
               threads) + AAC per output, +faststart MP4s (see ``baseline.ladder_command``).
``ffmpeg-1t``  the same command single-threaded (decoder, filters, x264): its CPU seconds / cores
               is the *ideal wall*, what a perfectly parallel encoder of that work would take.
``segenc``     ``segenc.encode(source, out, ladder)`` with default settings and workers=None, in a
               subprocess (``benchmarks.run_segenc``) so it is measured like ffmpeg.
``celery1``    ``segenc.encode(..., runner=CeleryRunner(...))`` on a private redis-server and 1
``celery2``    or 2 worker nodes of one process each (``benchmarks.run_celery``); wall and CPU
               cover the encode call only (workers are up before a deployment's jobs arrive).

Figures: speed = ffmpeg wall / segenc wall; efficiency = ideal wall / segenc wall; serial share;
size = segenc bytes / ffmpeg bytes per rung; quality = PSNR-Y/SSIM-Y segenc minus ffmpeg (one
run per variant scored after the timed runs); integrity of every output (frames, duration,
monotonic DTS, A/V offset); scaling = celery1 wall / celery2 wall. Medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import baseline, inputs, machine, media, options, report, runs, scores, variants
from .registry import register

REPO = Path(__file__).resolve().parent.parent
QUICK = {"seconds": 10.0, "size": "1280x720", "fps": 30}
DEFAULT = {"seconds": 60.0, "size": "1920x1080", "fps": 30}
VARIANTS = ("ffmpeg", "ffmpeg-1t", "segenc", "celery1", "celery2")
BASELINE, BASELINE_1T, LOCAL = "ffmpeg", "ffmpeg-1t", "segenc"
CELERY = {"celery1": 1, "celery2": 2}            # variant -> worker processes
QUALITY_DEFAULT = ("ffmpeg", "segenc")           # always scored (all variants with --quick)
TARGET = {"speed": 1.0, "efficiency": 0.95, "serial": 0.01, "size": 1.01, "quality": -0.05, "scaling": 1.9}
TARGET_SPEED = TARGET["speed"]
EXACT = 0.0005       # seconds: timestamps equal up to rounding to a time base tick
MIN_WINDOW = 0.5     # stages shorter than this (2 sampler ticks) get no busy-cores figure
NOISE_LIMIT = 0.10   # a run is "noisy" when other processes used more than this share of its own CPU
# segenc's "stage" progress events -> its res.timings keys ("probing" covers probe + plan).
STAGE_EVENT_NAMES = {"probing": "probe", "splitting": "split", "encoding": "encode", "concatenating": "concat"}


# ----------------------------------------------------------------------------- arguments

def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_input_arguments(p, flavours=["clean", "grain", "both"], default_flavour="both", default=DEFAULT,
                                quick=QUICK)

    g = p.add_argument_group("runs")
    g.add_argument("--repeat", type=int, default=3, help="measured runs per variant, alternated A B A B (default 3)")
    g.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)}, run in that order (default all; the "
                        "ffmpeg variants work without segenc)")
    g.add_argument("--ladder", default=",".join(baseline.DEFAULT_LADDER), help="rungs (default 480p,720p,1080p)")
    g.add_argument("--workers", type=int, default=None,
                   help="segenc's local pool size (default: segenc's, all cores); celery1/celery2 fix theirs")
    g.add_argument("--chunk-seconds", type=float, default=None, help="segenc chunk length (default: segenc's)")
    g.add_argument("--preset", default=None, help="x264 preset for all (default: segenc's Settings, veryfast)")
    g.add_argument("--crf", type=float, default=None, help="CRF for all (default: segenc's Settings, 23)")
    g.add_argument("--codec", choices=("h264", "hevc", "av1"), default=None,
                   help="codec for all (default: segenc's Settings, h264); the ffmpeg CLI gets the same gop grid")

    options.add_run_arguments(g)

    g = options.add_quality_arguments(p, "quality (scored after the timed runs, on the last round's outputs)")
    g.add_argument("--quality-variants", default=None,
                   help="variants to score (default: ffmpeg,segenc; every variant with --quick)")

    options.add_result_arguments(p, "ladder")


def _settings_defaults() -> dict[str, Any]:
    """segenc's defaults if importable, else the documented ones (for the ffmpeg-only mode)."""
    try:
        from segenc.settings import Settings

        s = Settings()
        return {"preset": s.preset, "crf": s.crf, "audio_bitrate": s.audio_bitrate, "scaler": s.scaler,
                "codec": s.codec, "gop": s.gop}
    except Exception:
        return {"preset": "veryfast", "crf": 23, "audio_bitrate": 128_000, "scaler": "bicubic", "codec": "h264",
                "gop": 2.0}


# ----------------------------------------------------------------------------- analysis

def is_segenc(ms: Sequence[runs.Measurement]) -> bool:
    """A segenc variant (local or Celery runner): its runs carry segenc's timings."""
    return any("timings" in m.extra for m in ms)


def _busy_between(profile: Sequence[Sequence[float]], a: float, b: float) -> float | None:
    """Mean machine-wide busy cores in [a, b] (seconds since launch) from the sampler profile."""
    if b - a < MIN_WINDOW or not profile:
        return None
    total = 0.0
    prev = 0.0
    for t, busy in profile:
        lo, hi = max(a, prev), min(b, t)
        if hi > lo:
            total += busy * (hi - lo)
        prev = t
    covered = min(b, prev) - a
    return total / covered if covered > 0 else None


def _chunk_spans(events: Sequence[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    """(chunk id, worker, start, done) of every chunk with both events."""
    starts = {e["chunk_id"]: e for e in events if e.get("kind") == "chunk_started" and e.get("chunk_id")}
    dones = {e["chunk_id"]: e["t"] for e in events if e.get("kind") == "chunk_done" and e.get("chunk_id")}
    return [(c, starts[c].get("worker") or c, starts[c]["t"], dones[c]) for c in starts if c in dones]


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def serial_shares(timings: dict[str, float], events: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """segenc's serial parts as shares of its encode() wall (``timings["total"]``).

    - ``literal``: (split + audio + concat) / wall, the issue's definition. audio is the audio
      task's duration (``timings["audio"]``, else its chunk_started -> chunk_done events); it
      runs in parallel with the video chunks, so this overstates what is serial.
    - ``critical``: the part during which the pool could not encode, as segenc times it:
      ``timings["serial"]`` when segenc reports one, else split + concat.
    - ``pool_idle``: the time inside encode() with no chunk (video or audio) running at all,
      from the progress events: probe, plan, split, pool start-up, dispatch and the tail
      (concat, package, the runner noticing the end).
    """
    total = timings.get("total")
    out: dict[str, Any] = {"literal": None, "critical": None, "pool_idle": None, "audio_seconds": None,
                           "literal_parts": [], "critical_parts": []}
    if not total:
        return out
    spans = _chunk_spans(events)
    audio = timings.get("audio")
    if audio is None:
        audio = next((d - s for c, _, s, d in spans if c == "audio"), None)
    out["audio_seconds"] = audio
    parts = {k: timings[k] for k in ("split", "concat") if isinstance(timings.get(k), (int, float))}
    if audio is not None:
        parts["audio"] = audio
    if parts:
        out["literal"] = sum(parts.values()) / total
        out["literal_parts"] = [k for k in ("split", "audio", "concat") if k in parts]
    if isinstance(timings.get("serial"), (int, float)):
        out["critical"], out["critical_parts"] = timings["serial"] / total, ["serial"]
    elif any(k in parts for k in ("split", "concat")):
        keys = [k for k in ("split", "concat") if k in parts]
        out["critical"], out["critical_parts"] = sum(parts[k] for k in keys) / total, keys
    if spans:
        busy = sum(min(b, total) - max(a, 0.0) for a, b in _union([(s, d) for _, _, s, d in spans])
                   if min(b, total) > max(a, 0.0))
        out["pool_idle"] = max(0.0, total - busy) / total
        out["pool_idle_seconds"] = max(0.0, total - busy)
    return out


def analyse_segenc(m: runs.Measurement, r: dict[str, Any]) -> dict[str, Any]:
    """Where segenc's wall time went: stages, cores busy in each, pool occupancy, process overhead."""
    timings: dict[str, float] = r.get("timings", {}) or {}
    runner = r.get("runner", {}) or {}
    events = r.get("events", []) or []
    out: dict[str, Any] = {}
    sh = serial_shares(timings, events)
    out["serial"] = sh
    out["serial_share"], out["serial_stages"] = sh["literal"], sh["literal_parts"]
    if timings.get("total"):
        out["non_encode_share"] = 1 - timings.get("encode", 0.0) / timings["total"]
        out["outside_encode_call"] = m.wall - timings["total"]   # interpreter start, imports, pool teardown
        done = [e["t"] for e in events if e.get("kind") == "stage" and e.get("stage") == "done"]
        if len(done) > 1:   # the Celery runner: the finish task said done, then encode() returned
            out["after_done"] = timings["total"] - done[0]
    offset = runner.get("t0_wall", m.started_at) - m.started_at  # runner clock -> measurement clock
    out["startup_seconds"] = offset

    # Stage windows: from "stage" events if segenc sends them, else cumulative timings in order.
    stage_ev = [(e["t"], e.get("stage")) for e in events if e.get("kind") == "stage" and e.get("stage")]
    windows: list[tuple[str, float, float]] = []
    if len(stage_ev) >= 2:
        for (t, st), (t2, _) in zip(stage_ev, stage_ev[1:]):
            windows.append((STAGE_EVENT_NAMES.get(st, st), t, t2))
        out["windows_from"] = "events"
    else:
        t = 0.0
        for k, v in timings.items():
            if k == "total" or not isinstance(v, (int, float)):
                continue
            windows.append((k, t, t + v))
            t += v
        out["windows_from"] = "timings"
    out["stage_busy_cores"] = {
        st: {"seconds": round(b - a, 3), "busy_cores": _busy_between(m.profile, a + offset, b + offset)}
        for st, a, b in windows if b > a}

    # Pool occupancy from chunk start/done events. A worker process may carry several chunks at
    # once (one task per segment encoding every rung), so each worker's busy time is the union of
    # its chunks' spans; occupancy = worker-busy seconds / (cores x encode window).
    spans = _chunk_spans(events)
    if spans:
        lo, hi = min(s for _, _, s, _ in spans), max(d for _, _, _, d in spans)
        busy_by_worker: dict[str, list[tuple[float, float]]] = {}
        for _, w, st, d in spans:
            busy_by_worker.setdefault(w, []).append((st, d))
        busy_by_worker = {w: _union(iv) for w, iv in busy_by_worker.items()}
        tasks = [x for iv in busy_by_worker.values() for x in iv]
        edges = sorted([(st, 1) for st, _ in tasks] + [(d, -1) for _, d in tasks])
        running, prev, under = 0, lo, 0.0
        for t, delta in edges:
            if running < m.cores:
                under += t - prev
            running += delta
            prev = t
        busy = sum(d - st for st, d in tasks)
        out["chunks"] = {
            "count": len(spans),
            "tasks": len(tasks),        # contiguous busy stretches of a worker (~ pool tasks)
            "workers": len(busy_by_worker),
            "window_seconds": hi - lo,
            "occupancy": busy / (m.cores * (hi - lo)) if hi > lo else None,
            "seconds_with_free_core": under,   # parts of the encode window where a core had no task
            "longest_task": max(d - st for st, d in tasks),
            "median_task": runs.median(d - st for st, d in tasks),
        }
    return out


def integrity(d: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """One output against its source: frames, video duration, monotonic DTS, A/V offset.

    ``level``: 0 exact (frames equal, DTS strictly increasing, duration and A/V offset equal to
    within half a millisecond), 1 OK (those two within half a frame), 2 mismatch. Numbers the
    stored description lacks (older results) are None and not judged."""
    fps = src.get("fps") or d.get("fps") or 30.0
    half = 0.5 / fps
    reasons: list[str] = []
    level = 0

    def diff(key: str) -> float | None:
        a, b = d.get(key), src.get(key)
        return a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None

    if d.get("frames") != src.get("frames"):
        level = 2
        reasons.append(f"{d.get('frames')} frames, source {src.get('frames')}")
    if d.get("dts_monotonic") is False:
        level = 2
        reasons.append(f"DTS not increasing at {d.get('dts_violations')} packets")
    dur, av, adur = diff("video_duration"), diff("av_offset"), diff("audio_duration")
    for what, v in (("video duration", dur), ("A/V offset", av)):
        if v is None:
            continue
        if abs(v) > half:
            level = 2
            reasons.append(f"{what} {v * 1000:+.1f} ms")
        elif abs(v) > EXACT:
            level = max(level, 1)
    if src.get("audio") and "av_offset" in d and d.get("audio") is None:
        level = 2
        reasons.append("no audio")
    unchecked = [what for what, v in (("duration", dur), ("DTS", d.get("dts_monotonic")),
                                      ("A/V offset", av if src.get("audio") or "av_offset" not in d else 0.0))
                 if v is None]
    return {"level": level, "reasons": reasons, "unchecked": unchecked, "frames": d.get("frames"),
            "duration_diff": dur, "dts_monotonic": d.get("dts_monotonic"), "av_offset_diff": av,
            "audio_duration_diff": adur}


def _integrity_summary(ms: Sequence[runs.Measurement], ladder: Sequence[str], src: dict[str, Any]
                       ) -> dict[str, dict[str, Any]]:
    """Per rung, the worst of every run's integrity."""
    out: dict[str, dict[str, Any]] = {}
    for r in ladder:
        checks = [integrity(m.extra["outputs"][r], src) for m in ms if r in m.extra.get("outputs", {})]
        if not checks:
            continue

        def worst(key: str) -> float | None:
            vals = [c[key] for c in checks if c[key] is not None]
            return max(vals, key=abs) if vals else None

        dts = [c["dts_monotonic"] for c in checks if c["dts_monotonic"] is not None]
        out[r] = {"runs": len(checks), "level": max(c["level"] for c in checks),
                  "reasons": sorted({x for c in checks for x in c["reasons"]}),
                  "unchecked": sorted({x for c in checks for x in c.get("unchecked", [])}),
                  "frames": sorted({c["frames"] for c in checks}, key=str),
                  "duration_diff": worst("duration_diff"), "av_offset_diff": worst("av_offset_diff"),
                  "audio_duration_diff": worst("audio_duration_diff"),
                  "dts_monotonic": all(dts) if dts else None}
    return out


# ----------------------------------------------------------------------------- summary

def _resolve_input(args: argparse.Namespace) -> tuple[float, tuple[int, int], int]:
    base = QUICK if args.quick else DEFAULT
    seconds = args.seconds if args.seconds is not None else base["seconds"]
    size = inputs.parse_size(args.size if args.size is not None else base["size"])
    fps = args.fps if args.fps is not None else base["fps"]
    return seconds, size, fps


def _med(values) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float))]
    return runs.median(vals) if vals else None


def _segenc_summary(ms: Sequence[runs.Measurement]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    keys: list[str] = []
    for m in ms:
        keys += [k for k in m.extra.get("timings", {}) if k not in keys]
    if "total" in keys:   # total last
        keys.remove("total")
        keys.append("total")
    s["timings"] = {k: _med(m.extra["timings"].get(k) for m in ms) for k in keys}
    an = [m.extra.get("analysis", {}) for m in ms]
    s["serial"] = {k: _med(a.get("serial", {}).get(k) for a in an)
                   for k in ("literal", "critical", "pool_idle", "audio_seconds", "pool_idle_seconds")}
    s["serial"]["literal_parts"] = an[0].get("serial", {}).get("literal_parts", [])
    s["serial"]["critical_parts"] = an[0].get("serial", {}).get("critical_parts", [])
    s["serial_share"], s["serial_stages"] = s["serial"]["literal"], s["serial"]["literal_parts"]
    s["segments"] = ms[0].extra.get("segments")
    s["outside_encode_call"] = _med(a.get("outside_encode_call") for a in an)
    s["after_done"] = _med(a.get("after_done") for a in an)
    st_names = list(dict.fromkeys(st for a in an for st in a.get("stage_busy_cores", {})))
    s["stage_busy_cores"] = {
        st: {"seconds": _med(a.get("stage_busy_cores", {}).get(st, {}).get("seconds") for a in an),
             "busy_cores": _med(a.get("stage_busy_cores", {}).get(st, {}).get("busy_cores") for a in an)}
        for st in st_names}
    chunks = [a["chunks"] for a in an if "chunks" in a]
    if chunks:
        s["chunks"] = {k: _med(c.get(k) for c in chunks) for k in chunks[0]}
    if any("process" in m.extra for m in ms):
        s["process"] = {k: _med(m.extra.get("process", {}).get(k) for m in ms) for k in ("wall", "cpu")}
        s["cpu_by"] = {k: _med(m.extra.get("cpu_by", {}).get(k) for m in ms) for k in ms[0].extra.get("cpu_by", {})}
    return s


def _wall(v: dict[str, Any]) -> tuple[float, bool]:
    """A variant's wall: the quiet-run median when there is one, else the median of all runs."""
    return (v["wall_quiet"], True) if v.get("quiet_runs") else (v["wall"], False)


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str]:
    """a wall / b wall: quiet-run medians when both variants have quiet runs, else all-run medians."""
    if a.get("quiet_runs") and b.get("quiet_runs"):
        return a["wall_quiet"] / b["wall_quiet"], "quiet-run medians"
    return a["wall"] / b["wall"], "all-run medians"


def _summary(results: dict[str, list[runs.Measurement]], ladder: Sequence[str],
             src_info: dict[str, Any] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {name: runs.summarize(ms, NOISE_LIMIT) for name, ms in results.items() if ms}
    for name, ms in results.items():
        if not ms:
            continue
        s["cores"] = ms[0].cores
        last = ms[-1].extra.get("outputs", {})
        s[name]["renditions"] = {
            r: {"bytes": int(runs.median(m.extra["outputs"][r]["bytes"] for m in ms if r in m.extra["outputs"])),
                **{k: last[r].get(k) for k in ("frames", "width", "height", "duration", "video_duration",
                                                "video_bitrate", "x264_core", "x264_threads")}}
            for r in ladder if r in last}
        if is_segenc(ms):
            s[name].update(_segenc_summary(ms))
        q = next((m.extra["quality"] for m in reversed(ms) if m.extra.get("quality")), None)
        if q:
            s[name]["quality"] = q
        if src_info:
            s[name]["integrity"] = _integrity_summary(ms, ladder, src_info)

    f = s.get(BASELINE)
    if f and LOCAL in s:   # the original headline keys
        g = s[LOCAL]
        s["speed_all"] = f["wall"] / g["wall"]
        s["speed_best"] = f["wall_min"] / g["wall_min"]
        s["speed"], basis = _ratio(f, g)
        s["speed_basis"] = (f"medians of the quiet runs ({f['quiet_runs']} ffmpeg, {g['quiet_runs']} segenc)"
                            if basis.startswith("quiet") else "medians of all runs (too few quiet ones)")
        s["cpu_ratio"] = g["cpu"] / f["cpu"]
        s["size_ratio"] = {r: g["renditions"][r]["bytes"] / f["renditions"][r]["bytes"]
                           for r in ladder if r in g["renditions"] and r in f["renditions"]}
    one_t = s.get(BASELINE_1T)
    if one_t:
        s["ideal_wall"] = one_t["cpu"] / s["cores"]
    ratios: dict[str, dict[str, Any]] = {}
    for v in results:
        if v not in s:
            continue
        x: dict[str, Any] = {"wall": _wall(s[v])[0], "wall_basis": "quiet" if _wall(s[v])[1] else "all"}
        if f and v != BASELINE:
            x["speed"], x["speed_basis"] = _ratio(f, s[v])
            x["size"] = {r: s[v]["renditions"][r]["bytes"] / f["renditions"][r]["bytes"]
                         for r in ladder if r in s[v]["renditions"] and r in f["renditions"]}
            x["cpu_vs_ffmpeg"] = s[v]["cpu"] / f["cpu"]
        if one_t:
            x["efficiency"] = s["ideal_wall"] / x["wall"]
            x["cpu_vs_1t"] = s[v]["cpu"] / one_t["cpu"]
        fq, q = (f or {}).get("quality"), s[v].get("quality")
        if fq and q and v != BASELINE:
            x["psnr_delta"] = {r: q[r]["psnr_y"] - fq[r]["psnr_y"] for r in ladder if r in q and r in fq}
            x["ssim_delta"] = {r: q[r]["ssim_y"] - fq[r]["ssim_y"] for r in ladder if r in q and r in fq}
        ratios[v] = x
    s["ratios"] = ratios
    if "celery1" in s and "celery2" in s:
        s["scaling"], s["scaling_basis"] = _ratio(s["celery1"], s["celery2"])
    s["figures"] = _figures(s, ladder)
    return s


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("meets" if ok else "MISSES")


def _per_rung(d: dict[str, float] | None, fmt: str) -> str:
    return ", ".join(f"{r} {fmt.format(v)}" for r, v in d.items()) if d else "-"


def _figures(s: dict[str, Any], ladder: Sequence[str]) -> list[dict[str, Any]]:
    """The headline rows: figure, definition, measured, target, verdict (and the number judged)."""
    rows: list[dict[str, Any]] = []
    R = s.get("ratios", {})

    def add(figure: str, definition: str, value: float | None, measured: str, target: str, ok: bool | None):
        rows.append({"figure": figure, "definition": definition, "value": value,
                     "measured": measured if value is not None else "n/a", "target": target,
                     "verdict": _verdict(ok if value is not None else None)})

    for v, label in ((LOCAL, ""), ("celery2", ", celery2")):
        if v not in s and v != LOCAL:
            continue
        x = R.get(v, {})
        sp = x.get("speed")
        add(f"speed{label}", f"ffmpeg CLI wall / {v} wall ({x.get('speed_basis', '-')})", sp,
            f"{sp:.3f}x" if sp else "", f">= {TARGET['speed']:g}", sp is not None and sp >= TARGET["speed"])
    for v, label in ((LOCAL, ""), ("celery2", ", celery2")):
        if v not in s and v != LOCAL:
            continue
        e = R.get(v, {}).get("efficiency")
        ideal = s.get("ideal_wall")
        add(f"efficiency{label}",
            f"ideal wall / {v} wall; ideal = ffmpeg-1t CPU / {s.get('cores', '?')} cores"
            + (f" = {ideal:.2f} s" if ideal else ""), e, f"{e:.3f}" if e else "",
            f">= {TARGET['efficiency']:g}", e is not None and e >= TARGET["efficiency"])
    sh = s.get(LOCAL, {}).get("serial", {})
    lit, crit, idle = sh.get("literal"), sh.get("critical"), sh.get("pool_idle")
    add("serial share", f"({' + '.join(sh.get('literal_parts') or ['split', 'audio', 'concat'])}) / segenc's "
        "encode() wall (audio runs alongside the video chunks)", lit, f"{lit * 100:.2f}%" if lit is not None else "",
        f"<= {TARGET['serial'] * 100:g}%", lit is not None and lit <= TARGET["serial"])
    add("serial share, critical path",
        ("segenc's own timings['serial'] (the part the pool waits for) / encode() wall"
         if sh.get("critical_parts") == ["serial"] else
         f"({' + '.join(sh.get('critical_parts') or ['split', 'concat'])}) as segenc times them / encode() wall"), crit, f"{crit * 100:.2f}%" if crit is not None else "",
        f"<= {TARGET['serial'] * 100:g}%", crit is not None and crit <= TARGET["serial"])
    add("pool idle share", "time in encode() with no chunk running (progress events) / encode() wall", idle,
        f"{idle * 100:.2f}%" if idle is not None else "", f"<= {TARGET['serial'] * 100:g}% (not in the issue)",
        idle is not None and idle <= TARGET["serial"])
    size = R.get(LOCAL, {}).get("size")
    worst = max(size.values()) if size else None
    add("size", "segenc bytes / ffmpeg bytes, per rendition (whole MP4)", worst,
        _per_rung(size, "{:.3f}"), f"<= {TARGET['size']:g}", worst is not None and worst <= TARGET["size"])
    dq = R.get(LOCAL, {}).get("psnr_delta")
    ds = R.get(LOCAL, {}).get("ssim_delta")
    worst = min(dq.values()) if dq else None
    add("quality", "PSNR-Y segenc - ffmpeg vs the same scaled source, per rendition"
        + (f" (SSIM: {_per_rung(ds, '{:+.4f}')})" if ds else ""), worst, _per_rung(dq, "{:+.3f} dB"),
        f">= {TARGET['quality']:g} dB", worst is not None and worst >= TARGET["quality"])
    checks = [c for v in s.values() if isinstance(v, dict) for c in v.get("integrity", {}).values()]
    n_runs = sum(c["runs"] for c in checks)
    bad = sum(1 for c in checks if c["level"] >= 2)
    okish = sum(1 for c in checks if c["level"] == 1)
    unchecked = sorted({x for c in checks for x in c.get("unchecked", [])})
    add("integrity", "frames, video duration, monotonic DTS, A/V offset vs the source (every output of "
        "every variant and run)", float(bad) if checks else None,
        (f"{len(checks) - bad - okish}/{len(checks)} outputs exact" + (f", {okish} within half a frame" if okish else "")
         + (f", {bad} MISMATCH" if bad else "") + f" ({n_runs} files)"
         + (f"; older result: {', '.join(unchecked)} not recorded" if unchecked else "")) if checks else "",
        "exact", (bad == 0 and okish == 0) if checks and not (unchecked and bad == 0) else (False if bad else None))
    sc = s.get("scaling")
    add("scaling", f"celery1 wall / celery2 wall ({s.get('scaling_basis', '-')})", sc, f"{sc:.3f}x" if sc else "",
        f">= {TARGET['scaling']:g}", sc is not None and sc >= TARGET["scaling"])
    return rows


# ----------------------------------------------------------------------------- tables

def _tables(s: dict[str, Any], ladder: Sequence[str], md: bool) -> dict[str, str]:
    """Named blocks: figures, time, ratios, size, quality, integrity, stages, serial (text lines)."""
    table = report.md_table if md else report.text_table
    out: dict[str, str] = {}
    variants = [v for v in s if isinstance(s[v], dict) and "wall" in s[v] and "runs" in s[v]]
    seg = [v for v in variants if "timings" in s[v]]

    rows = [[f["figure"], f["definition"], f["measured"], f["target"], f["verdict"]] for f in s.get("figures", [])]
    if not md and rows:   # text_table right-aligns all but the first column: left-align these words
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        rows = [[c.ljust(w) for c, w in zip(r, widths)] for r in rows]
    heads = ["figure", "definition", "measured", "target", "verdict"]
    if not md and rows:
        heads = [h.ljust(len(c)) for h, c in zip(heads, rows[0])]
    out["figures"] = table(heads, rows)

    rows = [[v, s[v]["wall"], f"{s[v]['wall_min']:.2f}-{s[v]['wall_max']:.2f}",
             f"{s[v]['wall_quiet']:.2f} ({s[v]['quiet_runs']}/{s[v]['runs']})" if s[v]["quiet_runs"] else "-",
             s[v]["cpu"], s[v]["user"], s[v]["sys"],
             f"{s[v]['utilization'] * 100:.0f}%", s[v]["idle_core_seconds"], s[v]["foreign_cpu"]] for v in variants]
    block = table(["variant", "wall s", "wall range", "quiet wall s", "CPU s", "user s", "sys s", "cores used",
                   "idle core-s", "other load core-s"], rows)
    cel = [v for v in variants if s[v].get("process")]
    if cel:
        block += "\n\n" + "; ".join(
            f"{v}: encode call only; the whole subprocess (Redis + {CELERY.get(v, '?')} worker start-up, the call, "
            f"shutdown) took {s[v]['process']['wall']:.2f} s wall, {s[v]['process']['cpu']:.2f} s CPU"
            + (" (job CPU: " + ", ".join(f"{k} {c:.2f}" for k, c in s[v].get("cpu_by", {}).items() if c is not None)
               + ")" if s[v].get("cpu_by") else "")
            for v in cel)
    out["time"] = block

    R = s.get("ratios", {})
    if R:
        rows = [[v, R[v]["wall"], R[v].get("speed"), R[v].get("efficiency"), R[v].get("cpu_vs_ffmpeg"),
                 R[v].get("cpu_vs_1t")] for v in variants if v in R]
        out["ratios"] = table(["variant", "wall s (quiet median if any)", "speed vs ffmpeg", "efficiency",
                               "CPU / ffmpeg CPU", "CPU / ffmpeg-1t CPU"], rows)
        if "ideal_wall" in s:
            out["ratios"] += (f"\n\nideal wall = ffmpeg-1t CPU / {s['cores']} cores = {s['ideal_wall']:.2f} s; "
                              "efficiency = ideal wall / wall (ffmpeg-1t's own wall is not single-core: FFmpeg "
                              "runs decoder, filters and each encoder in threads of their own)")

    others = [v for v in variants if v != BASELINE]
    rows = []
    for r in ladder:
        d0 = next((s[v]["renditions"][r] for v in variants if r in s[v].get("renditions", {})), None)
        if not d0:
            continue
        row = [r, f"{d0['width']}x{d0['height']}"]
        row += [report.mb(s[v]["renditions"][r]["bytes"]) if r in s[v]["renditions"] else "-" for v in variants]
        row += [R.get(v, {}).get("size", {}).get(r) for v in others if BASELINE in s]
        rows.append(row)
    out["size"] = table(["rung", "size"] + [f"{v}" for v in variants]
                        + ([f"{v} / ffmpeg" for v in others] if BASELINE in s else []), rows)

    rows = []
    for r in ladder:
        for v in variants:
            q = s[v].get("quality", {}).get(r)
            if not q:
                continue
            x = R.get(v, {})
            rows.append([r, v, f"{q['psnr_y']:.3f}", f"{q['ssim_y']:.5f}",
                         f"{x['psnr_delta'][r]:+.3f}" if r in x.get("psnr_delta", {}) else "-",
                         f"{x['ssim_delta'][r]:+.5f}" if r in x.get("ssim_delta", {}) else "-",
                         f"{q.get('scored_frames', '-')}/{q.get('frames', '-')}"])
    if rows:
        out["quality"] = table(["rung", "variant", "PSNR-Y dB", "SSIM-Y", "PSNR-Y - ffmpeg", "SSIM-Y - ffmpeg",
                                "frames scored"], rows)

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:+.2f}"

    rows = []
    for v in variants:
        for r, c in s[v].get("integrity", {}).items():
            verdict = ("exact", "OK (< half a frame)", "MISMATCH: " + "; ".join(c["reasons"]))[c["level"]]
            if c.get("unchecked") and c["level"] < 2:
                verdict = f"{verdict} as far as recorded (no {', '.join(c['unchecked'])})"
            rows.append([v, r, "/".join(map(str, c["frames"])), ms(c["duration_diff"]),
                         "-" if c["dts_monotonic"] is None else ("yes" if c["dts_monotonic"] else "NO"),
                         ms(c["av_offset_diff"]), ms(c["audio_duration_diff"]), c["runs"], verdict])
    if rows:
        out["integrity"] = table(["variant", "rung", "frames", "video duration - source ms", "DTS increasing",
                                  "A/V offset - source ms", "audio duration - source ms (info)", "runs", "verdict"],
                                 rows)

    if seg:
        keys = list(dict.fromkeys(k for v in seg for k in s[v]["timings"]))
        if "total" in keys:
            keys.remove("total")
            keys.append("total")
        rows = []
        for k in keys:
            row = [k]
            for v in seg:
                t = s[v]["timings"]
                val = t.get(k)
                row += [val, f"{val / t['total'] * 100:.1f}%" if val is not None and t.get("total") else "-",
                        s[v].get("stage_busy_cores", {}).get(k, {}).get("busy_cores")]
            rows.append(row)
        out["stages"] = table(["stage"] + [h for v in seg for h in (f"{v} s", "of total", "busy cores")], rows)
        lines = []
        for v in seg:
            g = s[v]
            sh = g.get("serial", {})
            pct = (lambda x: f"{x * 100:.2f}%" if x is not None else "n/a")
            line = (f"{v}: serial share ({'+'.join(sh.get('literal_parts') or [])}) / total = {pct(sh.get('literal'))}"
                    f" (audio task {sh['audio_seconds']:.2f} s, in parallel with video)"
                    if sh.get("audio_seconds") is not None else
                    f"{v}: serial share ({'+'.join(sh.get('literal_parts') or [])}) / total = {pct(sh.get('literal'))}")
            line += (f"; critical path ({'+'.join(sh.get('critical_parts') or [])}) {pct(sh.get('critical'))}"
                     f"; no chunk running {pct(sh.get('pool_idle'))}")
            if sh.get("pool_idle_seconds") is not None:
                line += f" ({sh['pool_idle_seconds']:.2f} s)"
            line += f"; segments: {g.get('segments')}"
            if g.get("outside_encode_call") is not None and not g.get("process"):
                line += f"; outside encode() (interpreter, imports, teardown): {g['outside_encode_call']:.2f} s"
            if g.get("after_done") is not None:
                line += f"; finish task done -> encode() returned: {g['after_done']:.2f} s"
            c = g.get("chunks")
            if c and c.get("occupancy") is not None:
                line += (f"; pool occupancy during encode: {c['occupancy'] * 100:.0f}% "
                         f"({c['count']:.0f} chunks in {c.get('tasks') or c['count']:.0f} worker tasks on "
                         f"{c.get('workers') or 0:.0f} processes, task median {c.get('median_task') or float('nan'):.2f} s, "
                         f"longest {c.get('longest_task') or float('nan'):.2f} s; "
                         f"{c.get('seconds_with_free_core') or 0:.2f} s with a core idle)")
            lines.append(line)
        out["serial"] = ("\n\n" if md else "\n").join(lines)
    return out


def _profiles(results: dict[str, list[runs.Measurement]]) -> list[str]:
    lines = []
    for name, ms in results.items():
        for i, m in enumerate(ms):
            lines.append(f"{name:<9} r{i} {m.wall:6.1f}s |{runs.sparkline(m.profile, m.cores)}|")
    return lines


# ----------------------------------------------------------------------------- main

def _stem(args: argparse.Namespace, spec: inputs.InputSpec) -> str:
    default_input = ((spec.seconds, (spec.width, spec.height), spec.fps)
                     == (DEFAULT["seconds"], inputs.parse_size(DEFAULT["size"]), DEFAULT["fps"]))
    tag = args.tag if args.tag is not None else ("" if default_input else spec.label.split("-", 1)[1])
    return f"ladder-{spec.flavour}" + (f"-{tag}" if tag else "")


def _print_report(s: dict[str, Any], rungs: Sequence[str], results: dict[str, list[runs.Measurement]]) -> None:
    blocks = _tables(s, rungs, md=False)
    for name in ("figures", "time", "ratios", "size", "quality", "integrity", "stages", "serial"):
        if name in blocks:
            print(blocks[name] + "\n")
    print("machine-wide busy cores over each run (sampled /proc/stat, full bar = all cores; celery: the encode call):")
    print("\n".join(_profiles(results)))


def rerender(args: argparse.Namespace) -> int:
    """Rewrite results/<stem>.md and the JSON's summary from the runs stored in the JSON."""
    seconds, (w, h), fps = _resolve_input(args)
    flavours = ["clean", "grain"] if args.flavour == "both" else [args.flavour]
    rc = 0
    for flavour in flavours:
        stem = _stem(args, inputs.InputSpec(flavour, w, h, fps, seconds))
        path = args.results_dir / f"{stem}.json"
        if not path.exists():
            print(f"no {path}", file=sys.stderr)
            rc = 1
            continue
        data = json.loads(path.read_text())
        results = {k: [runs.from_dict(d) for d in v] for k, v in data["runs"].items()}
        for ms in results.values():
            for m in ms:
                if "events" in m.extra:
                    m.extra["analysis"] = analyse_segenc(m, {"timings": m.extra.get("timings", {}),
                                                             "runner": m.extra.get("runner", {}),
                                                             "events": m.extra["events"]})
        inp = dict(data["input"])
        spec = inputs.InputSpec(**inp.pop("spec"))
        src = Path(inp.pop("path"))
        stored = argparse.Namespace(**{**vars(args), **data["args"]})
        rungs = tuple(next(iter(ms)).extra["outputs"] for ms in results.values() if ms)[0]
        rungs = tuple(r for r in baseline.RUNGS if r in rungs)
        s = _summary(results, rungs, inp)
        problems = _check(s, rungs, inp, results)
        md = _markdown(s, results, rungs, data["machine"], spec, src, inp, stored, problems)
        data.update(summary=s, problems=problems)
        md_path, _ = report.write_results(stem, md, data, args.results_dir)
        _print_report(s, rungs, results)
        print(f"rewrote {md_path} from {path.name}")
    return rc


def _score(results: dict[str, list[runs.Measurement]], src: Path, src_info: dict[str, Any], names: Sequence[str],
           args: argparse.Namespace, scaler: str) -> None:
    """PSNR-Y/SSIM-Y of the kept (last-round) outputs of ``names``; stored in that Measurement's extra."""
    every = args.quality_every or scores.default_every(src_info["frames"])
    jobs: dict[str, Path] = {}
    owner: dict[str, runs.Measurement] = {}
    for v in names:
        m = next((m for m in reversed(results.get(v, [])) if m.extra.get("kept")), None)
        if m is None:
            continue
        for r, d in m.extra["outputs"].items():
            if Path(d["path"]).exists():
                jobs[f"{v}\t{r}"] = Path(d["path"])
                owner[f"{v}\t{r}"] = m
    if not jobs:
        return
    print(f"  scoring PSNR-Y/SSIM-Y of {len(jobs)} outputs ({', '.join(n for n in names if n in results)}; "
          f"every {every}{'st' if every == 1 else 'th'} frame) ...", flush=True)
    t0 = time.perf_counter()
    try:
        got = scores.score_outputs(src, jobs, scaler=scaler, every=every)
    except Exception as e:  # a broken output must not cost the timed runs
        print(f"WARNING: quality scoring failed: {type(e).__name__}: {e}", file=sys.stderr)
        return
    for key, q in got.items():
        v, r = key.split("\t")
        owner[key].extra.setdefault("quality", {})[r] = {**q, "every": every}
    print(f"  scored in {time.perf_counter() - t0:.0f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.rerender:
        return rerender(args)
    seconds, (w, h), fps = _resolve_input(args)
    ladder = baseline.parse_ladder(args.ladder)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not names or set(names) - set(VARIANTS):
        raise SystemExit(f"--variants must name some of {','.join(VARIANTS)}, got {args.variants!r}")
    names = [v for v in VARIANTS if v in names]   # the documented alternation order
    if args.quality_variants:
        scored = [v.strip() for v in args.quality_variants.split(",") if v.strip()]
    else:
        scored = list(VARIANTS) if args.quick else list(QUALITY_DEFAULT)
    scored = [] if args.no_quality else [v for v in names if v in scored]
    flavours = ["clean", "grain"] if args.flavour == "both" else [args.flavour]
    exe = inputs.ffmpeg_exe()
    enc = _settings_defaults()
    seg_settings: dict[str, Any] | None = None
    if args.preset or args.crf is not None or args.codec:
        chosen = (("preset", args.preset), ("crf", args.crf), ("codec", args.codec))
        enc.update({k: v for k, v in chosen if v is not None})
        seg_settings = {k: v for k, v in chosen if v is not None}
    mach = machine.machine_info(exe)
    print(f"machine: {machine.machine_line(mach)}")
    if mach["cores"] != 2:
        print(f"note: {mach['cores']} cores here; the targets are stated for 2 cores")

    rc = 0
    for flavour in flavours:
        spec = inputs.InputSpec(flavour, w, h, fps, seconds)
        src = inputs.ensure_input(spec, args.cache_dir, exe=exe, force=args.regenerate)
        src_info = media.describe(src)
        short = min(src_info["width"], src_info["height"])
        rungs = tuple(r for r in ladder if baseline.RUNGS[r] <= short)
        if rungs != ladder:
            print(f"note: dropping {', '.join(r for r in ladder if r not in rungs)} for a {short}p source "
                  f"(segenc does not upscale; the baseline is given the same rungs)")
        if not rungs:
            raise SystemExit(f"no rung of {','.join(ladder)} fits a {short}p source")
        work = args.cache_dir / "work" / f"ladder-{spec.label}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"\n== ladder / {flavour}: {src.name} ({report.mb(src_info['bytes'])}, {src_info['frames']} frames, "
              f"{src_info['video_bitrate'] / 1e6:.1f} Mb/s) ladder {','.join(rungs)}, "
              f"{args.repeat} runs each, alternating {' '.join(names)}")
        fns: dict[str, variants.Variant] = {}
        for v in names:
            keep: variants.Keep = True if args.keep_outputs else ({args.repeat - 1} if v in scored else False)
            if v in (BASELINE, BASELINE_1T):
                fns[v] = variants.ffmpeg(exe, src, work, rungs, enc, args.timeout, name=v, keep=keep,
                                         threads=1 if v == BASELINE_1T else None)
            elif v == LOCAL:
                fns[v] = variants.segenc_local(src, work, rungs, timeout=args.timeout, workers=args.workers,
                                               chunk_seconds=args.chunk_seconds, settings=seg_settings, name=v,
                                               keep=keep, analyse=analyse_segenc)
            else:
                fns[v] = variants.segenc_celery(src, work, rungs, timeout=args.timeout, processes=CELERY[v],
                                                chunk_seconds=args.chunk_seconds, settings=seg_settings, name=v,
                                                keep=keep, analyse=analyse_segenc)

        def on_result(rnd: int, m: runs.Measurement) -> None:
            tag = "warmup" if rnd < 0 else f"run {rnd + 1}/{args.repeat}"
            waited = m.extra.get("settle_seconds") or 0
            proc = m.extra.get("process")
            print(f"  {tag:>10} {m.variant:<9} wall {m.wall:7.2f} s  CPU {m.cpu:7.2f} s  "
                  f"cores used {m.utilization * 100:3.0f}%"
                  + (f"  (subprocess with cluster start-up: {proc['wall']:.1f} s)" if proc else "")
                  + (f"  (other load {m.foreign_cpu:.1f} core-s)" if m.foreign_cpu > 0.05 * m.cpu else "")
                  + (f"  (waited {waited:.0f} s for a quiet machine)" if waited > 2 else ""), flush=True)

        def on_retry(rnd: int, m: runs.Measurement) -> None:
            print(f"  {'':>10} {m.variant:<9} wall {m.wall:7.2f} s  other load {m.foreign_cpu:.1f} core-s: noisy, "
                  "redoing", flush=True)
            shutil.rmtree(work / f"{m.variant}-r{rnd}", ignore_errors=True)

        settle = (lambda: runs.wait_for_quiet(timeout=args.quiet_wait)) if args.quiet_wait > 0 else None
        try:
            results = runs.alternate(fns, args.repeat, warmup=args.warmup, on_result=on_result, settle=settle,
                                     accept=lambda m: m.foreign_cpu <= NOISE_LIMIT * m.cpu,
                                     retries=args.noise_retries, on_retry=on_retry)
        except runs.CommandFailed as e:
            print(f"FAILED: {e}", file=sys.stderr)
            rc = 1
            continue
        if scored:
            _score(results, src, src_info, scored, args, enc["scaler"])
        if not args.keep_outputs:
            for ms in results.values():
                for m in ms:
                    if m.extra.get("out_dir"):
                        shutil.rmtree(m.extra["out_dir"], ignore_errors=True)
        s = _summary(results, rungs, src_info)
        print()
        _print_report(s, rungs, results)
        problems = _check(s, rungs, src_info, results)
        for p in problems:
            print(f"WARNING: {p}")

        if not args.no_save:
            stem = _stem(args, spec)
            md = _markdown(s, results, rungs, mach, spec, src, src_info, args, problems)
            data = {"figure": "ladder", "machine": mach, "input": {"spec": spec.__dict__, "path": str(src), **src_info},
                    "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
                    "summary": s, "runs": {k: [m.to_dict() for m in ms] for k, ms in results.items()},
                    "problems": problems}
            md_path, json_path = report.write_results(stem, md, data, args.results_dir)
            print(f"wrote {md_path} and {json_path.name}")
        if not args.keep_outputs:
            shutil.rmtree(work, ignore_errors=True)
    return rc


def _check(s: dict[str, Any], ladder: Sequence[str], src_info: dict[str, Any],
           results: dict[str, list[runs.Measurement]]) -> list[str]:
    """Sanity checks that make a comparison meaningless if they fail."""
    problems = []
    variants = [v for v in results if v in s]
    for v in variants:
        for r, c in s[v].get("integrity", {}).items():
            if c["level"] >= 2:
                problems.append(f"{v} {r}: integrity: {'; '.join(c['reasons'])}")
    f = s.get(BASELINE, {}).get("renditions", {})
    cores_seen: set[str] = set()
    for v in variants:
        if v == BASELINE:
            continue
        for r in ladder:
            a, b = f.get(r), s[v].get("renditions", {}).get(r)
            if a and b and (a["width"], a["height"]) != (b["width"], b["height"]):
                problems.append(f"{r}: ffmpeg {a['width']}x{a['height']} vs {v} {b['width']}x{b['height']}")
            if a and b and a["x264_core"] != b["x264_core"] and r not in cores_seen:
                cores_seen.add(r)
                problems.append(f"{r}: x264 core {a['x264_core']} (ffmpeg CLI) vs {b['x264_core']} (PyAV)")
    for r, d in s.get(BASELINE_1T, {}).get("renditions", {}).items():
        if d.get("x264_threads") not in (None, "1"):
            problems.append(f"ffmpeg-1t {r}: x264 ran with threads={d['x264_threads']}, not 1")
    seg = [m for v in variants if is_segenc(results[v]) for m in results[v]]
    hashes = {m.extra.get("runner", {}).get("segenc_source_sha1") for m in seg}
    if len(hashes) > 1:
        problems.append(f"segenc's source changed between runs ({', '.join(sorted(map(str, hashes)))}): "
                        "the runs measured different code")
    for v in variants:
        if s[v]["foreign_cpu"] > NOISE_LIMIT * s[v]["cpu"]:
            problems.append(f"{v}: other processes used {s[v]['foreign_cpu']:.1f} core-s during a median run "
                            f"({s[v]['foreign_cpu'] / s[v]['cpu'] * 100:.0f}% of its own CPU): timings are noisy")
    return problems


def _markdown(s, results, ladder, mach, spec, src, src_info, args, problems) -> str:
    lines = [f"# ladder / {spec.flavour}: segenc vs one ffmpeg process", ""]
    lines.append(f"- **machine**: {mach['cores']} cores, {mach['cpu_model']} ({', '.join(mach['simd'])}), "
                 f"{mach['memory_gb']} GB RAM, Linux {mach['kernel']}")
    lines.append(f"- **software**: Python {mach['python']}, PyAV {mach['pyav']} (FFmpeg {mach['pyav_ffmpeg']}), "
                 f"ffmpeg CLI {mach['ffmpeg_cli']} (imageio-ffmpeg), segenc {mach['git']}")
    load = mach["loadavg_at_start"]
    load = ", ".join(f"{x:.2f}" for x in load) if load else "-"
    lines.append(f"- **date**: {mach['date']}; load average at start {load}")
    lines.append(f"- **input**: {spec.label} ({src_info['frames']} frames, {report.mb(src_info['bytes'])}, "
                 f"{src_info['video_bitrate'] / 1e6:.1f} Mb/s H.264 High, GOP {spec.gop}, {spec.bframes} B-frames, AAC)")
    lines.append(f"- **ladder**: {', '.join(ladder)}; {args.repeat} runs per variant alternating "
                 f"{' / '.join(results)} ({args.warmup} warm-up rounds); medians below")
    lines.append(f"- **command**: `{' '.join(['python -m benchmarks ladder'] + _argv_repr(args))}`")
    lines.append("")
    b = _tables(s, ladder, md=True)
    lines += ["## Figures", "", b["figures"], "",
              "Walls are quiet-run medians when both sides of a ratio have quiet runs (see the time table), "
              "else medians of all runs. The celery variants time the encode call on an already running "
              "Redis + workers. segenc's audio task runs in parallel with the video chunks, so the issue's serial "
              "share counts it although it holds no core back; the critical-path share is what the pool waits "
              "for, as segenc times it, and the pool idle share what the progress events show.", ""]
    lines += ["## Time", "", b["time"], ""]
    if "ratios" in b:
        lines += [b["ratios"], ""]
    lines += ["## Output size", "", b["size"], ""]
    if "quality" in b:
        lines += ["## Quality (PSNR-Y / SSIM-Y against the source scaled with the same scaler; one run per variant)",
                  "", b["quality"], ""]
    if "integrity" in b:
        lines += ["## Integrity (every run's outputs vs the source; worst run shown)", "", b["integrity"], "",
                  "exact: same frame count, DTS strictly increasing, video duration and A/V offset (first audio pts "
                  "- first video pts) equal to the source's within 0.5 ms; OK: within half a frame.", ""]
    if "stages" in b:
        lines += ["## segenc stages (median of its `res.timings`)", "", b["stages"], "", b["serial"], ""]
    lines += ["## Busy cores over each run", "",
              "Machine-wide, sampled from /proc/stat every 0.25 s; a full bar is all cores busy (celery variants: "
              "the encode call only).", "", "```"]
    lines += _profiles(results) + ["```", ""]
    if problems:
        lines += ["## Warnings", ""] + [f"- {p}" for p in problems] + [""]
    lines += ["## Commands", ""]
    for name, ms in results.items():
        if ms:
            cmd = " ".join(_q(c) for c in ms[0].extra["command"])
            cmd = cmd.replace(inputs.ffmpeg_exe(), "ffmpeg").replace(sys.executable, "python").replace(f"{REPO}/", "")
            lines += [f"{name}:", "", "```", cmd, "```", ""]
    lines += ["Per-run numbers, stage timelines and x264 option strings are in the JSON file next to this one."]
    return "\n".join(lines)


def _q(c: str) -> str:
    return f'"{c}"' if any(ch in c for ch in " ;[]{}") else c


def _argv_repr(args: argparse.Namespace) -> list[str]:
    out = [f"--flavour {args.flavour}"] if args.flavour != "both" else []
    if args.quick:
        out.append("--quick")
    for k in ("seconds", "size", "fps", "workers", "chunk_seconds", "preset", "crf", "codec"):
        v = getattr(args, k, None)
        if v is not None:
            out.append(f"--{k.replace('_', '-')} {v}")
    if args.repeat != 3:
        out.append(f"--repeat {args.repeat}")
    if args.warmup:
        out.append(f"--warmup {args.warmup}")
    if args.ladder != ",".join(baseline.DEFAULT_LADDER):
        out.append(f"--ladder {args.ladder}")
    if getattr(args, "variants", ",".join(VARIANTS)) != ",".join(VARIANTS):
        out.append(f"--variants {args.variants}")
    if getattr(args, "no_quality", False):
        out.append("--no-quality")
    for k in ("quality_every", "quality_variants"):
        if getattr(args, k, None) is not None:
            out.append(f"--{k.replace('_', '-')} {getattr(args, k)}")
    return out


register("ladder", help="segenc (local and Celery runners) vs one ffmpeg process encoding the same ladder",
         description=__doc__, add_arguments=add_arguments, run=run)
