"""The structure of the package: one package per concern in layers that only point down, no import cycles, and
a model, a dataset or a metric is one file found without editing a list."""
from __future__ import annotations

import ast
from pathlib import Path

import vpbench

PACKAGE = Path(vpbench.__file__).parent

# The layers, lowest first. A module may import from its own package (top-level name) and from lower layers;
# never from a higher layer or from another package of its own layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("signals", "parallel", "environment", "plugins", "presets", "losses", "store", "locks"),
    ("models", "datasets", "fetch"),
    ("metrics",),
    ("config",),
    ("harness", "report"),
    ("launch", "reference"),
    ("diagnostics",),
    ("cli",),
)
# The one cycle allowed: a registry imports its plug-in loader lazily, the loader registers into the registry.
LAZY_PLUGIN_LOADERS = {frozenset({"vpbench.models.registry", "vpbench.models.plugins"})}


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``module`` imports, relative imports resolved, at any depth of its code (lazy imports in
    functions included). ``from a import b`` counts as an import of ``a.b`` when that is a module."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(filter(None, (base, node.module)))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def modules() -> dict[str, Path]:
    """Every module of vpbench by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("vpbench", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the vpbench modules it imports (names that are not modules, e.g. classes, are dropped)."""
    return {name: {m for m in imports_of(path.read_text(), name, path.name == "__init__.py") if m in known and m != name}
            for name, path in known.items()}


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, top-level package) of a vpbench module; None for the root package."""
    top = module.split(".")[1] if module.count(".") else None
    if top is None:
        return None
    for index, names in enumerate(LAYERS):
        if top in names:
            return index, top
    raise AssertionError(f"vpbench.{top} is in no layer of tests/test_structure.py: add it to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        here = layer_of(module)
        for target in targets:
            there = layer_of(target)
            if here is None or there is None or here[1] == there[1]:
                continue
            if there[0] >= here[0]:
                side = "up" if there[0] > here[0] else "sideways"
                bad.append(f"{module} imports {target} ({side}: {here[1]} -> {there[1]})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), less the allowed lazy loaders."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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
            if len(component) > 1 and frozenset(component) not in LAZY_PLUGIN_LOADERS:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_import_points_down_the_layers():
    graph = import_graph(modules())
    assert len(graph) > 100
    assert upward_imports(graph) == []


def test_there_is_no_import_cycle_but_the_lazy_plugin_loader():
    assert cycles(import_graph(modules())) == []


def test_every_package_says_what_it_owns_and_what_it_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 25 and "import" in doc, f"{init.relative_to(PACKAGE)}: a docstring saying what " \
                                                             "the package owns and what it may import"


def test_the_checks_see_an_upward_import_and_a_cycle():
    """What the two tests above would say of a package with one upward import and one cycle."""
    known = {name: Path() for name in ("vpbench.models.a", "vpbench.models.b", "vpbench.report.page",
                                       "vpbench.harness.runner", "vpbench.models.registry", "vpbench.models.plugins")}
    sources = {
        "vpbench.models.a": "from vpbench.models import b\ndef f():\n    from vpbench.report import page\n",
        "vpbench.models.b": "from . import a\n",
        "vpbench.report.page": "import vpbench.harness.runner\n",
        "vpbench.harness.runner": "",
        "vpbench.models.registry": "def load():\n    from vpbench.models import plugins\n",
        "vpbench.models.plugins": "from vpbench.models.registry import register_model\n",
    }
    graph = {name: {m for m in imports_of(source, name) if m in known and m != name}
             for name, source in sources.items()}
    assert upward_imports(graph) == [
        "vpbench.models.a imports vpbench.report.page (up: models -> report)",
        "vpbench.report.page imports vpbench.harness.runner (sideways: report -> harness)",
    ]
    assert cycles(graph) == [["vpbench.models.a", "vpbench.models.b"]]


def test_no_module_test_or_golden_generator_is_named_by_a_number():
    """Files are named by subject: a digit in a name is allowed only inside a model's or a dataset's own name
    (``e3dlstm``, ``human36m``)."""
    from vpbench.datasets import dataset_names
    from vpbench.models import model_names

    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "tools").rglob("*.py")]
    assert len(files) > 100
    numbered = []
    for path in files:
        stem = path.stem
        for name in sorted([*model_names(), *dataset_names()], key=len, reverse=True):
            stem = stem.replace(name, "")
        if any(ch.isdigit() for ch in stem):
            numbered.append(str(path.relative_to(root)))
    assert numbered == []
