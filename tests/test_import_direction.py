"""The house's one rule of imports, read from the code itself (ast), so that it outlives any one change:

    datamin.cli                              on top: the one room that may import every stage
    warehouse                                above processors
    producers, processors                    above the core; never each other, never anything higher
    schemas, datamin (but datamin.cli)       the ground floor

and only datamin.kafka imports a Kafka client library (kafka-python today).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datamin", "schemas", "producers", "processors", "warehouse")
KAFKA_CLIENTS = ("kafka", "confluent_kafka")

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "producers": {"core", "producers"},
    "processors": {"core", "processors"},
    "warehouse": {"core", "processors", "warehouse"},
    "cli": {"core", "producers", "processors", "warehouse", "cli"},
}
"""room -> the rooms it may import"""


def room(module: str) -> str | None:
    """The room of a dotted module name, or None for a module outside the house."""
    top = module.split(".")[0]
    if module == "datamin.cli" or module.startswith("datamin.cli."):
        return "cli"
    if top in ("datamin", "schemas"):
        return "core"
    return top if top in PACKAGES else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, function-level ones included."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def package_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def wrong_way_imports(paths: list[Path]) -> list[str]:
    problems = []
    for path in paths:
        here = room(module_name(path))
        assert here is not None, path
        for line, name in imports(path):
            there = room(name)
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            if there is not None and there not in ALLOWED[here]:
                problems.append(f"{where} ({here} may import only {', '.join(sorted(ALLOWED[here]))})")
            if name.split(".")[0] in KAFKA_CLIENTS and not module_name(path).startswith("datamin.kafka"):
                problems.append(f"{where} (only datamin.kafka may import a Kafka client)")
    return problems


def test_every_package_module_is_read() -> None:
    paths = package_modules()
    assert len(paths) > 50
    assert {module_name(p).split(".")[0] for p in paths} == set(PACKAGES)


def test_imports_run_one_way() -> None:
    assert wrong_way_imports(package_modules()) == []


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("processors/x.py", "from warehouse.layout import Layout", "core, processors"),
        ("producers/x.py", "import processors.pipeline", "core, producers"),
        ("warehouse/x.py", "def f():\n    from producers.producer import EventProducer", "core, processors, warehouse"),
        ("datamin/x.py", "from warehouse import layout", "core"),
        ("schemas/x.py", "from datamin.cli import main", "core"),
        ("warehouse/x.py", "from kafka import KafkaConsumer", "only datamin.kafka"),
    ],
)
def test_a_wrong_way_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str,
                                      why: str) -> None:
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n", encoding="utf-8")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    [problem] = wrong_way_imports([path])
    assert why in problem


def test_the_cli_may_import_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "datamin" / "cli" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text("import producers.producer\nimport processors.loop\nimport warehouse.sink\n", encoding="utf-8")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert wrong_way_imports([path]) == []
