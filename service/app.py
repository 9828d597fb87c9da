"""Flask app factory: the page, the JSON API, the WebSocket, on one port.

Configuration is read from the environment only here, when no config is passed in.
"""

from __future__ import annotations

import os
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
from .transfer import transfer
from .ws import register_ws


class StreamingRequest(Request):
    """Multipart file parts go straight to the job's upload folder, never whole into memory."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        target = getattr(g, "upload_part", None)
        if target is None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return open(target, "w+b")


def create_app(config: dict | None = None) -> Flask:
    if config is None:
        config = {
            "TMP_DIR": os.environ.get("SEGENC_TMP_DIR", "/tmp/encoder"),
            "REDIS_URL": os.environ["SEGENC_REDIS_URL"],
            "API_TOKEN": os.environ.get("SEGENC_API_TOKEN") or None,
            "MAX_UPLOAD_MB": int(os.environ.get("SEGENC_MAX_UPLOAD_MB", "2048")),
            "CLUSTER_SECRET": os.environ.get("SEGENC_CLUSTER_SECRET") or None,
        }
    app = Flask(__name__)
    app.request_class = StreamingRequest
    app.config.update(config)
    app.config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"]) * 1024 * 1024
    root = Path(config["TMP_DIR"]).resolve()
    app.config["TMP_DIR"] = root
    celery = make_app(config["REDIS_URL"], root=root)
    app.extensions["segenc_jobs"] = Jobs(JobState.from_url(config["REDIS_URL"]), celery, root)
    app.register_blueprint(api)
    app.register_blueprint(transfer)
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
            app.extensions["segenc_jobs"].state.ping()
            return {"ok": True, "redis": True}
        except Exception as exc:  # report, don't crash: health checks must answer
            return {"ok": False, "redis": False, "error": str(exc)}, 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {413: f"the upload is larger than the {app.config['MAX_UPLOAD_MB']} MB limit"}
        return jsonify(error=messages.get(exc.code, exc.description)), exc.code

    return app

