"""The package's modules import each other one way only: no import cycles, lazy imports included,
and the packages in the order data flows through them."""

import ast
from pathlib import Path

import nlpapps

PACKAGE = Path(nlpapps.__file__).resolve().parent
# The packages in the order data flows: each may import those before it, never one after (the
# registry's "module:attribute" hooks are strings, not imports). export/ and commands/ are
# both on top; commands/ runs export/, never the other way.
LAYERS = ("layers", "models", "serving", "apps", "export", "commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the nlpapps modules it imports anywhere in its source (functions too)}."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                    + ([node.module] if node.module else []))
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        # a module's own parent packages are initialised before it: not an edge
        graph[name] = {t for t in targets
                       if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def layer(module: str) -> int | None:
    """The position in LAYERS of the package `module` belongs to; None outside them."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """`"a -> b"` for each import of a package after the importer's in LAYERS."""
    return [f"{source} -> {target}" for source, targets in sorted(graph.items())
            for target in sorted(targets)
            if layer(source) is not None and layer(target) is not None
            and layer(target) > layer(source)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    # imported inside a function body in nlpapps/commands/export_commands.py
    assert "nlpapps.export.model_folder" in graph["nlpapps.commands.export_commands"]
    assert "nlpapps.layers.lstm" in graph["nlpapps.layers"]


def test_a_cycle_is_found_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_nlpapps():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_an_upward_import_is_found():
    graph = {"nlpapps.serving.x": {"nlpapps.apps.y", "nlpapps.models.z"},
             "nlpapps.export.e": {"nlpapps.serving.x", "nlpapps.commands.c"},
             "nlpapps.tokenizer": {"nlpapps.errors"}}
    assert upward_imports(graph) == ["nlpapps.export.e -> nlpapps.commands.c",
                                     "nlpapps.serving.x -> nlpapps.apps.y"]


def test_packages_import_only_those_below_them():
    """layers -> models -> serving -> apps -> export, commands: serving knows no app, apps
    know no exporter, export runs no command."""
    wrong = upward_imports(import_graph())
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_two_modules_share_a_file_name():
    """A reader finds a concept by its file name: no two modules of the package are called the
    same (but `__init__.py`)."""
    names: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "__init__.py":
            names.setdefault(path.name, []).append(str(path.relative_to(PACKAGE)))
    shared = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not shared, shared
