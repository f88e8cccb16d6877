"""The house rules of lib/, checked on the source: imports flow one way (pages → ui → services →
clients/store → settings), no import cycle anywhere in lib/ (imports inside functions count), no
module over 600 lines, and pages that only render."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"

# The bottom layer: settings and pure helpers every layer may use.
SETTINGS = {"lib.settings", "lib.errors", "lib.logs", "lib.emails", "lib.columns", "lib.processes", "lib.figures",
            "lib.activity"}
# API clients, the store, where secrets live; and the sandbox, a stand-alone server.
CLIENTS_STORE_PREFIXES = ("lib.http", "lib.ratelimit", "lib.clevertap", "lib.clearout", "lib.store", "lib.vault",
                          "lib.secret_relay",
                          "lib.sandbox")
LAYERS = ("settings", "clients/store", "services", "ui")
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in LIB.rglob("*.py")}


def layer(module: str) -> str:
    if module in SETTINGS:
        return "settings"
    if module.startswith(CLIENTS_STORE_PREFIXES):
        return "clients/store"
    if module == "lib.ui" or module.startswith("lib.ui."):
        return "ui"
    return "services"


def imports(path: Path) -> set[str]:
    """Every lib module `path` imports, at the top or inside a function (`from lib import x` is lib.x
    when x is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib") and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


GRAPH = {name: {i for i in imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}


def test_imports_flow_one_way() -> None:
    wrong = [f"{source} ({layer(source)}) imports {target} ({layer(target)})"
             for source, targets in GRAPH.items() for target in targets
             if LAYERS.index(layer(target)) > LAYERS.index(layer(source))]
    assert wrong == []


def test_no_import_cycle_in_lib() -> None:
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert cycles == []


def test_only_lib_ui_imports_streamlit() -> None:
    importers = sorted(name for name, path in MODULES.items() if layer(name) != "ui" and any(
        isinstance(n, (ast.Import, ast.ImportFrom)) and "streamlit" in (
            [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""])
        for n in ast.walk(ast.parse(path.read_text()))))
    assert importers == []


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("path", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_only_render(path: Path) -> None:
    """No HTTP, SQL or frame reshaping in a page: those live in lib/; pages stay short."""
    tree = ast.parse(path.read_text())
    modules = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    modules |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not modules & {"requests", "sqlite3", "pandas", "pyarrow", "duckdb", "numpy", "urllib", "http"}
    assert len(path.read_text().splitlines()) <= 80
