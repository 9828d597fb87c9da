"""segenc benchmarks: ``python -m benchmarks --list`` / ``python -m benchmarks ladder --quick``.

Layout: ``registry`` (named figures), ``runs`` (measure a subprocess, alternate, medians),
``inputs`` (cached synthetic sources), ``baseline`` (ffmpeg CLI commands), ``run_segenc``
(subprocess runner for segenc.encode), ``media`` (describe outputs), ``machine``, ``report``,
and one module per figure (``ladder``). See README.md.
"""
