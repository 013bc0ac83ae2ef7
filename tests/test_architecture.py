"""The package's structure, drawn from its imports: layers, no circles, no private reach-ins.

The layer map lives in docs/architecture.md; these tests keep the code and the map in step.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"

# Lowest layer first; a module may import from its own layer or any lower one (docs/architecture.md).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "cache", "fetch", "progress", "geometry", "runs", "report", "judge_specs",
     "version", "deprecation"),
    ("model", "data"),
    ("activations",),
    ("steering",),
    ("directions",),
    ("evaluation",),
    ("safesteer",),
    ("analysis", "rundir"),
    ("figures", "notebook", "vectors", "plot", "distributed"),
    ("api", "validation", "jobs", "cli"),
]
BACKEND_ATTRIBUTES = {"bridge", "hf_model", "original_model"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def top(module: str) -> str:
    """``workbench.directions.caa`` -> ``directions``; ``workbench`` -> ``""`` (the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    name = top(module)
    if name == "":
        return len(LAYERS) - 1  # the package root re-exports the API lazily: top layer
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"{module} belongs to no layer; add {name!r} to LAYERS and to "
                         "docs/architecture.md")


def resolve(current: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    package = base if MODULES[current].name == "__init__.py" else base[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def owner(name: str) -> str | None:
    """The workbench module that ``name`` (a module or module.attribute) lives in."""
    while name and name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name or None


def imports(path: Path, current: str | None) -> list[tuple[str, str | None, int]]:
    """(module, imported attribute or None, line) for every workbench import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names
                    if a.name.startswith("workbench")]
        elif isinstance(node, ast.ImportFrom):
            mod = resolve(current, node) if current else (node.module or "")
            if not mod.startswith("workbench"):
                continue
            for a in node.names:
                full = f"{mod}.{a.name}"
                out.append((full, None, node.lineno) if full in MODULES
                           else (mod, a.name, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, _, _ in imports(path, mod):
            dest = owner(target)
            if dest and dest != mod:
                edges[mod].add(dest)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_cycle_finder_finds_a_planted_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(graph()) == []


def test_imports_go_down_the_layers():
    upward = [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
              for a, targets in graph().items() for b in targets
              if layer_of(b) > layer_of(a)]
    assert upward == []


def notebook_sources() -> list[tuple[str, str]]:
    out = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        lines = [ln for ln in code.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        out.append((str(nb.relative_to(ROOT)), "\n".join(lines)))
    return out


def python_sources(*folders: str) -> list[tuple[str, str, str | None]]:
    out = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            mod = module_name(path) if folder == "workbench" else None
            out.append((str(path.relative_to(ROOT)), path.read_text(), mod))
    return out


def all_sources():
    for rel, text, mod in python_sources("workbench", "benchmarks", "tests"):
        yield rel, text, mod
    for rel, text in notebook_sources():
        yield rel, text, None


def test_no_private_names_imported_across_modules():
    found = []
    for rel, text, mod in all_sources():
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench"):
                found += [f"{rel}:{node.lineno} imports {a.name} from {node.module}"
                          for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Import):
                found += [f"{rel}:{node.lineno} imports {a.name}" for a in node.names
                          if any(p.startswith("_") and not p.startswith("__")
                                 for p in a.name.split(".")) and a.name.startswith("workbench")]
    assert found == []


def attribute_uses(text: str, names: set[str]) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Attribute) and node.attr in names]


def test_backend_only_inside_the_model_runtime():
    """``.bridge``, ``.hf_model`` and ``.original_model`` are the runtime's own business: the
    rest of the package, the benchmarks and the notebooks go through WorkbenchModel's methods,
    so a second backend is one new class (docs/runtime.md). Tests may still compare against
    the raw Hugging Face model as an independent reference."""
    found = []
    for rel, text, mod in all_sources():
        if rel.startswith(("workbench/model/", "tests/")):
            continue
        found += [f"{rel}:{line}" for line in attribute_uses(text, BACKEND_ATTRIBUTES)]
    assert found == []


def test_the_checks_would_see_a_violation(tmp_path):
    """The AST readers above catch what they are meant to (a check that cannot fail is none)."""
    text = ("from workbench.jobs.audit import _saved\nimport workbench._x\n"
            "def f(m):\n    return m.hf_model\n")
    tree = ast.parse(text)
    private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names if a.name.startswith("_")]
    assert private == ["_saved"]
    assert attribute_uses(text, BACKEND_ATTRIBUTES) == [4]
    assert layer_of("workbench.jobs.audit") > layer_of("workbench.model.wrapper")
    with pytest.raises(AssertionError, match="no layer"):
        layer_of("workbench.nowhere")


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_jobs_are_thin():
    """Jobs configure, orchestrate and write: at most 15% of the package's lines."""
    total = sum(lines(p) for p in PACKAGE.rglob("*.py"))
    jobs = sum(lines(p) for p in (PACKAGE / "jobs").rglob("*.py"))
    assert jobs <= 0.15 * total, f"jobs/ is {jobs} of {total} lines ({jobs / total:.1%})"


def test_every_top_level_module_has_a_layer():
    for mod in MODULES:
        layer_of(mod)


def test_layer_map_matches_the_docs():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for names in LAYERS:
        for name in names:
            assert f"`{name}`" in doc, f"docs/architecture.md does not place `{name}`"
