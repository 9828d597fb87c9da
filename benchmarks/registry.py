"""Registry of named benchmarks ("figures").

A figure is a module that calls :func:`register` at import time with a name, a one-line
help text, a function adding its argparse options and a function running it. To add one,
create ``benchmarks/<name>.py`` and list it in :data:`FIGURE_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Callable

# Modules that define figures, imported lazily by :func:`load_all` (so ``--help`` stays cheap
# and a broken figure does not take the others down with it).
FIGURE_MODULES: tuple[str, ...] = (
    "benchmarks.ladder",
    "benchmarks.cluster",
    "benchmarks.transfer",
    "benchmarks.sweep",
    "benchmarks.projection",
    "benchmarks.faults",
    "benchmarks.service_load",
    "benchmarks.streaming",
    "benchmarks.rehearsal",
    "benchmarks.small_end",
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_REGISTRY: dict[str, Benchmark] = {}


def register(name: str, *, help: str, description: str = "",
             add_arguments: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> Benchmark:
    if name in _REGISTRY:
        raise ValueError(f"benchmark {name!r} registered twice")
    bench = Benchmark(name, help, description or help, add_arguments, run)
    _REGISTRY[name] = bench
    return bench


def load_all() -> dict[str, Benchmark]:
    for mod in FIGURE_MODULES:
        importlib.import_module(mod)
    return dict(sorted(_REGISTRY.items()))
