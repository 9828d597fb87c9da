"""segenc.quality agrees with FFmpeg's psnr and ssim filters (the ffmpeg CLI from imageio-ffmpeg)."""

import re
import subprocess

import pytest

import segenc
from segenc.quality import compare
from tests.mediagen import make_clip

pytestmark = pytest.mark.media


def ffmpeg_scores(source, output, w, h):
    import imageio_ffmpeg

    graph = (f"[1:v]scale={w}:{h}:flags=bicubic,format=yuv420p[ref];[0:v]format=yuv420p[d];"
             "[d]split[d1][d2];[ref]split[r1][r2];[d1][r1]psnr;[d2][r2]ssim")
    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(output), "-i",
                        str(source), "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, check=True)
    return float(re.search(r"PSNR y:([0-9.]+)", r.stderr)[1]), float(re.search(r"SSIM Y:([0-9.]+)", r.stderr)[1])


def test_psnr_and_ssim_match_ffmpegs_filters(tmp_path):
    src = make_clip(tmp_path / "src.mp4", width=640, height=360, seconds=1.0, audio=False)
    res = segenc.encode(src, tmp_path / "out", ("240p", "360p"), workers=2, settings=segenc.Settings(crf=30))
    for r in res.renditions:
        ours = compare(src, tmp_path / "out" / r.path)
        psnr, ssim = ffmpeg_scores(src, tmp_path / "out" / r.path, r.width, r.height)
        assert ours["frames"] == r.frames
        assert abs(ours["psnr_y"] - psnr) < 0.01, (r.name, ours, psnr)
        assert abs(ours["ssim_y"] - ssim) < 0.0005, (r.name, ours, ssim)
        assert 25 < ours["psnr_y"] < 60 and 0.8 < ours["ssim_y"] < 1.0
        sampled = compare(src, tmp_path / "out" / r.path, every=4)
        assert sampled["frames"] == r.frames and sampled["scored_frames"] == -(-r.frames // 4)
        assert abs(sampled["psnr_y"] - ours["psnr_y"]) < 1.0 and sampled["psnr_y"] != ours["psnr_y"]
