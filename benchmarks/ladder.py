"""Figure "ladder": segenc vs one ffmpeg process encoding the same 3-rung ladder.

(A) ``ffmpeg``: one ffmpeg CLI process, split -> 3 x scale (bicubic) -> 3 x libx264 (default
    threads) + AAC per output, +faststart MP4s (see ``baseline.ladder_command``).
(B) ``segenc``: ``segenc.encode(source, out, ladder)`` with default settings and workers=None,
    in a subprocess (``benchmarks.run_segenc``) so both are measured the same way.

Runs alternate A B A B ... ``--repeat`` times; medians are reported. Speed = ffmpeg wall /
segenc wall (>1 means segenc is faster). Size ratio = segenc bytes / ffmpeg bytes per rung.
Serial share = (split + concat [+ audio]) / total from segenc's own ``res.timings``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from . import baseline, inputs, machine, media, report, runs
from .registry import register

REPO = Path(__file__).resolve().parent.parent
SERIAL_STAGES = ("split", "concat", "audio")   # stages that run on one core while the pool waits
QUICK = {"seconds": 10.0, "size": "1280x720", "fps": 30}
DEFAULT = {"seconds": 60.0, "size": "1920x1080", "fps": 30}
TARGET_SPEED = 1.0
MIN_WINDOW = 0.5     # stages shorter than this (2 sampler ticks) get no busy-cores figure
NOISE_LIMIT = 0.10   # a run is "noisy" when other processes used more than this share of its own CPU
# segenc's "stage" progress events -> its res.timings keys ("probing" covers probe + plan).
STAGE_EVENT_NAMES = {"probing": "probe", "splitting": "split", "encoding": "encode", "concatenating": "concat"}


# ----------------------------------------------------------------------------- arguments

def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input (generated once, cached)")
    g.add_argument("--flavour", choices=["clean", "grain", "both"], default="both",
                   help="clean: testsrc2 pattern; grain: same + temporal noise (hard to encode). Default: both")
    g.add_argument("--seconds", type=float, default=None, help=f"clip duration (default {DEFAULT['seconds']:g})")
    g.add_argument("--size", default=None, help=f"WxH of the source (default {DEFAULT['size']})")
    g.add_argument("--fps", type=int, default=None, help=f"source frame rate (default {DEFAULT['fps']})")
    g.add_argument("--quick", action="store_true",
                   help="10 s at 1280x720 (explicit --seconds/--size/--fps still win); about a minute in all")
    g.add_argument("--cache-dir", type=Path, default=inputs.DEFAULT_CACHE,
                   help="inputs and scratch outputs (default benchmarks/.cache, gitignored)")
    g.add_argument("--regenerate", action="store_true", help="regenerate inputs even if cached")

    g = p.add_argument_group("runs")
    g.add_argument("--repeat", type=int, default=3, help="measured runs per variant, alternated A B A B (default 3)")
    g.add_argument("--warmup", type=int, default=0, help="unrecorded alternated rounds before measuring (default 0)")
    g.add_argument("--variants", default="ffmpeg,segenc",
                   help="comma-separated subset of ffmpeg,segenc (default both; ffmpeg alone works without segenc)")
    g.add_argument("--ladder", default=",".join(baseline.DEFAULT_LADDER), help="rungs (default 480p,720p,1080p)")
    g.add_argument("--workers", type=int, default=None, help="segenc pool size (default: segenc's, all cores)")
    g.add_argument("--chunk-seconds", type=float, default=None, help="segenc chunk length (default: segenc's)")
    g.add_argument("--preset", default=None, help="x264 preset for both (default: segenc's Settings, veryfast)")
    g.add_argument("--crf", type=int, default=None, help="CRF for both (default: segenc's Settings, 23)")
    g.add_argument("--timeout", type=float, default=3600.0, help="seconds before a single run is killed")
    g.add_argument("--quiet-wait", type=float, default=120.0,
                   help="before each run, wait up to this many seconds for other processes to leave the CPU "
                        "idle (< 0.3 busy cores); 0 disables (default 120)")
    g.add_argument("--noise-retries", type=int, default=2,
                   help="redo a run during which other processes used > 10%% of its CPU time, up to N times "
                        "(default 2; the last attempt is kept and flagged)")
    g.add_argument("--keep-outputs", action="store_true", help="keep every run's outputs under CACHE/work/")

    g = p.add_argument_group("results")
    g.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR, help="default benchmarks/results")
    g.add_argument("--tag", default=None,
                   help="result file stem suffix: results/ladder-<flavour>[-TAG].md; default: none for the "
                        "default input, else the input label (e.g. 1280x720-30fps-10s)")
    g.add_argument("--no-save", action="store_true", help="print only, write no result files")
    g.add_argument("--rerender", action="store_true",
                   help="run nothing: rebuild the .md (and the JSON summary) from the runs stored in the JSON "
                        "selected by --flavour/--quick/--size/--seconds/--fps/--tag (after a report-code change)")


def _settings_defaults() -> dict[str, Any]:
    """segenc's defaults if importable, else the documented ones (for the ffmpeg-only mode)."""
    try:
        from segenc.settings import Settings

        s = Settings()
        return {"preset": s.preset, "crf": s.crf, "audio_bitrate": s.audio_bitrate, "scaler": s.scaler}
    except Exception:
        return {"preset": "veryfast", "crf": 23, "audio_bitrate": 128_000, "scaler": "bicubic"}


# ----------------------------------------------------------------------------- variants

def _ffmpeg_run(exe: str, src: Path, work: Path, ladder: Sequence[str], enc: dict[str, Any], timeout: float):
    def run(rnd: int) -> runs.Measurement:
        out = work / f"ffmpeg-r{rnd}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd, outputs = baseline.ladder_command(exe, src, out, ladder, preset=enc["preset"], crf=enc["crf"],
                                               audio_bitrate=enc["audio_bitrate"], scaler=enc["scaler"])
        m = runs.run_measured(cmd, variant="ffmpeg", log_path=work / f"ffmpeg-r{rnd}.log", timeout=timeout)
        m.extra["command"] = cmd
        m.extra["outputs"] = {name: media.describe(p) for name, p in outputs.items()}
        return m
    return run


def _segenc_run(src: Path, work: Path, ladder: Sequence[str], args: argparse.Namespace, settings: dict | None,
                timeout: float):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))

    def run(rnd: int) -> runs.Measurement:
        out = work / f"segenc-r{rnd}"
        shutil.rmtree(out, ignore_errors=True)
        res_json = work / f"segenc-r{rnd}.json"
        res_json.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "benchmarks.run_segenc", str(src), str(out), "--json", str(res_json),
               "--ladder", ",".join(ladder)]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        if args.chunk_seconds is not None:
            cmd += ["--chunk-seconds", str(args.chunk_seconds)]
        if settings:
            cmd += ["--settings", json.dumps(settings)]
        m = runs.run_measured(cmd, variant="segenc", log_path=work / f"segenc-r{rnd}.log", env=env, cwd=REPO,
                              timeout=timeout)
        r = json.loads(res_json.read_text())
        m.extra["command"] = cmd
        m.extra["timings"] = r.get("timings", {})
        m.extra["segments"] = r.get("segments")
        m.extra["runner"] = r.get("runner", {})
        m.extra["reported"] = {x["name"]: x for x in r.get("renditions", [])}
        m.extra["outputs"] = {x["name"]: media.describe(out / x["path"]) for x in r.get("renditions", [])}
        m.extra["events"] = r.get("events", [])
        m.extra["analysis"] = analyse_segenc(m, r)
        return m
    return run


# ----------------------------------------------------------------------------- analysis

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


def serial_share(timings: dict[str, float]) -> tuple[float | None, list[str]]:
    total = timings.get("total")
    keys = [k for k in SERIAL_STAGES if k in timings]
    if not total or not keys:
        return None, keys
    return sum(timings[k] for k in keys) / total, keys


def analyse_segenc(m: runs.Measurement, r: dict[str, Any]) -> dict[str, Any]:
    """Where segenc's wall time went: stages, cores busy in each, pool occupancy, process overhead."""
    timings: dict[str, float] = r.get("timings", {}) or {}
    runner = r.get("runner", {}) or {}
    out: dict[str, Any] = {}
    if "encode" not in timings and timings.get("total"):
        # Older segenc builds did not time the encode stage: it is what the others leave of total.
        rest = sum(v for k, v in timings.items() if k != "total" and isinstance(v, (int, float)))
        out["encode_derived"] = True
        timings = {**{k: v for k, v in timings.items() if k != "total"}, "encode": timings["total"] - rest,
                   "total": timings["total"]}
        r["timings"] = m.extra["timings"] = timings
    share, keys = serial_share(timings)
    out["serial_share"] = share
    out["serial_stages"] = keys
    if timings.get("total"):
        out["non_encode_share"] = 1 - timings.get("encode", 0.0) / timings["total"]
        out["outside_encode_call"] = m.wall - timings["total"]   # interpreter start, imports, pool teardown
    offset = runner.get("t0_wall", m.started_at) - m.started_at  # runner clock -> measurement clock
    out["startup_seconds"] = offset

    # Stage windows: from "stage" events if segenc sends them, else cumulative timings in order.
    events = r.get("events", []) or []
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
    starts = {e["chunk_id"]: e for e in events if e.get("kind") == "chunk_started" and e.get("chunk_id")}
    dones = {e["chunk_id"]: e["t"] for e in events if e.get("kind") == "chunk_done" and e.get("chunk_id")}
    spans = [(starts[c].get("worker") or c, starts[c]["t"], dones[c]) for c in starts if c in dones]
    if spans:
        lo, hi = min(s for _, s, _ in spans), max(d for _, _, d in spans)
        busy_by_worker: dict[str, list[tuple[float, float]]] = {}
        for w, st, d in sorted(spans, key=lambda x: (x[0], x[1])):
            iv = busy_by_worker.setdefault(w, [])
            if iv and st <= iv[-1][1]:
                iv[-1] = (iv[-1][0], max(iv[-1][1], d))
            else:
                iv.append((st, d))
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


# ----------------------------------------------------------------------------- report

def _resolve_input(args: argparse.Namespace) -> tuple[float, tuple[int, int], int]:
    base = QUICK if args.quick else DEFAULT
    seconds = args.seconds if args.seconds is not None else base["seconds"]
    size = inputs.parse_size(args.size if args.size is not None else base["size"])
    fps = args.fps if args.fps is not None else base["fps"]
    return seconds, size, fps


def _summary(results: dict[str, list[runs.Measurement]], ladder: Sequence[str]) -> dict[str, Any]:
    s: dict[str, Any] = {name: runs.summarize(ms, NOISE_LIMIT) for name, ms in results.items() if ms}
    for name, ms in results.items():
        if not ms:
            continue
        last = ms[-1].extra.get("outputs", {})
        s[name]["renditions"] = {
            r: {"bytes": int(runs.median(m.extra["outputs"][r]["bytes"] for m in ms)),
                "frames": last[r]["frames"], "width": last[r]["width"], "height": last[r]["height"],
                "duration": last[r]["duration"], "video_bitrate": last[r]["video_bitrate"],
                "x264_core": last[r]["x264_core"], "x264_threads": last[r]["x264_threads"]}
            for r in ladder if r in last}
    if "segenc" in s:
        ms = results["segenc"]
        stages = sorted({k for m in ms for k in m.extra.get("timings", {})},
                        key=lambda k: list(ms[0].extra.get("timings", {})).index(k)
                        if k in ms[0].extra.get("timings", {}) else 99)
        s["segenc"]["timings"] = {k: runs.median(m.extra["timings"][k] for m in ms if k in m.extra["timings"])
                                  for k in stages}
        shares = [m.extra["analysis"]["serial_share"] for m in ms if m.extra["analysis"].get("serial_share") is not None]
        s["segenc"]["serial_share"] = runs.median(shares) if shares else None
        s["segenc"]["serial_stages"] = ms[0].extra["analysis"].get("serial_stages")
        s["segenc"]["segments"] = ms[0].extra.get("segments")
        s["segenc"]["outside_encode_call"] = runs.median(
            m.extra["analysis"].get("outside_encode_call", float("nan")) for m in ms)
        # stage busy cores: median per stage
        st_names = list(ms[0].extra["analysis"].get("stage_busy_cores", {}))
        s["segenc"]["stage_busy_cores"] = {
            st: {"seconds": runs.median(m.extra["analysis"]["stage_busy_cores"].get(st, {}).get("seconds", float("nan")) for m in ms),
                 "busy_cores": runs.median(m.extra["analysis"]["stage_busy_cores"].get(st, {}).get("busy_cores") or float("nan") for m in ms)}
            for st in st_names}
        chunks = [m.extra["analysis"]["chunks"] for m in ms if "chunks" in m.extra["analysis"]]
        if chunks:
            s["segenc"]["chunks"] = {k: runs.median(c[k] for c in chunks if c.get(k) is not None)
                                     for k in chunks[0]}
    if "ffmpeg" in s and "segenc" in s:
        f, g = s["ffmpeg"], s["segenc"]
        s["speed_all"] = f["wall"] / g["wall"]
        s["speed_best"] = f["wall_min"] / g["wall_min"]
        if f["quiet_runs"] and g["quiet_runs"]:
            s["speed"], s["speed_basis"] = f["wall_quiet"] / g["wall_quiet"], (
                f"medians of the quiet runs ({f['quiet_runs']} ffmpeg, {g['quiet_runs']} segenc)")
        else:
            s["speed"], s["speed_basis"] = s["speed_all"], "medians of all runs (too few quiet ones)"
        s["cpu_ratio"] = s["segenc"]["cpu"] / s["ffmpeg"]["cpu"]
        s["size_ratio"] = {r: s["segenc"]["renditions"][r]["bytes"] / s["ffmpeg"]["renditions"][r]["bytes"]
                           for r in ladder if r in s["segenc"]["renditions"] and r in s["ffmpeg"]["renditions"]}
    return s


def _tables(s: dict[str, Any], ladder: Sequence[str], md: bool) -> list[str]:
    table = report.md_table if md else report.text_table
    out: list[str] = []
    variants = [v for v in ("ffmpeg", "segenc") if v in s]
    rows = [[v, s[v]["wall"], f"{s[v]['wall_min']:.2f}-{s[v]['wall_max']:.2f}",
             f"{s[v]['wall_quiet']:.2f} ({s[v]['quiet_runs']}/{s[v]['runs']})" if s[v]["quiet_runs"] else "-",
             s[v]["cpu"], s[v]["user"], s[v]["sys"],
             f"{s[v]['utilization'] * 100:.0f}%", s[v]["idle_core_seconds"], s[v]["foreign_cpu"]] for v in variants]
    out.append(table(["variant", "wall s", "wall range", "quiet wall s", "CPU s", "user s", "sys s", "cores used",
                      "idle core-s", "other load core-s"], rows))
    if "speed" in s:
        verdict = "meets" if s["speed"] >= TARGET_SPEED else "BELOW"
        out.append(f"speed = ffmpeg wall / segenc wall = {s['speed']:.3f}x ({verdict} target {TARGET_SPEED:g}; "
                   f"{s['speed_basis']}); all runs {s['speed_all']:.3f}x, best-of {s['speed_best']:.3f}x; "
                   f"CPU ratio segenc/ffmpeg = {s['cpu_ratio']:.3f}")
    rows = []
    for r in ladder:
        row = [r]
        for v in ("ffmpeg", "segenc"):
            d = s.get(v, {}).get("renditions", {}).get(r)
            row += [f"{d['width']}x{d['height']}", d["frames"], report.mb(d["bytes"]),
                    f"{d['video_bitrate'] / 1000:.0f}"] if d else ["-"] * 4
        row.append(s["size_ratio"].get(r) if "size_ratio" in s else None)
        rows.append(row)
    out.append(table(["rung", "ffmpeg size", "frames", "bytes", "video kb/s",
                      "segenc size", "frames", "bytes", "video kb/s", "size ratio"], rows))
    if "segenc" in s:
        seg = s["segenc"]
        t = seg["timings"]
        rows = [[k, v, f"{v / t['total'] * 100:.1f}%" if t.get("total") else "-",
                 seg["stage_busy_cores"].get(k, {}).get("busy_cores")] for k, v in t.items()]
        out.append(table(["segenc stage", "seconds", "of total", "busy cores"], rows))
        share = seg["serial_share"]
        line = (f"segenc serial share ({'+'.join(seg['serial_stages'] or [])}) / total = "
                f"{share * 100:.1f}%" if share is not None else "segenc serial share: n/a (timings lack split/concat)")
        line += (f"; segments: {seg['segments']}; outside encode() (interpreter, imports, teardown): "
                 f"{seg['outside_encode_call']:.2f} s")
        if seg.get("chunks"):
            c = seg["chunks"]
            line += (f"; pool occupancy during encode: {c['occupancy'] * 100:.0f}% "
                     f"({c['count']:.0f} chunks in {c.get('tasks', c['count']):.0f} worker tasks on "
                     f"{c.get('workers', 0):.0f} processes, task median {c.get('median_task', float('nan')):.2f} s, "
                     f"longest {c.get('longest_task', float('nan')):.2f} s; {c['seconds_with_free_core']:.2f} s "
                     f"with a core idle)")
        out.append(line)
    return out


def _profiles(results: dict[str, list[runs.Measurement]]) -> list[str]:
    lines = []
    for name, ms in results.items():
        for i, m in enumerate(ms):
            lines.append(f"{name:<7} r{i} {m.wall:6.1f}s |{runs.sparkline(m.profile, m.cores)}|")
    return lines


# ----------------------------------------------------------------------------- main

def _stem(args: argparse.Namespace, spec: inputs.InputSpec) -> str:
    default_input = ((spec.seconds, (spec.width, spec.height), spec.fps)
                     == (DEFAULT["seconds"], inputs.parse_size(DEFAULT["size"]), DEFAULT["fps"]))
    tag = args.tag if args.tag is not None else ("" if default_input else spec.label.split("-", 1)[1])
    return f"ladder-{spec.flavour}" + (f"-{tag}" if tag else "")


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
        for m in results.get("segenc", []):
            if "events" in m.extra:
                derived = m.extra.get("analysis", {}).get("encode_derived")
                m.extra["analysis"] = analyse_segenc(m, {"timings": m.extra.get("timings", {}),
                                                         "runner": m.extra.get("runner", {}),
                                                         "events": m.extra["events"]})
                if derived:
                    m.extra["analysis"]["encode_derived"] = True
        inp = dict(data["input"])
        spec = inputs.InputSpec(**inp.pop("spec"))
        src = Path(inp.pop("path"))
        stored = argparse.Namespace(**{**vars(args), **data["args"]})
        rungs = tuple(next(iter(ms)).extra["outputs"] for ms in results.values() if ms)[0]
        rungs = tuple(r for r in baseline.RUNGS if r in rungs)
        s = _summary(results, rungs)
        problems = _check(s, rungs, inp, results)
        md = _markdown(s, results, rungs, data["machine"], spec, src, inp, stored, problems)
        data.update(summary=s, problems=problems)
        md_path, _ = report.write_results(stem, md, data, args.results_dir)
        print("\n\n".join(_tables(s, rungs, md=False)))
        print(f"rewrote {md_path} from {path.name}")
    return rc


def run(args: argparse.Namespace) -> int:
    if args.rerender:
        return rerender(args)
    seconds, (w, h), fps = _resolve_input(args)
    ladder = baseline.parse_ladder(args.ladder)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - {"ffmpeg", "segenc"}:
        raise SystemExit(f"--variants must name ffmpeg and/or segenc, got {args.variants!r}")
    flavours = ["clean", "grain"] if args.flavour == "both" else [args.flavour]
    exe = inputs.ffmpeg_exe()
    enc = _settings_defaults()
    seg_settings: dict[str, Any] | None = None
    if args.preset or args.crf is not None:
        enc.update({k: v for k, v in (("preset", args.preset), ("crf", args.crf)) if v is not None})
        seg_settings = {k: v for k, v in (("preset", args.preset), ("crf", args.crf)) if v is not None}
    mach = machine.machine_info(exe)
    print(f"machine: {machine.machine_line(mach)}")
    if mach["cores"] != 2:
        print(f"note: {mach['cores']} cores here; the speed target is stated for 2 cores")

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
              f"{args.repeat} runs each, alternating {' '.join(variants)}")
        fns = {}
        for v in variants:
            fns[v] = (_ffmpeg_run(exe, src, work, rungs, enc, args.timeout) if v == "ffmpeg"
                      else _segenc_run(src, work, rungs, args, seg_settings, args.timeout))

        def on_result(rnd: int, m: runs.Measurement) -> None:
            tag = "warmup" if rnd < 0 else f"run {rnd + 1}/{args.repeat}"
            waited = m.extra.get("settle_seconds") or 0
            print(f"  {tag:>10} {m.variant:<7} wall {m.wall:7.2f} s  CPU {m.cpu:7.2f} s  "
                  f"cores used {m.utilization * 100:3.0f}%"
                  + (f"  (other load {m.foreign_cpu:.1f} core-s)" if m.foreign_cpu > 0.05 * m.cpu else "")
                  + (f"  (waited {waited:.0f} s for a quiet machine)" if waited > 2 else ""), flush=True)
            if not args.keep_outputs:
                shutil.rmtree(work / f"{m.variant}-r{rnd}", ignore_errors=True)

        def on_retry(rnd: int, m: runs.Measurement) -> None:
            print(f"  {'':>10} {m.variant:<7} wall {m.wall:7.2f} s  other load {m.foreign_cpu:.1f} core-s: noisy, redoing",
                  flush=True)
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
        s = _summary(results, rungs)
        print()
        for block in _tables(s, rungs, md=False):
            print(block + "\n")
        print("machine-wide busy cores over each run (sampled /proc/stat, full bar = all cores):")
        print("\n".join(_profiles(results)))
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
    for v in ("ffmpeg", "segenc"):
        for r, d in s.get(v, {}).get("renditions", {}).items():
            if d["frames"] != src_info["frames"]:
                problems.append(f"{v} {r}: {d['frames']} frames, source has {src_info['frames']}")
    if "ffmpeg" in s and "segenc" in s:
        for r in ladder:
            a, b = s["ffmpeg"]["renditions"].get(r), s["segenc"]["renditions"].get(r)
            if a and b and (a["width"], a["height"]) != (b["width"], b["height"]):
                problems.append(f"{r}: ffmpeg {a['width']}x{a['height']} vs segenc {b['width']}x{b['height']}")
            if a and b and a["x264_core"] != b["x264_core"]:
                problems.append(f"{r}: x264 core {a['x264_core']} (ffmpeg CLI) vs {b['x264_core']} (PyAV)")
    if "segenc" in s:
        hashes = {m.extra.get("runner", {}).get("segenc_source_sha1") for m in results.get("segenc", [])}
        if len(hashes) > 1:
            problems.append(f"segenc's source changed between runs ({', '.join(sorted(map(str, hashes)))}): "
                            "the runs measured different code")
        if any(m.extra.get("analysis", {}).get("encode_derived") for m in results.get("segenc", [])):
            problems.append("segenc's res.timings has no 'encode' key: encode = total - other stages")
    for v in ("ffmpeg", "segenc"):
        if v in s and s[v]["foreign_cpu"] > NOISE_LIMIT * s[v]["cpu"]:
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
    blocks = _tables(s, ladder, md=True)
    lines += ["## Time", "", blocks[0], ""]
    i = 1
    if "speed" in s:
        lines += [f"**{blocks[1]}**", ""]
        i = 2
    lines += ["## Output size", "", blocks[i], ""]
    if "segenc" in s:
        lines += ["## segenc stages (median of its `res.timings`)", "", blocks[i + 1], "", blocks[i + 2], ""]
    lines += ["## Busy cores over each run", "",
              "Machine-wide, sampled from /proc/stat every 0.25 s; a full bar is all cores busy.", "", "```"]
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
    return f'"{c}"' if any(ch in c for ch in " ;[]") else c


def _argv_repr(args: argparse.Namespace) -> list[str]:
    out = [f"--flavour {args.flavour}"] if args.flavour != "both" else []
    if args.quick:
        out.append("--quick")
    for k in ("seconds", "size", "fps", "workers", "chunk_seconds", "preset", "crf"):
        v = getattr(args, k)
        if v is not None:
            out.append(f"--{k.replace('_', '-')} {v}")
    if args.repeat != 3:
        out.append(f"--repeat {args.repeat}")
    if args.warmup:
        out.append(f"--warmup {args.warmup}")
    if args.ladder != ",".join(baseline.DEFAULT_LADDER):
        out.append(f"--ladder {args.ladder}")
    return out


register("ladder", help="segenc vs one ffmpeg process encoding the same 480p/720p/1080p ladder",
         description=__doc__, add_arguments=add_arguments, run=run)
