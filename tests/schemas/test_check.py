"""Privacy annotations and `check_schemas`, on throwaway copies of the schema tree (tmp_path)."""

from __future__ import annotations

import builtins
import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datamin.exceptions import SchemaError
from schemas import check_schemas, load_registry
from schemas.check import check_compatibility, check_pair
from schemas.registry import SCHEMA_ROOT

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the shipped schema tree that a test may change."""
    shutil.copy(SCHEMA_ROOT / "purposes.json", tmp_path / "purposes.json")
    shutil.copytree(SCHEMA_ROOT / "avro", tmp_path / "avro")
    return tmp_path


def edit(root: Path, key: str, change: Edit) -> None:
    path = root / "avro" / f"{key}.avsc"
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in doc["fields"] if f["name"] == name)
    return found


def annotate(name: str, **privacy: Any) -> Edit:
    def change(doc: dict[str, Any]) -> None:
        field(doc, name)["privacy"].update(privacy)
    return change


def test_the_shipped_tree_has_no_problems() -> None:
    assert check_schemas() == []


def test_a_copy_of_the_tree_has_no_problems(tree: Path) -> None:
    assert check_schemas(tree) == []


def test_a_field_without_annotation_stops_loading_and_is_reported(tree: Path) -> None:
    edit(tree, "raw/usage_event/v1", lambda doc: field(doc, "search_terms").pop("privacy"))
    with pytest.raises(SchemaError) as caught:
        load_registry(tree)
    assert caught.value.schema == "raw/usage_event/v1.avsc"
    assert caught.value.field == "search_terms"
    problems = check_schemas(tree)
    assert len(problems) == 1
    assert "raw/usage_event/v1.avsc.search_terms" in problems[0]
    assert "no privacy annotation" in problems[0]


@pytest.mark.parametrize(("change", "words"), [
    (annotate("url", rule="blur"), "rule 'blur' is not one of"),
    (annotate("url", category="secret"), "category 'secret' is not one of"),
    (annotate("url", purposes=["profiling"]), "purpose 'profiling' is not in"),
    (annotate("url", purposes="usage_patterns"), "purposes must be a list"),
    (annotate("url", colour="red"), "unknown privacy attribute"),
    (annotate("session_id", rule="keep"), "an identifier may only be dropped or pseudonymised"),
    (annotate("client_ip", rule="keep", into="client_network"), "a network address may only be"),
    (annotate("url", rule="keep", category="free_text"), "free text may only be"),
    (annotate("url", rule="generalise"), "needs a method"),
    (annotate("url", method="country"), "method is only for rules"),
    (annotate("user_agent", into=["browser_family", "browser_major"]), "into names 2 field(s) but method"),
    (annotate("cdn_country", into=["country", "region"]), "into names 2 field(s) but method"),
    (annotate("client_ip", into=[]), "into names 0 field(s)"),
    (annotate("client_ip", into=3), "into must be a field name"),
    (annotate("client_hints", into="hints"), "a dropped field produces nothing"),
    (annotate("url", purposes=[]), "must name at least one purpose"),
    (annotate("url", origin_only=True, rule="keep"), "origin_only is a boolean for rule strip_query only"),
])
def test_a_wrong_annotation_is_named(tree: Path, change: Edit, words: str) -> None:
    edit(tree, "raw/http_request/v1", change)
    with pytest.raises(SchemaError) as caught:
        load_registry(tree)
    assert words in caught.value.problem
    assert caught.value.schema == "raw/http_request/v1.avsc"
    assert [p for p in check_schemas(tree) if words in p and "raw/http_request/v1.avsc" in p]


def test_a_raw_event_without_minimised_counterpart(tree: Path) -> None:
    shutil.rmtree(tree / "avro" / "minimised" / "usage_event")
    assert check_schemas(tree) == ["schema raw/usage_event: has no minimised counterpart; add "
                                   "schemas/avro/minimised/usage_event/v1.avsc with the fields its rules produce"]


def test_a_minimised_field_no_rule_produces(tree: Path) -> None:
    edit(tree, "minimised/usage_event/v1",
         lambda doc: doc["fields"].append({"name": "ip", "type": ["null", "string"], "default": None}))
    problems = check_schemas(tree)
    assert problems == ["schema minimised/usage_event/v1.ip: no field of raw/usage_event/v1 produces it; "
                        "name it in a raw field's \"into\" or remove it"]


def test_a_rule_output_missing_from_the_minimised_schema(tree: Path) -> None:
    edit(tree, "minimised/usage_event/v1", lambda doc: doc["fields"].remove(field(doc, "page")))
    problems = check_schemas(tree)
    assert any("raw/usage_event/v1.page" in p and "produces 'page'" in p for p in problems)
    assert all("usage_event/v1" in p for p in problems)


def test_a_minimised_field_produced_twice(tree: Path) -> None:
    edit(tree, "raw/http_request/v1", annotate("url", into="host"))
    problems = check_schemas(tree)
    assert any("minimised/http_request/v1.host: produced by 2 raw fields (host, url)" in p for p in problems)
    assert any("minimised/http_request/v1.url: no field of raw/http_request/v1 produces it" in p for p in problems)


def test_kept_field_with_a_different_type(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        field(doc, "status")["type"] = ["null", "long"]
    edit(tree, "minimised/http_request/v1", change)
    assert any("minimised/http_request/v1.status: type differs from raw/http_request/v1.status" in p
               for p in check_schemas(tree))


def test_a_transformed_field_must_be_a_nullable_string(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        field(doc, "client_network")["type"] = "string"
        field(doc, "client_network").pop("default")
    edit(tree, "minimised/http_request/v1", change)
    assert any("minimised/http_request/v1.client_network: rule truncate of raw/http_request/v1.client_ip "
               "yields a string or nothing" in p for p in check_schemas(tree))


def test_an_incompatible_new_version(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        field(doc, "tls_version").pop("default")
        field(doc, "tls_version")["type"] = "string"
        field(doc, "tls_version")["privacy"].pop("shape")  # a shape is for nullable strings only
    edit(tree, "raw/http_request/v2", change)
    problems = check_schemas(tree)
    assert any(p.startswith("schema raw/http_request/v2: cannot read data written with raw/http_request/v1")
               and "tls_version" in p and "reader_field_missing_default_value" in p for p in problems)


def test_a_changed_type_is_incompatible(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        field(doc, "status")["type"] = ["null", "string"]
    edit(tree, "minimised/http_request/v2", change)
    edit(tree, "raw/http_request/v2", lambda doc: (change(doc), field(doc, "status")["privacy"].update(
        shape={"pattern": "[0-9]{3}"})))
    problems = check_schemas(tree)
    assert any("raw/http_request/v2: cannot read data written with raw/http_request/v1" in p for p in problems)
    assert any("minimised/http_request/v2: cannot read data written with minimised/http_request/v1" in p
               for p in problems)


def test_a_version_that_writes_the_same_as_its_predecessor_is_refused(tree: Path) -> None:
    shutil.copy(tree / "avro/raw/usage_event/v1.avsc", tree / "avro/raw/usage_event/v2.avsc")
    edit(tree, "raw/usage_event/v2", lambda doc: doc.update(doc="only the doc changed"))
    with pytest.raises(SchemaError, match="same parsing canonical form as raw/usage_event/v1"):
        load_registry(tree)
    assert len(check_schemas(tree)) == 1


def test_a_reserved_field_name(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        field(doc, "action")["name"] = "event"
    edit(tree, "raw/usage_event/v1", change)
    edit(tree, "minimised/usage_event/v1", change)
    problems = check_schemas(tree)
    assert any("raw/usage_event/v1.event: the name is reserved" in p for p in problems)


def test_a_schema_that_is_not_a_record(tree: Path) -> None:
    (tree / "avro/raw/usage_event/v2.avsc").write_text('["null", "string"]', encoding="utf-8")
    assert check_schemas(tree) == ["schema raw/usage_event/v2.avsc: must be a record"]


def test_without_the_avro_package_the_check_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_avro(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "avro" or name.startswith("avro."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    import importlib

    monkeypatch.setattr(builtins, "__import__", no_avro)
    monkeypatch.setattr(importlib, "import_module", lambda name, package=None: no_avro(name))
    problems = check_compatibility(load_registry())
    assert len(problems) == 1
    assert "pip install avro" in problems[0]


def test_check_pair_refuses_an_identifier_kept_in_clear() -> None:
    """Loading already refuses it; check_pair says so too for policies built another way."""
    registry = load_registry()
    raw = registry.get("usage_event", "raw", 1)
    kept = tuple(dataclasses.replace(p, rule="keep") if p.field == "session_id" else p for p in raw.policies)
    problems = check_pair(dataclasses.replace(raw, policies=kept), registry.get("usage_event", "minimised", 1))
    assert problems == ["schema raw/usage_event/v1.session_id: identifier must never be kept in clear; "
                        "use rule drop or pseudonymise"]


def test_a_kept_string_without_a_shape_is_refused(tree: Path) -> None:
    edit(tree, "raw/usage_event/v1", lambda doc: field(doc, "action")["privacy"].pop("shape"))
    problems = check_schemas(tree)
    assert any("usage_event" in p and "action" in p and "must declare its \"shape\"" in p for p in problems)


@pytest.mark.parametrize("shape", [{"pattern": "("}, {"vocabulary": []}, {"vocabulary": ["a"], "pattern": "a"},
                                   "no_such_shape", {"colour": "red"}])
def test_a_bad_shape_is_refused(tree: Path, shape: Any) -> None:
    edit(tree, "raw/usage_event/v1", lambda doc: field(doc, "action")["privacy"].update(shape=shape))
    problems = check_schemas(tree)
    assert any("usage_event" in p and "action" in p and "shape" in p for p in problems)


def test_a_shape_on_a_rule_other_than_keep_is_refused(tree: Path) -> None:
    edit(tree, "raw/usage_event/v1", lambda doc: field(doc, "search_terms")["privacy"].update(
        shape={"pattern": "x"}))
    assert any("shape is only for" in p for p in check_schemas(tree))
