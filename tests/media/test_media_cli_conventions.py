"""Command-line habits users bring from ffmpeg and HandBrake: --version, -o NAME.mp4, refusing to
clobber an output without -y, one ``error:`` line and a documented exit status for every failure,
bars that fit the terminal and plain lines in a log."""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import segenc
from tests import checks
from tests.media.test_media_cli import REPO, segenc_cli

pytestmark = pytest.mark.media

FAST = ("--workers", "2", "--preset", "ultrafast", "--chunk-seconds", "1")


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr was {proc.stderr!r}"
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_version():
    proc = segenc_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"segenc {segenc.__version__}", proc


def test_mp4_name_with_one_rung_writes_that_file(clip, tmp_path):
    out = tmp_path / "dest" / "movie.mp4"
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", out, "--ladder", "240p", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and checks.frame_count(out) == 60
    assert sorted(p.name for p in out.parent.iterdir()) == ["movie.mp4"]  # no manifest, no temp folder
    assert str(out) in proc.stdout
    # not a terminal: plain progress lines, no escape sequences
    assert "\x1b" not in proc.stderr and "segenc: encoding" in proc.stderr and "segenc: done" in proc.stderr
    again = segenc_cli("encode", clip("h264_mp4"), "-o", out, "--ladder", "240p", *FAST)
    assert again.returncode == 2 and "--overwrite" in one_error_line(again)


def test_mp4_name_with_several_rungs_is_refused(clip, tmp_path):
    out = tmp_path / "movie.mp4"
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", out)  # the default ladder has three rungs
    assert proc.returncode == 2
    assert "one rung" in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_needs_overwrite_which_removes_stale_outputs(clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "1080p.mp4").write_bytes(b"old rendition")
    (out / "1080p").mkdir()
    (out / "1080p" / "s0000.m4s").write_bytes(b"old segment")
    (out / "manifest.json").write_text('{"old": true}')
    (out / "notes.txt").write_text("mine")
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", out, "--ladder", "240p", *FAST)
    assert proc.returncode == 2 and "not empty" in one_error_line(proc)
    assert (out / "1080p.mp4").read_bytes() == b"old rendition"
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", out, "--ladder", "240p", "-y", *FAST)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    tracks = sorted(manifest["stream"]["tracks"])  # the new stream's folders: 240p (and its audio)
    assert "240p" in tracks and "1080p" not in tracks
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["240p.mp4", "manifest.json", "master.m3u8", "notes.txt", "stream.mpd", *tracks])
    assert [r["path"] for r in manifest["renditions"]] == ["240p.mp4"]
    assert checks.frame_count(out / "240p.mp4") == 60


@pytest.mark.parametrize("args,needle", [
    (("--workers", "x"), "--workers"), (("--workers", "0"), "--workers"), (("--bogus",), "--bogus"),
])
def test_bad_arguments_exit_2_one_line(clip, tmp_path, args, needle):
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", tmp_path / "out", *args)
    assert proc.returncode == 2 and needle in one_error_line(proc)
    assert not (tmp_path / "out").exists()


def test_missing_input_exit_2(tmp_path):
    proc = segenc_cli("encode", tmp_path / "nope.mp4", "-o", tmp_path / "out")
    assert proc.returncode == 2 and "no such file" in one_error_line(proc)


def test_unwritable_output_exit_3(clip):
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", "/proc/segenc-out", "--ladder", "240p")
    assert proc.returncode == 3 and "/proc/segenc-out" in one_error_line(proc)


def test_unreachable_broker_exit_3(clip, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", tmp_path / "out", "--ladder", "240p",
                      "--broker", f"redis://127.0.0.1:{port}/0", "--storage", tmp_path / "storage")
    assert proc.returncode == 3 and "cannot reach the broker" in one_error_line(proc)
    assert not (tmp_path / "out").exists()


def test_bars_fit_a_50_column_terminal(clip, tmp_path):
    """On a terminal (a pty as stderr) with COLUMNS=50, every drawn line fits in 49 columns."""
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="50", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "segenc", "encode", str(clip("h264_mp4")), "-o",
                             str(tmp_path / "out"), "--ladder", "240p,360p", *FAST],
                            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = b"".join(chunks).decode()
    lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line) for line in re.split(r"\r?\n", text)]
    bars = [line for line in lines if "[" in line]
    assert bars and any("240p" in b for b in bars) and any("100%" in b for b in bars), lines
    assert max(map(len, lines)) <= 49, [line for line in lines if len(line) > 49]
