"""Chunk transfer over HTTP, for workers that do not share the main instance's storage.

A worker fetches the segment it needs from the main instance into a local cache (once: every
rendition of that segment reuses it) and uploads the encoded chunk back. Both directions carry a
SHA-256 of the body and the cluster secret; a short or corrupt transfer is detected and redone
(downloads resume with a Range request). Only stdlib: this runs inside Celery workers.

This module owns the protocol; the service's blueprint serves it with the same names:

    GET  {PING}          204 if the secret is right: a worker checks it before taking any task
    GET  {ROUTE}/<rel>   a fetchable file (``layout.fetchable``); the body's SHA-256 in HASH_HEADER
    GET  {SOURCE}/<job>  with ``Range: bytes=a-b`` (one bounded range, at most MAX_RANGE bytes):
                         those bytes of the job's source, 206, their SHA-256 in HASH_HEADER
    PUT  {ROUTE}/<rel>   a storable file (``layout.storable``) with its SHA-256 in HASH_HEADER
    Authorization: Bearer <cluster secret> on both
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import EncodeError
from ..storage import resolve, temp_name

PREFIX = "/internal"
ROUTE = f"{PREFIX}/files"
PING = f"{PREFIX}/ping"
SOURCE = f"{PREFIX}/source"
MAX_RANGE = 32 << 20  # per request: a longer span is fetched in pieces
HASH_HEADER = "X-Segenc-Sha256"
BLOCK = 1 << 20


def authorization(secret: str) -> str:
    return f"Bearer {secret}"


def bearer(header: str | None) -> str:
    """The secret in an Authorization header ('' if none)."""
    header = header or ""
    return header[7:] if header.startswith("Bearer ") else ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def check_secret(base_url: str, secret: str, timeout: float = 10) -> str | None:
    """None if the main instance at ``base_url`` accepts ``secret``, else what is wrong."""
    req = urllib.request.Request(f"{base_url.rstrip('/')}{PING}", headers={"Authorization": authorization(secret)})
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return (f"the main instance at {base_url} refused this worker's cluster secret: pass the one in "
                    f"its cluster.json with --cluster-secret")
        return f"the main instance at {base_url} answered HTTP {exc.code} to the secret check"
    except (OSError, urllib.error.URLError) as exc:
        return f"cannot reach the main instance at {base_url} ({getattr(exc, 'reason', exc)}); check --public-url there"


def write_range(dest: Path, start: int, data: bytes, size: int) -> None:
    """``data`` at ``start`` in ``dest``, a sparse file ``size`` bytes long (created if missing)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        os.pwrite(fd, data, start)
    finally:
        os.close(fd)


class Transfer:
    def __init__(self, base_url: str, secret: str, local_root: Path, tries: int = 5, timeout: float = 60) -> None:
        self.base = base_url.rstrip("/")
        self.secret = secret
        self.local_root = Path(local_root)
        self.tries = tries
        self.timeout = timeout
        self.bytes_in = 0
        self.bytes_out = 0

    def _request(self, method: str, rel: str, data=None, headers: dict | None = None):
        req = urllib.request.Request(f"{self.base}{ROUTE}/{rel}", data=data, method=method,
                                     headers={"Authorization": authorization(self.secret), **(headers or {})})
        return urllib.request.urlopen(req, timeout=self.timeout)

    def fetch(self, rel: str) -> Path:
        """``rel`` from the main instance into the local cache (kept for reuse); returns its path."""
        dest = resolve(self.local_root, rel)
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = temp_name(dest)
        last: Exception | None = None
        for attempt in range(self.tries):
            try:
                have = part.stat().st_size if part.exists() else 0
                headers = {"Range": f"bytes={have}-"} if have else {}
                with self._request("GET", rel, headers=headers) as resp:
                    expected = resp.headers.get(HASH_HEADER)
                    mode = "ab" if have and resp.status == 206 else "wb"
                    with open(part, mode) as f:
                        while block := resp.read(BLOCK):
                            f.write(block)
                            self.bytes_in += len(block)
                if expected and sha256_file(part) == expected:
                    os.replace(part, dest)
                    return dest
                part.unlink(missing_ok=True)  # corrupt or short: start over
                last = EncodeError(f"{rel}: content hash mismatch after download")
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403, 404):
                    raise EncodeError(f"fetching {rel} from {self.base} failed: HTTP {exc.code} "
                                      f"{'(wrong cluster secret?)' if exc.code in (401, 403) else ''}") from exc
                last = exc
            except (OSError, urllib.error.URLError) as exc:
                last = exc  # keep the partial file: the next try resumes it
            time.sleep(min(0.5 * 2 ** attempt, 5))
        part.unlink(missing_ok=True)
        raise EncodeError(f"fetching {rel} from {self.base} failed after {self.tries} tries: {last}")

    def fetch_ranges(self, job_id: str, ranges: list[tuple[int, int]], dest: Path) -> int:
        """Bytes [start, end) of the job's source, for each range, written at their own offsets
        into ``dest`` (created sparse, the source's size, if missing); returns the source's size.
        One kept-alive connection; every range's SHA-256 is checked, a bad one fetched again."""
        url = urllib.parse.urlsplit(self.base)
        conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(url.netloc, timeout=self.timeout)
        size = -1
        try:
            for start, end in ranges:
                for piece in range(start, end, MAX_RANGE):
                    data, size = self._range(conn, url.path, job_id, piece, min(end, piece + MAX_RANGE))
                    write_range(dest, piece, data, size)
        finally:
            conn.close()
        return size

    def _range(self, conn, base_path: str, job_id: str, start: int, end: int) -> tuple[bytes, int]:
        last: Exception | None = None
        for attempt in range(self.tries):
            try:
                conn.request("GET", f"{base_path}{SOURCE}/{job_id}",
                             headers={"Authorization": authorization(self.secret), "Range": f"bytes={start}-{end - 1}"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status in (401, 403, 404, 416):
                    raise EncodeError(f"fetching bytes {start}-{end - 1} of job {job_id}'s source from {self.base} "
                                      f"failed: HTTP {resp.status} {data[:200].decode(errors='replace')}")
                m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", resp.headers.get("Content-Range", ""))
                if resp.status == 206 and m and int(m[1]) == start and int(m[2]) == end - 1 and len(data) == end - start \
                        and hashlib.sha256(data).hexdigest() == resp.headers.get(HASH_HEADER):
                    self.bytes_in += len(data)
                    return data, int(m[3])
                last = EncodeError(f"bytes {start}-{end - 1} of job {job_id}'s source: short or corrupt "
                                   f"(HTTP {resp.status}, {len(data)} bytes)")
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                conn.close()  # reconnects on the next request
            time.sleep(min(0.5 * 2 ** attempt, 5))
        raise EncodeError(f"fetching bytes {start}-{end - 1} of job {job_id}'s source from {self.base} "
                          f"failed after {self.tries} tries: {last}")

    def push(self, rel: str) -> None:
        """Upload the local ``rel`` to the main instance, which verifies and renames it into place."""
        src = resolve(self.local_root, rel)
        digest = sha256_file(src)
        size = src.stat().st_size
        last: Exception | None = None
        for attempt in range(self.tries):
            try:
                with open(src, "rb") as f:
                    with self._request("PUT", rel, data=f, headers={HASH_HEADER: digest,
                                                                    "Content-Length": str(size),
                                                                    "Content-Type": "application/octet-stream"}):
                        self.bytes_out += size
                        return
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise EncodeError(f"uploading {rel} to {self.base} was refused (wrong cluster secret?)") from exc
                last = exc
            except (OSError, urllib.error.URLError) as exc:
                last = exc
            time.sleep(min(0.5 * 2 ** attempt, 5))
        raise EncodeError(f"uploading {rel} to {self.base} failed after {self.tries} tries: {last}")
