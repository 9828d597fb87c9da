"""Retention removes what it should and nothing else: a real redis-server holds the job records,
real folders the files; the sweep runs as the supervisor runs it, plus start_service.py's options
and their environment variables."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from segenc import layout
from segenc.distributed import JobState
from segenc.progress import ProgressEvent
from segenc.stages import Stage
from service.cli import parser
from service.redis_server import RedisServer
from service.retention import DAY, Policy, sweep

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis-retention"))
    server.start()
    yield JobState.from_url(server.url)
    server.stop()


def make_job(state: JobState, root: Path, stage: Stage, age_days: float) -> str:
    job_id = str(uuid.uuid4())
    state.create(job_id, filename="in.mp4")
    state.apply(ProgressEvent(job_id, "stage", stage=stage, time=time.time() - age_days * DAY))
    for rel in (layout.upload(job_id), layout.plan_file(layout.work_dir(job_id)),
                layout.output(layout.encoded_dir(job_id), "240p"), layout.thumbnail(job_id)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    return job_id


def files_of(root: Path, job_id: str) -> set[str]:
    return {part for part in ("uploads", "work", "encoded", "thumbs") if (root / part / job_id).exists()}


def test_sweep_removes_what_it_should_and_nothing_else(state, tmp_path):
    root = tmp_path
    (root / "redis.conf").write_text("mine")
    jobs = {
        "done_new": make_job(state, root, Stage.DONE, 1),
        "done_old": make_job(state, root, Stage.DONE, 10),
        "failed_new": make_job(state, root, Stage.FAILED, 1),
        "failed_old": make_job(state, root, Stage.FAILED, 10),
        "encoding_old": make_job(state, root, Stage.ENCODING, 10),  # running: never touched
        "queued": make_job(state, root, Stage.QUEUED, 0),
    }
    stray = root / "uploads" / "not-a-job"
    stray.mkdir()
    removed = sweep(state, root, Policy(delete_sources=True, retain_days=7))
    assert sorted(removed["expired"]) == sorted([jobs["done_old"], jobs["failed_old"]])
    assert removed["sources"] == [jobs["done_new"]] and removed["work"] == [jobs["failed_new"]]
    assert files_of(root, jobs["done_new"]) == {"work", "encoded", "thumbs"}
    assert files_of(root, jobs["failed_new"]) == {"uploads", "thumbs"}  # the upload stays for a retry
    for name in ("done_old", "failed_old"):
        assert files_of(root, jobs[name]) == set() and not state.exists(jobs[name])
        assert jobs[name] not in state.jobs(0, 1000)[0]
    for name in ("encoding_old", "queued"):
        assert files_of(root, jobs[name]) == {"uploads", "work", "encoded", "thumbs"} and state.exists(jobs[name])
    assert state.exists(jobs["done_new"]) and state.exists(jobs["failed_new"])
    assert stray.is_dir() and (root / "redis.conf").read_text() == "mine"
    assert sweep(state, root, Policy(delete_sources=True, retain_days=7)) == {"expired": [], "sources": [],
                                                                              "work": []}


def test_default_policy_keeps_sources_and_jobs(state, tmp_path):
    done_old = make_job(state, tmp_path, Stage.DONE, 400)
    failed = make_job(state, tmp_path, Stage.FAILED, 400)
    removed = sweep(state, tmp_path, Policy())
    assert removed == {"expired": [], "sources": [], "work": [failed]}
    assert files_of(tmp_path, done_old) == {"uploads", "work", "encoded", "thumbs"}
    assert files_of(tmp_path, failed) == {"uploads", "thumbs"}


def test_every_option_reads_its_environment_variable(monkeypatch):
    p = parser()
    env = {"PORT": "8081", "HOST": "0.0.0.0", "TMP_DIR": "/srv/enc", "REDIS_PORT": "0", "CONCURRENCY": "3",
           "MAX_UPLOAD_MB": "10", "LOG_LEVEL": "DEBUG", "ACCESS_LOG": "off", "DELETE_SOURCES": "1",
           "RETAIN_DAYS": "30", "PUBLIC_URL": "http://enc:8081", "REDIS_HOST": "0.0.0.0", "WORKER_NAME": "w1",
           "API_TOKEN": "t", "CLUSTER_SECRET": "s", "REDIS_URL": "redis://x"}
    for k, v in env.items():
        monkeypatch.setenv(f"SEGENC_{k}", v)
    args = parser().parse_args([])
    assert (args.port, args.host, args.tmp_dir, args.redis_port, args.concurrency, args.max_upload_mb) == (
        8081, "0.0.0.0", "/srv/enc", 0, 3, 10)
    assert (args.log_level, args.access_log, args.delete_sources, args.retain_days) == ("debug", "off", True, 30.0)
    assert (args.public_url, args.redis_host, args.worker_name, args.api_token, args.cluster_secret,
            args.redis_url) == ("http://enc:8081", "0.0.0.0", "w1", "t", "s", "redis://x")
    assert parser().parse_args(["--keep-sources", "--port", "9"]).delete_sources is False
    assert parser().parse_args(["--port", "9"]).port == 9
    options = {a.dest for a in p._actions if a.option_strings and a.help != "==SUPPRESS==" and a.dest != "help"}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for dest in options:  # the one table documents every option with its variable
        assert f"`SEGENC_{dest.upper()}`" in readme, dest
