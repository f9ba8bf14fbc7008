"""The house's structure holds as docs/architecture.md says: no import circles, the rooms import
only downwards, and no module in flows/, reports/ or warehouse/ is past 600 lines unless
docs/architecture.md lists it (with a ceiling and the reason)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("flows", "transforms", "warehouse", "reports")
#: the rooms whose modules are held to the size limit
SIZED = ("flows", "reports", "warehouse")
MAX_LINES = 600
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at module level or inside functions (imports
    under ``if TYPE_CHECKING:`` never run and do not count)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and _is_type_checking(node)
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [resolve(f"{node.module}.{a.name}") for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t is not None and t != name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected parts of two or more modules.

    Examples
    --------
    >>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b']]
    >>> cycles({"a": {"b"}, "b": set()})
    []
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_three_module_circle() -> None:
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_the_rooms_import_only_downwards() -> None:
    """transforms import none of the others; warehouse neither flows nor reports; reports not
    flows; nothing outside the CLI package (flows/cli/) imports any of it."""
    allowed = {
        "transforms": {"transforms"},
        "warehouse": {"warehouse", "transforms"},
        "reports": {"reports", "warehouse", "transforms"},
        "flows": set(ROOMS),
    }

    def in_cli(name: str) -> bool:
        return name == "flows.cli" or name.startswith("flows.cli.")

    wrong = [
        f"{m} -> {d}"
        for m, deps in import_graph().items()
        for d in deps
        if d.split(".")[0] not in allowed[m.split(".")[0]] or (in_cli(d) and not in_cli(m))
    ]
    assert wrong == []


def listed_exceptions() -> dict[str, tuple[int, str]]:
    """The modules docs/architecture.md allows past the limit: path -> (ceiling, reason)."""
    text = DOC.read_text()
    section = text.split("## Modules past 600 lines", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) \| (.+?) \|$", section, flags=re.M)
    return {path: (int(limit), reason) for path, limit, reason in rows}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_modules_stay_under_600_lines_unless_listed_with_a_reason() -> None:
    listed = listed_exceptions()
    sizes = {
        str(p.relative_to(ROOT)): _lines(p) for room in SIZED for p in (ROOT / room).rglob("*.py")
    }
    unlisted = {p: n for p, n in sizes.items() if n > MAX_LINES and p not in listed}
    assert unlisted == {}, "past 600 lines: split it, or list it in docs/architecture.md"
    for path, (ceiling, reason) in listed.items():
        assert path in sizes, f"{path} is listed in docs/architecture.md but does not exist"
        assert sizes[path] > MAX_LINES, f"{path} is back under {MAX_LINES}: drop it from the list"
        assert sizes[path] <= ceiling, f"{path} grew past its listed {ceiling} lines"
        assert len(reason) > 20, f"{path}: say why it stays whole"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("flows.cli", "cli"),
        ("flows.pipeline", "nightly_flow"),
        ("flows.prefect_runtime", "run_flow"),
        ("flows.staging", "ingest_all"),
        ("flows.ingest", "plan_ingest"),
        ("flows.ingest", "run_ingest"),
        ("flows.options", "check_exchanges"),
        ("flows.model_route", "run_model_plan"),
        ("flows.modelling", "model_symbols"),
        ("flows.exchange_sum", "aggregate_symbol"),
        ("flows.reporting", "run_report"),
        ("flows.run_summary", "record_run"),
        ("flows.sources.registry", "get_source"),
        ("flows.sources.loader", "load_staged"),
        ("transforms.model", "run_model"),
        ("transforms.aggregate", "sum_exchanges"),
        ("warehouse.writes", "write_model_outputs"),
        ("warehouse.reads", "model_window"),
        ("warehouse.reads_report", "one_connection"),
        ("warehouse.reads_outputs", "latest_key_levels"),
        ("reports.site", "build_site"),
    ],
)
def test_the_doors_named_in_the_doc_exist(module: str, name: str) -> None:
    """Every door docs/architecture.md names is defined (or re-exported) where it says."""
    text = DOC.read_text()
    assert f"{module}.{name}" in text or f"`{name}`" in text
    tree = ast.parse(_modules()[module].read_text())
    functions = ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef
    defined = {n.name for n in ast.walk(tree) if isinstance(n, functions)}
    defined |= {
        a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    assert name in defined


def test_page_fingerprints_hash_every_warehouse_module_the_pages_read() -> None:
    """A page's fingerprint hashes the warehouse modules the pages import (their SQL is the
    pages' code): a query changed in any of them rebuilds the pages."""
    from reports.build import PAGE_READS

    read = {
        d
        for m, deps in import_graph().items()
        if m.split(".")[0] == "reports"
        for d in deps
        if d.split(".")[0] == "warehouse"
    }
    assert read, "the pages read the warehouse through some module"
    assert read <= {module.__name__ for module in PAGE_READS}
