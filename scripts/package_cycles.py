"""List the import cycles between the app's packages (and top-level modules), imports inside functions
included, TYPE_CHECKING-only imports left out (as in the import-linter contracts).

    .venv/bin/python scripts/package_cycles.py          # cycles, and the imports that make them
    .venv/bin/python scripts/package_cycles.py --graph  # what each package imports, with counts

Exits 1 when a cycle is found. The contract "no cycles between the app's packages" in pyproject.toml
enforces the same in the test suite; this script says which imports to move.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import grimp


def top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_imports(graph: grimp.ImportGraph) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(importer package, imported package) -> the module imports behind it."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = top(module), top(imported)
            if a != b and "app" not in (a, b):
                edges[(a, b)].append((module, imported))
    return edges


def cycle_groups(edges: dict[tuple[str, str], list[tuple[str, str]]]) -> list[list[str]]:
    """Packages that reach each other through imports (the strongly connected components)."""
    reach: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        reach[a].add(b)
    changed = True
    while changed:  # transitive closure: a few dozen packages
        changed = False
        for a in list(reach):
            more = set().union(*(reach[b] for b in reach[a])) - reach[a]
            if more:
                reach[a] |= more
                changed = True
    groups: list[list[str]] = []
    for a in sorted(reach):
        group = sorted({a} | {b for b in reach[a] if a in reach[b]})
        if len(group) > 1 and group not in groups:
            groups.append(group)
    return groups


def main() -> int:
    graph = grimp.build_graph("app", include_external_packages=False, exclude_type_checking_imports=True)
    edges = package_imports(graph)
    if "--graph" in sys.argv:
        for a in sorted({a for a, _ in edges}):
            targets = sorted((b, len(v)) for (x, b), v in edges.items() if x == a)
            print(a, "->", " ".join(f"{b.removeprefix('app.')}({n})" for b, n in targets))
        return 0
    groups = cycle_groups(edges)
    for group in groups:
        print("cycle:", ", ".join(group))
        for (a, b), imports in sorted(edges.items()):
            if a in group and b in group:
                for importer, imported in sorted(imports):
                    lines = sorted(
                        d["line_number"]
                        for d in graph.get_import_details(importer=importer, imported=imported)
                    )
                    print(f"    {importer} -> {imported} (line {', '.join(map(str, lines))})")
    print(f"{len(groups)} cycle(s)")
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main())
