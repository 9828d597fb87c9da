"""What the numbers were measured on: CPU, cores, library versions, date, repo state."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .runs import cores

REPO = Path(__file__).resolve().parent.parent


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("model name", "cpu MHz", "flags") and k not in info:
                info[k] = v.strip()
    except OSError:
        pass
    return info


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        p = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def machine_info(ffmpeg_cli: str | None = None) -> dict[str, Any]:
    import av

    from .inputs import ffmpeg_exe, ffmpeg_version

    cpu = _cpuinfo()
    flags = cpu.get("flags", "").split()
    simd = [f for f in ("sse4_2", "avx", "avx2", "avx512f") if f in flags]
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    rev = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "segenc")
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "cores": cores(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_mhz": cpu.get("cpu MHz"),
        "simd": simd,
        "memory_gb": _mem_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "pyav_ffmpeg": getattr(av, "ffmpeg_version_info", "unknown"),
        "ffmpeg_cli": ffmpeg_version(ffmpeg_cli or ffmpeg_exe()),
        "loadavg_at_start": load,
        "git": (rev or "no commits") + (" + uncommitted segenc changes" if dirty else ""),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['cores']} cores ({m['cpu_model']}, {', '.join(m['simd']) or 'no AVX'}), {m['memory_gb']} GB, "
            f"Linux {m['kernel']}, Python {m['python']}, PyAV {m['pyav']} (FFmpeg {m['pyav_ffmpeg']}), "
            f"ffmpeg CLI {m['ffmpeg_cli']}, {m['date']}, segenc {m['git']}")
