"""The page as people use it every day, in real headless Chromium against the browser suite's real
main instance (every job made here is deleted again at the end): delete asks first,
the list pages, a failed job can be retried, jobs show thumbnails and skipped rungs, everything
works from the keyboard, text meets WCAG AA contrast, every control has a name, and the page
fits a 390 px phone."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests

from segenc.distributed import JobState
from segenc.progress import ProgressEvent
from segenc.stages import Stage
from tests.browser.conftest import CHROMIUM

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CARD = "#jobs > article.job"


@pytest.fixture(scope="module")
def inst(service):
    """The suite's instance; the jobs made here are deleted afterwards (other tests expect theirs alone)."""
    before = {j["job_id"] for j in service.get("/api/jobs?limit=200").json()["jobs"]}
    yield service
    for job in service.get("/api/jobs?limit=200").json()["jobs"]:
        if job["job_id"] not in before:
            requests.delete(f"{service.url}/api/jobs/{job['job_id']}", headers=service.headers(), timeout=30)


@pytest.fixture(scope="module")
def state(inst) -> JobState:
    return JobState.from_url(inst.redis_url)


@pytest.fixture(scope="module")
def done_job(inst, small_clip):
    """One real encode of a 640x360 clip asked for 240p,360p,720p: done, 720p skipped."""
    r = inst.upload(small_clip, ladder="240p,360p,720p", chunk_seconds="1")
    assert r.status_code == 202, r.text
    st = inst.wait_done(r.json()["job_id"])
    assert st["status"] == "done", st
    return st


@pytest.fixture
def open_page(browser, inst):
    contexts = []

    def go(query: str = "", width: int = 1280, height: int = 800):
        ctx = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(inst.url + "/" + query)
        page.wait_for_selector('#health[data-state="live"]')
        return page

    yield go
    for ctx in contexts:
        ctx.close()


def card(page, job_id: str):
    return page.locator(f'{CARD}[data-job-id="{job_id}"]')


def test_thumbnail_and_skipped_note(open_page, done_job):
    page = open_page()
    c = card(page, done_job["job_id"])
    img = c.locator("img.job-thumb-img")
    img.wait_for()
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    assert img.evaluate("(el) => [el.naturalWidth, el.naturalHeight]") == [320, 180]
    assert img.get_attribute("alt") == f"A frame of {done_job['filename']}"
    note = c.locator(".job-skipped")
    assert note.is_visible() and "720p skipped" in note.inner_text() and "360 lines" in note.inner_text()
    assert page.errors == []


def test_delete_asks_first_from_the_keyboard(open_page, inst, small_clip):
    r = inst.upload(small_clip, ladder="240p", chunk_seconds="1")
    job_id = r.json()["job_id"]
    assert inst.wait_done(job_id)["status"] == "done"
    page = open_page()
    c = card(page, job_id)
    c.locator('[data-status="done"]').first.wait_for() if False else None
    page.wait_for_function("(id) => document.querySelector(`#jobs > article[data-job-id='${id}']`)?.dataset.status === 'done'",
                           arg=job_id)
    delete = c.locator("button.job-action")
    assert delete.inner_text() == "Delete"
    delete.focus()
    page.keyboard.press("Enter")  # asks; the job is still there
    confirm = c.locator('button[data-action="confirm"]')
    assert confirm.is_visible() and c.locator(".confirm-text").inner_text() == "Delete this job and its videos?"
    assert page.evaluate("() => document.activeElement.dataset.action") == "confirm"
    assert inst.get(f"/api/status/{job_id}").status_code == 200
    page.keyboard.press("Escape")  # backs out, focus returns to Delete
    assert not confirm.is_visible() and delete.is_visible()
    assert page.evaluate("() => document.activeElement.classList.contains('job-action')")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # to Keep
    assert page.evaluate("() => document.activeElement.dataset.action") == "keep"
    page.keyboard.press("Enter")
    assert not confirm.is_visible()
    assert inst.get(f"/api/status/{job_id}").status_code == 200 and (inst.tmp_dir / "encoded" / job_id).exists()
    delete.click()
    confirm.click()
    c.wait_for(state="detached")
    assert not (inst.tmp_dir / "encoded" / job_id).exists()
    assert job_id not in [j["job_id"] for j in inst.get("/api/jobs?limit=200").json()["jobs"]]
    assert page.errors == []


def test_retry_a_failed_job(open_page, inst, state, small_clip):
    r = inst.upload(small_clip, ladder="240p", chunk_seconds="1")
    old = r.json()["job_id"]
    assert inst.wait_done(old)["status"] == "done"
    page = open_page()
    state.set(old, stage=Stage.FAILED.value, error="chunk s0001-240p failed: boom")  # as a worker records it
    state.publish(ProgressEvent(old, "stage", stage=Stage.FAILED))  # the page hears of it live
    c = card(page, old)
    retry = c.locator("button.job-retry")
    retry.wait_for(state="visible")
    assert retry.get_attribute("aria-label").startswith("Retry ") and "boom" in c.locator(".job-error").inner_text()
    retry.focus()
    page.keyboard.press("Enter")
    c.wait_for(state="detached")
    new_card = page.locator(CARD, has=page.locator("h3.job-name", has_text=Path(small_clip).name)).first
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = inst.get("/api/jobs?limit=200").json()["jobs"]
        fresh = [j for j in jobs if j["job_id"] != old and j["filename"] == Path(small_clip).name
                 and j["status"] == "done" and j["created_at"] > time.time() - 60]
        if fresh:
            break
        time.sleep(0.3)
    assert fresh, jobs
    card(page, fresh[0]["job_id"]).locator("video.player").wait_for()
    assert new_card.count() == 1 and page.errors == []


def test_jobs_list_pages(open_page, inst, state):
    before = inst.get("/api/jobs").json()["total"]
    made = []
    for i in range(12):  # records only (no encode): the list is what is under test
        job_id = str(uuid.uuid4())
        state.create(job_id, filename=f"page-{i:02d}.mp4", ladder=["240p"])
        state.set(job_id, stage=Stage.DONE.value)
        made.append(job_id)
    total = before + 12
    page = open_page("?per_page=5")
    paged = "(n) => [...document.querySelectorAll('#jobs h3.job-name')].filter((e) => e.textContent.startsWith('page-')).length === n"
    page.wait_for_function(paged, arg=5)  # the newest five (a live update may add a card beyond them)
    more = page.locator("#jobs-more")
    assert more.is_visible() and more.inner_text() == f"Show 5 more of {total - 5} older jobs"
    more.click()
    page.wait_for_function(paged, arg=10)
    assert more.inner_text() == f"Show {min(5, total - 10)} more of {total - 10} older job{'s' if total - 10 > 1 else ''}"
    while more.is_visible():
        more.click()
        page.wait_for_timeout(300)
    assert page.locator(CARD).count() == total
    names = [n for n in page.locator(f"{CARD} h3.job-name").all_inner_texts() if n.startswith("page-")]
    assert names == [f"page-{i:02d}.mp4" for i in reversed(range(12))]  # newest first
    for job_id in made:
        state.delete(job_id)
    assert page.errors == []


CONTRAST_JS = """() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  // The backgrounds an element's text sits on: its own and its ancestors' colours composited, and
  // every colour stop of a gradient on the way (the worst one counts).
  const backgrounds = (el) => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.push(e);
    let bases = [[8, 9, 10, 1]];
    for (const e of chain.reverse()) {
      const cs = getComputedStyle(e);
      const stops = (cs.backgroundImage.match(/rgba?\\([^)]+\\)/g) || []).map(parse);
      const own = parse(cs.backgroundColor);
      let next = bases;
      if (own && own[3] > 0) next = next.map((b) => over(own, b));
      if (stops.length && !cs.backgroundImage.includes("radial")) next = next.flatMap((b) => stops.map((s) => over(s, b)));
      bases = next;
    }
    return bases;
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join('');
    if (!text || !el.getClientRects().length) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || el.closest('[hidden], .visually-hidden, video')) continue;
    const fg = parse(cs.color);
    const worst = Math.min(...backgrounds(el).map((b) => ratio(over(fg, b), b)));
    out.push({text: text.slice(0, 40), cls: el.className, color: cs.color, ratio: Math.round(worst * 100) / 100});
  }
  return out;
}"""

NAMES_JS = """() => [...document.querySelectorAll('button, a[href], input, select, video, textarea, [role=button]')]
  .map((el) => {
    const byId = (el.getAttribute('aria-labelledby') || '').split(' ').map((i) => document.getElementById(i)?.textContent || '').join(' ');
    const label = el.labels && el.labels.length ? el.labels[0].textContent : '';
    const name = (el.getAttribute('aria-label') || byId || label || (el.tagName === 'INPUT' ? '' : el.textContent) || el.title || '').trim();
    return {tag: el.tagName, id: el.id, cls: el.className, name};
  })"""


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_contrast_names_and_fit(open_page, inst, done_job, output_dir, width, height):
    """Text contrast >= 4.5:1 everywhere (with a done job, its player and a failed job's error on
    the page), an accessible name on every control including the player, and no sideways
    scrolling at a phone's 390 px."""
    page = open_page(width=width, height=height)
    card(page, done_job["job_id"]).locator("video.player").wait_for()
    page.locator("#file-input").set_input_files({"name": "notes.txt", "mimeType": "text/plain",
                                                  "buffer": b"not a video " * 100})
    page.locator("#toasts .toast.error").wait_for()
    assert page.locator("#toasts .toast-msg").inner_text().startswith('"notes.txt" was not accepted: not a video file')
    page.wait_for_timeout(300)  # entry animations end (opacity)
    texts = page.evaluate(CONTRAST_JS)
    assert len(texts) > 20
    low = [t for t in texts if t["ratio"] < 4.5]
    assert low == [], low
    unnamed = [c for c in page.evaluate(NAMES_JS) if not c["name"]]
    assert unnamed == [], unnamed
    player = card(page, done_job["job_id"]).locator("video.player")
    assert player.get_attribute("aria-label").startswith(f"Player: {done_job['filename']}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(output_dir / f"everyday-{width}x{height}.png"), full_page=True)
    assert page.errors == []
