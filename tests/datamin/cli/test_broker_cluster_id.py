"""The local broker's KRaft cluster id: kafka-storage reads an argument that starts with '-' as an option."""

from __future__ import annotations

from datamin.cli.broker import local


def test_cluster_ids_never_start_with_a_dash(monkeypatch) -> None:
    import uuid as uuid_module

    # the first draw encodes to an id starting with '-' (0xfb -> '-' in URL-safe base64), the second does not
    draws = iter([uuid_module.UUID(bytes=b"\xfb" + bytes(15)), uuid_module.UUID(bytes=bytes(16))])
    monkeypatch.setattr(local.uuid, "uuid4", lambda: next(draws))
    cluster_id = local._cluster_id()
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22
