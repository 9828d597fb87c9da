"""Projection for many machines: modelled wall time of a long job on 1 ... N workers.

Runs nothing heavy. A model is calibrated from stored ``ladder`` results (segenc's per-task
times from its ``chunk_started``/``chunk_done`` events, its stage timings) and the ``cluster``
figure (dispatch latency, chord completion delay), then a synthetic source (10 minutes, same
frame size / fps / GOP as the calibrating input) is planned with ``segenc.plan.plan`` and
the tasks it stores for W workers (``Plan.groups()``), each task's time predicted from the fit, and the chord simulated:

    wall = probe + split                             (serial, before; per source second; no split
                                                      when the tasks read the source, see below)
         + plan                                      (the planner itself, timed for W workers)
         + first dispatch + list scheduling of the tasks, longest first, on W workers,
           with a dispatch gap before every further task on a worker
         + chord completion delay
         + concat                                    (per output second; per rendition in
                                                      series as the finish step does, or in
                                                      parallel, ``--concat``)

Task time = a + b x cost, least squares over the measured tasks, where ``cost`` is the
planner's own estimate (``ChunkSpec.cost`` summed by ``segenc.model.task_cost``: output
pixel-frames + a share of the decoded source pixel-frames) and ``a`` is the fixed per-task overhead (decoder/encoder start-up, lookahead warm-up). Audio tasks
(runs of audio parts) are modelled separately: seconds per second of audio, plus one lead-in each.

With a real source of the modelled length (``--long-source``, the default), the job is
modelled as the service runs it: the upload lies on the storage, so nothing is split and every
task opens the source and reads its own segment (timed on that file, added to each task);
``--central-split`` models the split before the chord instead.

Assumptions: shared storage, identical single-core workers (one single-threaded encoder process
per core), no network transfer cost. See the README section for how to read the output.
"""

from __future__ import annotations

import argparse
import glob
import heapq
import json
import math
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from segenc.plan import AUDIO_LEAD_SECONDS

COPIED_AUDIO_RATE = 0.005  # s per s of audio: below it an audio task copied, not encoded

from .registry import register
from .report import RESULTS_DIR, fmt, md_table, text_table, write_results

REPO = Path(__file__).resolve().parent.parent
# The calibrating run, made with the current code: python -m benchmarks ladder --flavour clean
# --variants segenc --repeat 3 --no-quality --tag calibration
DEFAULT_FROM = RESULTS_DIR / "ladder-clean-calibration.json"
DEFAULT_CLUSTER = RESULTS_DIR / "cluster.json"
DEFAULT_REHEARSAL = RESULTS_DIR / "rehearsal.json"
# Used when cluster.json is missing: the medians the cluster figure measured (2026-11-24, 2 cores,
# real redis-server + Celery worker nodes). Seconds.
DEFAULT_FIRST_START = 0.064  # enqueue -> first chunk start on an idle worker
DEFAULT_GAP = 0.0051         # a worker's chunk done -> its next chunk start
DEFAULT_CHORD = 0.0126       # last chunk done -> chord body (concat) start
# segenc's default segment length when the stored ladder results were recorded (runs whose
# args.chunk_seconds is None); checked against the recorded segment count.
HISTORIC_CHUNK_SECONDS = 10.0
# Measured by the transfer figure (workers without shared storage): bytes over HTTP per encoded
# second of video, 20 s 1280x720, ladder 480p+720p. Not modelled; quoted in the report.
TRANSFER_MB_PER_SECOND = 0.49


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="sources", action="append", metavar="PATH",
                   help="ladder result JSON to calibrate from (repeatable; the first is the calibrating run "
                        "for the serial stages and the validation; default results/ladder-clean-calibration.json)")
    p.add_argument("--companions", choices=("auto", "none"), default="auto",
                   help="auto (default): also fit the task times on the other ladder results next to the first "
                        "--from file with the same input (flavour, size, fps, GOP), CPU and kernel; several segment "
                        "lengths make the fixed per-task overhead identifiable")
    p.add_argument("--cluster", default=str(DEFAULT_CLUSTER),
                   help="cluster figure JSON for dispatch latency / chord delay (default results/cluster.json)")
    p.add_argument("--rehearsal", default=str(DEFAULT_REHEARSAL),
                   help="rehearsal figure JSON: when it exists, dispatch latency, gap and chord delay come from "
                        "its largest slot count (measured at scale) instead of --cluster; 'none' to skip")
    p.add_argument("--minutes", type=float, default=10.0, help="modelled source length (default 10)")
    p.add_argument("--size", default=None, help="modelled frame size WxH (default: the calibrating input's)")
    p.add_argument("--fps", type=float, default=None, help="modelled frame rate (default: the calibrating input's)")
    p.add_argument("--gop", type=int, default=None, help="modelled keyframe interval in frames (default: the input's)")
    p.add_argument("--ladder", default=None, help="modelled ladder (default: the calibrating run's)")
    p.add_argument("--workers", default="1,4,16,64,256", help="worker counts (default 1,4,16,64,256)")
    p.add_argument("--chunks", default="auto,10,4,2",
                   help="segment lengths in seconds, 'auto' = the planner's choice (default auto,10,4,2)")
    p.add_argument("--granularity", default=None, help="segment|rendition (default: Settings' default)")
    p.add_argument("--concat", choices=("serial", "parallel"), default="serial",
                   help="concat the renditions one after another, as segenc's finish step does (default), or "
                        "in parallel: what a finish that spread them over workers would give (not built)")
    p.add_argument("--long-source", default="auto", metavar="auto|none|PATH",
                   help="a real source of the modelled length on which the probe and the split are timed for "
                        "every plan (auto, the default: the calibrating input's kind at --minutes from the "
                        "benchmark input cache, generated once if missing, ~4 min for 10 min of 1080p; none: "
                        "extrapolate both per source second from the calibrating run; ignored with --size, "
                        "--fps or --gop)")
    p.add_argument("--central-split", action="store_true",
                   help="model the source split into segment files before the chord (what a source that "
                        "cannot be seeked by its index gets), not read by each task straight from the source")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where to write the result files")
    p.add_argument("--tag", default="projection", help="result file stem (default projection)")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG even if matplotlib is installed")


# --------------------------------------------------------------------------------------------
# Reading stored results


def _load(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def _median(xs) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else float("nan")


def run_tasks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's tasks from its events: a task is a worker's contiguous stretch of open chunks."""
    evs = sorted((e for e in events if e.get("kind") in ("chunk_started", "chunk_done")), key=lambda e: e["t"])
    open_: dict[str, dict[str, Any]] = {}
    tasks = []
    for e in evs:
        w = e.get("worker", "?")
        o = open_.setdefault(w, {"open": set(), "ids": [], "t0": None, "frames": {}})
        if e["kind"] == "chunk_started":
            if not o["open"]:
                o["t0"], o["ids"], o["frames"] = e["t"], [], {}
            o["open"].add(e["chunk_id"])
            o["ids"].append(e["chunk_id"])
        elif e["chunk_id"] in o["open"]:
            o["open"].discard(e["chunk_id"])
            o["frames"][e["chunk_id"]] = e.get("frames")
            if not o["open"]:
                tasks.append({"worker": w, "t0": o["t0"], "t1": e["t"], "seconds": e["t"] - o["t0"],
                              "chunks": list(o["ids"]), "frames": dict(o["frames"])})
    return tasks


def _stage_t(events: list[dict[str, Any]], stage: str) -> float | None:
    for e in events:
        if e.get("kind") == "stage" and e.get("stage") == stage:
            return e["t"]
    return None


def local_overheads(run: dict[str, Any]) -> dict[str, float]:
    """The local pool's dispatch overheads in one run: pool start-up, gap between tasks, tail."""
    ev = run["extra"].get("events", [])
    tasks = run_tasks(ev)
    out = {"first_start": float("nan"), "gap": float("nan"), "chord": float("nan")}
    if not tasks:
        return out
    enc, cat = _stage_t(ev, "encoding"), _stage_t(ev, "concatenating")
    if enc is not None:
        out["first_start"] = min(t["t0"] for t in tasks) - enc
    if cat is not None:
        out["chord"] = cat - max(t["t1"] for t in tasks)
    gaps = []
    by_worker: dict[str, list] = {}
    for t in tasks:
        by_worker.setdefault(t["worker"], []).append(t)
    for ts in by_worker.values():
        ts.sort(key=lambda t: t["t0"])
        gaps += [b["t0"] - a["t1"] for a, b in zip(ts, ts[1:])]
    out["gap"] = _median(gaps)
    return out


def _same_input(a: dict[str, Any], b: dict[str, Any]) -> bool:
    sa, sb = a.get("input", {}).get("spec", {}), b.get("input", {}).get("spec", {})
    keys = ("flavour", "width", "height", "fps", "gop", "bframes", "crf", "preset")
    if any(sa.get(k) != sb.get(k) for k in keys):
        return False
    ma, mb_ = a.get("machine", {}), b.get("machine", {})
    # The same CPU: model and cores, and its vector extensions (machines here share one model name
    # with and without AVX-512, and x264 is about 25% slower without it).
    if (ma.get("cpu_model"), ma.get("cores"), ma.get("simd")) != (mb_.get("cpu_model"), mb_.get("cores"), mb_.get("simd")):
        return False
    # And the same machine build (its kernel): the same CPU model and extensions under another
    # build ran the same ffmpeg CLI ladder 34% slower (39.4 s on 2026-11-24, 52.9 s on 2026-12-03).
    if ma.get("kernel") and mb_.get("kernel") and ma["kernel"] != mb_["kernel"]:
        return False
    aa, ab = a.get("args", {}), b.get("args", {})
    # The same encoder too: the fit is x264's (the codec figures' HEVC and AV1 runs cost otherwise).
    return all(aa.get(k) == ab.get(k) for k in ("preset", "crf", "granularity")) and \
        (aa.get("codec") or "h264") == (ab.get("codec") or "h264")


def find_companions(primary: Path, data: dict[str, Any]) -> list[Path]:
    out = []
    for f in sorted(glob.glob(str(primary.parent / "ladder-*.json"))):
        p = Path(f)
        if p.resolve() == primary.resolve():
            continue
        try:
            d = _load(p)
        except (OSError, ValueError):
            continue
        if d.get("figure") == "ladder" and d.get("runs", {}).get("segenc") and _same_input(data, d):
            out.append(p)
    return out


# --------------------------------------------------------------------------------------------
# Media info and planning


def synthetic_info(seconds: float, width: int, height: int, fps: float, gop: int, *,
                   bytes_per_second: float = 0.0, has_audio: bool = True):
    """A constant-frame-rate H.264 + AAC source with a keyframe every ``gop`` frames."""
    from segenc.model import MediaInfo

    fr = Fraction(fps).limit_denominator(1001)
    frames = max(1, round(seconds * fps))
    duration = float(frames / fr)
    return MediaInfo(
        path="synthetic.mp4", container="mov,mp4,m4a,3gp,3g2,mj2", codec="h264", pix_fmt="yuv420p",
        bit_depth=8, width=width, height=height, display_width=width, display_height=height, rotation=0,
        sar="1:1", time_base=f"1/{fr.numerator}", fps=float(fr), frame_rate=f"{fr.numerator}/{fr.denominator}",
        vfr=False, frames=frames, duration=duration, start_time=0.0, start_pts=0,
        keyframes=tuple(range(0, frames, max(1, gop))), frame_pts=tuple(i * fr.denominator for i in range(frames)),
        streams=2 if has_audio else 1, has_audio=has_audio, audio_codec="aac" if has_audio else None,
        audio_sample_rate=48000 if has_audio else None, audio_channels=2 if has_audio else None,
        audio_duration=duration if has_audio else None, size=int(bytes_per_second * duration),
    )


_PROBED: dict[str, Any] = {}


def input_info(data: dict[str, Any]) -> tuple[Any, str]:
    """The calibrating input's MediaInfo: probed if the file is still there, else synthetic."""
    inp = data.get("input", {})
    path = inp.get("path")
    if path:
        p = Path(path)
        if not p.is_absolute():
            p = REPO / p
        if p.exists():
            key = str(p)
            if key not in _PROBED:
                from segenc.probe import probe
                _PROBED[key] = probe(p)
            return _PROBED[key], "probed"
    spec = inp.get("spec", {})
    seconds = inp.get("duration") or spec.get("seconds", 60.0)
    fps = spec.get("fps", 30)
    return synthetic_info(seconds, spec.get("width", 1920), spec.get("height", 1080), fps, spec.get("gop", 60),
                          bytes_per_second=(inp.get("bytes") or 0) / seconds), "synthetic"


def make_settings(chunk: str | float | None, base: dict[str, Any]):
    """Settings for a segment length; ``"auto"``: the planner's automatic length (``chunk_seconds=None``)."""
    from segenc.settings import Settings

    s = Settings(**{k: v for k, v in base.items() if v is not None})
    return s.with_(chunk_seconds=None if chunk == "auto" else float(chunk))


def make_plan(info, ladder, settings, workers: int | None, source: str | None = None):
    """The planner's plan for ``workers`` encoder processes; its tasks come with it (``Plan.groups()``).
    ``source``: where the upload lies under the storage root (the tasks may then read it directly)."""
    from segenc.plan import plan

    return plan(info, tuple(ladder), settings, job_id="projection", workdir="projection", workers=workers,
                source=source)


# --------------------------------------------------------------------------------------------
# Calibration


def _run_settings_base(data: dict[str, Any]) -> dict[str, Any]:
    a = data.get("args", {})
    return {"preset": a.get("preset"), "crf": a.get("crf"), "granularity": a.get("granularity")}


def replan_calibration(data: dict[str, Any], run: dict[str, Any]):
    """Re-plan a stored run's input with the segment length it used (checked by segment count)."""
    info, how = input_info(data)
    ladder = (data.get("args", {}).get("ladder") or "480p,720p,1080p").split(",")
    segments = run["extra"].get("segments")
    cands = [data.get("args", {}).get("chunk_seconds"), HISTORIC_CHUNK_SECONDS]
    if segments:
        cands.append(info.duration / segments)
    tried = []
    for c in cands:
        if not c:
            continue
        p = make_plan(info, ladder, make_settings(c, _run_settings_base(data)), None)
        tried.append((c, p))
        if not segments or len(p.segments) == segments:
            return p, c, how, True
    c, p = tried[0]
    return p, c, how, False


def _task_label(chunks: list, seconds: float) -> str:
    if len(chunks) == 1 and chunks[0].kind == "audio":
        return "audio"
    rungs = chunks[0].rendition.name if len(chunks) == 1 else f"{len(chunks)} rungs"
    return f"{rungs}, {seconds:.0f} s"


def collect_tasks(paths: list[Path], problems: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measured video and audio tasks of every segenc run in ``paths``, with their planned cost."""
    from segenc.model import task_cost

    video, audio = [], []
    for path in paths:
        data = _load(path)
        for i, run in enumerate(data.get("runs", {}).get("segenc", [])):
            tasks = run_tasks(run["extra"].get("events", []))
            if not tasks:
                continue
            p, chunk_s, how, ok = replan_calibration(data, run)
            if not ok:
                problems.append(f"{path.name} run {i}: re-planning gave {len(p.segments)} segments, the run had "
                                f"{run['extra'].get('segments')}; costs may not match")
            specs = {c.chunk_id: c for c in p.specs()}
            for t in tasks:
                if t["chunks"] == ["audio"] and p.audio_parts:  # recorded before the audio went in parts
                    seconds = sum(c.duration for c in p.audio_parts)
                    audio.append({"file": path.name, "run": i, "chunks": t["chunks"], "seconds": t["seconds"],
                                  "cost": 0.0, "duration": seconds, "label": "audio (whole track)"})
                    continue
                chunks = [specs.get(cid) for cid in t["chunks"]]
                if any(c is None for c in chunks):
                    problems.append(f"{path.name} run {i}: chunk(s) {t['chunks']} not in the re-plan; task skipped")
                    continue
                for c in chunks:
                    got = t["frames"].get(c.chunk_id)
                    if c.kind == "video" and got is not None and got != c.frames:
                        problems.append(f"{path.name} run {i}: {c.chunk_id} encoded {got} frames, planned {c.frames}")
                # an audio task is a run of parts: its audio is all of theirs, plus one lead-in (as modelled)
                audio_s = sum(c.duration for c in chunks) + AUDIO_LEAD_SECONDS if chunks[0].kind == "audio" else 0.0
                row = {"file": path.name, "run": i, "chunks": t["chunks"], "seconds": t["seconds"],
                       "cost": task_cost(chunks), "duration": audio_s or chunks[0].duration,
                       "label": _task_label(chunks, chunks[0].duration)}
                (audio if chunks[0].kind == "audio" else video).append(row)
    return video, audio


def fit_tasks(video: list[dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    import numpy as np

    x = np.array([t["cost"] for t in video], dtype=float)
    y = np.array([t["seconds"] for t in video], dtype=float)
    if len(set(np.round(x / x.max(), 6))) >= 2:
        A = np.vstack([np.ones_like(x), x]).T
        (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
        degenerate = False
    else:
        problems.append("every calibrating task has the same cost: the per-task overhead a is not identifiable, "
                        "fitted through the origin (a = 0); add runs with other segment lengths (--from)")
        a, b = 0.0, float((x @ y) / (x @ x))
        degenerate = True
    pred = a + b * x
    res = y - pred
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((res ** 2).sum()) / ss_tot if ss_tot > 0 and not degenerate else float("nan")
    for t, p_ in zip(video, pred):
        t["predicted"] = float(p_)
    groups: dict[str, list] = {}
    for t in video:
        groups.setdefault(t["label"], []).append(t)
    by_kind = []
    for label, ts in sorted(groups.items(), key=lambda kv: -_median(t["cost"] for t in kv[1])):
        m = _median(t["seconds"] for t in ts)
        pr = _median(t["predicted"] for t in ts)
        by_kind.append({"kind": label, "n": len(ts), "cost": _median(t["cost"] for t in ts), "measured": m,
                        "predicted": pr, "residual": m - pr, "residual_pct": 100 * (m - pr) / pr,
                        "spread": max(t["seconds"] for t in ts) - min(t["seconds"] for t in ts)})
    return {"a": float(a), "b": float(b), "n": len(video), "r2": r2, "degenerate": degenerate,
            "rms": float(math.sqrt((res ** 2).mean())), "max_abs": float(abs(res).max()),
            "max_abs_pct": float((abs(res) / pred).max() * 100), "by_kind": by_kind}


def calibrate(args: argparse.Namespace, problems: list[str]) -> dict[str, Any]:
    sources = [Path(p) for p in (args.sources or [str(DEFAULT_FROM)])]
    primary = sources[0]
    data = _load(primary)
    runs = data.get("runs", {}).get("segenc", [])
    if not runs:
        raise SystemExit(f"{primary}: no segenc runs to calibrate from")
    fit_files = list(sources)
    if args.companions == "auto":
        fit_files += [p for p in find_companions(primary, data) if p not in fit_files]
    video, audio = collect_tasks(fit_files, problems)
    if not video:
        raise SystemExit("no measured video tasks (chunk_started/chunk_done events) in " + ", ".join(map(str, fit_files)))
    fit = fit_tasks(video, problems)

    info, how = input_info(data)
    dur = info.duration
    stage = {k: _median(r["extra"].get("timings", {}).get(k) for r in runs) for k in ("probe", "plan", "split", "concat")}
    # The finish step of a distributed job stitches every rendition itself; the local runner
    # stitches them in its pool beside the last encodes (``stitch``) and its finish only packages.
    # Runs recorded before ``stitch`` existed count their finish step alone.
    stitch = _median(r["extra"].get("timings", {}).get("stitch") for r in runs)
    stage["concat"] += 0.0 if math.isnan(stitch) else stitch
    serial_rates = {k: v / dur for k, v in stage.items()}  # seconds per source second
    # Runs of parts that copied the source's AAC (0.5 ms per second of audio) are not encodes
    # (37-55 ms): two orders of magnitude apart, so a rate under COPIED_AUDIO_RATE tells them.
    copied = [t for t in audio if t["seconds"] / t["duration"] < COPIED_AUDIO_RATE]
    audio = [t for t in audio if t not in copied]
    audio_rate = _median(t["seconds"] / t["duration"] for t in audio) if audio else 0.0
    # Concat per rendition: the measured (serial) concat split in proportion to the output bytes.
    rend = data.get("summary", {}).get("segenc", {}).get("renditions", {}) or {}
    total_bytes = sum(r.get("bytes", 0) for r in rend.values())
    concat_share = {k: r["bytes"] / total_bytes for k, r in rend.items()} if total_bytes else {}
    concat_px = {k: (r.get("width", 0) * r.get("height", 0)) for k, r in rend.items()}
    loc = [local_overheads(r) for r in runs]
    local = {k: _median(o[k] for o in loc) for k in ("first_start", "gap", "chord")}
    outside = _median(r["extra"].get("analysis", {}).get("outside_encode_call") or
                      (r["wall"] - r["extra"].get("timings", {}).get("total", r["wall"])) for r in runs)

    cluster_path = Path(args.cluster)
    if cluster_path.exists():
        c = _load(cluster_path)
        dispatch = {"first_start": _median(c.get("first_start_ms", [])) / 1e3, "gap": _median(c.get("gap_ms", [])) / 1e3,
                    "chord": _median(c.get("chord_delay_ms", [])) / 1e3, "from": str(cluster_path.name)}
        for k, d in (("first_start", DEFAULT_FIRST_START), ("gap", DEFAULT_GAP), ("chord", DEFAULT_CHORD)):
            if math.isnan(dispatch[k]):
                dispatch[k] = d
    else:
        dispatch = {"first_start": DEFAULT_FIRST_START, "gap": DEFAULT_GAP, "chord": DEFAULT_CHORD,
                    "from": "defaults (cluster.json missing)"}
    rehearsal = Path(getattr(args, "rehearsal", "none") or "none")
    if str(rehearsal) != "none" and rehearsal.exists():
        rows = [r for r in _load(rehearsal).get("rows", []) if r.get("time_scale", 1) == 1]
        if rows:
            top = max(rows, key=lambda r: (r["slots"], not r.get("audio", True)))  # video only: not hidden by audio
            # What is central in a real cluster comes from the rehearsal: the first dispatch, the
            # chord's publishing of its header (one message after another from one process) and
            # the chord delay. A slot's gap between two tasks is its own node's business: the
            # rehearsal packs 64 slots per node on two cores, so that gap stays cluster.json's.
            # The header's publishing: as timed with nothing else running where the rehearsal has it
            # (in the rehearsal itself the publisher shares two cores with every worker slot).
            idle = top.get("publish_idle_ms")
            measured = {"first_start": top["dispatch_first_ms"]["min"] / 1e3, "chord": top["chord_ms"] / 1e3,
                        "publish": (idle / top["publish_idle_tasks"] if idle else top["publish_ms"] / top["tasks"]) / 1e3,
                        "publish_contended": top["publish_ms"] / 1e3 / top["tasks"]}
            if not any(math.isnan(v) for v in measured.values()):
                dispatch = {**dispatch, **measured,
                            "from": f"{rehearsal.name} ({top['slots']} slots; gap from {dispatch['from']})"}
    spec = data.get("input", {}).get("spec", {})
    return {
        "primary": str(primary), "fit_files": [p.name for p in fit_files], "info_from": how, "input_spec": spec,
        "input": {"width": info.width, "height": info.height, "fps": info.fps, "duration": dur,
                  "gop": spec.get("gop") or (info.keyframes[1] - info.keyframes[0] if len(info.keyframes) > 1 else 0),
                  "bytes_per_second": (info.size or data.get("input", {}).get("bytes", 0)) / dur,
                  "flavour": spec.get("flavour")},
        "ladder": (data.get("args", {}).get("ladder") or "480p,720p,1080p").split(","),
        "settings": _run_settings_base(data),
        "fit": fit, "audio_rate": audio_rate, "audio_tasks": len(audio),
        "serial_stage_seconds": stage, "serial_rates": serial_rates,
        "concat_share": concat_share, "concat_pixels": concat_px,
        "local": local, "outside": outside, "dispatch": dispatch,
        "machine": data.get("machine", {}),
        "measured_wall": _median(r["wall"] for r in runs),
        "measured_total": _median(r["extra"].get("timings", {}).get("total") for r in runs),
        "run_workers": _median(len({t["worker"] for t in run_tasks(r["extra"].get("events", []))}) or r.get("cores")
                               for r in runs),
        "run_chunk_seconds": replan_calibration(data, runs[0])[1],
        "tasks_timeline": [{k: t[k] for k in ("file", "run", "chunks", "seconds", "cost", "predicted")} for t in video],
    }


class LongSource:
    REPEAT = 3  # timings per measurement; the median is kept

    """The probe and the split timed on a real source of the modelled length, not extrapolated
    from a short run: the probe reads an MP4's index, so its cost is mostly fixed (0.1 s for
    10 min of 1080p, where 60 s take 0.13 s), and the split's depends on the segment count."""

    def __init__(self, path: Path, central: bool = False) -> None:
        from segenc.probe import probe

        self.path = path
        self.central = central  # model the central split (before the chord) instead of direct reads
        with open(path, "rb") as f:  # in the page cache first, as an upload is when it is split
            while f.read(1 << 24):
                pass
        times = []
        for _ in range(self.REPEAT):
            t = time.perf_counter()
            self.info = probe(path)
            times.append(time.perf_counter() - t)
        self.probe = statistics.median(times)
        self.splits: dict[tuple, float] = {}
        self.direct_read = self._direct_read()
        self.copy_rate = self._copy_rate() if self.info.audio_copy_bitrate else math.nan

    def _copy_rate(self) -> float:
        """Seconds per second of audio to copy the source's AAC into parts (``ChunkSpec.copy``):
        the median of 3 copies of a 60 s run of 2 s parts from the middle of the file (the
        source hard-linked under a scratch storage root, where an upload lies)."""
        import os
        import shutil
        import tempfile

        from segenc.audio import encode_audio
        from segenc.plan import plan
        from segenc.settings import Settings

        root = Path(tempfile.mkdtemp(prefix=".projection-copy-", dir=self.path.parent))
        try:
            (root / "uploads").mkdir()
            os.link(self.path, root / "uploads" / "source")
            p = plan(self.info, ("480p",), Settings(chunk_seconds=2.0), job_id="copy", workdir="work/copy",
                     source="uploads/source")
            middle = len(p.audio_parts) // 2
            run = list(p.audio_parts[middle:middle + 30])
            assert run and all(c.copy for c in run)
            times = []
            for _ in range(self.REPEAT):
                t = time.perf_counter()
                encode_audio(run, root)
                times.append(time.perf_counter() - t)
            return statistics.median(times) / sum(c.duration for c in run)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _direct_read(self) -> float:
        """Seconds a task spends opening the source and reading its segment's packets (the median
        over 2 s segments across the file). Added to every task in full, though the fit already
        holds the split file's own open and read (~11 ms): counted twice, on the safe side."""
        from segenc.model import Segment
        from segenc.probe import open_input
        from segenc.split import segment_packets

        info, t0 = self.info, self.info.start_pts
        keys = info.keyframes
        times = []
        for i in range(1, len(keys) - 1, max(1, len(keys) // 15)):
            seg = Segment(i, keys[i], keys[i + 1], keys[i], "")
            t = time.perf_counter()
            with open_input(self.path) as ic:
                vs = ic.streams.video[0]
                for _ in segment_packets(ic, vs, info.frame_pts[seg.key_frame] + t0, info.frame_pts[seg.end_frame] + t0):
                    pass
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def split(self, plan) -> float:
        """Seconds to split ``plan``'s segments (and its audio copy) out of the source, timed once per layout."""
        import shutil
        import tempfile

        from segenc.split import split

        key = (tuple((s.key_frame, s.end_frame) for s in plan.segments), bool(plan.audio_source))
        if key not in self.splits:
            times = []
            for _ in range(self.REPEAT):  # one timing swung 0.5-1.4 s on this machine
                root = Path(tempfile.mkdtemp(prefix=".projection-split-", dir=self.path.parent))
                try:
                    t = time.perf_counter()
                    split(self.path, plan, root)
                    times.append(time.perf_counter() - t)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            self.splits[key] = statistics.median(times)
        return self.splits[key]

    def without_audio(self):
        import dataclasses

        return dataclasses.replace(self.info, has_audio=False, audio_codec=None, audio_sample_rate=None,
                                   audio_channels=None, audio_duration=None, audio_languages=(), audio_titles=(),
                                   streams=1)


def long_source(args: argparse.Namespace, cal: dict[str, Any], seconds: float) -> LongSource | None:
    if args.long_source == "none" or args.size or args.fps or args.gop:
        return None
    if args.long_source != "auto":
        return LongSource(Path(args.long_source), central=args.central_split)
    from .inputs import InputSpec, ensure_input

    fields = {k: v for k, v in (cal.get("input_spec") or {}).items() if k in InputSpec.__dataclass_fields__}
    return LongSource(ensure_input(InputSpec(**{**fields, "seconds": seconds})), central=args.central_split)


# --------------------------------------------------------------------------------------------
# Model


def schedule(times: list[float], workers: int, first: float, gap: float,
             publish: float = 0.0) -> tuple[float, list[float]]:
    """List scheduling in the given order: each task goes to the worker free first, but not before
    its message is on the broker (the chord's header goes out one message every ``publish``
    seconds). Returns the makespan (from dispatch) and each worker's busy seconds."""
    ready = [(first, w) for w in range(workers)]
    heapq.heapify(ready)
    busy = [0.0] * workers
    end = first
    for i, t in enumerate(times):
        at, w = heapq.heappop(ready)
        at = max(at, first + i * publish)
        done = at + t
        busy[w] += t
        end = max(end, done)
        heapq.heappush(ready, (done + gap, w))
    return end, busy


def concat_seconds(cal: dict[str, Any], renditions, duration: float, workers: int, mode: str) -> float:
    rate = cal["serial_rates"]["concat"]
    share, px = cal["concat_share"], cal["concat_pixels"]
    per_px = (sum(share.values()) / sum(px.values())) if px and sum(px.values()) else 0.0
    each = []
    for r in renditions:
        s = share.get(r.name)
        if s is None:  # a rung the calibrating run did not make: scale by pixels
            s = per_px * r.width * r.height if per_px else 1.0 / len(renditions)
        each.append(rate * duration * s)
    if mode == "serial" or workers <= 1:
        return sum(each)
    lanes = [0.0] * min(workers, len(each))
    for t in sorted(each, reverse=True):
        i = lanes.index(min(lanes))
        lanes[i] += t
    return max(lanes)


def predict(cal: dict[str, Any], info, ladder, chunk: str | float, workers: int, *, concat: str,
            dispatch: dict[str, float], settings_base: dict[str, Any] | None = None,
            serial_scale: float = 1.0, long: LongSource | None = None) -> dict[str, Any]:
    """Model one job: plan it, predict every task, schedule on ``workers``, add the serial stages."""
    settings = make_settings(chunk, settings_base if settings_base is not None else cal["settings"])
    t_plan = time.perf_counter()
    # A distributed job's source lies on the storage (uploads/): it is read by the tasks, not split.
    p = make_plan(info, ladder, settings, workers, source=None if long is None or long.central else "uploads/source")
    plan_s = time.perf_counter() - t_plan  # the real planner on this source and worker count, timed here
    tasks = p.groups()
    a, b = cal["fit"]["a"], cal["fit"]["b"]
    times, names = [], []
    from segenc.model import task_cost, task_id

    for g in tasks:
        # Read straight from the source: each task opens it and seeks (timed on the long source).
        opening = long.direct_read if p.source is not None else 0.0
        if g[0].kind == "audio":  # a run of audio parts: their seconds, and one lead-in
            if g[0].copy:  # the source's AAC copied: timed on the long source
                times.append(long.copy_rate * sum(c.duration for c in g) + opening)
            else:
                times.append(cal["audio_rate"] * (sum(c.duration for c in g) + AUDIO_LEAD_SECONDS) + opening)
        else:
            times.append(a + b * task_cost(g) + opening)
        names.append(task_id(g))
    first, gap, chord = dispatch["first_start"], dispatch["gap"], dispatch["chord"]
    makespan, busy = schedule(times, workers, first, gap, dispatch.get("publish", 0.0))
    dur = info.duration
    r = cal["serial_rates"]
    if long is not None:  # timed on a real source of this length
        before = long.probe + (long.split(p) if p.source is None else 0.0) + plan_s
    else:
        before = (r["probe"] + r["split"]) * dur * serial_scale + plan_s
    cat = concat_seconds(cal, p.renditions, dur, workers, concat) * serial_scale
    wall = before + makespan + chord + cat
    work = sum(times)
    longest = max(range(len(times)), key=times.__getitem__)
    seg_lengths = [float((s.end_frame - s.first_frame) / info.fps) for s in p.segments]
    serial = before + cat + chord + first
    # What limits this point: the serial time, or the workers' idle time in the encode window
    # (and then why they idle), whichever is larger; neither above 10% of the wall: it scales.
    enc_window = makespan - first
    idle = enc_window - work / workers
    if workers == 1:
        limit = "one worker does all the work"
    elif max(serial, idle) < 0.1 * wall:
        limit = "work / workers (scales)"
    elif serial >= idle:
        limit = f"serial stages ({serial:.1f} s)"
    elif times[longest] >= 0.9 * enc_window:
        limit = f"longest task ({names[longest]}, {times[longest]:.1f} s)"
    elif len(tasks) < workers:
        limit = "tasks < workers"
    else:
        limit = "uneven last round"
    if len(tasks) < workers and "tasks < workers" not in limit:
        limit += f"; tasks < workers ({workers - len(tasks)} idle)"
    return {
        "workers": workers, "chunk": chunk, "segment_seconds": _median(seg_lengths), "segments": len(p.segments),
        "tasks": len(tasks), "wall": wall, "before": before, "plan": plan_s, "encode": makespan, "chord": chord, "concat": cat,
        "serial": serial, "serial_share": serial / wall, "work": work, "longest": times[longest],
        "longest_task": names[longest], "occupancy": work / (workers * enc_window) if enc_window > 0 else float("nan"),
        "limit": limit,
    }


def validate(cal: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The model's prediction for each calibrating result itself (its input, its pool size, its
    segment length, the local pool's overheads measured in the first file) vs its median wall."""
    out = []
    files = [Path(cal["primary"])] + [Path(cal["primary"]).parent / f for f in cal["fit_files"][1:]]
    seen = set()
    local = dict(cal["local"])
    for k, d in (("first_start", DEFAULT_FIRST_START), ("gap", DEFAULT_GAP), ("chord", DEFAULT_CHORD)):
        if math.isnan(local[k]):
            local[k] = d
    for path in files:
        if path.name in seen or not path.exists():
            continue
        seen.add(path.name)
        data = _load(path)
        runs = data.get("runs", {}).get("segenc", [])
        if not runs:
            continue
        info, _ = input_info(data)
        _, chunk_s, _, _ = replan_calibration(data, runs[0])
        workers = int(_median(len({t["worker"] for t in run_tasks(r["extra"].get("events", []))}) or r.get("cores")
                              for r in runs))
        ladder = (data.get("args", {}).get("ladder") or "480p,720p,1080p").split(",")
        m = predict(cal, info, ladder, chunk_s, workers, concat="serial", dispatch=local,
                    settings_base=_run_settings_base(data))
        model = m["wall"] + cal["outside"]
        wall = _median(r["wall"] for r in runs)
        recorded_tasks = _median(len(run_tasks(r["extra"].get("events", []))) for r in runs)
        out.append({"file": path.name, "duration": info.duration, "workers": workers, "chunk_seconds": chunk_s,
                    "tasks": m["tasks"], "recorded_tasks": recorded_tasks, "model": model, "measured": wall,
                    "error_pct": 100 * (model - wall) / wall, "runs": len(runs)})
    return out


# --------------------------------------------------------------------------------------------
# Report


def _chunk_label(chunk: str | float, seg: float) -> str:
    return f"auto ({seg:.3g} s)" if chunk == "auto" else f"{float(chunk):g} s" + (
        "" if abs(seg - float(chunk)) < 0.05 else f" ({seg:.3g} s)")


def _parse_size(s: str) -> tuple[int, int]:
    w, h = s.lower().split("x")
    return int(w), int(h)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Wall time and speedup vs workers (log x), one line per segment length; dashed: video only."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        print("note: matplotlib is not installed, so no PNG was drawn (pip install -e .[bench])")
        return None
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r["label"], []).append(r)
    ws = sorted({r["workers"] for r in rows})
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:red")
    for i, (label, rs) in enumerate(groups.items()):
        rs = sorted(rs, key=lambda r: r["workers"])
        c = colours[i % len(colours)]
        x = [r["workers"] for r in rs]
        ax1.plot(x, [r["wall"] for r in rs], marker="o", color=c, label=label)
        ax1.plot(x, [r["video_only"]["wall"] for r in rs], ls="--", color=c, alpha=0.6)
        ax2.plot(x, [r["speedup"] for r in rs], marker="o", color=c, label=label)
        ax2.plot(x, [r["video_only"]["speedup"] for r in rs], ls="--", color=c, alpha=0.6)
    ax2.plot(ws, ws, ls=":", color="grey", label="linear")
    ax2.plot([], [], ls="--", color="grey", label="video only")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ws, [str(w) for w in ws])
        ax.set_xlabel("workers (single-core encoder processes)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_ylabel("modelled wall time (s)")
    ax2.set_ylabel("speedup vs 1 worker")
    ax2.legend(title="segment length", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def run(args: argparse.Namespace) -> int:
    from segenc.model import task_cost

    t_start = time.perf_counter()
    problems: list[str] = []
    cal = calibrate(args, problems)
    inp = cal["input"]
    width, height = _parse_size(args.size) if args.size else (inp["width"], inp["height"])
    fps = args.fps or inp["fps"]
    gop = args.gop or inp["gop"] or round(2 * fps)
    ladder = args.ladder.split(",") if args.ladder else cal["ladder"]
    base = dict(cal["settings"])
    if args.granularity:
        base["granularity"] = args.granularity
    seconds = args.minutes * 60
    # Serial stages scale with the source's bytes; at another size/fps, assume the same bits per pixel.
    scale = (width * height * fps) / (inp["width"] * inp["height"] * inp["fps"])
    long = long_source(args, cal, seconds)
    info = long.info if long else synthetic_info(seconds, width, height, fps, gop,
                                                 bytes_per_second=inp["bytes_per_second"] * scale)
    workers = sorted({int(w) for w in args.workers.split(",")})
    chunks: list[str | float] = [c.strip() if c.strip() == "auto" else float(c) for c in args.chunks.split(",")]

    # The same source without its audio track: what the video tasks alone would scale to (the
    # audio parts add to it).
    info_v = long.without_audio() if long else synthetic_info(
        seconds, width, height, fps, gop, bytes_per_second=inp["bytes_per_second"] * scale, has_audio=False)
    rows = []
    for chunk in chunks:
        kw = dict(concat=args.concat, dispatch=cal["dispatch"], settings_base=base, serial_scale=scale, long=long)
        ref, ref_v = predict(cal, info, ladder, chunk, 1, **kw), predict(cal, info_v, ladder, chunk, 1, **kw)
        for w in workers:
            m = dict(ref) if w == 1 else predict(cal, info, ladder, chunk, w, **kw)
            v = dict(ref_v) if w == 1 else predict(cal, info_v, ladder, chunk, w, **kw)
            m["speedup"] = ref["wall"] / m["wall"]
            m["wall_s"] = m["wall"]
            m["efficiency"] = m["speedup"] / w
            v["speedup"] = ref_v["wall"] / v["wall"]
            v["efficiency"] = v["speedup"] / w
            m["video_only"] = v
            m["label"] = _chunk_label(chunk, ref["segment_seconds"]) if chunk != "auto" else "auto"
            m["chunk_label"] = _chunk_label(chunk, m["segment_seconds"])
            v["chunk_label"] = _chunk_label(chunk, v["segment_seconds"])
            rows.append(m)
    val = validate(cal, args)

    fit = cal["fit"]
    d = cal["dispatch"]
    r = cal["serial_rates"]
    mach = cal["machine"]
    src = f"{seconds / 60:g} min {width}x{height} {fps:g} fps, GOP {gop}, ladder {','.join(ladder)}"
    headers = ["workers", "segment length", "tasks", "wall s", "speedup", "efficiency", "serial", "longest task",
               "busy", "limited by"]

    def table_rows(video_only: bool = False):
        out = []
        for row in rows:
            m = row["video_only"] if video_only else row
            out.append([str(m["workers"]), m["chunk_label"], m["tasks"], m["wall"], f"{m['speedup']:.1f}x",
                        f"{100 * m['efficiency']:.0f}%", f"{100 * m['serial_share']:.1f}%",
                        f"{m['longest']:.1f} s ({m['longest_task']})", f"{100 * m['occupancy']:.0f}%", m["limit"]])
        return out

    kind_headers = ["task kind", "n", "cost (1e9)", "measured s", "model s", "residual"]
    kind_rows = [[k["kind"], k["n"], k["cost"] / 1e9, k["measured"], k["predicted"],
                  f"{k['residual']:+.2f} s ({k['residual_pct']:+.1f}%)"] for k in fit["by_kind"]]
    val_headers = ["result", "source", "workers", "chunk_seconds", "tasks (recorded)", "model s", "measured s", "error"]
    val_rows = [[v["file"], f"{v['duration']:g} s", v["workers"], f"{v['chunk_seconds']:g} s",
                 f"{v['tasks']} ({v['recorded_tasks']:g})", v["model"], v["measured"], f"{v['error_pct']:+.1f}%"]
                for v in val]
    # One 10 s segment of the calibrating input, every rung in one task, as the fit predicts it.
    seg_info = synthetic_info(10.0, inp["width"], inp["height"], inp["fps"], inp["gop"] or round(2 * inp["fps"]),
                              has_audio=False)
    seg_task = make_plan(seg_info, cal["ladder"], make_settings(10.0, cal["settings"]), None).groups()[0]
    per_10s = fit["a"] + fit["b"] * task_cost(seg_task)
    calib_lines = [
        f"calibrated from {Path(cal['primary']).name} ({cal['info_from']} input, {mach.get('cores')} cores "
        f"{mach.get('cpu_model', '')}); task fit over {fit['n']} video tasks in {', '.join(cal['fit_files'])}",
        f"task seconds = a + b x cost: a = {fit['a']:.3f} s per task, b = {fit['b'] * 1e9:.3f} s per 1e9 cost units "
        f"(a 10 s segment, {len(seg_task)} rungs in one task: {per_10s:.2f} s); R^2 = {fmt(fit['r2'], 4)}, residual RMS "
        f"{fit['rms']:.3f} s, max {fit['max_abs']:.2f} s ({fit['max_abs_pct']:.1f}%)",
        f"audio: {cal['audio_rate']:.4f} s per source second ({cal['audio_tasks']} tasks); serial stages per source "
        f"second: probe {r['probe'] * 1e3:.2f} ms, split {r['split'] * 1e3:.2f} ms (the planner is timed for each row: "
        f"{min(m['plan'] for m in rows):.2f}-{max(m['plan'] for m in rows):.2f} s; the calibrating run's plan "
        f"{r['plan'] * 1e3:.3f} ms per source second), "
        f"concat {r['concat'] * 1e3:.2f} ms (the finish step: all renditions stitched in series, and the "
        f"stream finished and packaged; per rendition by output bytes: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in cal["concat_share"].items()) + ")",
        f"dispatch ({d['from']}): first start {d['first_start'] * 1e3:.1f} ms, gap between tasks {d['gap'] * 1e3:.1f} ms, "
        f"chord completion {d['chord'] * 1e3:.1f} ms"
        + (f", chord header published at {d['publish'] * 1e3:.2f} ms per task" if d.get("publish") else "")
        + (f" (by a publisher with the machine to itself; {d['publish_contended'] * 1e3:.1f} ms in the rehearsal, "
           "sharing two cores with every worker slot)" if d.get("publish_contended") else "")
        + f"; local pool in the calibrating run: start-up "
        f"{cal['local']['first_start'] * 1e3:.0f} ms, gap {cal['local']['gap'] * 1e3:.1f} ms, tail "
        f"{cal['local']['chord'] * 1e3:.0f} ms, outside encode() {cal['outside']:.2f} s",
        f"concat modelled {args.concat}",
    ]
    if long:
        splits = sorted(long.splits.values())
        how = (f"split {splits[0]:.2f}-{splits[-1]:.2f} s over the {len(splits)} segment layouts the rows plan"
               if splits else f"no split: every task reads its segment straight from the source (an MP4 seeks by "
                              f"its index), and opening the source and reading a 2 s segment's packets took "
                              f"{long.direct_read * 1e3:.1f} ms, added to every task's time")
        if not math.isnan(long.copy_rate):
            how += (f"; its AAC is copied, not encoded (copying took {long.copy_rate * 1e3:.2f} ms per second "
                    f"of audio, against {cal['audio_rate'] * 1e3:.1f} ms to encode it)")
        calib_lines.insert(3, f"probe and split timed on {long.path.name} ({long.info.duration:.0f} s, "
                              f"{long.info.size / 1e6:.0f} MB, read once first: an upload is in the page cache when it is split), not "
                              f"extrapolated (medians of {long.REPEAT} timings): probe {long.probe:.3f} s, "
                              f"{how} (the per-second rates above would give "
                              f"{r['probe'] * long.info.duration:.2f} s and {r['split'] * long.info.duration:.2f} s)")

    # Terminal
    print(f"projection: {src}")
    for line in calib_lines:
        print("  " + line)
    print()
    print(text_table(kind_headers, kind_rows))
    print()
    print(text_table(headers, table_rows()))
    print()
    print("the same without an audio track (video tasks only):")
    print(text_table(headers, table_rows(video_only=True)))
    print()
    print("validation (the model for each calibrating result: its input, pool size and segment length, the local "
          "pool's overheads, + the run's start-up outside encode()):")
    print(text_table(val_headers, val_rows))
    for p_ in problems:
        print("warning: " + p_, file=sys.stderr)

    md = ["# projection: modelled wall time on many workers\n",
          f"- **modelled source**: {src} " + (f"(a real generated file, {long.path.name}, probed; its probe and "
                                               "split timed on it)" if long else
                                               "(a synthetic constant-frame-rate source with an AAC track)"),
          f"- **calibration**: {Path(cal['primary']).name} + {len(cal['fit_files']) - 1} companion result(s); "
          f"machine {mach.get('cores')} cores {mach.get('cpu_model', '')}, segenc {mach.get('git', '?')}",
          "- **command**: `" + " ".join(["python -m benchmarks projection"] + (sys.argv[2:] if sys.argv[1:2] == ["projection"] else [])) + "`",
          "- workers are identical single-core encoder processes on shared storage; no transfer cost "
          f"(without shared storage the transfer figure moved ~{TRANSFER_MB_PER_SECOND} MB/s of HTTP per encoded "
          "second at 480p+720p)",
          "", "## Calibration", ""] + [f"- {line}" for line in calib_lines] + [
          "", md_table(kind_headers, kind_rows), "",
          "## Projection", "",
          "speedup: vs 1 worker with the same segment setting; efficiency = speedup / workers; serial = (probe + "
          "plan + split + first dispatch + chord delay + concat) / wall; busy = task-seconds / (workers x encode "
          "window); longest task = the longest single task's modelled seconds.", "",
          md_table(headers, table_rows()), "",
          "The same source without an audio track: the video tasks alone (what the audio parts add, "
          "beside the video).", "",
          md_table(headers, table_rows(video_only=True)), "",
          "## Validation", "",
          "The model applied to each calibrating result itself (its input, its pool size, its segment length, the "
          "local pool's overheads measured in the first file, serial concat, plus the interpreter start-up outside "
          "`encode()`) vs the measured median wall. The task fit includes these runs, so this checks the "
          "scheduling and overhead composition rather than predicting unseen data.", "",
          md_table(val_headers, val_rows), ""]
    if problems:
        md += ["## Warnings", ""] + [f"- {p_}" for p_ in problems] + [""]
    md += ["Per-task calibration points and every modelled point are in the JSON file next to this one."]

    data = {"figure": "projection", "args": {k: v for k, v in vars(args).items() if k != "func"},
            "modelled_source": {"seconds": seconds, "width": width, "height": height, "fps": fps, "gop": gop,
                                "ladder": ladder},
            "calibration": cal, "rows": rows, "validation": val, "problems": problems,
            "long_source": {"file": long.path.name, "seconds": long.info.duration, "bytes": long.info.size,
                            "probe_s": long.probe, "split_s": sorted(long.splits.values()),
                            "direct_read_s": long.direct_read, "audio_copy_s_per_s": long.copy_rate} if long else None}
    if not args.no_save:
        out_dir = Path(args.results_dir)
        png = None if args.no_plot else plot(rows, out_dir / f"{args.tag}.png", f"segenc projection: {src}")
        if png:
            md.insert(md.index("## Validation"), f"![wall and speedup vs workers]({png.name})\n")
            data["png"] = png.name
        md_path, json_path = write_results(args.tag, "\n".join(md), data, out_dir)
        print(f"\nwrote {md_path}, {json_path}" + (f", {png}" if png else " (no PNG: matplotlib not importable)"
                                                 if not args.no_plot else ""))
    print(f"({time.perf_counter() - t_start:.1f} s)")
    return 0


register("projection", help="model: wall time on 1..256 workers for a 10-minute source, from stored results and the rehearsal",
         description=__doc__, add_arguments=add_arguments, run=run)
