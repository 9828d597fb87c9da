"""Workers join a main instance through its tmp dir alone, and the CLI can drive the cluster."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import pytest

from tests import checks
from tests.service.conftest import REPO, running_instance

pytestmark = [pytest.mark.service, pytest.mark.dist, pytest.mark.timeout(300)]


def test_worker_finds_the_main_instance_through_the_tmp_dir_and_takes_chunks(tmp_path_factory, small_clip):
    tmp_dir = tmp_path_factory.mktemp("shared")
    with running_instance(tmp_dir, extra=["--concurrency", "1"]) as inst:
        info = tmp_dir / "cluster.json"
        assert stat.S_IMODE(info.stat().st_mode) == 0o600
        assert json.loads(info.read_text())["redis_url"].startswith("redis://:")
        worker = inst.worker("encoder_worker_1", concurrency=1).start()  # finds it through tmp_dir
        try:
            deadline = time.monotonic() + 60
            while not any(w["name"] == "encoder_worker_1" and w["online"]
                          for w in inst.get("/api/workers").json()["workers"]):
                assert time.monotonic() < deadline, "the worker never announced itself"
                time.sleep(0.3)
            seen = set()
            for _ in range(2):  # two jobs: the extra worker gets chunks of at least one
                job = inst.upload(small_clip, ladder="240p,360p", chunk_seconds="0.5").json()["job_id"]
                while (st := inst.get(f"/api/status/{job}").json())["status"] not in ("done", "failed"):
                    seen.update(st["workers"])
                    time.sleep(0.05)
                assert st["status"] == "done"
            assert "encoder_worker_1" in seen, seen
        finally:
            worker.stop()


def test_cli_encodes_through_the_cluster(tmp_path_factory, small_clip, tmp_path):
    tmp_dir = tmp_path_factory.mktemp("clihost")
    with running_instance(tmp_dir) as inst:
        url = json.loads((tmp_dir / "cluster.json").read_text())["redis_url"]
        out = tmp_path / "out"
        r = subprocess.run([sys.executable, "-m", "segenc", "encode", str(small_clip), "-o", str(out),
                            "--ladder", "240p", "--broker", url, "--storage", str(tmp_dir)],
                           cwd=REPO, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        assert checks.frame_count(out / "240p.mp4") == json.loads((out / "manifest.json").read_text())[
            "renditions"][0]["frames"] > 0
        assert list((tmp_dir / "encoded").iterdir()) == []  # moved out of the shared storage
