"""Flask app factory: the page, the JSON API, the WebSocket, on one port.

Configuration is read from the environment only here, when no config is passed in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from flask import Flask, Request, g, jsonify, render_template
from werkzeug.exceptions import HTTPException

from segenc.model import DEFAULT_LADDER
from segenc.presets import describe as describe_presets
from segenc.settings import CODECS
from segenc.distributed import JobState, make_app
from segenc.stages import TERMINAL, Stage

from .api import api
from .jobs import Jobs
from .metrics import metrics
from .transfer import transfer
from .uploads import UploadSlots
from .ws import register_ws

# Defaults of the knobs below (environment: SEGENC_<NAME>).
UPLOAD_IDLE_SECONDS = 30.0  # an upload that sends nothing for this long is dropped, its partial file removed
MAX_UPLOADS_PER_CLIENT = 4  # concurrent uploads from one address; more get 429
DISK_RESERVE_MB = 16  # an upload must leave this much free space on the storage, or it gets 507


class StreamingRequest(Request):
    """Multipart file parts go straight to the job's upload folder, never whole into memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        target = getattr(g, "upload_part", None)
        if target is None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        g.upload_handle = open(target, "w+b")  # closed by the view whatever happens (space comes back)
        return g.upload_handle


def create_app(config: dict | None = None) -> Flask:
    if config is None:
        config = {
            "TMP_DIR": os.environ.get("SEGENC_TMP_DIR", "/tmp/encoder"),
            "REDIS_URL": os.environ["SEGENC_REDIS_URL"],  # the state Redis
            "BROKER_URL": os.environ.get("SEGENC_BROKER_URL") or None,  # default: that Redis
            "API_TOKEN": os.environ.get("SEGENC_API_TOKEN") or None,
            "MAX_UPLOAD_MB": int(os.environ.get("SEGENC_MAX_UPLOAD_MB", "2048")),
            "CLUSTER_SECRET": os.environ.get("SEGENC_CLUSTER_SECRET") or None,
        }
        for name, default in (("UPLOAD_IDLE_SECONDS", UPLOAD_IDLE_SECONDS), ("DISK_RESERVE_MB", DISK_RESERVE_MB),
                              ("MAX_UPLOADS_PER_CLIENT", MAX_UPLOADS_PER_CLIENT)):
            if os.environ.get(f"SEGENC_{name}"):
                config[name] = type(default)(os.environ[f"SEGENC_{name}"])
    config = {"UPLOAD_IDLE_SECONDS": UPLOAD_IDLE_SECONDS, "MAX_UPLOADS_PER_CLIENT": MAX_UPLOADS_PER_CLIENT,
              "DISK_RESERVE_MB": DISK_RESERVE_MB, **config}
    app = Flask(__name__)
    app.request_class = StreamingRequest
    app.config.update(config)
    app.config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"]) * 1024 * 1024
    root = Path(config["TMP_DIR"]).resolve()
    app.config["TMP_DIR"] = root
    celery = make_app(config.get("BROKER_URL") or config["REDIS_URL"], state_url=config["REDIS_URL"], root=root)
    app.extensions["segenc_jobs"] = Jobs(JobState.from_url(config["REDIS_URL"]), celery, root)
    app.extensions["segenc_uploads"] = UploadSlots(int(config["MAX_UPLOADS_PER_CLIENT"]))
    app.register_blueprint(api)
    app.register_blueprint(transfer)
    app.register_blueprint(metrics)
    register_ws(app)

    @app.get("/")
    def index():
        return render_template("index.html", api_token_required=bool(app.config.get("API_TOKEN")),
                               max_upload_mb=app.config["MAX_UPLOAD_MB"], ladder=list(DEFAULT_LADDER),
                               presets=describe_presets(), codecs=list(CODECS),
                               stages=[s.value for s in Stage], terminal=sorted(TERMINAL))

    @app.get("/healthz")
    def healthz():
        try:
            disk = shutil.disk_usage(root)
            space = {"disk_free_bytes": disk.free, "disk_total_bytes": disk.total}
        except OSError as exc:
            space = {"disk_free_bytes": None, "disk_error": exc.strerror}
        try:
            app.extensions["segenc_jobs"].state.ping()
            return {"ok": True, "redis": True, **space}
        except Exception as exc:  # report, don't crash: health checks must answer
            return {"ok": False, "redis": False, "error": str(exc), **space}, 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {413: f"the upload is larger than the {app.config['MAX_UPLOAD_MB']} MB limit"}
        return jsonify(error=messages.get(exc.code, exc.description)), exc.code

    return app

