"""The Python API as a user calls it: the README's snippet saved as a script (no ``__main__``
guard), a script piped into ``python -``, argument checks and cancelling a running encode."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import segenc
from tests import checks, mediagen

pytestmark = pytest.mark.media

REPO = Path(__file__).resolve().parents[2]


def readme_python_snippet() -> str:
    """The first ```python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_python(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=180)


def test_readme_snippet_runs_as_a_script(clip, tmp_path):
    """Saved as a file and run, the snippet encodes (the local pool does not re-run the script in
    its children: no 'bootstrapping phase' crash) and leaves no temp folder."""
    os.symlink(clip("h264_720p"), tmp_path / "in.mp4")
    (tmp_path / "snippet.py").write_text(readme_python_snippet())
    proc = run_python(["snippet.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bootstrapping" not in proc.stderr
    tracks = json.loads((tmp_path / "out" / "manifest.json").read_text())["stream"]["tracks"]
    assert {"360p", "720p"} <= set(tracks)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["360p.mp4", "720p.mp4", "manifest.json", "master.m3u8", "stream.mpd", *tracks])
    assert checks.frame_count(tmp_path / "out" / "720p.mp4") == checks.frame_count(clip("h264_720p"))
    size = int(proc.stdout.splitlines()[-1].split()[0])
    assert size == (tmp_path / "out" / "720p.mp4").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out", "snippet.py"]


def test_script_on_stdin_with_a_single_rung_string(clip, tmp_path):
    script = (f"import segenc\nr = segenc.encode({str(clip('h264_mp4'))!r}, 'out', ladder='240p', workers=2)\n"
              f"print([x.name for x in r.renditions])\n")
    proc = run_python(["-"], tmp_path, stdin=script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['240p']"
    assert checks.frame_count(tmp_path / "out" / "240p.mp4") == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("kwargs,needle", [
    ({"workers": 0}, "workers"), ({"workers": -1}, "workers"), ({"workers": "2"}, "workers"),
    ({"workers": 1.5}, "workers"), ({"ladder": "7x"}, "ladder"), ({"ladder": ["720p", 3]}, "ladder"),
    ({"ladder": ""}, "ladder"), ({"chunk_seconds": 0}, "chunk_seconds"), ({"on_progress": 5}, "on_progress"),
    ({"cancel": True}, "cancel"), ({"settings": {"crf": 20}}, "settings"), ({"runner": "local"}, "runner"),
])
def test_bad_arguments_raise_usage_errors_and_leave_nothing(clip, fresh_out, kwargs, needle):
    with pytest.raises(segenc.UsageError, match=needle) as err:
        segenc.encode(clip("h264_mp4"), fresh_out, **kwargs)
    assert isinstance(err.value, segenc.SegencError) and isinstance(err.value, ValueError)
    assert not checks.leftovers(fresh_out), checks.leftovers(fresh_out)


def test_local_runner_checks_workers():
    with pytest.raises(segenc.UsageError, match="workers"):
        segenc.LocalRunner(0)


def test_cancel_stops_a_running_encode_and_leaves_nothing(tmp_path, fresh_out):
    """Set from on_progress once the first chunk is done, the event stops the encode: JobCancelled,
    well before the whole job could have run, and no output, temp or work files remain."""
    src = mediagen.make_clip(tmp_path / "long.mp4", width=320, height=240, seconds=8.0, gop=15)
    cancel = threading.Event()
    seen: list[str] = []

    def on_progress(ev: segenc.ProgressEvent) -> None:
        seen.append(ev.kind if ev.kind != "stage" else f"stage:{ev.stage}")
        if ev.kind == "chunk_done":
            cancel.set()

    t = time.perf_counter()
    with pytest.raises(segenc.JobCancelled):
        segenc.encode(src, fresh_out, ladder="240p,360p@300k", chunk_seconds=0.5, workers=2,
                      on_progress=on_progress, cancel=cancel)
    took = time.perf_counter() - t
    assert "chunk_done" in seen and seen[-1] == "stage:cancelled", seen[-5:]
    assert seen.count("chunk_done") < 16, "the encode went on after the cancel"
    assert not checks.leftovers(fresh_out), checks.leftovers(fresh_out)
    assert took < 30, took
