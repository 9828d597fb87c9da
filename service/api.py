"""The JSON API. Views validate, call one function, return a dict."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import uuid
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file
from werkzeug.exceptions import ClientDisconnected

from segenc import layout
from segenc.codecs import check_source
from segenc.errors import CorruptInputError, IncompatibleError, InputError, LimitExceededError
from segenc.model import is_rung_name
from segenc.presets import FIELDS, OptionError, describe, job_options
from segenc.probe import probe

from .auth import token_ok
from .jobs import Jobs, parse_job_id

api = Blueprint("api", __name__, url_prefix="/api")
MAX_PAGE, MAX_LIMIT = 1_000_000, 200


def jobs() -> Jobs:
    return current_app.extensions["segenc_jobs"]


def error(message: str, status: int):
    return jsonify(error=message), status


@api.before_request
def require_token():
    if not token_ok(current_app):
        return error("missing or wrong API token", 401)


@api.post("/upload")
def upload():
    """Refuse early (too many uploads from this client, no room on the disk), then stream the file
    into ``uploads/<job>/source.part``; a stalled or failed upload leaves no file and no open handle."""
    client = request.remote_addr or "?"
    slots = current_app.extensions["segenc_uploads"]
    if not slots.acquire(client):
        return _closing(error(f"too many uploads at once from {client} (at most {slots.per_client}); "
                              f"wait for one to finish", 429))
    try:
        return _closing(_upload())
    finally:
        slots.release(client)


def _closing(resp):
    """Upload errors may leave the body unread: close the connection instead of parsing it as a request."""
    resp = current_app.make_response(resp)
    if resp.status_code >= 400:
        resp.headers["Connection"] = "close"
    return resp


def _upload():
    root = current_app.config["TMP_DIR"]
    reserve = int(current_app.config["DISK_RESERVE_MB"]) << 20
    free = shutil.disk_usage(root).free
    length = request.content_length or 0
    if length + reserve > free and length <= (current_app.config["MAX_CONTENT_LENGTH"] or length):
        return error(f"not enough free space on the storage for this upload: it is {_mb(length)}, "
                     f"{_mb(max(0, free - reserve))} can be accepted now", 507)
    idle = float(current_app.config["UPLOAD_IDLE_SECONDS"])
    sock = request.environ.get("gunicorn.socket")
    if sock is not None and idle > 0:
        sock.settimeout(idle)  # each read waits at most this long: a stalled upload ends here
    job_id = str(uuid.uuid4())
    folder = jobs().upload_dir(job_id)
    g.upload_part = folder / "source.part"
    accepted = False
    try:
        resp = _accept(job_id, folder)
        accepted = isinstance(resp, tuple) and resp[1] == 202
        return resp
    except (TimeoutError, socket.timeout, ClientDisconnected):
        # (gunicorn reports a read that timed out as the end of the body: werkzeug's ClientDisconnected)
        return error(f"the upload stopped before its end (nothing sent for {idle:g} s, or the client went away); "
                     f"it was dropped", 408)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return error(f"no space left on the storage for this upload ({_mb(length)}); it was removed", 507)
        raise
    finally:
        handle = g.pop("upload_handle", None)
        if handle is not None:
            handle.close()
        if not accepted:
            shutil.rmtree(folder, ignore_errors=True)
        if sock is not None:
            sock.settimeout(None)


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


def _accept(job_id: str, folder):
    f = request.files.get("file")
    if f is None or not f.filename:
        shutil.rmtree(folder, ignore_errors=True)
        return error("no file in the upload (multipart field 'file')", 400)
    # Every field is checked against segenc.presets.FIELDS: unknown fields and values are refused.
    extra_files = sorted(k for k in request.files if k != "file")
    repeated = sorted(k for k in request.form if len(request.form.getlist(k)) > 1)
    try:
        if extra_files:
            raise OptionError(f"unknown file field(s) {', '.join(extra_files)}; the upload is the one field 'file'",
                              extra_files[0], ["file"])
        if repeated:
            raise OptionError(f"field(s) {', '.join(repeated)} given more than once", repeated[0],
                              FIELDS.get(repeated[0]))
        settings, ladder = job_options(request.form.to_dict())
    except OptionError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return jsonify(exc.to_dict()), 400
    f.stream.flush()
    source = folder / "source"
    os.replace(g.upload_part, source)
    try:
        info = probe(source, settings.limits)
        check_source(info, settings)
    except (CorruptInputError, LimitExceededError, IncompatibleError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return error(_public(exc), 422)
    except InputError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return error(_public(exc), 415)
    jobs().start(job_id, os.path.basename(f.filename)[:255], info, ladder, settings, request.form.to_dict())
    return {"job_id": job_id, "status": "queued"}, 202


def _public(exc: Exception) -> str:
    """Errors begin with the file's name on disk ('source: '): the client knows which file it sent,
    so the message starts with what is wrong ('not a video file ...')."""
    return str(exc).removeprefix("source: ")


@api.get("/status/<job_id>")
def status(job_id: str):
    jid = parse_job_id(job_id)
    if jid is None:
        return error("not a valid job id", 400)
    view = jobs().view(jid, refresh=True)
    return view if view else error("no such job", 404)


@api.get("/jobs")
def list_jobs():
    try:
        page = int(request.args.get("page", 1))
        limit = int(request.args.get("limit", 50))
    except ValueError:
        return error("page and limit must be whole numbers", 400)
    if not 1 <= page <= MAX_PAGE:
        return error(f"page must be between 1 and {MAX_PAGE}", 400)
    if not 1 <= limit <= MAX_LIMIT:
        return error(f"limit must be between 1 and {MAX_LIMIT}", 400)
    return jobs().list(page, limit)


@api.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    jid = parse_job_id(job_id)
    if jid is None:
        return error("not a valid job id", 400)
    if jobs().view(jid) is None:
        return error("no such job", 404)
    jobs().cancel_and_delete(jid)
    return {"job_id": jid, "deleted": True}


@api.get("/video/<job_id>/<quality>")
def video(job_id: str, quality: str):
    jid = parse_job_id(job_id)
    if jid is None:
        return error("not a valid job id", 400)
    if not is_rung_name(quality):
        return error(f"unknown quality {quality!r}", 404)
    view = jobs().view(jid)
    if view is None:
        return error("no such job", 404)
    if quality not in view["renditions"]:
        return error(f"this job has no {quality} rendition", 404)
    if view["status"] != "done":
        return error(f"the job is {view['status']}, not done yet", 409)
    path = jobs().output(jid, quality)
    if not path.is_file():
        return error("the file is gone", 404)
    resp = send_file(path, mimetype="video/mp4", conditional=True, download_name=f"{quality}.mp4")
    if resp.status_code in (200, 206) and resp.content_length:
        jobs().state.count("bytes_served", resp.content_length)  # for /metrics
    return resp


@api.get("/thumbnail/<job_id>")
def thumbnail(job_id: str):
    jid = parse_job_id(job_id)
    if jid is None:
        return error("not a valid job id", 400)
    path = jobs().thumbnail(jid)
    if not path.is_file():
        return error("this job has no thumbnail", 404)
    return send_file(path, mimetype="image/jpeg", conditional=True, max_age=3600)


@api.post("/jobs/<job_id>/retry")
def retry(job_id: str):
    """A failed job again, from its kept upload with the same options: 202 with the new job's id
    (the failed job is deleted); 404 unknown job, 409 not failed or its upload is gone."""
    jid = parse_job_id(job_id)
    if jid is None:
        return error("not a valid job id", 400)
    stage = jobs().state.stage(jid)
    if stage is None:
        return error("no such job", 404)
    if stage != "failed":
        return error(f"the job is {stage}; only a failed job can be retried", 409)
    try:
        new_id = jobs().retry(jid, str(uuid.uuid4()))
    except InputError as exc:
        return error(_public(exc), 422)
    if new_id is None:
        return error("the job's upload is gone (removed by retention or by hand); upload the file again", 409)
    return {"job_id": new_id, "retried": jid, "status": "queued"}, 202


PLAYLIST_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mpd": "application/dash+xml"}
SEGMENT_TYPE = "video/iso.segment"  # media segments and init segments alike


@api.get("/hls/<job_id>/<path:rel>")
@api.get("/dash/<job_id>/<path:rel>")
def stream_file(job_id: str, rel: str):
    """The job's HLS/DASH files, while it encodes and after: playlists are never cached (they
    grow), segments are plain files with Range support. With ``?token=`` the playlists' URIs carry
    it on (native HLS players and copied URLs cannot send headers)."""
    jid = parse_job_id(job_id)
    if jid is None:
        return error("not a valid job id", 400)
    if not layout.stream_file(rel):
        return error(f"no such stream file {rel!r}", 404)
    kind = PLAYLIST_TYPES.get(os.path.splitext(rel)[1])
    view = jobs().view(jid, refresh=kind is not None)
    if view is None:
        return error("no such job", 404)
    if view["status"] in ("failed", "cancelled"):
        return error(f"the job is {view['status']}", 410)
    path = jobs().stream_path(jid, rel)
    if not path.is_file():
        return error(f"{rel} is not published yet (the job is {view['status']})", 404)
    if kind is None:
        return send_file(path, mimetype=SEGMENT_TYPE, conditional=True, max_age=0)
    text = path.read_text()
    token = request.args.get("token")
    if token and not request.headers.get("Authorization"):
        text = _with_token(text, token)
    return Response(text, mimetype=kind, headers={"Cache-Control": "no-cache"})


def _with_token(text: str, token: str) -> str:
    """Every URI in a playlist (lines, URI="...", DASH templates) with ``?token=`` appended."""
    q = "?token=" + quote(token, safe="")
    text = re.sub(r'((?:URI|initialization|media)=")([^"?]+)(")', lambda m: m.group(1) + m.group(2) + q + m.group(3), text)
    return "\n".join(line + q if line and not line.startswith(("#", "<")) else line for line in text.split("\n"))


@api.get("/presets")
def presets():
    """The named presets and every upload field with what it accepts."""
    return {"presets": describe(), "fields": FIELDS}


@api.get("/workers")
def workers():
    return {"workers": jobs().workers()}
