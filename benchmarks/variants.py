"""The variants the figures compare, each one measured the same way: a subprocess under ``runs``.

    ffmpeg(...)         one ffmpeg CLI process encoding the whole ladder (``baseline.ladder_command``;
                        ``threads=1``: the single-threaded baseline)
    segenc_local(...)   ``segenc.encode(...)`` with the local runner (``benchmarks.run_segenc``)
    segenc_celery(...)  ``segenc.encode(..., runner=CeleryRunner(...))`` on a private redis-server and
                        worker nodes (``benchmarks.run_celery``)

Each factory returns ``run(rnd) -> runs.Measurement`` for ``runs.alternate``. Outputs go to
WORK/<name>-r<rnd>/ and are described (``m.extra["outputs"]``), then deleted unless ``keep``
says to keep that round's (``m.extra["out_dir"]`` names the directory; the caller deletes it).
The segenc variants also record what the runner reported (``timings``, ``segments``, ``runner``,
``reported`` renditions, ``events``); ``analyse(m, record)``, if given, goes to ``m.extra["analysis"]``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Container, Mapping, Sequence

from . import baseline, media, runs

REPO = Path(__file__).resolve().parent.parent

Keep = bool | Container[int]   # keep every round's outputs (True), none (False), or these rounds'
Analyse = Callable[[runs.Measurement, dict[str, Any]], dict[str, Any]]
Variant = Callable[[int], runs.Measurement]


def keeps(keep: Keep, rnd: int) -> bool:
    return keep if isinstance(keep, bool) else rnd in keep


def finish_outputs(m: runs.Measurement, out: Path, outputs: Mapping[str, Path], keep: Keep, rnd: int) -> None:
    m.extra["outputs"] = {name: media.describe(p) for name, p in outputs.items()}
    m.extra["out_dir"] = str(out)
    m.extra["kept"] = keeps(keep, rnd)
    if not m.extra["kept"]:
        shutil.rmtree(out, ignore_errors=True)


def repo_env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (the runners are ``-m benchmarks.*``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def ffmpeg(exe: str, src: Path, work: Path, ladder: Sequence[str], enc: Mapping[str, Any], timeout: float, *,
           threads: int | None = None, name: str = "ffmpeg", keep: Keep = False) -> Variant:
    """The one-process ffmpeg CLI baseline; ``enc`` holds preset, crf, audio_bitrate, scaler, and
    optionally codec and gop (the same IDR grid segenc uses)."""
    def run(rnd: int) -> runs.Measurement:
        out = work / f"{name}-r{rnd}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd, outputs = baseline.ladder_command(exe, src, out, ladder, preset=enc["preset"], crf=enc["crf"],
                                               audio_bitrate=enc["audio_bitrate"], scaler=enc["scaler"],
                                               threads=threads, codec=enc.get("codec", "h264"), gop=enc.get("gop"))
        m = runs.run_measured(cmd, variant=name, log_path=work / f"{name}-r{rnd}.log", timeout=timeout)
        m.extra["command"] = cmd
        m.extra["threads"] = threads
        finish_outputs(m, out, outputs, keep, rnd)
        return m
    return run


def _runner_args(src: Path, out: Path, res_json: Path, ladder: Sequence[str], chunk_seconds: float | None,
                 settings: Mapping[str, Any] | None) -> list[str]:
    cmd = [str(src), str(out), "--json", str(res_json), "--ladder", ",".join(ladder)]
    if chunk_seconds is not None:
        cmd += ["--chunk-seconds", str(chunk_seconds)]
    if settings:
        cmd += ["--settings", json.dumps(dict(settings))]
    return cmd


def _record(m: runs.Measurement, r: dict[str, Any], cmd: list[str], out: Path, keep: Keep, rnd: int,
            analyse: Analyse | None) -> None:
    m.extra["command"] = cmd
    m.extra["timings"] = r["timings"]
    m.extra["segments"] = r["segments"]
    m.extra["runner"] = r["runner"]
    m.extra["reported"] = {x["name"]: x for x in r["renditions"]}
    m.extra["events"] = r["events"]
    finish_outputs(m, out, {x["name"]: out / x["path"] for x in r["renditions"]}, keep, rnd)
    if analyse is not None:
        m.extra["analysis"] = analyse(m, r)


def segenc_local(src: Path, work: Path, ladder: Sequence[str], *, timeout: float, workers: int | None = None,
                 chunk_seconds: float | None = None, settings: Mapping[str, Any] | None = None,
                 name: str = "segenc", keep: Keep = False, analyse: Analyse | None = None) -> Variant:
    """``segenc.encode`` with the local runner in a subprocess (``benchmarks.run_segenc``).

    ``workers``/``chunk_seconds`` None: segenc's defaults; ``settings`` is a dict of Settings
    fields (e.g. ``{"granularity": "rendition"}``)."""
    env = repo_env()

    def run(rnd: int) -> runs.Measurement:
        out = work / f"{name}-r{rnd}"
        shutil.rmtree(out, ignore_errors=True)
        res_json = work / f"{name}-r{rnd}.json"
        res_json.unlink(missing_ok=True)
        cmd = ([sys.executable, "-m", "benchmarks.run_segenc"]
               + _runner_args(src, out, res_json, ladder, chunk_seconds, settings))
        if workers is not None:
            cmd += ["--workers", str(workers)]
        m = runs.run_measured(cmd, variant=name, log_path=work / f"{name}-r{rnd}.log", env=env, cwd=REPO,
                              timeout=timeout)
        _record(m, json.loads(res_json.read_text()), cmd, out, keep, rnd, analyse)
        return m
    return run


def segenc_celery(src: Path, work: Path, ladder: Sequence[str], *, timeout: float, processes: int,
                  chunk_seconds: float | None = None, settings: Mapping[str, Any] | None = None,
                  name: str | None = None, keep: Keep = False, analyse: Analyse | None = None) -> Variant:
    """``segenc.encode(..., runner=CeleryRunner)`` on a private Redis + ``processes`` worker nodes
    (``benchmarks.run_celery``). The Measurement's wall, CPU, machine load and profile are the
    encode call's; the whole subprocess's (Redis and worker start-up included) is in
    ``extra["process"]``."""
    name = name or f"celery{processes}"
    env = repo_env()

    def run(rnd: int) -> runs.Measurement:
        out = work / f"{name}-r{rnd}"
        shutil.rmtree(out, ignore_errors=True)
        scratch = work / f"{name}-r{rnd}.cluster"
        shutil.rmtree(scratch, ignore_errors=True)
        res_json = work / f"{name}-r{rnd}.json"
        res_json.unlink(missing_ok=True)
        cmd = ([sys.executable, "-m", "benchmarks.run_celery"]
               + _runner_args(src, out, res_json, ladder, chunk_seconds, settings)
               + ["--work-dir", str(scratch), "--processes", str(processes), "--timeout", str(timeout)])
        m = runs.run_measured(cmd, variant=name, log_path=work / f"{name}-r{rnd}.log", env=env, cwd=REPO,
                              timeout=timeout + 300)
        r = json.loads(res_json.read_text())
        job = r["job"]
        m.extra["process"] = {"wall": m.wall, "user": m.user, "sys": m.sys, "cpu": m.cpu,
                              "machine_busy": m.machine_busy, "started_at": m.started_at}
        m.wall, m.user, m.sys = job["wall"], job["user"], job["sys"]
        m.machine_busy, m.started_at = job["machine_busy"], job["t0_wall"]
        m.profile = [tuple(x) for x in job["profile"]]
        m.extra["cpu_by"] = job["cpu_by"]
        _record(m, r, cmd, out, keep, rnd, analyse)
        shutil.rmtree(scratch / "storage", ignore_errors=True)
        return m
    return run
