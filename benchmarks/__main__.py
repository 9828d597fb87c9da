"""``python -m benchmarks [--list] NAME [options]``: run a named benchmark figure."""

from __future__ import annotations

import argparse
import sys

from .registry import load_all


def build_parser() -> argparse.ArgumentParser:
    benches = load_all()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks for segenc. Each figure generates (and caches) its inputs, runs its variants "
                    "alternately, prints a table and writes benchmarks/results/<figure>-*.md/.json.",
        epilog="Examples:\n  python -m benchmarks --list\n  python -m benchmarks ladder --quick\n"
               "  python -m benchmarks ladder --flavour clean --repeat 5\n  python -m benchmarks ladder --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    sub = p.add_subparsers(dest="figure", metavar="FIGURE")
    for name, b in benches.items():
        sp = sub.add_parser(name, help=b.help, description=b.description,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        b.add_arguments(sp)
        sp.set_defaults(func=b.run)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.list:
        for name, b in load_all().items():
            print(f"{name:<12} {b.help}")
        return 0
    if not args.figure:
        p.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
