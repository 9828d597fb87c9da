"""The web page in real headless Chromium against a real main instance: drop a video, watch it
encode live, play it, switch quality; a non-video upload is refused with an error toast."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; the same path as conftest.CHROMIUM

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
try:
    from playwright.sync_api import Page
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"playwright is not importable ({exc}); pip install playwright", allow_module_level=True)

pytestmark = [pytest.mark.browser]

CARD = "#jobs > article.job"

# Records every data-status the job cards take and every per-rendition percentage shown, in order.
OBSERVE_JS = """() => {
  // Per card: other jobs' cards (earlier tests' on the shared instance) must not mix in.
  window.__seen = {};
  const record = () => {
    for (const card of document.querySelectorAll('#jobs > article.job')) {
      const seen = (window.__seen[card.dataset.jobId] = window.__seen[card.dataset.jobId] || {status: [], pct: {}});
      const s = card.dataset.status;
      const list = seen.status;
      if (list[list.length - 1] !== s) list.push(s);
      for (const row of card.querySelectorAll('.rendition')) {
        const q = row.dataset.quality, t = row.querySelector('.pct').textContent;
        const seq = (seen.pct[q] = seen.pct[q] || []);
        if (seq[seq.length - 1] !== t) seq.push(t);
      }
    }
  };
  new MutationObserver(record).observe(document.getElementById('jobs'),
    {subtree: true, childList: true, attributes: true, characterData: true});
}"""

# A real drop: a File built in the page from the clip's bytes, carried by a DataTransfer through
# dragenter / dragover / drop on the drop zone (app.js listens on window; the events bubble).
DROP_JS = """async ({b64, name}) => {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, {type: 'video/mp4'}));
  const target = document.getElementById('drop-zone');
  const fire = (type) => target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
  const overlay = document.getElementById('drop-overlay');
  const enterAccepted = !fire('dragenter');   // false from dispatchEvent = preventDefault() called
  const overAccepted = !fire('dragover');
  const overlayShown = !overlay.hidden && document.body.classList.contains('is-dragging');
  const dropAccepted = !fire('drop');
  return {enterAccepted, overAccepted, overlayShown, dropAccepted,
          overlayAfter: !overlay.hidden, size: bytes.length};
}"""

PLAYER_STATE_JS = """(v) => ({t: v.currentTime, rs: v.readyState, paused: v.paused, ended: v.ended,
  err: v.error ? v.error.code + ' ' + v.error.message : null, src: v.currentSrc,
  q: v.dataset.quality, w: v.videoWidth, h: v.videoHeight, d: v.duration})"""


def player_state(scope) -> dict:
    """The MP4 player's state inside ``scope`` (the job's card: other jobs' cards have players too)."""
    return scope.locator("video.player").evaluate(PLAYER_STATE_JS)


def wait_playing_past(scope, seconds: float, timeout: float = 15) -> dict:
    """Poll until the player's currentTime passes ``seconds``; fail on a media error."""
    deadline = time.monotonic() + timeout
    while True:
        st = player_state(scope)
        assert st["err"] is None, st
        if st["t"] > seconds and st["rs"] >= 2:
            return st
        assert time.monotonic() < deadline, f"the player did not reach {seconds}s: {st}"
        time.sleep(0.1)


def toast_errors(page: Page) -> list[str]:
    return page.locator("#toasts .toast.error .toast-msg").all_inner_texts()


@pytest.mark.timeout(240)
def test_drop_encode_play_and_switch_quality(ui, hd_clip, output_dir):
    page, svc = ui.page, ui.service
    assert page.locator("#health").get_attribute("data-state") == "live"
    before = set(page.locator(CARD).evaluate_all("els => els.map(e => e.dataset.jobId)"))
    page.evaluate(OBSERVE_JS)

    drop = page.evaluate(DROP_JS, {"b64": base64.b64encode(hd_clip.read_bytes()).decode(), "name": "clip.mp4"})
    assert drop == {"enterAccepted": True, "overAccepted": True, "overlayShown": True, "dropAccepted": True,
                    "overlayAfter": False, "size": hd_clip.stat().st_size}, drop

    # The card appears (the upload answers 202, then live WebSocket updates fill it in).
    card = page.locator(CARD, has=page.locator("h3.job-name", has_text="clip.mp4"))
    card.wait_for(timeout=30_000)
    job_id = card.get_attribute("data-job-id")
    assert job_id and job_id not in before

    # Every rendition bar reaches 100% and the card says done.
    page.wait_for_function(
        """(id) => {
          const card = document.querySelector(`#jobs > article.job[data-job-id="${id}"]`);
          const rows = card ? [...card.querySelectorAll('.rendition')] : [];
          return card && card.dataset.status === 'done' && rows.length >= 2 && rows.every(r =>
            r.querySelector('.pct').textContent === '100%' && r.querySelector('.bar > .bar-fill').style.width === '100%');
        }""", arg=job_id, timeout=120_000, polling=100)
    assert toast_errors(page) == []
    qualities = card.locator(".rendition").evaluate_all("els => els.map(e => e.dataset.quality)")
    assert qualities == ["480p", "720p"], qualities  # 1280x720 source: the 1080p rung is dropped
    assert card.locator(".overall-pct").inner_text() == "100%"
    assert card.locator(".status-pill").get_attribute("data-status") == "done"

    # The card went through the live stages, and the percentages only ever grew.
    seen = page.evaluate("window.__seen")[job_id]
    assert seen["status"][-1] == "done" and "encoding" in seen["status"], seen["status"]
    for q in qualities:
        pcts = [int(t.rstrip("%")) for t in seen["pct"][q] if t]
        assert pcts == sorted(pcts) and pcts[-1] == 100, (q, seen["pct"][q])
    assert any(0 < int(t.rstrip("%")) < 100 for q in qualities for t in seen["pct"][q] if t), \
        f"no intermediate percentage was ever shown: {seen['pct']}"

    # The player. Known backend bug: the live "done" update carries no rendition URLs, so the
    # player only appears once the job is loaded over REST (a reload); see tests/service/test_ws.py.
    player_bug = False
    try:
        card.locator("video.player").wait_for(timeout=8_000)
    except Exception:
        player_bug = True
        assert card.get_attribute("data-status") == "done"
        assert svc.get(f"/api/status/{job_id}").json()["renditions"]["480p"]["url"], "REST has no URL either"
        page.reload()
        page.wait_for_selector('#health[data-state="live"]')
        card = page.locator(f'{CARD}[data-job-id="{job_id}"]')
        card.locator("video.player").wait_for(timeout=15_000)

    video = card.locator("video.player")
    assert video.get_attribute("data-quality") == "480p"
    buttons = card.locator("button.quality-btn")
    assert buttons.evaluate_all("els => els.map(e => [e.dataset.quality, e.getAttribute('aria-pressed')])") == \
        [["480p", "true"], ["720p", "false"]]
    links = card.locator("a.download")
    assert links.evaluate_all("els => els.map(e => e.dataset.quality)") == ["480p", "720p"]
    for q in ("480p", "720p"):
        href = card.locator(f'a.download[data-quality="{q}"]').get_attribute("href")
        assert href == f"/api/video/{job_id}/{q}", href
        r = page.request.get(svc.url + href, headers={"Range": "bytes=0-1023"})
        assert r.status == 206 and r.headers["content-type"] == "video/mp4", (q, r.status, r.headers)

    # Play 480p (muted: no autoplay policy in the way).
    assert page.evaluate("""() => document.createElement('video').canPlayType('video/mp4; codecs="avc1.640028"')"""), \
        "this Chromium cannot play H.264"
    video.evaluate("v => { v.muted = true; return v.play(); }")
    st = wait_playing_past(card, 0.3)
    assert st["rs"] >= 2 and not st["paused"] and st["q"] == "480p", st
    assert st["src"].endswith(f"/api/video/{job_id}/480p"), st
    assert (st["w"], st["h"]) == (854, 480), st
    assert 4.8 < st["d"] < 5.3, st
    st = wait_playing_past(card, 1.0)

    # Switch to 720p while playing: new source, position kept, still playing.
    t_before = player_state(card)["t"]
    card.locator('button.quality-btn[data-quality="720p"]').click()
    page.wait_for_function(
        "v => v.dataset.quality === '720p' && v.videoWidth === 1280 && v.readyState >= 2 && !v.paused",
        arg=video.element_handle(), timeout=15_000, polling=50)
    st = player_state(card)
    assert st["src"].endswith(f"/api/video/{job_id}/720p") and st["err"] is None, st
    assert st["t"] >= t_before - 0.25, (t_before, st)  # resumed where it was, not from the start
    st2 = wait_playing_past(card, st["t"] + 0.3)
    assert st2["t"] < 5.3 and (st2["w"], st2["h"]) == (1280, 720), st2
    assert buttons.evaluate_all("els => els.map(e => [e.dataset.quality, e.getAttribute('aria-pressed')])") == \
        [["480p", "false"], ["720p", "true"]]
    video.evaluate("v => v.pause()")

    # Workers panel: the main instance's worker, online.
    assert page.locator('#workers > li.worker[data-online="true"]').count() >= 1
    assert page.locator("#health").get_attribute("data-state") == "live"

    assert toast_errors(page) == []
    assert page.locator("#toasts .toast.error").count() == 0
    assert ui.errors == [], ui.errors

    # Screenshots of the finished page, desktop and phone.
    # (full-page shots from the top: the sticky top bar would otherwise be drawn mid-page)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"horizontal overflow at {width}px"
        page.screenshot(path=str(output_dir / f"finished-{width}x{height}-full.png"), full_page=True)
        video.scroll_into_view_if_needed()
        page.wait_for_timeout(100)
        page.screenshot(path=str(output_dir / f"finished-{width}x{height}.png"))

    assert not player_bug, "the player only appeared after a reload: the live 'done' update had no URLs"


@pytest.mark.timeout(120)
def test_non_video_upload_shows_error_toast(ui, tmp_path, output_dir):
    page, svc = ui.page, ui.service
    fake = tmp_path / "notes.mp4"
    fake.write_text("These are meeting notes, not a video.\n" * 200)
    jobs_before = svc.get("/api/jobs").json()["total"]
    cards_before = page.locator(CARD).count()

    page.locator("#file-input").set_input_files(str(fake))

    msg = page.locator("#toasts .toast.error .toast-msg")
    msg.first.wait_for(timeout=30_000)
    texts = toast_errors(page)
    assert len(texts) == 1, texts
    assert "notes.mp4" in texts[0] and "not a video" in texts[0].lower(), texts[0]
    assert "source" not in texts[0], texts[0]  # the server's file name on disk is not leaked

    # No job: not on the page (give a stray live update time to arrive), not in the API.
    page.wait_for_timeout(1500)
    assert page.locator(CARD).count() == cards_before
    assert page.locator(CARD, has=page.locator("h3.job-name", has_text="notes.mp4")).count() == 0
    assert svc.get("/api/jobs").json()["total"] == jobs_before
    # The upload row went away; the toast stays until dismissed, then goes.
    page.wait_for_function("() => document.querySelectorAll('#uploads > li').length === 0", timeout=5_000)
    page.wait_for_timeout(400)  # let the toast's entry animation finish
    page.screenshot(path=str(output_dir / "error-toast-1280x800.png"))
    page.locator("#toasts .toast.error .toast-close").click()
    page.wait_for_function("() => !document.querySelector('#toasts .toast.error')", timeout=5_000)

    # The browser logs the 415 response itself; anything else would be a page bug.
    others = [e for e in ui.errors if "Failed to load resource" not in e]
    assert others == [], ui.errors


@pytest.mark.timeout(180)
def test_upload_page_sends_preset_codec_and_ladder(ui, small_clip, output_dir):
    page, svc = ui.page, ui.service
    page.screenshot(path=str(output_dir / "upload-options-1280x800.png"))
    options = page.locator("#preset-select option").evaluate_all("els => els.map(e => e.value)")
    assert options == ["", "web", "streaming", "archive"], options
    # A ladder the server refuses: the 400's message (naming the syntax) is shown, no job made.
    jobs_before = svc.get("/api/jobs").json()["total"]
    page.locator("#ladder-input").fill("540x")
    page.locator("#file-input").set_input_files(str(small_clip))
    page.locator("#toasts .toast.error .toast-msg").first.wait_for(timeout=30_000)
    assert any("<height>p" in t for t in toast_errors(page)), toast_errors(page)
    assert svc.get("/api/jobs").json()["total"] == jobs_before
    page.locator("#toasts .toast.error .toast-close").first.click()
    # Preset + codec + ladder reach the encoder.
    page.locator("#preset-select").select_option("streaming")
    page.locator("#codec-select").select_option("hevc")
    page.locator("#ladder-input").fill("240p@400k")
    page.locator("#file-input").set_input_files(str(small_clip))
    deadline = time.monotonic() + 30
    while svc.get("/api/jobs").json()["total"] == jobs_before and time.monotonic() < deadline:
        time.sleep(0.2)
    job_id = svc.get("/api/jobs?limit=1").json()["jobs"][0]["job_id"]
    st = svc.wait_done(job_id)
    assert st["status"] == "done" and set(st["renditions"]) == {"240p"}, st
    doc = json.loads((svc.tmp_dir / "encoded" / job_id / "manifest.json").read_text())
    assert doc["settings"]["codec"] == "hevc", doc["settings"]
    assert doc["settings"]["caps"] == {"240p": {"maxrate": 400_000, "bufsize": 800_000}}, doc["settings"]
    others = [e for e in ui.errors if "Failed to load resource" not in e]
    assert others == [], ui.errors
