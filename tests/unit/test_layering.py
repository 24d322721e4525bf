"""The import graph of wa_monitor has no cycles: each module reads after the ones it imports.

import-linter's contracts (pyproject.toml, run by scripts/test) say which module may import
which; this test covers what a contract cannot list in advance, a cycle anywhere. It reads
the graph with grimp, import-linter's own library, so both see the same imports (those
inside functions included: a late import hides a cycle from Python, not from a reader).
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One cycle through each group of modules that import each other, directly or not.

    Each cycle starts and ends at the group's first module by name, so the listing is stable.
    """
    cycles = []
    for group in _strongly_connected(graph):
        first = group[0]
        if len(group) == 1:
            if graph.direct_import_exists(importer=first, imported=first):
                cycles.append((first, first))
            continue
        step = min(graph.find_modules_directly_imported_by(first) & set(group))
        back = graph.find_shortest_chain(importer=step, imported=first, as_packages=False)
        assert back is not None
        cycles.append((first, *back))
    return cycles


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    imported = sorted(graph.find_modules_directly_imported_by(successor))
                    work.append((successor, iter(imported)))
                    break
                if successor in on_stack:
                    low[module] = min(low[module], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    groups.append(sorted(group))
    return sorted(groups)


def test_wa_monitor_has_no_import_cycles() -> None:
    graph = grimp.build_graph("wa_monitor", cache_dir=None)
    cycles = import_cycles(graph)
    listing = "\n".join(" -> ".join(cycle) for cycle in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) in wa_monitor:\n{listing}"


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)


def test_a_cycle_is_found_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # store -> settings -> health -> store, the health import late (inside a function),
    # beside a chain without a cycle.
    _package(
        tmp_path,
        "layering_sample",
        {
            "store": "from layering_sample import settings\n",
            "settings": "from layering_sample import health\n",
            "health": "def check():\n    from layering_sample import store\n",
            "detect": "",
            "monitor": "from layering_sample import detect, store\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("layering_sample", cache_dir=None)
    assert import_cycles(graph) == [
        (
            "layering_sample.health",
            "layering_sample.store",
            "layering_sample.settings",
            "layering_sample.health",
        )
    ]


def test_an_acyclic_package_has_no_cycles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _package(
        tmp_path,
        "layering_acyclic",
        {
            "core": "",
            "store": "from layering_acyclic import core\n",
            "web": "from layering_acyclic import core, store\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("layering_acyclic", cache_dir=None)) == []
