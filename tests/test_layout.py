"""The layout holds: the core library never imports a study or experiments/, no module-level import
cycles, modules and functions a reader can hold, and a public API that imports what it exports."""

import ast
from pathlib import Path

import dae_jax

PACKAGE = Path(dae_jax.__file__).parent
CORE = [p for p in sorted(PACKAGE.rglob("*.py")) if "studies" not in p.relative_to(PACKAGE).parts]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p) for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The dae_jax / experiments modules ``path`` imports (at module level only, when asked); ``from P import
    m`` counts as importing module ``P.m`` when there is one (not the package ``P``'s own ``__init__``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & MODULES
            found |= submodules or {node.module}
    return {m for m in found if m.split(".")[0] in ("dae_jax", "experiments")}


def test_core_library_imports_no_study_and_no_experiments():
    bad = {_module(p): sorted(m for m in _imports(p) if m.startswith(("dae_jax.studies", "experiments"))) for p in CORE}
    assert not {k: v for k, v in bad.items() if v}


def test_no_module_level_import_cycles():
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in _imports(p, top_level_only=True) if i in modules and i != m} for m, p in modules.items()}

    def visit(module, stack):
        assert module not in stack, " -> ".join([*stack, module])
        for dependency in graph[module]:
            visit(dependency, [*stack, module])

    for module in graph:
        visit(module, [])


def test_modules_and_functions_a_reader_can_hold():
    long_modules = {_module(p): n for p in CORE if (n := len(p.read_text().splitlines())) > 300}
    assert not long_modules
    long_functions = {}
    for p in CORE:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions[f"{_module(p)}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long_functions


def test_public_api_is_explicit():
    assert not hasattr(dae_jax, "__getattr__")
    for name in dae_jax.__all__:
        assert hasattr(dae_jax, name), name
    assert callable(dae_jax.train) and callable(dae_jax.load) and callable(dae_jax.evaluate)
