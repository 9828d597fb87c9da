"""Streaming output: how soon a viewer can press play, what the stream costs, where A/V start.

One run of each, side by side on the same generated clip (default: 60 s of 1080p, the ladder
480p,720p,1080p):

- ffmpeg CLI: the one-process ladder (``baseline.ladder_command``, same preset/CRF/IDR grid):
  its wall time is the reference for "first playable".
- service: a main instance (``service.harness``) gets the clip over HTTP; from the moment the
  upload's 202 arrives, ``/api/hls/<job>/master.m3u8`` is polled every 50 ms, and when it answers
  the master is opened with the vendored hls.js in headless Chromium (``startPosition: 0``):
  **first playable** = upload done -> that player's ``canplay``. The same player measures the
  **A/V start offset** (the first buffered audio time minus the first buffered video time,
  from hls.js's BUFFER_APPENDED ranges), and the job's time to done is noted.
- segenc (local runner) total time, this tree, and with ``--before PATH`` the same call run
  from another checkout (the code before streaming) for "not slower".
- stream size vs single MP4 per rung: (rung init + segments + audio init + segments) over the
  rung's ``<rung>.mp4`` download (the same video and audio packets in one file).

Targets (issue "streaming output"): first playable / ffmpeg ladder <= 5%; total not slower;
stream overhead <= +0.6% per rung; A/V start <= 1 frame.

    python -m benchmarks streaming [--quick] [--before /path/to/old/checkout] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import baseline, inputs, report, runs
from .machine import machine_info, machine_line
from .registry import register

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PLAYABLE_JS = """async (url) => {
  const v = document.createElement('video');
  v.muted = true;
  document.body.append(v);
  const hls = new Hls({startPosition: 0, enableWorker: false});
  const starts = {};
  hls.on(Hls.Events.BUFFER_APPENDED, (_, d) => {
    for (const [k, r] of Object.entries(d.timeRanges || {})) if (r && r.length && starts[k] === undefined) starts[k] = r.start(0);
  });
  const t0 = performance.now();
  hls.loadSource(url);
  hls.attachMedia(v);
  await new Promise((ok) => v.addEventListener('canplay', ok, {once: true}));
  const playable = (performance.now() - t0) / 1000;
  const until = performance.now() + 3000;
  while ((starts.audio === undefined || starts.video === undefined) && performance.now() < until)
    await new Promise((ok) => setTimeout(ok, 50));
  hls.destroy();
  v.remove();
  return {playable, starts, fps: null};
}"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="clip length (default 60)")
    p.add_argument("--size", default="1920x1080", help="source size (default 1920x1080)")
    p.add_argument("--ladder", default="480p,720p,1080p")
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--quick", action="store_true", help="10 s of 1280x720, ladder 360p,720p")
    p.add_argument("--before", type=Path, default=None,
                   help="another checkout of segenc (the code before streaming): its segenc.encode is timed too")
    p.add_argument("--workers", type=int, default=2, help="local runner pool / service worker concurrency")
    p.add_argument("--no-browser", action="store_true", help="time the master's first 200 only (no Chromium)")
    p.add_argument("--service-only", action="store_true",
                   help="only the service run (first playable, A/V start); the other figures are not measured")
    p.add_argument("--cache-dir", type=Path, default=inputs.DEFAULT_CACHE)
    p.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR)
    p.add_argument("--no-save", action="store_true")


def _upload(base: str, clip: Path, fields: dict[str, str]) -> str:
    boundary = "segencstreambench"
    parts = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    for k, v in fields.items())
    body = (parts + f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n"
                    f"Content-Type: video/mp4\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())["job_id"]


def _status(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _json(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.loads(r.read())


def run_ffmpeg(exe: str, src: Path, work: Path, ladder, preset: str) -> float:
    out = work / "ffmpeg"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd, _ = baseline.ladder_command(exe, src, out, ladder, preset=preset, gop=2.0)
    m = runs.run_measured(cmd, variant="ffmpeg", log_path=work / "ffmpeg.log")
    shutil.rmtree(out, ignore_errors=True)
    return m.wall


def run_local(src: Path, out: Path, ladder, preset: str, workers: int, repo: Path) -> dict:
    """segenc.encode from ``repo`` in a subprocess; wall seconds and the output directory."""
    shutil.rmtree(out, ignore_errors=True)
    script = ("import json, sys, time, segenc\nfrom segenc.settings import Settings\nt = time.perf_counter()\n"
              f"segenc.encode({str(src)!r}, {str(out)!r}, ladder={tuple(ladder)!r}, workers={workers}, "
              f"settings=Settings(preset={preset!r}))\n"
              "print(json.dumps({'wall': time.perf_counter() - t, 'segenc': segenc.__file__}))\n")
    p = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(repo)})
    if p.returncode:
        raise RuntimeError(f"segenc from {repo} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def stream_overhead(out: Path, ladder) -> dict[str, dict]:
    audio = sum(f.stat().st_size for f in (out / "audio0").glob("*.m4s")) + (out / "audio0" / "init.mp4").stat().st_size \
        if (out / "audio0").is_dir() else 0
    rows = {}
    for rung in ladder:
        if not (out / f"{rung}.mp4").exists():
            continue
        stream = sum(f.stat().st_size for f in (out / rung).glob("*.m4s")) + (out / rung / "init.mp4").stat().st_size
        mp4 = (out / f"{rung}.mp4").stat().st_size
        rows[rung] = {"stream_bytes": stream + audio, "mp4_bytes": mp4, "overhead": (stream + audio) / mp4 - 1}
    return rows


def box_av_offset(out: Path, ladder) -> float:
    """A/V start from the files: audio segment 0's tfdt minus the lowest rung's (both first samples
    presented at their tfdt: CMAF's IDR has composition offset 0, the priming packet is left out)."""
    from segenc.stream import tfdt, _timescale

    def start(track: str) -> float:
        init = (out / track / "init.mp4").read_bytes()
        return tfdt((out / track / "s0000.m4s").read_bytes()) / _timescale(init)

    return start("audio0") - start(ladder[0])


def run_service(src: Path, work: Path, ladder, preset: str, workers: int, browser: bool) -> dict:
    from service.harness import MainInstance

    tmp = work / "service"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(work / "service-runtime", ignore_errors=True)
    res: dict = {}
    pw = page = b = None
    with MainInstance(tmp, concurrency=workers, runtime_dir=work / "service-runtime") as main:
        base = main.url
        if browser:
            from playwright.sync_api import sync_playwright

            pw = sync_playwright().start()
            b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = b.new_page()
            page.goto(base + "/")
            page.wait_for_function("() => typeof Hls !== 'undefined'")
        try:
            t_up = time.perf_counter()
            job = _upload(base, src, {"ladder": ",".join(ladder), "preset": preset})
            t0 = time.perf_counter()
            res["upload_seconds"] = t0 - t_up
            master = f"/api/hls/{job}/master.m3u8"
            while _status(base, master) != 200:
                time.sleep(0.05)
            res["master_seconds"] = time.perf_counter() - t0
            if page is not None:
                got = page.evaluate(PLAYABLE_JS, master)
                res["first_playable_seconds"] = time.perf_counter() - t0
                res["hls_js_playable_seconds"] = got["playable"]
                starts = got["starts"]
                if "audio" in starts and "video" in starts:
                    res["browser_av_offset"] = starts["audio"] - starts["video"]
                res["browser_starts"] = starts
            while (st := _json(base, f"/api/status/{job}"))["status"] not in ("done", "failed", "cancelled"):
                time.sleep(0.2)
            res["done_seconds"] = time.perf_counter() - t0
            res["status"] = st["status"]
        finally:
            if b is not None:
                b.close()
            if pw is not None:
                pw.stop()
    return res


def run(a: argparse.Namespace) -> int:
    if a.quick:
        a.seconds, a.size, a.ladder = 10.0, "1280x720", "360p,720p"
    w, h = inputs.parse_size(a.size)
    ladder = tuple(a.ladder.split(","))
    spec = inputs.InputSpec(width=w, height=h, seconds=a.seconds)
    exe = inputs.ffmpeg_exe()
    src = inputs.ensure_input(spec, a.cache_dir, exe=exe)
    work = a.cache_dir / "work" / "streaming"
    work.mkdir(parents=True, exist_ok=True)
    data: dict = {"input": spec.label, "ladder": list(ladder), "preset": a.preset, "workers": a.workers,
                  "machine": machine_info()}
    print(f"streaming: {spec.label}, ladder {','.join(ladder)}, {machine_line(data['machine'])}")
    if a.service_only:
        data["service"] = run_service(src, work, ladder, a.preset, a.workers, not a.no_browser)
        shutil.rmtree(work / "service", ignore_errors=True)
        print(json.dumps(data["service"], indent=1))
        if not a.no_save:
            report.write_results("streaming-service", "```\n" + json.dumps(data["service"], indent=1) + "\n```\n",
                                 data, a.results_dir)
        return 0
    data["ffmpeg_seconds"] = run_ffmpeg(exe, src, work, ladder, a.preset)
    print(f"  ffmpeg CLI ladder: {data['ffmpeg_seconds']:.2f} s")
    local = run_local(src, work / "local", ladder, a.preset, a.workers, REPO)
    data["segenc_seconds"] = local["wall"]
    print(f"  segenc (streaming): {local['wall']:.2f} s")
    data["overhead"] = stream_overhead(work / "local", ladder)
    data["box_av_offset"] = box_av_offset(work / "local", ladder)
    shutil.rmtree(work / "local", ignore_errors=True)
    if a.before:
        before = run_local(src, work / "before", ladder, a.preset, a.workers, a.before.resolve())
        data["before_seconds"] = before["wall"]
        print(f"  segenc (before, {a.before}): {before['wall']:.2f} s")
        shutil.rmtree(work / "before", ignore_errors=True)
    data["service"] = run_service(src, work, ladder, a.preset, a.workers, not a.no_browser)
    shutil.rmtree(work / "service", ignore_errors=True)
    s = data["service"]
    print(f"  service: master after {s['master_seconds']:.2f} s, done after {s['done_seconds']:.2f} s")
    md = render(data)
    print(md)
    if not a.no_save:
        stem = "streaming" if not a.quick else "streaming-quick"
        paths = report.write_results(stem, md, data, a.results_dir)
        print("wrote", *paths)
    return 0


def render(d: dict) -> str:
    s = d["service"]
    ff = d["ffmpeg_seconds"]
    fps = 30.0
    first = s.get("first_playable_seconds", s["master_seconds"])
    rows = [
        ["first playable (upload done -> hls.js canplay)" if "first_playable_seconds" in s else
         "first playable (upload done -> master 200; no browser)", f"{first:.2f} s",
         f"{100 * first / ff:.1f}% of ffmpeg's {ff:.2f} s", "<= 5%", "met" if first <= 0.05 * ff else "missed"],
    ]
    if "before_seconds" in d:
        ratio = d["segenc_seconds"] / d["before_seconds"]
        rows.append(["segenc total (local runner) vs before", f"{d['segenc_seconds']:.2f} s",
                     f"{d['before_seconds']:.2f} s before ({100 * (ratio - 1):+.1f}%)", "not slower",
                     "met" if ratio <= 1.02 else "missed"])
    else:
        rows.append(["segenc total (local runner)", f"{d['segenc_seconds']:.2f} s", "(no --before run)", "", ""])
    for rung, o in d["overhead"].items():
        rows.append([f"stream vs single MP4, {rung}", f"{o['stream_bytes'] / 1e6:.3f} MB",
                     f"{o['mp4_bytes'] / 1e6:.3f} MB ({100 * o['overhead']:+.2f}%)", "<= +0.6%",
                     "met" if o["overhead"] <= 0.006 else "missed"])
    if "browser_av_offset" in s:
        off = s["browser_av_offset"]
        rows.append(["A/V start offset in hls.js (audio - video buffer start)", f"{1000 * off:+.1f} ms",
                     f"{abs(off) * fps:.2f} frames", "<= 1 frame", "met" if abs(off) <= 1 / fps else "missed"])
    rows.append(["A/V start offset in the files (tfdt)", f"{1000 * d['box_av_offset']:+.1f} ms", "", "<= 1 frame",
                 "met" if abs(d["box_av_offset"]) <= 1 / fps else "missed"])
    table = report.md_table(["figure", "segenc", "reference", "target", ""], rows)
    return (f"# Streaming output\n\n{d['input']}, ladder {','.join(d['ladder'])}, preset {d['preset']}, "
            f"{d['workers']} workers; {machine_line(d['machine'])}\n\n{table}\n\n"
            f"Service: upload took {s['upload_seconds']:.2f} s; master.m3u8 answered {s['master_seconds']:.2f} s after "
            f"it, the job was done {s['done_seconds']:.2f} s after it.\n\n"
            "Command: `python -m benchmarks streaming" + (" --quick" if d["input"].startswith("clean-1280x720") else "")
            + "`\n")


register("streaming", help="HLS/DASH output: first playable vs the ffmpeg ladder, stream size, A/V start",
         description=__doc__, add_arguments=add_arguments, run=run)
