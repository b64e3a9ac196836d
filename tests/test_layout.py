"""The package's layout rules, checked on its source (see README "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgecompress"
# Modules that subclass torch classes (or load triton) when imported: heavy, like torch itself,
# so they are imported inside the functions that need them.
HEAVY = ("edgecompress.hf", "edgecompress.kernels", "edgecompress.zoo")
# Entry points that nothing imports: the console script, the registry's built-ins (imported by
# name), scripts run by path, and packages imported by name from recipes.
ENTRY_POINTS = {
    "edgecompress",
    "edgecompress.cli",
    "edgecompress.measure.probe",  # run by path in a fresh interpreter (cold start)
    "edgecompress.zoo",  # recipes name edgecompress.zoo:digits_cnn
    "edgecompress.zoo.train",  # python -m edgecompress.zoo.train
    "edgecompress.compressors.distill_ddp",  # torchrun -m edgecompress.compressors.distill_ddp
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# templates/ folders hold scripts copied into deploy bundles (handler, decoder, app): they run
# standalone there, so they are data to the package, not its modules.
TEMPLATES = [p for p in PACKAGE.rglob("*.py") if "templates" in p.relative_to(PACKAGE).parts]
MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if p not in TEMPLATES}


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def imports(name: str) -> list[tuple[str, bool]]:
    """(own module imported, whether inside a function) for every import in ``name``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend((t, in_function) for t in _targets(child) if t in MODULES)
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, in_function or nested)

    visit(ast.parse(MODULES[name].read_text()), False)
    return found


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports(m) if t != m} for m in MODULES}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_own_modules_imported_at_the_top():
    late = [
        f"{m} imports {t} inside a function"
        for m in MODULES
        for t, in_function in imports(m)
        if in_function and not t.startswith(HEAVY)
    ]
    assert late == []


def named_in_strings(name: str) -> set[str]:
    """Modules a file names in string constants (the registry's built-ins, lazy attributes)."""
    tree = ast.parse(MODULES[name].read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    return {s for s in strings if isinstance(s, str) and s in MODULES}


def test_every_module_is_used_by_the_package():
    edges = graph()
    used = {t for m in MODULES for t in edges[m] | named_in_strings(m) if t != m}
    parents = {m.rsplit(".", 1)[0] for m in MODULES if "." in m}
    assert sorted(set(MODULES) - used - ENTRY_POINTS - parents) == []


def test_no_lambda_packaging_under_exporters():
    assert sorted(p.name for p in (PACKAGE / "exporters").rglob("lambda_*.py")) == []


def test_folders_hold_their_concern():
    for folder in ("compressors", "exporters/onnx", "exporters/tflite", "awslambda", "measure",
                   "report", "kernels", "cli"):  # fmt: skip
        assert (PACKAGE / folder / "__init__.py").is_file(), folder


def test_templates_import_nothing_from_the_package():
    """A bundle's scripts ship without edgecompress: they may import only each other."""
    assert TEMPLATES, "no templates found"
    for path in TEMPLATES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                assert not any(n.split(".")[0] == "edgecompress" for n in names), path
