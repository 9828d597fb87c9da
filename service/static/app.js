/* segenc front-end: uploads, live job progress over a WebSocket, workers panel, player.
 *
 * Plain DOM, no framework. Every server-provided string goes through textContent or
 * setAttribute (never innerHTML), so filenames and error messages cannot inject markup.
 */
(() => {
  "use strict";

  // ---------------------------------------------------------------------------
  // Configuration and constants
  // ---------------------------------------------------------------------------

  const CONFIG = readConfig();
  const TOKEN_KEY = "segenc_token";
  const MB = 1024 * 1024;
  // The stage vocabulary comes from the server (segenc.stages): active = not terminal.
  const TERMINAL = new Set(CONFIG.terminal || ["done", "failed", "cancelled"]);
  const ACTIVE_STATUSES = new Set((CONFIG.stages || ["queued", "splitting", "encoding", "concatenating"])
    .filter((s) => !TERMINAL.has(s)));
  const STATUS_LABELS = {
    queued: "Queued",
    splitting: "Splitting",
    encoding: "Encoding",
    concatenating: "Joining",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled",
  };
  const STATUS_HINTS = {
    queued: "Waiting for a worker",
    splitting: "Splitting into segments",
    concatenating: "Joining segments",
    cancelled: "Cancelled",
  };
  const HTTP_MESSAGES = {
    400: "The request was not valid.",
    401: "Not authorised. Check your API token.",
    403: "Access denied. Check your API token.",
    404: "Not found.",
    408: "The server timed out waiting for the upload.",
    413: `The file is too large. The upload limit is ${CONFIG.maxUploadMb} MB.`,
    415: "Unsupported file type. Please upload a video.",
    429: "Too many requests. Try again in a moment.",
    500: "The server hit an internal error.",
    502: "The server is unavailable (bad gateway).",
    503: "The service is temporarily unavailable.",
    504: "The server timed out.",
  };
  const MAX_TOASTS = 4;
  // Jobs are listed a page at a time ("Show more" loads the next); ?per_page=N changes the size.
  const PAGE_SIZE = Math.max(1, Math.min(200, parseInt(new URLSearchParams(location.search).get("per_page"), 10) || 20));
  const MAX_LIMIT = 200; // the API's largest page
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 15000;

  function readConfig() {
    const defaults = { apiTokenRequired: false, maxUploadMb: 0, ladder: ["480p", "720p", "1080p"] };
    const node = document.getElementById("segenc-config");
    if (!node) return defaults;
    try {
      return { ...defaults, ...JSON.parse(node.textContent) };
    } catch {
      return defaults;
    }
  }

  // ---------------------------------------------------------------------------
  // DOM helpers
  // ---------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";

  /** Create an element. props: class, text, dataset, on<event>, or any attribute. */
  function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    el.append(...children.flat().filter((c) => c != null && c !== false));
    return el;
  }

  // Static icon geometry (24x24, stroked). Never built from user data.
  const ICONS = {
    film: ["M3 5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z", "M7 3v18", "M17 3v18", "M3 8h4", "M3 16h4", "M17 8h4", "M17 16h4", "M3 12h18"],
    x: ["M18 6 6 18", "m6 6 12 12"],
    download: ["M12 4v11", "m7 10 5 5 5-5", "M5 20h14"],
    alert: ["M12 9v4", "M12 17h.01", "M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"],
    check: ["M20 6 9 17l-5-5"],
    cpu: ["M6 6h12v12H6z", "M9 9h6v6H9z", "M9 2v4", "M15 2v4", "M9 18v4", "M15 18v4", "M2 9h4", "M2 15h4", "M18 9h4", "M18 15h4"],
    upload: ["M12 16V4", "m7 9 5-5 5 5", "M4 15v3a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-3"],
  };

  function icon(name, size = 16) {
    const svg = document.createElementNS(SVG_NS, "svg");
    const attrs = {
      viewBox: "0 0 24 24", width: size, height: size, fill: "none", stroke: "currentColor",
      "stroke-width": "1.75", "stroke-linecap": "round", "stroke-linejoin": "round",
      "aria-hidden": "true", focusable: "false", class: "icon",
    };
    for (const [k, v] of Object.entries(attrs)) svg.setAttribute(k, String(v));
    for (const d of ICONS[name] || []) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  /** A progress bar: track + fill. */
  function createBar(label, extraClass = "") {
    const fill = h("div", { class: "bar-fill" });
    const bar = h("div", {
      class: `bar ${extraClass}`.trim(), role: "progressbar",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0", "aria-label": label,
    }, fill);
    return { bar, fill };
  }

  function setBar(refs, pct) {
    refs.fill.style.width = `${pct}%`;
    refs.bar.setAttribute("aria-valuenow", String(pct));
  }

  function setText(el, text) {
    const value = text == null ? "" : String(text);
    if (el.textContent !== value) el.textContent = value;
  }

  // ---------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  function toPct(progress) {
    if (!isNum(progress)) return 0;
    return Math.max(0, Math.min(100, Math.floor(progress * 100 + 1e-6)));
  }

  /** Bytes -> "12.3 MB". `scale` picks the precision (so "0.25 MB / 0.98 MB" stays readable). */
  function formatBytes(bytes, scale = bytes) {
    if (!isNum(bytes)) return "";
    if (scale >= 1024 * MB) return `${(bytes / (1024 * MB)).toFixed(2)} GB`;
    return `${(bytes / MB).toFixed(scale < MB ? 2 : 1)} MB`;
  }

  /** Seconds -> "1:23" or "1:02:03". */
  function formatClock(seconds) {
    if (!isNum(seconds) || seconds < 0) return "";
    const total = Math.round(seconds);
    const hrs = Math.floor(total / 3600);
    const mins = Math.floor((total % 3600) / 60);
    const secs = String(total % 60).padStart(2, "0");
    return hrs > 0 ? `${hrs}:${String(mins).padStart(2, "0")}:${secs}` : `${mins}:${secs}`;
  }

  function formatNumber(value, maxDecimals) {
    return Number(value.toFixed(maxDecimals)).toString();
  }

  function formatAgo(unixSeconds) {
    if (!isNum(unixSeconds)) return "";
    const diff = Math.max(0, Date.now() / 1000 - unixSeconds);
    if (diff < 5) return "just now";
    if (diff < 60) return `${Math.floor(diff)}s ago`;
    if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
    if (diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
    return new Date(unixSeconds * 1000).toLocaleDateString();
  }

  function formatSource(source) {
    if (!source) return "";
    const parts = [];
    if (isNum(source.width) && isNum(source.height)) parts.push(`${source.width}×${source.height}`);
    if (isNum(source.duration)) parts.push(formatClock(source.duration));
    if (isNum(source.fps)) parts.push(`${formatNumber(source.fps, 2)} fps`);
    if (source.codec) parts.push(String(source.codec));
    if (typeof source.has_audio === "boolean") parts.push(source.has_audio ? "audio" : "no audio");
    return parts.join(" · ");
  }

  /** "clip.mp4" + "720p" -> "clip-720p.mp4" */
  function downloadName(filename, quality) {
    const base = String(filename || "video").replace(/\.[^./\\]+$/, "") || "video";
    return `${base}-${quality}.mp4`;
  }

  // ---------------------------------------------------------------------------
  // Auth token
  // ---------------------------------------------------------------------------

  const tokenInput = $("token-input");

  function getToken() {
    if (!CONFIG.apiTokenRequired) return "";
    if (tokenInput) return tokenInput.value.trim();
    return (localStorage.getItem(TOKEN_KEY) || "").trim();
  }

  function saveToken(token) {
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage may be unavailable (private mode); the input still works */
    }
  }

  function authHeaders() {
    const token = getToken();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  /** Media elements and <a download> cannot send headers, so they carry ?token=. */
  function withToken(url) {
    const token = getToken();
    if (!token || !url) return url;
    const u = new URL(url, location.href);
    u.searchParams.set("token", token);
    return u.origin === location.origin ? u.pathname + u.search + u.hash : u.href;
  }

  function missingToken() {
    return CONFIG.apiTokenRequired && !getToken();
  }

  // ---------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function parseJson(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  function errorMessage(status, data) {
    if (data && typeof data.error === "string" && data.error.trim()) return data.error.trim();
    if (data && typeof data.message === "string" && data.message.trim()) return data.message.trim();
    return HTTP_MESSAGES[status] || `Request failed (HTTP ${status}).`;
  }

  async function api(path, { method = "GET" } = {}) {
    let res;
    try {
      res = await fetch(path, { method, headers: { Accept: "application/json", ...authHeaders() }, cache: "no-store" });
    } catch {
      throw new ApiError("The server could not be reached.", 0);
    }
    const data = parseJson(await res.text());
    if (!res.ok) throw new ApiError(errorMessage(res.status, data), res.status);
    return data;
  }

  // ---------------------------------------------------------------------------
  // Toasts (errors are also announced through the aria-live region)
  // ---------------------------------------------------------------------------

  const toastHost = $("toasts");

  function dismissToast(el) {
    if (!el || !el.isConnected) return;
    clearTimeout(el._timer);
    el.classList.add("leaving");
    setTimeout(() => el.remove(), 160);
  }

  function dismissToastKey(key) {
    toastHost.querySelectorAll(`.toast[data-key="${CSS.escape(key)}"]`).forEach(dismissToast);
  }

  /** kind: "error" (stays until dismissed) or "info" (auto-hides). */
  function toast(message, { kind = "error", key = null, timeout = kind === "error" ? 0 : 4000 } = {}) {
    if (key) dismissToastKey(key);
    const el = h("div", { class: `toast ${kind}`, dataset: key ? { key } : {} },
      icon(kind === "error" ? "alert" : "check", 18),
      h("p", { class: "toast-msg", text: message }),
      h("button", { type: "button", class: "icon-btn toast-close", "aria-label": "Dismiss", onclick: () => dismissToast(el) }, icon("x", 14)),
    );
    toastHost.append(el);
    const toasts = toastHost.querySelectorAll(".toast:not(.leaving)");
    for (let i = 0; i < toasts.length - MAX_TOASTS; i++) dismissToast(toasts[i]);
    if (timeout > 0) el._timer = setTimeout(() => dismissToast(el), timeout);
    return el;
  }

  const showError = (message, key) => toast(message, { kind: "error", key });
  const showInfo = (message) => toast(message, { kind: "info" });

  function reportApiError(prefix, err, key) {
    if (err && (err.status === 401 || err.status === 403)) {
      showError(`${err.message}`, "auth");
      if (tokenInput) tokenInput.closest(".token")?.classList.add("needs-token");
    } else {
      showError(`${prefix}: ${err.message}`, key);
    }
  }

  // ---------------------------------------------------------------------------
  // Job store. `seq` orders live updates against REST snapshots so an older
  // snapshot never overwrites a newer WebSocket update (or resurrects a deletion).
  // ---------------------------------------------------------------------------

  const jobsEl = $("jobs");
  const jobs = new Map(); // job_id -> entry
  const tombstones = new Map(); // job_id -> seq at deletion
  let seq = 0;

  function upsertJob(job, { live = false, overwrite = true } = {}) {
    if (!job || typeof job.job_id !== "string") return;
    const id = job.job_id;
    if (live && tombstones.has(id) && ACTIVE_STATUSES.has(job.status)) return; // late progress for a deleted job
    let entry = jobs.get(id);
    if (entry && !overwrite) return;
    const isNew = !entry;
    if (isNew) {
      entry = createJobEntry(job);
      jobs.set(id, entry);
      placeCard(entry);
    }
    entry.seq = ++seq;
    entry.job = job;
    renderJob(entry);
    updateJobCounts();
    if (isNew) scheduleWorkersRender();
  }

  function removeJob(id) {
    tombstones.set(id, ++seq);
    const entry = jobs.get(id);
    if (!entry) return;
    jobs.delete(id);
    if (entry.player) entry.player.video.removeAttribute("src");
    if (entry.stream) destroyStream(entry);
    entry.el.remove();
    updateJobCounts();
  }

  /** Newest first by created_at. */
  function placeCard(entry) {
    const created = entry.createdAt;
    for (const other of jobsEl.children) {
      const otherEntry = jobs.get(other.dataset.jobId);
      if (otherEntry && otherEntry !== entry && otherEntry.createdAt < created) {
        jobsEl.insertBefore(entry.el, other);
        return;
      }
    }
    jobsEl.append(entry.el);
  }

  function renderMore() {
    const more = $("jobs-more");
    if (!more) return;
    const left = Math.max(0, jobsTotal - jobsLoaded); // older jobs beyond the window
    more.hidden = left === 0 || PAGE_SIZE * pagesShown >= MAX_LIMIT;
    setText(more, `Show ${Math.min(left, PAGE_SIZE)} more of ${left} older job${left === 1 ? "" : "s"}`);
  }

  function setupMore() {
    const more = $("jobs-more");
    if (!more) return;
    more.addEventListener("click", async () => {
      pagesShown++;
      more.disabled = true;
      try {
        await loadJobs();
      } finally {
        more.disabled = false;
      }
    });
  }

  function updateJobCounts() {
    const all = [...jobs.values()];
    const active = all.filter((e) => ACTIVE_STATUSES.has(e.job.status)).length;
    setText($("jobs-count"), all.length ? `${all.length} total${active ? ` · ${active} active` : ""}` : "");
    $("jobs-empty").hidden = all.length > 0;
    if (missingToken()) setText($("jobs-empty"), "Enter your API token above to see jobs.");
    else setText($("jobs-empty"), "No jobs yet. Drop a video to get started.");
  }

  let pagesShown = 1;
  let jobsTotal = 0; // as of the last list load
  let jobsLoaded = 0; // how many of them that load returned (the window: pages shown x page size)

  async function loadJobs() {
    const startSeq = seq;
    let data;
    try {
      data = await api(`/api/jobs?limit=${Math.min(MAX_LIMIT, PAGE_SIZE * pagesShown)}`);
    } catch (err) {
      reportApiError("Could not load jobs", err, "load-jobs");
      return;
    }
    dismissToastKey("load-jobs");
    dismissToastKey("auth");
    const list = Array.isArray(data && data.jobs) ? data.jobs : [];
    const seen = new Set();
    for (const job of list) {
      if (!job || typeof job.job_id !== "string") continue;
      seen.add(job.job_id);
      const entry = jobs.get(job.job_id);
      if (entry && entry.seq > startSeq) continue; // a live update is newer
      if ((tombstones.get(job.job_id) || 0) > startSeq) continue; // deleted meanwhile
      upsertJob(job);
    }
    jobsTotal = data && Number.isFinite(data.total) ? data.total : list.length;
    jobsLoaded = list.length;
    renderMore();
    for (const [id, entry] of jobs) {
      if (!seen.has(id) && entry.seq <= startSeq) removeJob(id);
    }
  }

  // ---------------------------------------------------------------------------
  // Job card
  // ---------------------------------------------------------------------------

  function createJobEntry(job) {
    const entry = { job, seq: 0, createdAt: isNum(job.created_at) ? job.created_at : Date.now() / 1000, busy: false, player: null, stream: null };
    const r = (entry.refs = {});

    r.name = h("h3", { class: "job-name" });
    r.source = h("span", { class: "job-source" });
    r.created = h("span", { class: "job-created rel-time" });
    r.pill = h("span", { class: "status-pill" }, h("span", { class: "status-dot", "aria-hidden": "true" }), h("span", { class: "status-text" }));
    r.action = h("button", { type: "button", class: "btn btn-ghost btn-sm job-action", onclick: () => askConfirm(entry) });
    r.retry = h("button", { type: "button", class: "btn btn-ghost btn-sm job-retry", hidden: true, onclick: () => onRetry(entry) });
    r.confirmText = h("span", { class: "confirm-text" });
    r.confirmYes = h("button", { type: "button", class: "btn btn-danger btn-sm", dataset: { action: "confirm" }, onclick: () => onJobAction(entry) });
    r.confirmNo = h("button", { type: "button", class: "btn btn-ghost btn-sm", dataset: { action: "keep" }, onclick: () => closeConfirm(entry, true) });
    r.confirm = h("div", { class: "job-confirm", role: "group", hidden: true,
      onkeydown: (e) => { if (e.key === "Escape") { e.preventDefault(); closeConfirm(entry, true); } } },
      r.confirmText, r.confirmYes, r.confirmNo);
    r.thumb = h("div", { class: "job-thumb" }, icon("film", 18));
    r.skipped = h("p", { class: "job-note job-skipped", hidden: true });

    r.overallBar = createBar("Overall progress", "bar-lg");
    r.overallPct = h("span", { class: "overall-pct" });
    r.state = h("span", { class: "overall-state" });
    r.fps = h("span", { class: "fps" });
    r.eta = h("span", { class: "eta" });

    r.renditions = h("div", { class: "renditions" });
    r.renditionRows = new Map();
    r.workerChips = h("div", { class: "chips" });
    r.workers = h("div", { class: "job-workers", hidden: true }, h("span", { class: "job-workers-label" }, icon("cpu", 14), "Workers"), r.workerChips);
    r.workersKey = "";
    r.error = null;
    r.media = h("div", { class: "job-media-slot" });

    entry.el = h("article", { class: "job", dataset: { jobId: job.job_id } },
      h("header", { class: "job-head" },
        r.thumb,
        h("div", { class: "job-title" },
          r.name,
          h("p", { class: "job-meta" }, r.source, r.created),
        ),
        h("div", { class: "job-actions" }, r.pill, r.retry, r.action, r.confirm),
      ),
      r.skipped,
      h("div", { class: "overall" },
        r.overallBar.bar,
        h("div", { class: "overall-stats" }, r.overallPct, r.state, h("span", { class: "spacer" }), r.fps, r.eta),
      ),
      r.renditions,
      r.workers,
      r.media,
    );
    return entry;
  }

  function renderJob(entry) {
    const { job, refs: r, el } = entry;
    const status = STATUS_LABELS[job.status] ? job.status : "queued";
    const active = ACTIVE_STATUSES.has(status);
    const filename = job.filename || "untitled";

    el.dataset.status = status;
    setText(r.name, filename);
    r.name.title = filename;

    const sourceText = formatSource(job.source) || (active ? "Probing source…" : "");
    setText(r.source, sourceText);
    r.source.hidden = !sourceText;
    r.created.dataset.ts = String(entry.createdAt);
    setText(r.created, formatAgo(entry.createdAt));
    if (isNum(entry.createdAt)) r.created.title = new Date(entry.createdAt * 1000).toLocaleString();

    r.pill.dataset.status = status;
    setText(r.pill.querySelector(".status-text"), STATUS_LABELS[status]);

    renderAction(entry, active, filename);
    renderThumb(entry, filename);
    renderSkipped(entry);
    renderOverall(entry, status, active);
    renderRenditions(entry, status);
    renderJobWorkers(entry, active);
    renderJobError(entry);
    renderRequeues(entry);
    renderMedia(entry);
    renderStream(entry);
  }

  // Tasks the watchdog gave to another worker (their worker died or lost its connection).
  function renderRequeues(entry) {
    const { job, refs: r } = entry;
    const list = Array.isArray(job.requeued) ? job.requeued : [];
    if (!list.length) {
      if (r.requeues) r.requeues.remove();
      r.requeues = null;
      return;
    }
    if (!r.requeues) {
      r.requeues = h("p", { class: "job-note", role: "status" });
      (r.error || r.workers).after(r.requeues);
    }
    const last = list[list.length - 1];
    const from = last.worker ? ` from ${last.worker}` : "";
    const more = list.length > 1 ? ` (${list.length} tasks moved so far)` : "";
    setText(r.requeues, `Moved ${last.task}${from} to another worker: ${last.reason}${more}.`);
  }

  function renderAction(entry, active, filename) {
    const r = entry.refs;
    const btn = r.action;
    const verb = active ? "Cancel" : "Delete";
    btn.disabled = entry.busy;
    btn.dataset.action = verb.toLowerCase();
    setText(btn, entry.busy ? `${active ? "Cancelling" : "Deleting"}…` : verb);
    btn.setAttribute("aria-label", `${verb} ${filename}`);
    btn.hidden = !!entry.confirming;
    r.confirm.hidden = !entry.confirming;
    // Both remove the job's files: ask first, in place (Escape or Keep backs out).
    setText(r.confirmText, active ? "Cancel and delete this job?" : "Delete this job and its videos?");
    setText(r.confirmYes, active ? "Cancel job" : "Delete");
    r.confirmYes.setAttribute("aria-label", `${active ? "Cancel and delete" : "Delete"} ${filename} for good`);
    r.confirmYes.disabled = entry.busy;
    setText(r.confirmNo, "Keep");
    r.confirmNo.setAttribute("aria-label", `Keep ${filename}`);
    const failed = entry.job.status === "failed";
    r.retry.hidden = !failed || !!entry.confirming;
    r.retry.disabled = entry.busy;
    setText(r.retry, entry.busy && entry.retrying ? "Retrying…" : "Retry");
    r.retry.setAttribute("aria-label", `Retry ${filename}`);
  }

  function askConfirm(entry) {
    if (entry.busy) return;
    entry.confirming = true;
    renderAction(entry, ACTIVE_STATUSES.has(entry.job.status), entry.job.filename || "untitled");
    entry.refs.confirmYes.focus();
  }

  function closeConfirm(entry, refocus) {
    entry.confirming = false;
    renderAction(entry, ACTIVE_STATUSES.has(entry.job.status), entry.job.filename || "untitled");
    if (refocus) entry.refs.action.focus();
  }

  function renderThumb(entry, filename) {
    const r = entry.refs;
    const url = typeof entry.job.thumbnail === "string" && entry.job.thumbnail ? withToken(entry.job.thumbnail) : null;
    if (url && r.thumbUrl !== url) {
      r.thumbUrl = url;
      r.thumb.replaceChildren(h("img", { class: "job-thumb-img", src: url, alt: `A frame of ${filename}`, loading: "lazy", decoding: "async" }));
      r.thumb.classList.add("has-image");
    } else if (!url && r.thumbUrl) {
      r.thumbUrl = null;
      r.thumb.replaceChildren(icon("film", 18));
      r.thumb.classList.remove("has-image");
    }
  }

  function renderSkipped(entry) {
    const { job, refs: r } = entry;
    const skipped = Array.isArray(job.skipped) ? job.skipped.filter((q) => typeof q === "string") : [];
    r.skipped.hidden = skipped.length === 0;
    if (!skipped.length) return;
    const height = isNum(job.source_height) ? ` (the source is ${job.source_height} lines high)` : "";
    setText(r.skipped, `${skipped.join(", ")} skipped: above the source's height${height}; videos are never upscaled.`);
  }

  async function onRetry(entry) {
    if (entry.busy) return;
    const { job } = entry;
    const id = job.job_id;
    const name = job.filename || "untitled";
    entry.busy = true;
    entry.retrying = true;
    renderAction(entry, false, name);
    try {
      const data = await api(`/api/jobs/${encodeURIComponent(id)}/retry`, { method: "POST" });
      removeJob(id);
      if (data && typeof data.job_id === "string") {
        upsertJob({
          job_id: data.job_id, filename: job.filename, status: "queued", progress: 0, fps: null, eta: null,
          error: null, created_at: Date.now() / 1000, source: job.source, renditions: {}, workers: [],
        }, { overwrite: false });
        const card = jobs.get(data.job_id);
        if (card) card.refs.action.focus();
      }
    } catch (err) {
      reportApiError(`Could not retry "${name}"`, err);
    } finally {
      entry.busy = false;
      entry.retrying = false;
      if (jobs.get(id) === entry) renderAction(entry, ACTIVE_STATUSES.has(entry.job.status), name);
    }
  }

  function renderOverall(entry, status, active) {
    const { job, refs: r } = entry;
    const pct = status === "done" ? 100 : toPct(job.progress);
    setBar(r.overallBar, pct);
    setText(r.overallPct, `${pct}%`);

    let state = STATUS_HINTS[status] || "";
    if (status === "done") state = totalSizeText(job);
    if (status === "failed") state = "Encoding failed";
    setText(r.state, state);
    r.state.hidden = !state;

    const showFps = active && isNum(job.fps) && job.fps > 0;
    setText(r.fps, showFps ? `${formatNumber(job.fps, job.fps < 100 ? 1 : 0)} fps` : "");
    r.fps.hidden = !showFps;
    const showEta = active && isNum(job.eta) && job.eta >= 0;
    setText(r.eta, showEta ? `ETA ${formatClock(job.eta)}` : "");
    r.eta.hidden = !showEta;
  }

  function totalSizeText(job) {
    const list = Object.values(job.renditions || {}).filter((x) => x && isNum(x.bytes));
    if (!list.length) return "";
    const total = list.reduce((sum, x) => sum + x.bytes, 0);
    return `${list.length} rendition${list.length === 1 ? "" : "s"} · ${formatBytes(total)}`;
  }

  /** Rendition entries ordered by the configured ladder, then by height. */
  function orderedRenditions(job) {
    const ladder = CONFIG.ladder || [];
    const rank = (q) => {
      const i = ladder.indexOf(q);
      return i >= 0 ? i : ladder.length + (parseInt(q, 10) || 0) / 10000;
    };
    return Object.entries(job.renditions || {})
      .filter(([, r]) => r && typeof r === "object")
      .sort(([a], [b]) => rank(a) - rank(b));
  }

  function renditionPct(rendition, status) {
    if (status === "done" && rendition.url) return 100;
    if (isNum(rendition.progress)) return toPct(rendition.progress);
    if (isNum(rendition.frames_done) && isNum(rendition.frames_total) && rendition.frames_total > 0) {
      return toPct(rendition.frames_done / rendition.frames_total);
    }
    return 0;
  }

  function createRenditionRow(quality) {
    const bar = createBar(`${quality} progress`);
    const row = {
      bar,
      dims: h("span", { class: "rendition-dims" }),
      pct: h("span", { class: "pct" }),
    };
    row.el = h("div", { class: "rendition", dataset: { quality } },
      h("span", { class: "rendition-name", text: quality }),
      row.dims,
      bar.bar,
      row.pct,
    );
    return row;
  }

  function renderRenditions(entry, status) {
    const { job, refs: r } = entry;
    const ordered = orderedRenditions(job);
    const wanted = new Set(ordered.map(([q]) => q));
    for (const [q, row] of r.renditionRows) {
      if (!wanted.has(q)) {
        row.el.remove();
        r.renditionRows.delete(q);
      }
    }
    ordered.forEach(([quality, rendition], index) => {
      let row = r.renditionRows.get(quality);
      if (!row) {
        row = createRenditionRow(quality);
        r.renditionRows.set(quality, row);
      }
      if (r.renditions.children[index] !== row.el) r.renditions.insertBefore(row.el, r.renditions.children[index] || null);
      const pct = renditionPct(rendition, status);
      setBar(row.bar, pct);
      setText(row.pct, `${pct}%`);
      row.el.dataset.complete = String(pct >= 100);
      const dims = isNum(rendition.width) && isNum(rendition.height) ? `${rendition.width}×${rendition.height}` : "";
      setText(row.dims, dims);
      row.el.title = renditionTooltip(quality, rendition);
    });
    r.renditions.hidden = ordered.length === 0;
  }

  function renditionTooltip(quality, r) {
    const parts = [quality];
    if (isNum(r.frames_done) && isNum(r.frames_total)) parts.push(`${r.frames_done} / ${r.frames_total} frames`);
    if (isNum(r.fps) && r.fps > 0) parts.push(`${formatNumber(r.fps, 1)} fps`);
    if (isNum(r.bytes)) parts.push(formatBytes(r.bytes));
    return parts.join(" · ");
  }

  function renderJobWorkers(entry, active) {
    const { job, refs: r } = entry;
    const names = active && Array.isArray(job.workers) ? job.workers.filter((w) => typeof w === "string") : [];
    const key = names.join("\n");
    if (key !== r.workersKey) {
      r.workersKey = key;
      r.workerChips.replaceChildren(...names.map((name) => h("span", { class: "chip worker-chip", title: name, text: name })));
    }
    r.workers.hidden = names.length === 0;
  }

  function renderJobError(entry) {
    const { job, refs: r } = entry;
    const message = typeof job.error === "string" && job.error.trim() ? job.error.trim() : (job.status === "failed" ? "The job failed." : "");
    if (!message) {
      if (r.error) r.error.remove();
      r.error = null;
      return;
    }
    if (!r.error) {
      r.error = h("p", { class: "error job-error" }, icon("alert", 16), h("span", { class: "error-text" }));
      r.workers.after(r.error);
    }
    setText(r.error.querySelector(".error-text"), message);
  }

  async function onJobAction(entry) {
    if (entry.busy) return;
    const { job } = entry;
    const id = job.job_id;
    const active = ACTIVE_STATUSES.has(job.status);
    entry.busy = true;
    entry.confirming = false;
    renderAction(entry, active, job.filename || "untitled");
    try {
      const data = await api(`/api/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
      const updated = data && data.job && data.job.job_id === id ? data.job : null;
      if (updated) upsertJob(updated);
      else removeJob(id);
    } catch (err) {
      if (err.status === 404) removeJob(id);
      else reportApiError(`Could not ${active ? "cancel" : "delete"} "${job.filename || id}"`, err);
    } finally {
      entry.busy = false;
      if (jobs.get(id) === entry) renderAction(entry, ACTIVE_STATUSES.has(entry.job.status), entry.job.filename || "untitled");
    }
  }

  // ---------------------------------------------------------------------------
  // Player + downloads (done jobs)
  // ---------------------------------------------------------------------------

  function playableRenditions(job) {
    if (job.status !== "done") return [];
    return orderedRenditions(job).filter(([, r]) => typeof r.url === "string" && r.url);
  }

  function renderMedia(entry) {
    const playable = playableRenditions(entry.job);
    if (!playable.length) {
      if (entry.player) destroyPlayer(entry);
      return;
    }
    if (!entry.player) createPlayer(entry, playable);
    updatePlayer(entry, playable);
  }

  function createPlayer(entry, playable) {
    const video = h("video", { class: "player", controls: true, preload: "metadata", playsinline: true,
      "aria-label": `Player: ${entry.job.filename || "video"}` });
    const p = (entry.player = {
      video,
      quality: null,
      src: null,
      pending: null,
      buttons: h("div", { class: "quality-switch", role: "group", "aria-label": "Playback quality" }),
      downloads: h("div", { class: "downloads" }),
      buttonsKey: "",
      downloadsKey: "",
    });
    video.addEventListener("loadedmetadata", () => restorePlayback(p));
    p.root = h("div", { class: "job-media" },
      h("div", { class: "player-frame" }, video),
      h("div", { class: "player-side" },
        h("span", { class: "side-label", text: "Quality" }),
        p.buttons,
        h("span", { class: "side-label", text: "Downloads" }),
        p.downloads,
      ),
    );
    entry.refs.media.append(p.root);
    const names = playable.map(([q]) => q);
    setQuality(entry, names.includes("480p") ? "480p" : names[0]);
  }

  function destroyPlayer(entry) {
    entry.player.video.removeAttribute("src");
    entry.player.root.remove();
    entry.player = null;
  }

  function updatePlayer(entry, playable) {
    const p = entry.player;
    const names = playable.map(([q]) => q);

    const buttonsKey = names.join(",");
    if (buttonsKey !== p.buttonsKey) {
      p.buttonsKey = buttonsKey;
      p.buttons.replaceChildren(...names.map((q) =>
        h("button", { type: "button", class: "quality-btn", dataset: { quality: q }, text: q, "aria-pressed": "false", onclick: () => setQuality(entry, q) })));
    }

    const downloadsKey = JSON.stringify([getToken(), playable.map(([q, r]) => [q, r.url, r.bytes])]);
    if (downloadsKey !== p.downloadsKey) {
      p.downloadsKey = downloadsKey;
      p.downloads.replaceChildren(...playable.map(([q, r]) => downloadLink(entry.job, q, r)));
    }

    if (!names.includes(p.quality)) setQuality(entry, names.includes("480p") ? "480p" : names[0]);
    else if (withToken(entry.job.renditions[p.quality].url) !== p.src) setQuality(entry, p.quality, true);
    else markQuality(p);
  }

  function downloadLink(job, quality, rendition) {
    const size = isNum(rendition.bytes) ? formatBytes(rendition.bytes) : "";
    return h("a", {
      class: "download", href: withToken(rendition.url), download: downloadName(job.filename, quality),
      dataset: { quality }, "aria-label": `Download ${quality}${size ? ` (${size})` : ""}`,
    },
    icon("download", 14),
    h("span", { class: "download-quality", text: quality }),
    size ? h("span", { class: "download-size", text: size }) : null);
  }

  /** Switch source, keeping position and play state. */
  function setQuality(entry, quality, force = false) {
    const p = entry.player;
    const rendition = entry.job.renditions && entry.job.renditions[quality];
    if (!p || !rendition || !rendition.url) return;
    const src = withToken(rendition.url);
    if (!force && p.quality === quality && p.src === src) return;
    const video = p.video;
    if (p.src) {
      // If a switch is already in flight keep its saved position rather than the reset one.
      p.pending = p.pending || { time: video.currentTime, play: !video.paused && !video.ended };
    }
    p.quality = quality;
    p.src = src;
    video.dataset.quality = quality;
    video.setAttribute("aria-label", `Player: ${entry.job.filename || "video"}, ${quality}`);
    video.src = src;
    markQuality(p);
  }

  function restorePlayback(p) {
    const pending = p.pending;
    p.pending = null;
    if (!pending) return;
    const video = p.video;
    if (pending.time > 0) {
      const limit = isNum(video.duration) ? Math.max(0, video.duration - 0.05) : pending.time;
      video.currentTime = Math.min(pending.time, limit);
    }
    if (pending.play) video.play().catch(() => { /* autoplay policies; the user can press play */ });
  }

  function markQuality(p) {
    for (const btn of p.buttons.querySelectorAll(".quality-btn")) {
      const on = btn.dataset.quality === p.quality;
      btn.classList.toggle("active", on);
      btn.setAttribute("aria-pressed", String(on));
    }
  }

  // ---------------------------------------------------------------------------
  // Stream player: the job's HLS stream, playable while it encodes (hls.js, or native HLS)
  // ---------------------------------------------------------------------------

  const STREAM_TICK_MS = 500;
  const STREAM_AHEAD_S = 1; // a rung is eligible if its published prefix reaches this far past the position

  function streamOf(job) {
    return job && job.stream && job.stream.ready ? job.stream : null;
  }

  function renderStream(entry) {
    const s = streamOf(entry.job);
    if (!s || !(ACTIVE_STATUSES.has(entry.job.status) || entry.job.status === "done")) {
      if (entry.stream) destroyStream(entry);
      return;
    }
    if (!entry.stream) createStream(entry);
    updateStream(entry);
  }

  function absoluteUrl(path) {
    return new URL(withToken(path), window.location.href).href;
  }

  function copyField(label, kind) {
    const input = h("input", { type: "text", class: "stream-url", readonly: true, dataset: { kind }, "aria-label": `${label} URL` });
    const btn = h("button", { type: "button", class: "btn btn-ghost btn-sm stream-copy", text: "Copy",
      "aria-label": `Copy the ${label} URL`,
      onclick: () => {
        input.select();
        const done = () => { setText(btn, "Copied"); setTimeout(() => setText(btn, "Copy"), 1500); };
        if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => document.execCommand("copy"));
        else { document.execCommand("copy"); done(); }
      } });
    return { input, row: h("div", { class: "stream-url-row" }, h("span", { class: "stream-url-label", text: label }), input, btn) };
  }

  function createStream(entry) {
    // Not muted by default: the user presses play; the rung buttons appear once the master is read.
    const video = h("video", { class: "stream-video", controls: true, preload: "auto", playsinline: true,
      "aria-label": `Stream player: ${entry.job.filename || "video"}` });
    const hlsUrl = copyField("HLS", "hls");
    const dashUrl = copyField("DASH", "dash");
    const st = (entry.stream = {
      video, hls: null, manual: -1, rungs: [], ends: [], buttonsKey: "",
      buttons: h("div", { class: "quality-switch stream-switch", role: "group", "aria-label": "Stream quality" }),
      note: h("p", { class: "stream-note" }),
      hlsUrl, dashUrl, timer: 0,
    });
    st.root = h("div", { class: "job-media job-stream" },
      h("div", { class: "player-frame" }, video),
      h("div", { class: "player-side" },
        h("span", { class: "side-label", text: "Stream" }),
        st.buttons,
        st.note,
        h("span", { class: "side-label", text: "Stream URLs" }),
        hlsUrl.row, dashUrl.row,
      ),
    );
    entry.refs.media.prepend(st.root);
    attachStream(entry);
    st.timer = setInterval(() => capRungs(entry), STREAM_TICK_MS);
  }

  function attachStream(entry) {
    const st = entry.stream;
    const url = entry.job.stream.hls;
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      const hls = new Hls({
        startPosition: 0, // else it starts near the live edge of a growing (EVENT) playlist
        enableWorker: false,
        xhrSetup: (xhr) => {
          const token = getToken();
          if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
        },
      });
      st.hls = hls;
      st.video.dataset.engine = "hls.js";
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        st.rungs = hls.levels.map((l) => `${Math.min(l.width, l.height)}p`);
        renderStreamButtons(entry);
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, () => markStream(entry));
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else setText(st.note, `Stream error: ${data.details}`);
      });
      hls.loadSource(url);
      hls.attachMedia(st.video);
    } else if (st.video.canPlayType("application/vnd.apple.mpegurl")) {
      st.video.dataset.engine = "native";
      st.video.src = withToken(url); // the playlists then carry ?token= on every URI
    } else {
      setText(st.note, "This browser cannot play HLS; use the URLs below in a player.");
    }
  }

  function destroyStream(entry) {
    const st = entry.stream;
    clearInterval(st.timer);
    if (st.hls) st.hls.destroy();
    st.video.removeAttribute("src");
    st.root.remove();
    entry.stream = null;
  }

  function updateStream(entry) {
    const st = entry.stream;
    const s = entry.job.stream;
    for (const [field, path] of [[st.hlsUrl, s.hls], [st.dashUrl, s.dash]]) {
      const value = absoluteUrl(path);
      if (field.input.value !== value) field.input.value = value;
    }
    st.dashUrl.row.hidden = !s.final; // the MPD is written when the job ends
    const total = Object.values(s.segments || {});
    setText(st.note, s.final ? "" : `Encoding: ${Math.min(...(total.length ? total : [0]))} segment(s) of every rung published`);
    capRungs(entry);
  }

  /** Where rung ``i``'s published prefix ends (seconds), from the job's per-rung segment counts
   *  and the fragment times of the level hls.js has loaded (all rungs share segment boundaries). */
  function rungEnd(entry, i) {
    const st = entry.stream;
    const s = entry.job.stream;
    if (!st.hls || s.final) return Infinity;
    const count = (s.segments || {})[st.rungs[i]];
    const cur = st.hls.levels[st.hls.currentLevel >= 0 ? st.hls.currentLevel : 0];
    const frags = cur && cur.details ? cur.details.fragments : [];
    if (count === undefined || !frags.length || count > frags.length) return Infinity;
    return count ? frags[count - 1].start + frags[count - 1].duration : 0;
  }

  /** Never let hls.js pick a rung whose published prefix is behind the position (it would stall
   *  there although another rung has more): cap the automatic choice, and leave a lagging rung. */
  function capRungs(entry) {
    const st = entry.stream;
    const hls = st && st.hls;
    if (!hls || !st.rungs.length) return;
    const pos = st.video.currentTime + STREAM_AHEAD_S;
    const ok = st.rungs.map((_, i) => rungEnd(entry, i) >= pos);
    let cap = -1;
    while (cap + 1 < ok.length && ok[cap + 1]) cap++;
    const all = cap === ok.length - 1;
    if (st.manual < 0) hls.autoLevelCapping = all ? -1 : Math.max(0, cap);
    const current = hls.currentLevel;
    if (current >= 0 && !ok[current]) {
      const best = ok.lastIndexOf(true);
      if (best >= 0) hls.nextLevel = best;
    }
    for (const btn of st.buttons.querySelectorAll(".stream-btn[data-level]")) {
      const i = Number(btn.dataset.level);
      btn.disabled = !ok[i];
      btn.title = ok[i] ? "" : "Not published this far yet";
    }
  }

  function renderStreamButtons(entry) {
    const st = entry.stream;
    const key = st.rungs.join(",");
    if (key === st.buttonsKey) return;
    st.buttonsKey = key;
    const button = (label, level) => h("button", {
      type: "button", class: "stream-btn", text: label, "aria-pressed": "false",
      dataset: level < 0 ? { auto: "1" } : { level: String(level), quality: st.rungs[level] },
      onclick: () => setStreamLevel(entry, level),
    });
    st.buttons.replaceChildren(button("Auto", -1), ...st.rungs.map((q, i) => button(q, i)));
    markStream(entry);
  }

  /** -1: automatic (within the cap); else a rung chosen by hand (kept until Auto). */
  function setStreamLevel(entry, level) {
    const st = entry.stream;
    st.manual = level;
    if (st.hls) {
      if (level >= 0) st.hls.autoLevelCapping = -1;
      st.hls.currentLevel = level; // -1: hls.js's automatic choice again
    }
    capRungs(entry);
    markStream(entry);
  }

  function markStream(entry) {
    const st = entry.stream;
    if (!st) return;
    const playing = st.hls ? st.hls.currentLevel : -1;
    st.video.dataset.level = String(playing);
    if (playing >= 0 && st.rungs[playing]) st.video.dataset.quality = st.rungs[playing];
    for (const btn of st.buttons.querySelectorAll(".stream-btn")) {
      const on = btn.dataset.auto ? st.manual < 0 : Number(btn.dataset.level) === st.manual;
      btn.classList.toggle("active", on);
      btn.setAttribute("aria-pressed", String(on));
    }
  }

  // ---------------------------------------------------------------------------
  // Workers panel
  // ---------------------------------------------------------------------------

  let workersSeq = 0;
  let lastWorkers = [];
  let workersFrame = 0;

  function setWorkers(list) {
    workersSeq++;
    lastWorkers = Array.isArray(list) ? list : [];
    renderWorkers();
  }

  /** Re-render soon (task chips show job filenames, which may arrive after the workers list). */
  function scheduleWorkersRender() {
    if (workersFrame || !lastWorkers.length) return;
    workersFrame = requestAnimationFrame(() => {
      workersFrame = 0;
      renderWorkers();
    });
  }

  function renderWorkers() {
    const workers = lastWorkers.filter((w) => w && typeof w.name === "string");
    workers.sort((a, b) => Number(!!b.online) - Number(!!a.online) || a.name.localeCompare(b.name, undefined, { numeric: true }));
    $("workers").replaceChildren(...workers.map(workerItem));
    $("workers-empty").hidden = workers.length > 0;
    const online = workers.filter((w) => w.online).length;
    setText($("workers-count"), workers.length ? `${online}/${workers.length} online` : "");
  }

  function workerItem(worker) {
    const active = Array.isArray(worker.active) ? worker.active.filter(Boolean) : [];
    const online = !!worker.online;
    const heartbeat = h("span", { class: "worker-seen rel-time" });
    if (isNum(worker.last_heartbeat)) {
      heartbeat.dataset.ts = String(worker.last_heartbeat);
      heartbeat.textContent = formatAgo(worker.last_heartbeat);
      heartbeat.title = `Last heartbeat ${new Date(worker.last_heartbeat * 1000).toLocaleString()}`;
    } else {
      heartbeat.textContent = online ? "" : "never seen";
    }
    const tasks = active.length
      ? h("div", { class: "chips" }, active.map(taskChip))
      : h("span", { class: "worker-idle", text: online ? "Idle" : "Offline" });
    return h("li", { class: "worker", dataset: { worker: worker.name, online: String(online), busy: String(active.length > 0) } },
      h("div", { class: "worker-row" },
        h("span", { class: "worker-dot", "aria-hidden": "true" }),
        h("span", { class: "worker-name", title: worker.name, text: worker.name }),
        h("span", { class: "visually-hidden", text: online ? "online" : "offline" }),
        heartbeat,
      ),
      tasks,
    );
  }

  function taskChip(task) {
    const jobId = task && typeof task.job_id === "string" ? task.job_id : "";
    const chunk = task && typeof task.chunk_id === "string" ? task.chunk_id : "";
    const entry = jobs.get(jobId);
    const label = entry ? entry.job.filename : jobId.slice(0, 8);
    return h("span", { class: "chip task-chip", title: `${label || jobId} · ${chunk}`, dataset: { jobId } },
      h("span", { class: "task-chunk", text: chunk || "task" }),
      label ? h("span", { class: "task-job", text: label }) : null);
  }

  async function loadWorkers() {
    const startSeq = workersSeq;
    try {
      const data = await api("/api/workers");
      if (workersSeq === startSeq) setWorkers(data && data.workers);
    } catch (err) {
      if (err.status === 401 || err.status === 403) return; // loadJobs reports auth problems
      reportApiError("Could not load workers", err, "load-workers");
    }
  }

  // ---------------------------------------------------------------------------
  // Uploads
  // ---------------------------------------------------------------------------

  const uploadsEl = $("uploads");

  function uploadFiles(fileList) {
    for (const file of Array.from(fileList || [])) uploadFile(file);
  }

  function uploadFile(file) {
    if (missingToken()) {
      showError("Enter your API token before uploading.", "auth");
      tokenInput?.focus();
      return;
    }
    const limit = CONFIG.maxUploadMb > 0 ? CONFIG.maxUploadMb * MB : Infinity;
    if (file.size > limit) {
      showError(`"${file.name}" is too large (${formatBytes(file.size)}). The upload limit is ${CONFIG.maxUploadMb} MB.`);
      return;
    }

    const xhr = new XMLHttpRequest();
    const row = createUploadRow(file, () => xhr.abort());
    xhr.open("POST", "/api/upload");
    xhr.setRequestHeader("Accept", "application/json");
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);

    xhr.upload.onprogress = (e) => updateUploadRow(row, e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.upload.onload = () => setUploadState(row, "processing", "Processing…");
    xhr.onload = () => onUploadResponse(xhr, file, row);
    xhr.onerror = () => {
      finishUploadRow(row);
      showError(`Upload of "${file.name}" failed: the connection to the server was lost.`);
    };
    xhr.onabort = () => {
      finishUploadRow(row);
      showInfo(`Upload of "${file.name}" cancelled.`);
    };

    const form = new FormData();
    form.append("file", file, file.name);
    // Encoding options: only those the user set (the server refuses unknown fields and values).
    for (const [field, id] of [["preset", "preset-select"], ["codec", "codec-select"], ["ladder", "ladder-input"]]) {
      const value = ($(id)?.value || "").trim();
      if (value) form.append(field, value);
    }
    xhr.send(form);
  }

  function onUploadResponse(xhr, file, row) {
    const data = parseJson(xhr.responseText);
    if (xhr.status >= 200 && xhr.status < 300 && data && typeof data.job_id === "string") {
      setUploadState(row, "done", "Queued");
      setTimeout(() => finishUploadRow(row), 1500);
      upsertJob({
        job_id: data.job_id, filename: file.name, status: "queued", progress: 0, fps: null, eta: null,
        error: null, created_at: Date.now() / 1000, source: null, renditions: {}, workers: [],
      }, { overwrite: false });
      return;
    }
    finishUploadRow(row);
    const message = xhr.status >= 200 && xhr.status < 300 ? "the server returned an unexpected response." : errorMessage(xhr.status, data);
    if (xhr.status === 401 || xhr.status === 403) tokenInput?.closest(".token")?.classList.add("needs-token");
    // 415/422: the file itself was refused (the message says why); anything else: the upload failed.
    const refused = xhr.status === 415 || xhr.status === 422;
    showError(refused ? `"${file.name}" was not accepted: ${message}` : `Upload of "${file.name}" failed: ${message}`);
  }

  function createUploadRow(file, onCancel) {
    const bar = createBar(`Uploading ${file.name}`);
    const row = {
      bar,
      bytes: h("span", { class: "upload-bytes" }),
      pct: h("span", { class: "upload-pct", text: "0%" }),
      status: h("span", { class: "upload-status", text: "Uploading…" }),
      cancel: h("button", { type: "button", class: "icon-btn upload-cancel", "aria-label": `Cancel upload of ${file.name}`, title: "Cancel upload", onclick: onCancel }, icon("x", 14)),
    };
    row.el = h("li", { class: "upload", dataset: { state: "uploading" } },
      h("div", { class: "upload-icon", "aria-hidden": "true" }, icon("upload", 16)),
      h("div", { class: "upload-main" },
        h("div", { class: "upload-top" },
          h("span", { class: "upload-name", title: file.name, text: file.name }),
          row.status,
        ),
        bar.bar,
        h("div", { class: "upload-bottom" }, row.bytes, row.pct),
      ),
      row.cancel,
    );
    updateUploadRow(row, 0, file.size);
    uploadsEl.append(row.el);
    return row;
  }

  function updateUploadRow(row, loaded, total) {
    const pct = total > 0 ? Math.min(100, Math.floor((loaded / total) * 100)) : 0;
    setBar(row.bar, pct);
    setText(row.pct, `${pct}%`);
    setText(row.bytes, `${formatBytes(loaded, total)} / ${formatBytes(total)}`);
  }

  function setUploadState(row, state, label) {
    row.el.dataset.state = state;
    setText(row.status, label);
    if (state !== "uploading") {
      setBar(row.bar, 100);
      setText(row.pct, "100%");
    }
    if (state === "done") row.cancel.hidden = true;
  }

  function finishUploadRow(row) {
    row.el.classList.add("leaving");
    setTimeout(() => row.el.remove(), 200);
  }

  // ---------------------------------------------------------------------------
  // File picker and page-wide drag & drop
  // ---------------------------------------------------------------------------

  function setupPicker() {
    const input = $("file-input");
    $("choose-file").addEventListener("click", () => input.click());
    $("drop-zone").addEventListener("click", (e) => {
      if (e.target === e.currentTarget || !e.target.closest("button, a, input, select, label")) input.click();
    });
    input.addEventListener("change", () => {
      uploadFiles(input.files);
      input.value = ""; // allow choosing the same file again
    });
  }

  function setupDragAndDrop() {
    const overlay = $("drop-overlay");
    let depth = 0;
    const hasFiles = (e) => !!e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
    const show = (on) => {
      overlay.hidden = !on;
      document.body.classList.toggle("is-dragging", on);
    };

    window.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth++;
      show(true);
    });
    window.addEventListener("dragover", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      show(true);
    });
    window.addEventListener("dragleave", (e) => {
      if (!hasFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) show(false);
    });
    window.addEventListener("drop", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      show(false);
      uploadFiles(e.dataTransfer.files);
    });
    window.addEventListener("blur", () => {
      depth = 0;
      show(false);
    });
  }

  // ---------------------------------------------------------------------------
  // Token input
  // ---------------------------------------------------------------------------

  let appliedToken = null;

  function setupToken() {
    if (!tokenInput) return;
    try {
      tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
    } catch {
      /* ignore */
    }
    appliedToken = getToken();
    let timer = null;
    const apply = () => {
      clearTimeout(timer);
      const token = getToken();
      saveToken(token);
      if (token === appliedToken) return;
      appliedToken = token;
      tokenInput.closest(".token")?.classList.toggle("needs-token", !token);
      dismissToastKey("auth");
      refreshAll();
      live.restart();
    };
    tokenInput.addEventListener("input", () => {
      saveToken(getToken()); // uploads use the value right away
      clearTimeout(timer);
      timer = setTimeout(apply, 600);
    });
    tokenInput.addEventListener("change", apply);
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      apply();
    });
    tokenInput.closest(".token")?.classList.toggle("needs-token", !getToken());
  }

  // ---------------------------------------------------------------------------
  // Live updates (WebSocket only; never polled)
  // ---------------------------------------------------------------------------

  function setHealth(state, label, detail) {
    const el = $("health");
    el.dataset.state = state;
    setText(el.querySelector(".health-label"), label);
    el.title = detail || label;
  }

  const live = {
    ws: null,
    attempt: 0,
    timer: null,
    needResync: false,

    url() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const token = getToken();
      return `${proto}//${location.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ""}`;
    },

    connect() {
      clearTimeout(this.timer);
      this.timer = null;
      if (missingToken()) {
        setHealth("offline", "No token", "Enter an API token to receive live updates");
        return;
      }
      setHealth("connecting", "Connecting", "Connecting to live updates…");
      let ws;
      try {
        ws = new WebSocket(this.url());
      } catch {
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        if (this.ws !== ws) return;
        this.attempt = 0;
        setHealth("live", "Live", "Connected: receiving live updates");
        if (this.needResync) {
          this.needResync = false;
          refreshAll();
        }
      };
      ws.onmessage = (ev) => {
        if (this.ws === ws) handleMessage(ev.data);
      };
      ws.onclose = () => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.needResync = true;
        this.scheduleReconnect();
      };
    },

    scheduleReconnect() {
      const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempt);
      const delay = Math.round(base * (0.75 + Math.random() * 0.5));
      this.attempt++;
      setHealth("offline", "Offline", `Disconnected. Reconnecting in ${Math.ceil(delay / 1000)}s…`);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), delay);
    },

    /** Reconnect now (token changed, network back). */
    restart() {
      const old = this.ws;
      this.ws = null;
      if (old) old.close();
      this.attempt = 0;
      this.connect();
    },
  };

  function handleMessage(raw) {
    const msg = parseJson(typeof raw === "string" ? raw : "");
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "job":
        upsertJob(msg.job, { live: true });
        break;
      case "deleted":
        if (typeof msg.job_id === "string") removeJob(msg.job_id);
        break;
      case "workers":
        setWorkers(msg.workers);
        break;
      default:
        break; // unknown message types are ignored for forward compatibility
    }
  }

  function refreshAll() {
    if (missingToken()) {
      updateJobCounts();
      return Promise.resolve();
    }
    return Promise.all([loadJobs(), loadWorkers()]);
  }

  // ---------------------------------------------------------------------------
  // Relative times ("3s ago") tick locally; no server requests.
  // ---------------------------------------------------------------------------

  function tickRelativeTimes() {
    for (const el of document.querySelectorAll(".rel-time[data-ts]")) {
      setText(el, formatAgo(Number(el.dataset.ts)));
    }
  }

  // ---------------------------------------------------------------------------
  // Boot
  // ---------------------------------------------------------------------------

  function init() {
    setupToken();
    setupPicker();
    setupDragAndDrop();
    setupMore();
    updateJobCounts();
    refreshAll();
    live.connect();
    setInterval(tickRelativeTimes, 5000);
    window.addEventListener("online", () => {
      if (!live.ws) live.restart();
    });
  }

  init();
})();
