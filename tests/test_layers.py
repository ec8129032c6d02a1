"""Imports go one way: core -> model -> kernels -> stages -> analysis, and no module imports itself
back through others. Walks every import statement, function-level ones included."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "kernels", "analysis")
# (module prefix, layer); the first prefix that matches wins
LAYERS = (
    ("pipeline.core", 0),
    ("pipeline.model", 1),
    ("kernels", 2),
    ("pipeline.stages", 3),
    ("pipeline.config", 3),
    ("pipeline.bench", 3),
    ("pipeline", 3),  # the package itself
    ("analysis", 4),
)
LAYER_NAMES = ("core", "model", "kernels", "stages", "analysis")


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def layer(module: str) -> int:
    return next(n for prefix, n in LAYERS if module == prefix or module.startswith(prefix + "."))


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports, resolved to modules (``from pkg import mod`` too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in modules:  # pipeline.core.tiles.Tile -> pipeline.core.tiles
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in PACKAGES:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: {i for i in imports(p, modules) if i != m and not m.startswith(i + ".")} for m, p in modules.items()}


def test_no_upward_import():
    bad = [f"{m} ({LAYER_NAMES[layer(m)]}) imports {i} ({LAYER_NAMES[layer(i)]})"
           for m, deps in graph().items() for i in deps if layer(i) > layer(m)]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    g = graph()
    # a package's __init__ is not an import edge of its modules (Python loads it first anyway)
    g = {m: {d for d in deps if d not in PACKAGES and not d.endswith((".core", ".model", ".stages"))} for m, deps in g.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_walk_sees_imports():
    """The test above must be able to fail: a known downward edge of each kind is found."""
    g = graph()
    assert "pipeline.core.tiles" in g["kernels.registry"]
    assert "pipeline.model.costs" in g["pipeline.model.dse"]
    assert "kernels.registry" in g["pipeline.stages.job"]
    assert "pipeline.core.nvml" in g["pipeline.stages.time"]  # `from pipeline.core import nvml`
    assert layer("pipeline.stages.plan") > layer("kernels.api") > layer("pipeline.model.costs") > layer("pipeline.core.gpus")
