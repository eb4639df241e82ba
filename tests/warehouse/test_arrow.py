from datetime import UTC, datetime

import pyarrow as pa
import pytest

from datamin.exceptions import SchemaError
from datamin.topics import MINIMISED_EVENTS
from schemas import decode, default_registry, encode
from warehouse.arrow import arrow_schema, arrow_type, records_to_table, time_column
from warehouse.samples import sample_record


@pytest.mark.parametrize("event", MINIMISED_EVENTS)
def test_every_minimised_schema_converts_round_trip(event):
    registry = default_registry()
    schema = registry.latest(event, "minimised")
    at = datetime(2024, 3, 1, 23, 59, 59, 123000, tzinfo=UTC)
    records = [decode(encode(schema, sample_record(event, i, at)), registry)[1] for i in range(20)]
    table = records_to_table(schema, records)
    assert table.schema == arrow_schema(schema)
    assert table.num_rows == 20
    assert table.column_names == list(schema.field_names)
    assert table.to_pylist() == records  # same values, same order
    assert table.schema.field(time_column(event)).type == pa.timestamp("ms", tz="UTC")


def test_type_mapping():
    assert arrow_type("string") == (pa.string(), False)
    assert arrow_type(["null", "int"]) == (pa.int32(), True)
    assert arrow_type(["null", "long"]) == (pa.int64(), True)
    assert arrow_type(["null", "double"]) == (pa.float64(), True)
    assert arrow_type(["null", "boolean"]) == (pa.bool_(), True)
    assert arrow_type(["null", {"type": "enum", "name": "E", "symbols": ["a"]}]) == (pa.string(), True)
    assert arrow_type({"type": "long", "logicalType": "timestamp-millis"}) == (pa.timestamp("ms", tz="UTC"), False)


def test_unmappable_types_are_schema_errors():
    with pytest.raises(SchemaError, match="unions"):
        arrow_type(["null", "int", "string"], where="x.y")
    with pytest.raises(SchemaError, match="nested"):
        arrow_type({"type": "array", "items": "string"}, where="x.y")


def test_nullable_columns_follow_unions():
    schema = arrow_schema(default_registry().latest("http_request", "minimised"))
    assert not schema.field("event_id").nullable
    assert not schema.field("time").nullable
    assert schema.field("subject").nullable
    assert schema.field("status").type == pa.int32()


def test_missing_keys_are_null_and_empty_input_gives_typed_empty_table():
    schema = default_registry().latest("usage_event", "minimised")
    table = records_to_table(schema, [{"event_id": "e1", "time": datetime(2024, 1, 1, tzinfo=UTC)}])
    assert table.column("page").to_pylist() == [None]
    empty = records_to_table(schema, [])
    assert empty.num_rows == 0 and empty.schema == arrow_schema(schema)


def test_extra_keys_are_ignored_and_any_mapping_converts_by_name():
    from types import MappingProxyType

    schema = default_registry().latest("usage_event", "minimised")
    at = datetime(2024, 1, 1, tzinfo=UTC)
    plain = {"event_id": "e1", "time": at, "page": "/a", "not_a_column": 1}
    # a mapping that is not a dict, its keys in another order than the columns: matched by name
    proxy = MappingProxyType({"page": "/b", "time": at, "event_id": "e2"})
    table = records_to_table(schema, (r for r in [plain, proxy]))  # any iterable sequence of mappings
    assert "not_a_column" not in table.column_names
    assert table.column("event_id").to_pylist() == ["e1", "e2"]
    assert table.column("page").to_pylist() == ["/a", "/b"]
    assert table.schema == arrow_schema(schema)


def test_a_value_of_the_wrong_type_raises():
    schema = default_registry().latest("http_request", "minimised")
    record = decode(encode(schema, sample_record("http_request", 1, datetime(2024, 1, 1, tzinfo=UTC))),
                    default_registry())[1]
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        records_to_table(schema, [{**record, "status": "not a number"}])
