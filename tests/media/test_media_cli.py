"""The command line, run as a user would: ``python -m segenc`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import checks, mediagen

pytestmark = pytest.mark.media

REPO = Path(__file__).resolve().parents[2]


def segenc_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "segenc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def cli_encode(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    proc = segenc_cli("encode", clip("h264_640x360"), "-o", out, "--ladder", "240p,360p,480p",
                      "--chunk-seconds", "1", "--workers", "2", "--preset", "ultrafast", "--crf", "30")
    return proc, out


def test_encode_exit_0_and_files(cli_encode):
    proc, out = cli_encode
    assert proc.returncode == 0, proc.stderr
    # 640x360 source: 480p is above it and skipped
    assert sorted(p.name for p in out.iterdir()) == checks.output_names(["240p", "360p"])
    for name in ("240p.mp4", "360p.mp4"):
        assert checks.frame_count(out / name) == 60
        assert checks.is_faststart(out / name)


def test_manifest_documents_the_job(cli_encode, clip):
    proc, out = cli_encode
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "manifest.json").read_text())
    for key in ("source", "renditions", "segments", "chunk_seconds", "timings"):
        assert key in doc, f"manifest lacks {key!r}"
    src = checks.stream_info(clip("h264_640x360"))
    s = doc["source"]
    for key in ("duration", "fps", "width", "height", "codec", "has_audio"):
        assert key in s, f"manifest source lacks {key!r}"
    assert (s["width"], s["height"], s["codec"], s["has_audio"]) == (640, 360, "h264", True)
    assert abs(s["duration"] - float(src["video_duration"])) < 1 / 30
    assert abs(s["fps"] - 30) < 0.01
    assert doc["chunk_seconds"] == 1.0
    assert isinstance(doc["segments"], int) and doc["segments"] >= 2
    assert isinstance(doc["timings"], dict) and doc["timings"]
    assert all(isinstance(v, (int, float)) and v >= 0 for v in doc["timings"].values())
    assert [r["path"] for r in doc["renditions"]] and len(doc["renditions"]) == 2
    for r in doc["renditions"]:
        for key in ("path", "width", "height", "frames", "duration", "bytes", "bitrate"):
            assert key in r, f"manifest rendition lacks {key!r}"
        path = (out / r["path"]).resolve()
        assert path.parent == out.resolve(), f"rendition path {r['path']!r} is not in the output dir"
        info = checks.stream_info(path)
        assert (r["width"], r["height"]) == (info["width"], info["height"])
        assert r["frames"] == info["frames"] == 60
        assert abs(r["duration"] - float(info["video_duration"])) < 1 / 30
        assert r["bytes"] == path.stat().st_size
        expected_bitrate = r["bytes"] * 8 / r["duration"]
        assert abs(r["bitrate"] - expected_bitrate) / expected_bitrate < 0.05, (r["bitrate"], expected_bitrate)


def test_encode_settings_are_applied(cli_encode, encoded):
    """--crf 30 --preset ultrafast reach libx264 (read back from the SEI x264 writes), unlike
    the library defaults (crf 23, veryfast)."""
    proc, out = cli_encode
    assert proc.returncode == 0, proc.stderr
    for name in ("240p.mp4", "360p.mp4"):
        opts = checks.x264_options(out / name)
        assert opts, f"{name}: no x264 SEI"
        assert float(opts["crf"]) == 30.0, opts.get("crf")
        # ultrafast: CAVLC, no subpel refinement, no B-frames
        assert (opts["cabac"], opts["subme"], opts["bframes"]) == ("0", "0", "0"), opts
    res, lib_out = encoded("h264_640x360", ladder=("240p", "360p"), chunk_seconds=1.0)
    default = checks.x264_options(lib_out / res.rendition("360p").path)
    assert float(default["crf"]) == 23.0 and default["cabac"] == "1", default


def _bad_inputs(clip, d: Path) -> dict[str, Path]:
    return {
        "hls": mediagen.write_hls_playlist(d / "pl.m3u8", clip("h264_ts")),
        "hls_as_mp4": mediagen.write_hls_playlist(d / "pl.mp4", clip("h264_ts")),
        "ffconcat": mediagen.write_ffconcat(d / "x.ffconcat"),
        "noise": mediagen.write_random_bytes(d / "noise.mp4"),
        "truncated": mediagen.write_truncated(clip("h264_mp4"), d / "cut.mp4", 0.4),
        "audio_only": mediagen.make_audio_only(d / "a.m4a"),
    }


BAD = ["hls", "hls_as_mp4", "ffconcat", "noise", "truncated", "audio_only"]


@pytest.mark.parametrize("kind", BAD)
def test_encode_bad_input_exit_2_one_error_line(clip, tmp_path, kind):
    src = _bad_inputs(clip, tmp_path)[kind]
    parent = tmp_path / "outparent"
    parent.mkdir()
    out = parent / "out"
    proc = segenc_cli("encode", src, "-o", out, "--ladder", "240p", "--workers", "2")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), f"stderr was {proc.stderr!r}"
    assert "Traceback" not in proc.stderr
    assert not checks.leftovers(out), checks.leftovers(out)


@pytest.mark.parametrize("kind", ["hls", "noise", "audio_only"])
def test_probe_bad_input_exit_2_one_error_line(clip, tmp_path, kind):
    src = _bad_inputs(clip, tmp_path)[kind]
    proc = segenc_cli("probe", src)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), f"stderr was {proc.stderr!r}"
    assert proc.stdout == ""


@pytest.mark.parametrize("name,codec", [("h264_mp4", "h264"), ("hevc10_mkv", "hevc"), ("vp9_webm", "vp9")])
def test_probe_prints_json(clip, name, codec):
    proc = segenc_cli("probe", clip(name))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["codec"] == codec
    facts = checks.stream_info(clip(name))
    assert (doc["width"], doc["height"]) == (facts["width"], facts["height"])
    assert doc["frames"] == facts["frames"]
    assert doc["has_audio"] is True


def test_granularity_option_and_automatic_chunk_length(clip, tmp_path, encoded):
    """Both tuning knobs are options: --granularity, and --chunk-seconds left out picks a length
    for the workers (recorded in the manifest); a bad granularity is refused with exit 2."""
    src = clip("h264_640x360")
    frames = checks.frame_count(src)
    proc = segenc_cli("encode", src, "-o", tmp_path / "out", "--ladder", "240p", "--workers", "2",
                      "--granularity", "rendition", "--preset", "ultrafast")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert 2.0 <= doc["chunk_seconds"] <= 10.0 and doc["segments"] >= 1
    assert checks.frame_count(tmp_path / "out" / "240p.mp4") == frames
    bad = segenc_cli("encode", src, "-o", tmp_path / "bad", "--granularity", "frame")
    assert bad.returncode == 2 and "granularity" in bad.stderr and not (tmp_path / "bad").exists()
    res, _ = encoded("h264_640x360", ladder=("240p",), chunk_seconds=None)
    assert {"probe", "split", "serial", "encode", "concat", "total"} <= set(res.timings)
    assert 0 <= res.timings["serial"] <= res.timings["total"] and res.chunk_seconds >= 2.0


def test_presets_are_listed():
    proc = segenc_cli("presets")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line and not line.startswith(" ")]
    assert names == ["web", "streaming", "archive"], proc.stdout
    assert "1080p@5M" in proc.stdout


def test_codec_crf_gop_caps_and_no_audio_reach_the_output(clip, tmp_path):
    out = tmp_path / "out"
    proc = segenc_cli("encode", clip("h264_640x360"), "-o", out, "--codec", "av1", "--crf", "40.5", "--gop", "1",
                      "--ladder", "240p@300k,4320p", "--no-audio", "--preset", "ultrafast", "--workers", "2",
                      "--chunk-seconds", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Svt[info]" not in proc.stderr, "SVT-AV1 chatter on stderr"
    assert sorted(p.name for p in out.iterdir()) == checks.output_names(["240p"], 0)  # 4320p: above the source
    info = checks.stream_info(out / "240p.mp4")
    assert info["video_codec"] == "av1" and info["audio_codec"] is None, info
    assert checks.keyframe_times(out / "240p.mp4") == [0.0, 1.0]
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["settings"]["crf"] == 40.5 and doc["settings"]["caps"] == {
        "240p": {"maxrate": 300_000, "bufsize": 600_000}}


@pytest.mark.parametrize("args,needle", [
    (("--crf", "18.5x"), "--crf"), (("--codec", "vp8"), "h264, hevc, av1"), (("--ladder", "540x"), "<height>p"),
    (("--preset", "turbo"), "web, streaming, archive"), (("--audio-bitrate", "5k"), "16k"),
])
def test_bad_encoding_options_exit_2_naming_allowed_values(clip, tmp_path, args, needle):
    out = tmp_path / "out"
    proc = segenc_cli("encode", clip("h264_mp4"), "-o", out, *args)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and not out.exists()
