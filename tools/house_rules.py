"""Check the house rules of fastseg's source tree: who may import whom.

Run ``python tools/house_rules.py`` from the repository root (``.ci/run`` does); it
prints every broken rule and exits with status 1, or prints a one-line summary and
exits with 0. The rules (docs/architecture.md explains them):

1. ``kernels/`` knows no Python; only ``backends/c.py`` imports ``_cy``.
2. ``data/`` imports no ``nn``, ``ops``, ``backends`` or the inference package.
3. ``nn``, ``optim``, ``ops`` know no data and no segmentation.
4. The inference package (``_inference``) imports no ``segment``, ``segmenter``, ``io``,
   ``train``, ``_commands``, ``_files``, ``cli`` or ``distributed``.
5. No library module imports ``_commands`` or ``cli`` (only ``cli``, ``__main__`` and
   ``_commands`` itself do).
6. No import circle anywhere in the package, of any length, counting imports inside
   functions too (a late import hides a circle, it does not remove it).
7. No private name used across package boundaries: ``_name`` (a module, a package, a
   function, a class...) is used only inside the package that holds it.

Imports are read from the source (``ast``), never executed.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "fastseg"

# (importer prefix, forbidden targets, rule) for rules 2-5; a prefix names a module and
# everything below it.
_FORBIDDEN = [
    ("fastseg.data", ("fastseg.nn", "fastseg.ops", "fastseg.backends", "fastseg._inference"),
     "data/ imports no nn, ops, backends or the inference package"),
    ("fastseg.nn", ("fastseg.data", "fastseg.segment", "fastseg.segmenter",
                    "fastseg._inference", "fastseg._files", "fastseg.postprocess"),
     "nn, optim and ops know no data and no segmentation"),
    ("fastseg.optim", ("fastseg.data", "fastseg.segment", "fastseg.segmenter",
                       "fastseg._inference", "fastseg._files", "fastseg.postprocess"),
     "nn, optim and ops know no data and no segmentation"),
    ("fastseg.ops", ("fastseg.data", "fastseg.segment", "fastseg.segmenter",
                     "fastseg._inference", "fastseg._files", "fastseg.postprocess"),
     "nn, optim and ops know no data and no segmentation"),
    ("fastseg._inference", ("fastseg.segment", "fastseg.segmenter", "fastseg.io",
                            "fastseg.train", "fastseg._commands", "fastseg._files",
                            "fastseg.cli", "fastseg.distributed"),
     "the inference package imports no segment, segmenter, io, train, _commands, _files, "
     "cli or distributed"),
]
# Who may import the command line.
_COMMAND_LINE = ("fastseg.cli", "fastseg._commands")
_CLI_USERS = ("fastseg.cli", "fastseg.__main__", "fastseg._commands")
# Who may import the compiled extensions.
_CY_USERS = ("fastseg.backends.c", "fastseg._cy")


@dataclass(frozen=True)
class Import:
    importer: str   # the module whose source holds the import
    target: str     # the module imported, or module.name for a name imported from one
    line: int


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class Tree:
    """The modules of a package directory and the imports between them."""

    def __init__(self, src: Path, package: str = PACKAGE):
        self.src = src
        self.package = package
        self.files: dict[str, Path] = {}
        for path in sorted((src / package).rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            self.files[".".join(parts)] = path
        self.packages = {m for m, p in self.files.items() if p.name == "__init__.py"}
        self.imports = [imp for module in self.files for imp in self._imports_of(module)]

    def is_module(self, name: str) -> bool:
        return name in self.files

    def _resolve(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".") if module in self.packages else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def _imports_of(self, module: str):
        tree = ast.parse(self.files[module].read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name -> fastseg module it is bound to
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _within(a.name, self.package):
                        found.append(Import(module, a.name, node.lineno))
                        if a.asname:
                            aliases[a.asname] = a.name
                        else:
                            aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                base = self._resolve(module, node)
                if not _within(base, self.package):
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    target = sub if self.is_module(sub) else f"{base}.{a.name}"
                    found.append(Import(module, target, node.lineno))
                    if self.is_module(sub):
                        aliases[a.asname or a.name] = sub
        # module._private attribute uses through an imported module's name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                bound = aliases.get(node.value.id)
                if bound is not None and node.attr.startswith("_") \
                        and not node.attr.startswith("__"):
                    found.append(Import(module, f"{bound}.{node.attr}", node.lineno))
        return found

    def target_module(self, target: str) -> str:
        """The module an import target loads: itself, or the module it names a name of."""
        while target and not self.is_module(target):
            target = target.rpartition(".")[0]
        return target

    def graph(self) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {m: set() for m in self.files}
        for imp in self.imports:
            target = self.target_module(imp.target)
            if target and target != imp.importer:
                edges[imp.importer].add(target)
        return edges


def _private_scope(tree: Tree, target: str) -> str | None:
    """The package inside which `target`'s first private part may be used, or None when
    no part is private."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            holder = ".".join(parts[:i])
            # A private module or package belongs to the package holding it; a private
            # name inside a module, to that module's package.
            if holder in tree.packages:
                return holder
            return holder.rpartition(".")[0]
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def check(src: Path | None = None, kernels: Path | None = None) -> list[str]:
    """Every broken rule, one line each (empty when the house keeps its rules)."""
    src = ROOT / "src" if src is None else src
    kernels = ROOT / "kernels" if kernels is None else kernels
    tree = Tree(src)
    problems = []
    for path in sorted(kernels.rglob("*")):
        if path.suffix in (".c", ".h") and "Python.h" in path.read_text(errors="replace"):
            problems.append(f"{path}: kernels/ knows no Python, but it includes Python.h")
    for imp in tree.imports:
        where = f"{tree.files[imp.importer].relative_to(src)}:{imp.line}"
        target = imp.target
        if _within(target, "fastseg._cy") and not any(_within(imp.importer, u)
                                                       for u in _CY_USERS):
            problems.append(f"{where}: imports {target}; only backends/c.py imports _cy")
        for prefix, banned, rule in _FORBIDDEN:
            if _within(imp.importer, prefix) and any(_within(target, b) for b in banned):
                problems.append(f"{where}: imports {target}; {rule}")
        if any(_within(target, c) for c in _COMMAND_LINE) and \
                not any(_within(imp.importer, u) for u in _CLI_USERS):
            problems.append(f"{where}: imports {target}; no library module imports "
                            "_commands or cli")
        scope = _private_scope(tree, target)
        if scope is not None and not _within(imp.importer, scope):
            problems.append(f"{where}: uses the private {target} outside {scope}")
    for group in cycles(tree.graph()):
        problems.append("import circle: " + " -> ".join(group))
    return problems


def main(argv=None) -> int:
    problems = check()
    for line in problems:
        print(line)
    if problems:
        print(f"house rules: {len(problems)} broken (tools/house_rules.py)")
        return 1
    tree = Tree(ROOT / "src")
    print(f"house rules kept: {len(tree.files)} modules, {len(tree.imports)} imports, "
          "no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
