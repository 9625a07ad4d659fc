"""The gateway's module structure: no import cycle, and every module imports on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gateway

ROOT = Path(gateway.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The gateway modules ``path`` imports anywhere in it (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found.update(subs & MODULES.keys() or {node.module})
    return found


def test_no_gateway_module_imports_itself_through_others() -> None:
    graph = {name: _imports(path) for name, path in MODULES.items()}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        for dep in sorted(graph[name]):
            if dep in trail:
                cycles.append([*trail[trail.index(dep) :], dep])
            elif dep not in done:
                visit(dep, [*trail, dep])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_every_gateway_module_imports_alone() -> None:
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {sorted(MODULES)!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'gateway']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        failed.append(f'{name}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_gateway_loads_no_terminal_device_code() -> None:
    """The gateway runs on the card centre's machines, not in a terminal: it shares the
    terminal's byte layouts, models and the card registry protocol, never the device stack
    (journal, uplink, runtime, roles)."""
    script = (
        "import sys, gateway.app\n"
        "device = ('terminal.journal', 'terminal.uplink', 'terminal.runtime', 'terminal.roles.')\n"
        "print(sorted(m for m in sys.modules if m.startswith(device)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT.parent
    ).stdout
    assert out.strip() == "['terminal.roles.registry']"
