"""Shared measurement helpers: run a command and measure it, alternate variants, take medians.

Every measured thing runs as a *subprocess*, so wall time (``time.perf_counter``) and CPU time
(``resource.getrusage(RUSAGE_CHILDREN)`` deltas: user+sys of the child and every descendant it
waited for) are measured the same way for all variants. A background sampler reads
``/proc/stat`` to see how busy the whole machine was meanwhile: that gives idle core-seconds
(cores the variant left unused) and a warning when something else was using the CPU.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cores() -> int:
    """CPUs this process may run on (affinity), which is what a pool of N=cores uses."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _read_proc_stat() -> tuple[float, float] | None:
    """(busy, total) CPU seconds summed over all CPUs since boot, or None off Linux."""
    try:
        with open("/proc/stat", "rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    vals = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(vals)
    idle = vals[3] + vals[4]
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


class CpuSampler:
    """Samples machine-wide CPU use every ``interval`` seconds in a daemon thread.

    ``profile`` is a list of (seconds since start, busy cores over the last interval).
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.profile: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy = 0.0  # machine-wide busy core-seconds between start() and stop()

    def start(self) -> "CpuSampler":
        self._t0 = time.perf_counter()
        self._first = self._last = _read_proc_stat()
        self._last_t = self._t0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        now, cur = time.perf_counter(), _read_proc_stat()
        if cur is None or self._last is None:
            return
        dt = now - self._last_t
        if dt > 0:
            self.profile.append((round(now - self._t0, 3), round((cur[0] - self._last[0]) / dt, 2)))
        self._last, self._last_t = cur, now

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> "CpuSampler":
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        if self._first is not None and self._last is not None:
            self.busy = self._last[0] - self._first[0]
        return self


@dataclass
class Measurement:
    """One measured run of one variant."""

    variant: str
    wall: float              # seconds, perf_counter around the subprocess
    user: float              # CPU seconds (children user time delta)
    sys: float               # CPU seconds (children system time delta)
    cores: int
    machine_busy: float      # machine-wide busy core-seconds during the run (all processes)
    started_at: float = 0.0  # time.time() at launch, to line the profile up with events from the child
    profile: list[tuple[float, float]] = field(default_factory=list)  # (t, busy cores)
    extra: dict[str, Any] = field(default_factory=dict)              # variant-specific results

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def utilization(self) -> float:
        """Share of the machine's core-seconds this run used (1.0 = all cores busy all the time)."""
        return self.cpu / (self.wall * self.cores) if self.wall > 0 else 0.0

    @property
    def idle_core_seconds(self) -> float:
        return max(0.0, self.wall * self.cores - self.cpu)

    @property
    def foreign_cpu(self) -> float:
        """Busy core-seconds on the machine not accounted to this run (noise from other work)."""
        return max(0.0, self.machine_busy - self.cpu)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(cpu=self.cpu, utilization=self.utilization, idle_core_seconds=self.idle_core_seconds,
                 foreign_cpu=self.foreign_cpu)
        return d


class CommandFailed(RuntimeError):
    pass


def run_measured(cmd: Sequence[str], *, variant: str, log_path: Path | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 timeout: float | None = None, sample_interval: float = 0.25) -> Measurement:
    """Run ``cmd`` to completion and measure wall and CPU time. Raises CommandFailed on non-zero exit."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        sampler = CpuSampler(sample_interval).start()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at = time.time()
        t0 = time.perf_counter()
        proc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(env) if env is not None else None, cwd=cwd, timeout=timeout)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampler.stop()
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = ""
        if log_path and Path(log_path).exists():
            tail = Path(log_path).read_text(errors="replace")[-3000:]
        raise CommandFailed(f"{variant}: exit {proc.returncode}: {' '.join(map(str, cmd))}\n{tail}")
    return Measurement(variant=variant, wall=wall, user=after.ru_utime - before.ru_utime,
                       sys=after.ru_stime - before.ru_stime, cores=cores(), machine_busy=sampler.busy,
                       started_at=started_at, profile=sampler.profile)


def wait_for_quiet(max_busy: float = 0.3, window: float = 1.0, timeout: float = 60.0) -> tuple[float, bool]:
    """Wait until the machine averaged < ``max_busy`` busy cores over ``window`` s (other work done).

    Returns (seconds waited, whether it got quiet before ``timeout``). On a shared machine this
    keeps other people's test runs from landing in the middle of a measurement.
    """
    t0 = time.perf_counter()
    while True:
        a = _read_proc_stat()
        time.sleep(window)
        b = _read_proc_stat()
        if a is None or b is None or (b[0] - a[0]) / window < max_busy:
            return time.perf_counter() - t0, True
        if time.perf_counter() - t0 >= timeout:
            return time.perf_counter() - t0, False


def alternate(variants: Mapping[str, Callable[[int], Measurement]], repeat: int, *, warmup: int = 0,
              on_result: Callable[[int, Measurement], None] | None = None,
              settle: Callable[[], tuple[float, bool]] | None = None,
              accept: Callable[[Measurement], bool] | None = None, retries: int = 0,
              on_retry: Callable[[int, Measurement], None] | None = None) -> dict[str, list[Measurement]]:
    """Run variants interleaved, A B A B ..., ``repeat`` times each (after ``warmup`` unrecorded rounds).

    Interleaving spreads slow drift (thermal, page cache, a noisy neighbour) over all variants
    instead of penalising whichever ran last. Each callable gets the round number. ``settle``
    runs before every measurement (e.g. :func:`wait_for_quiet`); a measurement ``accept``
    rejects is redone up to ``retries`` times (the last attempt is kept either way).
    """
    results: dict[str, list[Measurement]] = {name: [] for name in variants}
    for rnd in range(-warmup, repeat):
        for name, fn in variants.items():
            for attempt in range(retries + 1):
                waited = settle() if settle else None
                m = fn(rnd)
                m.extra["attempt"] = attempt + 1
                if waited is not None:
                    m.extra["settle_seconds"], m.extra["settled_quiet"] = round(waited[0], 2), waited[1]
                if accept is None or accept(m) or attempt == retries:
                    break
                if on_retry:
                    on_retry(rnd, m)
            if rnd >= 0:
                results[name].append(m)
            if on_result:
                on_result(rnd, m)
    return results


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def summarize(ms: Sequence[Measurement], noise_limit: float = 0.10) -> dict[str, float]:
    """Medians (and spread of wall time) over repeated measurements of one variant.

    ``wall_quiet`` is the median wall time over the runs during which other processes used at
    most ``noise_limit`` of the run's own CPU time (NaN when there is none): on a shared machine
    it is the better estimate; ``wall_min`` is the other robust one.
    """
    walls = [m.wall for m in ms]
    quiet = [m.wall for m in ms if m.foreign_cpu <= noise_limit * m.cpu]
    return {
        "runs": len(ms),
        "wall": median(walls),
        "wall_min": min(walls) if walls else float("nan"),
        "wall_max": max(walls) if walls else float("nan"),
        "quiet_runs": len(quiet),
        "wall_quiet": median(quiet),
        "cpu": median(m.cpu for m in ms),
        "user": median(m.user for m in ms),
        "sys": median(m.sys for m in ms),
        "utilization": median(m.utilization for m in ms),
        "idle_core_seconds": median(m.idle_core_seconds for m in ms),
        "foreign_cpu": median(m.foreign_cpu for m in ms),
    }


def from_dict(d: dict[str, Any]) -> Measurement:
    """Inverse of ``Measurement.to_dict`` (derived fields are dropped), for re-reporting stored runs."""
    names = {f for f in Measurement.__dataclass_fields__}
    m = Measurement(**{k: v for k, v in d.items() if k in names})
    m.profile = [tuple(x) for x in m.profile]
    return m


def sparkline(profile: Sequence[tuple[float, float]], n_cores: int, width: int = 60) -> str:
    """Busy cores over time as a one-line bar chart, resampled to ``width`` buckets (0..n_cores)."""
    if not profile:
        return ""
    bars = " ▁▂▃▄▅▆▇█"
    t_end = profile[-1][0] or 1.0
    buckets: list[list[float]] = [[] for _ in range(width)]
    for t, busy in profile:
        buckets[min(width - 1, int(t / t_end * width))].append(busy)
    out, last = [], 0.0
    for b in buckets:
        last = sum(b) / len(b) if b else last
        out.append(bars[max(0, min(len(bars) - 1, round(last / n_cores * (len(bars) - 1))))])
    return "".join(out)
