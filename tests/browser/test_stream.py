"""The job's HLS stream in real headless Chromium through the vendored hls.js: a finished job
plays to its end with forced rung switches; a job plays from 0 to its end in the page's stream
player while it still encodes, with no 404."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"playwright is not importable ({exc}); pip install playwright", allow_module_level=True)

from tests.mediagen import make_clip

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CARD = "#jobs > article.job"

# A standalone hls.js player on the page (the vendored file is loaded there): play from 0,
# force a rung switch at each mark, record errors, switches, stalls and where each buffer began.
PLAY_JS = """async ({url, marks}) => {
  const v = document.createElement('video');
  v.muted = true;
  document.body.append(v);
  const hls = new Hls({startPosition: 0, enableWorker: false});
  const out = {errors: [], switched: [], stalls: 0, starts: {}, forced: []};
  hls.on(Hls.Events.ERROR, (_, d) => out.errors.push(`${d.type}/${d.details}${d.fatal ? ' fatal' : ''}`));
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => out.switched.push([d.level, v.currentTime]));
  hls.on(Hls.Events.BUFFER_APPENDED, (_, d) => {
    for (const [k, r] of Object.entries(d.timeRanges || {})) {
      if (r && r.length && out.starts[k] === undefined) out.starts[k] = r.start(0);
    }
  });
  v.addEventListener('waiting', () => out.stalls++);
  hls.loadSource(url);
  hls.attachMedia(v);
  await new Promise((ok) => hls.on(Hls.Events.MANIFEST_PARSED, ok));
  out.levels = hls.levels.map((l) => l.height);
  await v.play();
  const started = performance.now();
  let next = 0;
  while (!v.ended && performance.now() - started < 60000) {
    if (next < marks.length && v.currentTime >= marks[next][0]) {
      hls.currentLevel = marks[next][1];
      out.forced.push([marks[next][1], v.currentTime]);
      next++;
    }
    await new Promise((ok) => setTimeout(ok, 50));
  }
  out.ended = v.ended; out.time = v.currentTime; out.duration = v.duration;
  hls.destroy();
  return out;
}"""


def test_hls_js_plays_a_finished_job_to_the_end_with_forced_rung_switches(ui):
    svc = ui.service
    clip = make_clip(Path(svc.tmp_dir) / "stream-finished.mp4", width=640, height=360, seconds=4.0)
    job = svc.upload(clip, ladder="240p,360p", chunk_seconds="1").json()["job_id"]
    assert svc.wait_done(job)["status"] == "done"
    missing = []
    ui.page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    got = ui.page.evaluate(PLAY_JS, {"url": f"/api/hls/{job}/master.m3u8", "marks": [[1.0, 1], [2.2, 0], [3.0, 1]]})
    assert got["ended"] and got["time"] == pytest.approx(4.0, abs=0.1), got
    assert got["levels"] == [240, 360] and [f[0] for f in got["forced"]] == [1, 0, 1], got
    assert [lvl for lvl, _ in got["switched"]][-3:] == [1, 0, 1], got  # every forced switch happened
    assert [e for e in got["errors"] if "fatal" in e] == [], got
    # A/V start: both buffers begin at 0 (audio without its priming packet), within one frame
    assert abs(got["starts"]["audio"] - got["starts"]["video"]) <= 1 / 30, got["starts"]
    assert missing == [], missing


def test_page_stream_player_plays_a_job_while_it_encodes(ui):
    page, svc = ui.page, ui.service
    clip = make_clip(Path(svc.tmp_dir) / "stream-live.mp4", width=1280, height=720, seconds=6.0)
    missing, statuses = [], []
    page.on("response", lambda r: missing.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    job = svc.upload(clip, ladder="360p,720p", chunk_seconds="1").json()["job_id"]
    card = page.locator(f'{CARD}[data-job-id="{job}"]')
    video = card.locator("video.stream-video")
    video.wait_for(timeout=60_000)
    statuses.append(card.get_attribute("data-status"))  # when the player appeared
    assert video.get_attribute("data-engine") == "hls.js"
    video.evaluate("v => { v.muted = true; return v.play(); }")
    deadline = time.monotonic() + 90
    while True:
        st = video.evaluate("v => ({t: v.currentTime, ended: v.ended, err: v.error && v.error.code, d: v.duration})")
        assert st["err"] is None, st
        if st["ended"]:
            break
        assert time.monotonic() < deadline, st
        page.wait_for_timeout(200)
    assert statuses[0] != "done", "the job had finished before its stream could be watched"
    assert st["t"] == pytest.approx(6.0, abs=0.1), st
    card.locator(".stream-btn[data-auto]").wait_for()
    assert card.locator(".stream-btn").evaluate_all("els => els.map(e => e.textContent)") == ["Auto", "360p", "720p"]
    assert card.locator('.stream-url[data-kind="hls"]').input_value().endswith(f"/api/hls/{job}/master.m3u8")
    assert missing == [], missing
    assert ui.errors == [], ui.errors
