"""The import graph of the project, read from its source: no circles, and arrows only one way between apps.

Every import counts, those inside functions too (a lazy import is still an arrow). The layers, top first:
web → releases → registry, with workers beside web (it runs jobs on registry records and records audit events),
modelcore below everything (torch, never Django), and the client apart (HTTP only).
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "registry", "releases", "web", "workers", "modelcore", "devstack")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in (ROOT / "client" / "stagegate_client").rglob("*.py"):
        parts = path.relative_to(ROOT / "client").with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in (ROOT / "bench").glob("*.py"):  # run as scripts with bench/ on sys.path
        found[path.stem] = path
    return found


MODULES = _modules()


def _target(name: str) -> str | None:
    """The project module an import of `name` lands in (its longest project prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from a.b import c` lands in a.b.c when that is a module, else in a.b.
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        targets.update(target for name in names if (target := _target(name)) is not None)
    return targets


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _arrows(source_prefix: str, target_prefix: str) -> list[tuple[str, str]]:
    def within(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    return sorted((source, target) for source, targets in GRAPH.items() if within(source, source_prefix)
                  for target in targets if within(target, target_prefix))


def test_the_graph_reads_every_app():
    assert {"registry.models", "releases.access.rules", "releases.stages", "web.catalogue", "workers.tasks",
            "stagegate_client.cli", "bench_workers"} <= set(GRAPH)


def test_there_is_no_import_circle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_registry_imports_only_the_stage_names_from_releases():
    assert [target for _source, target in _arrows("registry", "releases")] == \
        ["releases.stage_names"] * len(_arrows("registry", "releases"))
    assert _arrows("registry", "web") == [] and _arrows("registry", "workers") == []


def test_releases_never_import_the_site_or_the_workers():
    assert _arrows("releases", "web") == []
    assert _arrows("releases", "workers") == []


def test_workers_never_import_the_site():
    assert _arrows("workers", "web") == []


def test_no_app_imports_another_apps_tasks():
    crossing = [(source, target) for source, targets in GRAPH.items() for target in targets
                if target.endswith(".tasks") and source.split(".")[0] != target.split(".")[0]]
    assert crossing == []


def test_modelcore_imports_neither_django_nor_the_apps():
    for module, path in MODULES.items():
        if module.startswith("modelcore"):
            tree = ast.parse(path.read_text())
            imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                        for alias in node.names}
            imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                         if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
            assert "django" not in imported, module
            assert not imported & {"registry", "releases", "web", "workers", "config"}, module


def test_the_client_imports_nothing_of_the_server():
    assert [(s, t) for s, t in GRAPH.items() if s.startswith("stagegate_client")
            for t in t if not t.startswith("stagegate_client")] == []
