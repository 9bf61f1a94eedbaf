"""How the package's modules depend on each other: stages import shared pieces from below,
never each other in a circle (function-level imports count too)."""

import ast

from conftest import REPO

PACKAGE = REPO / "pipeline"


def module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports():
    """{module: modules of the package it imports anywhere in its file}."""
    paths = list(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    graph = {}
    for path in paths:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # `from . import x` names a module x; `from .errors import DataError` a name in one.
                found.update(
                    f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names
                )
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("pipeline"))
        graph[name] = found
    return {name: {t for t in targets if t in modules and t != name} for name, targets in graph.items()}


def cycle_through(graph, start):
    """A path start -> ... -> start, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_the_graph_reader_sees_known_edges():
    graph = imports()
    assert "pipeline.scoring" in graph["pipeline.train"]
    assert "pipeline.errors" in graph["pipeline.datasets.base"]
    assert "pipeline.embed" in graph["pipeline.config"]  # a function-level import


def test_no_module_of_the_package_imports_itself_through_others():
    graph = imports()
    # A package imports its own submodules (models/__init__ -> models.sasrec): that is not a
    # circle unless a submodule imports the package back, which the check still finds.
    cycles = [c for name in sorted(graph) if (c := cycle_through(graph, name))]
    assert not cycles, cycles[0]


def test_training_does_not_borrow_from_the_evaluation_stage():
    graph = imports()
    assert "pipeline.evaluate" not in graph["pipeline.train"]
    assert "pipeline.evaluate" not in graph["pipeline.scoring"]


def test_scoring_stages_share_loading_instead_of_borrowing_from_evaluation():
    graph = imports()
    assert "pipeline.evaluate" not in graph["pipeline.recommend"]
    assert (
        "pipeline.checkpoints" in graph["pipeline.recommend"] and "pipeline.checkpoints" in graph["pipeline.evaluate"]
    )


def test_nothing_branches_on_a_method_s_name():
    """The registry carries what differs between methods (pipeline/models/method.py)."""
    import re

    files = [
        *(PACKAGE / "models").glob("*.py"),
        PACKAGE / "train.py",
        PACKAGE / "tables.py",
        *(REPO / "rules").glob("*.smk"),
    ]
    found = [
        f"{path.name}:{n}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bmethod\w*\s*[!=]=|[!=]=\s*\w*method\b", line)
    ]
    assert not found, found
