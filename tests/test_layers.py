"""The package reads like the pipeline: imports only go down its layers."""

import ast

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "src" / "convnext_tinyimagenet"
# lowest first: a module may import from its own layer or below, never from above
LAYERS = [
    {"errors", "numbers", "storage", "atomic", "stats"},
    {"config", "run_folder"},
    {"data"},
    {"train"},
    {"report"},
    {"verify"},
    {"tools", "notebook", "workflow", "cli", "__main__", "__init__"},
]


def layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def package_imports(path):
    """(line, imported module relative to the package) of every import of the package."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "convnext_tinyimagenet":
                for alias in node.names:
                    yield node.lineno, alias.name
            elif node.module.startswith("convnext_tinyimagenet."):
                yield node.lineno, node.module.removeprefix("convnext_tinyimagenet.")
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; use the full name")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    own = str(path.relative_to(PACKAGE).with_suffix("")).replace("/", ".")
    for line, imported in package_imports(path):
        assert layer(imported) <= layer(own), f"{own}:{line} imports {imported} from above"


def test_every_module_has_a_layer():
    for path in MODULES:
        layer(str(path.relative_to(PACKAGE).with_suffix("")).replace("/", "."))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_60_lines(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{path.name}:{node.lineno} {node.name} has {length} lines"
