"""Every variable the platform reads from the environment is listed, with its meaning, in `.env.example`."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("config", "registry", "releases", "web", "workers", "modelcore", "devstack", "manage.py")
ENV_HELPERS = {"envstr", "envbool", "envint", "envlist", "envsecret", "_envrate"}
# Read by tooling around the platform rather than by it (the test settings' own run id, pytest-xdist's process id).
NOT_SETTINGS = {"STAGEGATE_TEST_RUN_ID", "PYTEST_XDIST_WORKER"}


def _read_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        literal = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            target = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            if called in ENV_HELPERS or (target in {"os.environ", "environ"} and called in {"get", "setdefault"}) \
                    or (target == "os" and called == "getenv"):
                literal = node.args[0].value
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" \
                and isinstance(node.slice, ast.Constant):
            literal = node.slice.value
        if isinstance(literal, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", literal):
            names.add(literal)
    return names


def _variables_read() -> set[str]:
    names = set()
    for source in SOURCES:
        path = ROOT / source
        for file in [path] if path.is_file() else path.rglob("*.py"):
            names |= _read_names(ast.parse(file.read_text()))
    return names - NOT_SETTINGS


def _variables_listed() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {match[1] for line in lines if (match := re.match(r"#?\s*([A-Z][A-Z0-9_]+)=", line))}


def test_every_variable_read_is_listed_in_the_env_example():
    assert sorted(_variables_read() - _variables_listed()) == []


def test_the_scan_finds_each_way_of_reading_a_variable():
    tree = ast.parse('envint("A_ONE", 1)\nos.environ.get("A_TWO")\nos.environ["A_THREE"]\n'
                     'os.environ.setdefault("A_FOUR", "x")\nos.getenv("A_FIVE")')
    assert _read_names(tree) == {"A_ONE", "A_TWO", "A_THREE", "A_FOUR", "A_FIVE"}
