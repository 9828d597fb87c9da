"""Broker and state URLs: which servers carry the task messages and which hold segenc's state.

segenc needs two things from a cluster: a **broker** that carries Celery's task messages, and a
**state** Redis that holds job state, progress events, leases, done markers, heartbeats and
Celery's results (the chord counter). By default both are one Redis; they can be split:

    broker  redis://, rediss://, sentinel://...   or   amqp://, amqps:// (RabbitMQ)
    state   redis://, rediss://, sentinel://...   (default: the broker, when it is a Redis)

A Sentinel URL names the sentinels and the master set in one string:

    sentinel://[:PASSWORD@]HOST:PORT[;HOST:PORT...][/DB]?master=NAME

(``,`` separates hosts too; PASSWORD is the master's). ``rediss://`` URLs get
``ssl_cert_reqs=required`` unless they say otherwise (add ``ssl_ca_certs=/path/ca.pem`` for a
private CA). This module only parses and converts URLs: it opens no connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import UsageError

REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
SENTINEL_SYNTAX = "sentinel://[:PASSWORD@]HOST:PORT[;HOST:PORT...][/DB]?master=NAME"


class BrokerURLError(UsageError):
    """A broker or state URL segenc cannot use; the message says what to pass instead."""


def scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def is_redis(url: str) -> bool:
    return scheme(url) in REDIS_SCHEMES


def is_amqp(url: str) -> bool:
    return scheme(url) in AMQP_SCHEMES


def check_broker(url: str) -> None:
    if not (is_redis(url) or is_amqp(url)):
        raise BrokerURLError(f"unsupported broker URL scheme {scheme(url) or url!r}: use redis://, rediss://, "
                             f"{SENTINEL_SYNTAX} or amqp:// (RabbitMQ)")
    if scheme(url) == "sentinel":
        parse_sentinel(url)


def state_url(broker_url: str, state: str | None = None) -> str:
    """The Redis that holds segenc's state: ``state`` if given, else the broker when it is a Redis."""
    url = state or broker_url
    if not is_redis(url):
        raise BrokerURLError(f"the broker {scheme(broker_url)}:// is not a Redis, so segenc needs a separate "
                             f"Redis for its state: pass --state-url redis://... (or {SENTINEL_SYNTAX})")
    if scheme(url) == "sentinel":
        parse_sentinel(url)
    return url


@dataclass(frozen=True)
class Sentinel:
    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None
    username: str | None = None


def parse_sentinel(url: str) -> Sentinel:
    """``sentinel://:pw@h1:26379;h2:26379/0?master=mymaster`` -> its parts; BrokerURLError if malformed."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    rest, _, query = rest.partition("?")
    params = dict(parse_qsl(query))
    netloc, _, path = rest.partition("/")
    user = password = None
    if "@" in netloc:
        cred, netloc = netloc.rsplit("@", 1)
        user, _, password = cred.partition(":")
        user, password = unquote(user) or None, unquote(password) or None
    hosts = []
    for part in netloc.replace(",", ";").split(";"):
        part = part.strip()
        if part.startswith("sentinel://"):
            part = part[len("sentinel://"):]
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise BrokerURLError(f"bad sentinel host {part!r} in the URL; expected {SENTINEL_SYNTAX}")
        hosts.append((host.strip("[]"), int(port)))
    master = params.get("master") or params.get("master_name")
    if not master:
        raise BrokerURLError(f"a sentinel URL must name its master set (?master=NAME); expected {SENTINEL_SYNTAX}")
    db = path.strip("/") or "0"
    if not db.isdigit():
        raise BrokerURLError(f"bad database {db!r} in the sentinel URL; expected {SENTINEL_SYNTAX}")
    return Sentinel(tuple(hosts), master, int(db), password, user)


def _with_tls_default(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("ssl_cert_reqs", "required")
    return urlunsplit(parts._replace(query=urlencode(query)))


def celery_url(url: str) -> tuple[str, dict]:
    """A segenc URL as Celery/kombu want it: (url, transport options to merge).

    Sentinel becomes kombu's ``sentinel://:pw@h1:p/db;sentinel://:pw@h2:p/db`` with the master set
    in ``master_name``; ``rediss://`` gets its certificate check; the rest pass through."""
    s = scheme(url)
    if s == "sentinel":
        sen = parse_sentinel(url)
        cred = f"{sen.username or ''}:{sen.password}@" if sen.password else ""
        joined = ";".join(f"sentinel://{cred}{h}:{p}/{sen.db}" for h, p in sen.hosts)
        return joined, {"master_name": sen.master}
    if s == "rediss":
        return _with_tls_default(url), {}
    return url, {}


def redis_client_url(url: str) -> str:
    """The URL redis-py's ``from_url`` takes (rediss with its certificate check); not for sentinel."""
    return _with_tls_default(url) if scheme(url) == "rediss" else url


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
