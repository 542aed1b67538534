"""The package's layers, read from the source (ast): a module imports only from its own layer or below,
and no two modules import each other, directly or through others. Lowest first:

foundations   errors, io, locks, faults, progress, gpus, schema_check, and track (the one MLflow module,
              which the compute layer logs through)
catalog       the torch-free declarations: methods, datasets, ops, genotypes, published cells and numbers,
              sizes by formula
settings      the loader and its schema, built from the catalog
planning      study, jobs, layout, estimate, selection: what runs, resolved once; never the compute layer
compute       runtime, space, data, search, train (torch)
output        report, cli
"""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nasflow"
LAYERS = [
    ("foundations", ["nasflow", "nasflow.errors", "nasflow.io", "nasflow.locks", "nasflow.faults", "nasflow.progress",
                     "nasflow.gpus", "nasflow.schema_check", "nasflow.track"]),
    ("catalog", ["nasflow.catalog"]),
    ("settings", ["nasflow.settings"]),
    ("planning", ["nasflow.study", "nasflow.jobs", "nasflow.layout", "nasflow.estimate", "nasflow.selection"]),
    ("compute", ["nasflow.runtime", "nasflow.space", "nasflow.data", "nasflow.search", "nasflow.train"]),
    ("output", ["nasflow.report", "nasflow.cli"]),
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every nasflow module each module imports, at the top or inside a function."""
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("nasflow")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("nasflow"):
                for alias in node.names:  # `from nasflow import io` imports the module nasflow.io
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        graph[name] = found - {name}
    return graph


def _layer(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[0]


def test_every_module_belongs_to_a_layer_and_imports_none_above_it():
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
              for m, targets in _imports().items() for t in targets if _layer(t) > _layer(m)]
    assert not upward, "\n".join(sorted(upward))


def test_no_modules_import_each_other():
    graph = _imports()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, cycles


def test_the_walk_sees_a_planted_upward_import(tmp_path, monkeypatch):
    """The check is not vacuous: a planning module that imports the search package is reported."""
    import shutil

    copy = tmp_path / "nasflow"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "study.py").open("a") as fh:
        fh.write("\nfrom nasflow.search import engine  # planted\n")
    monkeypatch.setattr(__import__(__name__), "SRC", copy)
    upward = [t for t in _imports()["nasflow.study"] if _layer(t) > _layer("nasflow.study")]
    assert upward == ["nasflow.search.engine"]
