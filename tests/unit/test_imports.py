"""Module structure: no import cycles (imports inside functions count), and only the distributed
state module touches a Redis client or spells a segenc Redis key."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("segenc", "service")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every first-party module ``name`` imports, anywhere in the file."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                up = base[:len(base) - node.level + 1]
                mod = ".".join(up + ([mod] if mod else []))
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        deps = _imports(name, path, known)
        # A package's own submodules importing "from . import x" reach the package: that is the
        # submodule, not the package's __init__ (which only re-exports).
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def test_no_import_cycles_counting_imports_inside_functions():
    graph = _graph()
    assert "segenc.pipeline" in graph and "service.app" in graph
    cycles = []
    state: dict[str, int] = {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_pure_pipeline_imports_neither_celery_nor_flask():
    import subprocess
    import sys

    code = ("import sys, segenc, segenc.steps, segenc.runners.serial; "
            "print(sorted(m for m in ('celery', 'flask', 'redis', 'kombu') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_state_module_touches_redis_or_spells_its_keys():
    owner = REPO / "segenc" / "distributed" / "state.py"
    key = re.compile(r"segenc:(job|jobs|worker|cluster|events)\b")
    offenders = []
    for path in _modules().values():
        if path == owner:
            continue
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n == "redis" or n.startswith("redis.") for n in names) and path.name != "redis_server.py":
                    offenders.append(f"{path.relative_to(REPO)}: imports redis")
            if isinstance(node, ast.Attribute) and node.attr in ("r", "_r") and path.name != "redis_server.py":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
        if key.search(text):
            offenders.append(f"{path.relative_to(REPO)}: spells a segenc: key")
    assert not offenders, offenders
