"""The main instance's side of chunk transfer: workers without shared storage fetch their input
and upload chunks here. From a job read straight from an MP4 source they fetch byte ranges of
the source (``get_source_range``; segenc.distributed.ranges); for other sources read straight,
a segment, or the audio copy, is written on a worker's first request for it. Authenticated with
the cluster secret; only job work files, by strict pattern, and only the source a plan names.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from segenc import layout
from segenc.distributed.transfer import HASH_HEADER, MAX_RANGE, PING, PREFIX, ROUTE, SOURCE, sha256_file
from segenc.split import copy_side_tracks, write_segment
from segenc.steps import load_plan
from segenc.storage import resolve, temp_name

from .auth import secret_ok

transfer = Blueprint("transfer", __name__, url_prefix=PREFIX)
FILES = ROUTE[len(PREFIX):]


def _error(message: str, status: int):
    return jsonify(error=message), status


@transfer.before_request
def require_secret():
    if not secret_ok(current_app):
        return _error("missing or wrong cluster secret", 401)


@transfer.get(PING[len(PREFIX):])
def ping():
    return "", 204


@transfer.get(f"{FILES}/<path:rel>")
def get_file(rel: str):
    if not layout.fetchable(rel):
        return _error("not a transferable file", 404)
    root = current_app.config["TMP_DIR"]
    path = resolve(root, rel)
    if not path.is_file() and not _materialize(root, rel):
        return _error("no such file", 404)
    resp = send_file(path, mimetype="application/octet-stream", conditional=True)
    resp.headers[HASH_HEADER] = sha256_file(path)
    return resp


@transfer.get(f"{SOURCE[len(PREFIX):]}/<job_id>")
def get_source_range(job_id: str):
    """One bounded byte range of a job's source (remote workers read their segments this way:
    segenc.distributed.ranges); only the source its plan names, only ``bytes=a-b``."""
    if not layout.is_job_id(job_id):
        return _error("not a job id", 404)
    root = current_app.config["TMP_DIR"]
    try:
        plan = load_plan(root, layout.work_dir(job_id))
    except (OSError, ValueError):
        return _error("no such job (finished or cancelled)", 404)
    if plan.source is None:
        return _error("this job is split: fetch its segments", 404)
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", ""))
    if not m or int(m[2]) < int(m[1]) or int(m[2]) - int(m[1]) + 1 > MAX_RANGE:
        return _error(f"send one bounded range, Range: bytes=a-b, of at most {MAX_RANGE} bytes", 416)
    path = resolve(root, plan.source)
    size = path.stat().st_size
    start, last = int(m[1]), int(m[2])
    if last >= size:
        return _error(f"the source has {size} bytes", 416)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(last - start + 1)
    resp = Response(data, status=206, mimetype="application/octet-stream")
    resp.headers["Content-Range"] = f"bytes {start}-{last}/{size}"
    resp.headers[HASH_HEADER] = hashlib.sha256(data).hexdigest()
    return resp


def _materialize(root, rel: str) -> bool:
    """A job read straight from its source has no segment files: write the one a worker without
    the storage asks for (or the audio copy), from the source, once. False: not such a job."""
    job_id = rel.split("/")[1]
    workdir = layout.work_dir(job_id)
    try:
        plan = load_plan(root, workdir)
    except (OSError, ValueError):
        return False
    if plan.source is None:
        return False
    source = resolve(root, plan.source)
    if rel == layout.audio_source(workdir):
        copy_side_tracks(source, plan, root, audio=True, subtitles=False)
        return True
    for seg in plan.segments:
        if seg.path == rel:
            write_segment(source, plan, root, seg.index)
            return True
    return False


@transfer.put(f"{FILES}/<path:rel>")
def put_file(rel: str):
    if not layout.storable(rel):
        return _error("not a writable chunk path", 404)
    expected = request.headers.get(HASH_HEADER, "")
    root = current_app.config["TMP_DIR"]
    path = resolve(root, rel)
    if not resolve(root, layout.work_dir(rel.split("/")[1])).is_dir():
        return _error("no such job (finished or cancelled)", 404)  # never recreate a removed job
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path).with_suffix(f".{os.urandom(4).hex()}")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            while block := request.stream.read(1 << 20):
                f.write(block)
                h.update(block)
        if not hmac.compare_digest(h.hexdigest(), expected):
            return _error("content hash mismatch: the upload was damaged, send it again", 422)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"stored": rel, "bytes": path.stat().st_size}, 201
