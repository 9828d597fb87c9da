"""PNG figures for the benchmark results (matplotlib, Agg backend, imported lazily).

Only the figures that need a picture import this, and only when they write one, so every
benchmark still runs without matplotlib: a missing install prints one line and skips the PNG.
``pip install -e .[bench]`` installs it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

INSTALL_HINT = "pip install -e .[bench]"
# Per granularity: a colour, a marker and a line style; hollow diamonds are segenc's automatic chunk length.
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
_MARKERS = ("o", "s", "^", "v", "P")
_STYLES = ("-", "--", "-.", ":")   # lines that coincide (equal sizes) stay visible
_YLABELS = {"speed": "ffmpeg wall / segenc wall", "size_ratio": "segenc bytes / ffmpeg bytes",
            "psnr_delta": "segenc - ffmpeg, dB"}


def _figure_class():
    """matplotlib's Figure (no pyplot: no global backend state, Agg canvas) or None if missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        print(f"note: matplotlib is not installed, so no PNG plot was drawn ({INSTALL_HINT})")
        return None
    return Figure


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def sweep(points: Sequence[dict[str, Any]], rungs: Sequence[str], path: Path, *, title: str = "",
          targets: dict[str, float] | None = None) -> Path | None:
    """The chunk-length x granularity sweep: speed, size ratio and PSNR-Y delta vs chunk length.

    ``points``: one dict per segenc config with ``chunk`` (requested seconds, None = segenc's
    automatic length), ``chunk_effective`` (the length segenc used), ``granularity``, ``speed``,
    ``size_ratio`` and ``psnr_delta`` (``{rung: value}``) and ``best``/``default`` flags.
    ``targets``: ``speed``, ``size``, ``psnr`` reference lines. Returns the PNG path, or None
    when matplotlib is missing.
    """
    Figure = _figure_class()
    if Figure is None:
        return None
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    targets = targets or {}
    grans = list(dict.fromkeys(p["granularity"] for p in points))
    colour = {g: _COLOURS[i % len(_COLOURS)] for i, g in enumerate(grans)}
    xs = sorted({p["chunk_effective"] for p in points if _finite(p.get("chunk_effective"))})
    n = max(1, len(rungs))
    fig = Figure(figsize=(4.2 * max(n, 2), 10.5), layout="constrained")
    gs = fig.add_gridspec(3, n)
    panels = [(fig.add_subplot(gs[0, :]), "speed", None, "speed = ffmpeg wall / segenc wall (higher is better)",
               targets.get("speed"))]
    for i, r in enumerate(rungs):
        panels.append((fig.add_subplot(gs[1, i]), "size_ratio", r, f"{r}: size ratio (lower is better)",
                       targets.get("size")))
    for i, r in enumerate(rungs):
        panels.append((fig.add_subplot(gs[2, i]), "psnr_delta", r,
                       f"{r}: PSNR-Y delta (higher is better)", targets.get("psnr")))

    def value(p: dict[str, Any], key: str, rung: str | None) -> float | None:
        v = p.get(key)
        if rung is not None:
            v = (v or {}).get(rung)
        return v if _finite(v) else None

    for ax, key, rung, label, target in panels:
        for gi, g in enumerate(grans):
            line = sorted((p["chunk_effective"], value(p, key, rung)) for p in points
                          if p["granularity"] == g and p.get("chunk") is not None
                          and _finite(p.get("chunk_effective")) and value(p, key, rung) is not None)
            if line:
                ax.plot([x for x, _ in line], [y for _, y in line], marker=_MARKERS[gi % len(_MARKERS)],
                        ls=_STYLES[gi % len(_STYLES)], color=colour[g], label=g, alpha=0.9)
            for p in points:
                y = value(p, key, rung)
                if p["granularity"] != g or y is None or not _finite(p.get("chunk_effective")):
                    continue
                x = p["chunk_effective"]
                if p.get("chunk") is None:   # segenc's automatic chunk length
                    ax.scatter([x], [y], marker="D", s=60, facecolors="none", edgecolors=colour[g], zorder=4,
                               label=f"{g}, auto")
                if p.get("best"):
                    ax.scatter([x], [y], marker="*", s=260, color="gold", edgecolors="black", zorder=5,
                               label="best")
                if p.get("default"):
                    ax.scatter([x], [y], marker="o", s=200, facecolors="none", edgecolors="black", zorder=5,
                               label="current default")
        if target is not None:
            ax.axhline(target, color="tab:red", ls="--", lw=1.2, label="target")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
        if xs:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(xs))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.set_xlim(xs[0] / 1.25, xs[-1] * 1.25)
        ax.set_xlabel("chunk length, s")
        ax.set_ylabel(_YLABELS[key], fontsize=9)
        if key == "psnr_delta":
            ax.yaxis.get_major_formatter().set_useOffset(False)
    seen: dict[str, Any] = {}
    for ax, *_ in panels:   # one legend for all panels, each label once
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(4, len(seen)),
               fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
