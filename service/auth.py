"""Who may call: the API token (page, API, WebSocket) and the cluster secret (file transfer).

A leaf: the blueprints import this, never the app factory."""

from __future__ import annotations

import hmac

from flask import Flask, request

from segenc.distributed.transfer import bearer


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def token_ok(app: Flask) -> bool:
    """The API token from ``Authorization: Bearer`` or ``?token=`` (browsers' WebSockets cannot
    send headers); always true when the service has no token."""
    expected = app.config.get("API_TOKEN")
    if not expected:
        return True
    header = request.headers.get("Authorization", "")
    given = bearer(header) if header else request.args.get("token", "")
    return _same(given, expected)


def secret_ok(app: Flask) -> bool:
    """The cluster secret in ``Authorization: Bearer``; false when the service has none."""
    secret = app.config.get("CLUSTER_SECRET") or ""
    return bool(secret) and _same(bearer(request.headers.get("Authorization")), secret)
