"""Snapshots taken while the real sink loads from the real broker: each is a consistent cut (every
row of offsets 0..checkpoint of each partition, exactly once, no torn file, nothing beyond), and a
backup holds neither keys nor secrets and is private to its owner."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from datamin.config import Config
from datamin.topics import Topics, provision
from schemas import decode, default_registry, encode
from warehouse.backup import create_backup, verify_backup
from warehouse.backup.manifest import FILES_DIR, MANIFEST_NAME
from warehouse.samples import sample_record
from warehouse.sink import run_sink

EVENTS = 6000
AT = datetime.now(UTC) - timedelta(days=1)


def _produce(config: Config, done: threading.Event) -> None:
    schema = default_registry().latest("http_request", "minimised")
    producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all")
    try:
        for i in range(EVENTS):
            producer.send(Topics(config).minimised("http_request"),
                          encode(schema, sample_record("http_request", i, AT + timedelta(seconds=i))),
                          key=str(i).encode())
            if i % 300 == 299:
                producer.flush()
                time.sleep(0.05)  # let the sink flush between batches, so snapshots fall mid-stream
        producer.flush()
    finally:
        producer.close()
        done.set()


def _ids_by_offset(config: Config) -> dict[tuple[int, int], str]:
    """(partition, offset) -> event id of every message on the topic."""
    topic = Topics(config).minimised("http_request")
    consumer = KafkaConsumer(**config.kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: dict[tuple[int, int], str] = {}
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    out[(tp.partition, r.offset)] = decode(r.value, default_registry())[1]["event_id"]
        return out
    finally:
        consumer.close()


def _loaded(config: Config) -> int:
    from warehouse.backup.snapshot import read_checkpoints
    from warehouse.layout import Layout

    return sum(last + 1 for parts in read_checkpoints(Layout(Path(config.warehouse.root))).values()
               for last in parts.values())


def _backup_ids(src: Path, manifest: Any) -> list[str]:
    ids: list[str] = []
    for entry in manifest.files:
        if entry.kind == "table":
            table = pq.read_table(pa.BufferReader((src / FILES_DIR / entry.path).read_bytes()))
            assert table.num_rows == entry.rows
            ids += table.column("event_id").to_pylist()
    return ids


def test_snapshots_while_the_sink_writes_are_consistent_cuts(
        kafka_config: Config, make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(kafka=kafka_config.kafka.bootstrap_servers, **{
        "TOPICS__PREFIX": f'"{kafka_config.topics.prefix}"', "TOPICS__PARTITIONS": "2",
        "WAREHOUSE__GROUP_ID": f'"{kafka_config.warehouse.group_id}"',
        "WAREHOUSE__FLUSH_ROWS": "250", "WAREHOUSE__FLUSH_SECONDS": "0.2"})
    provision(config)
    stop, produced = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def sink() -> None:
        try:
            run_sink(config, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    sink_thread = threading.Thread(target=sink)
    sink_thread.start()
    producer = threading.Thread(target=_produce, args=(config, produced))
    producer.start()
    manifests = []
    try:
        checkpoints = Path(config.warehouse.root) / "_sink" / "checkpoints"
        deadline = time.monotonic() + 120
        while not checkpoints.is_dir() and time.monotonic() < deadline:  # the sink's first flush
            time.sleep(0.1)
        while not produced.is_set() or len(manifests) < 3:
            assert sink_thread.is_alive(), errors
            manifests.append(create_backup(config, tmp_path / "backups", now=datetime.now(UTC)))
            time.sleep(0.3)
        producer.join(timeout=300)
        deadline = time.monotonic() + 180
        while _loaded(config) < EVENTS and time.monotonic() < deadline:  # let the sink catch up
            time.sleep(0.2)
    finally:
        producer.join(timeout=300)
        stop.set()
        sink_thread.join(timeout=300)
    assert not errors
    by_offset = _ids_by_offset(config)
    assert len(by_offset) == EVENTS
    for manifest in manifests:
        src = tmp_path / "backups" / manifest.backup_id
        ids = _backup_ids(src, manifest)
        topic = Topics(config).minimised("http_request")
        assert set(manifest.offsets) <= {topic}  # empty when taken before the first checkpoint
        offsets = manifest.offsets.get(topic, {})
        expected = {by_offset[(p, o)] for p, last in offsets.items() for o in range(last + 1)}
        assert len(ids) == len(set(ids)), "a row twice in one backup"
        assert set(ids) == expected, f"{manifest.backup_id}: rows do not match the offsets {offsets}"
        assert sum(manifest.rows_by_table().values()) == sum(last + 1 for last in offsets.values())
        assert verify_backup(config, src, now=datetime.now(UTC), use_kafka=False).ok
    # once the sink has loaded everything, a backup holds everything
    final = create_backup(config, tmp_path / "backups", now=datetime.now(UTC))
    assert sum(final.rows_by_table().values()) == EVENTS


def test_a_backup_holds_no_keys_or_secrets_and_is_private(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    config = make_config()  # (the config refuses a key folder inside the warehouse root)
    world = world_factory(config)
    from datamin.keys import load_secret
    load_secret(Path(config.pseudonymise.key_dir))
    from warehouse.rights.restriction import add_restricted
    add_restricted(world.layout, [world.pseudonym(kit.BOB)])  # the rights trail's restriction list
    assert any(Path(config.pseudonymise.key_dir).iterdir())
    manifest = create_backup(world.config, tmp_path / "backups", now=datetime.now(UTC))
    src = tmp_path / "backups" / manifest.backup_id
    stored = [p for p in src.rglob("*")]
    key_names = {p.name for p in Path(config.pseudonymise.key_dir).iterdir()}
    assert not [p for p in stored if p.name in key_names or p.name == "rights.secret"]
    for p in [src, *stored]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p} is {oct(mode)}"
    assert (src / MANIFEST_NAME).is_file()
    assert {e.kind for e in manifest.files} >= {"table", "checkpoint", "rights"}


def test_a_backup_inside_the_warehouse_is_refused_and_every_backup_is_audited(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path) -> None:
    from datamin.exceptions import BackupError
    from warehouse.audit_trail import AuditLog

    config = make_config()
    world = world_factory(config)
    try:
        create_backup(config, world.layout.root / "_backups", now=datetime.now(UTC))
        raise AssertionError("a backup inside the warehouse root was accepted")
    except BackupError as exc:
        assert "inside the warehouse root" in str(exc)
    assert not (world.layout.root / "_backups").exists()
    made = create_backup(config, tmp_path / "backups", now=datetime.now(UTC))
    [entry] = AuditLog(world.layout).read("backup")
    assert entry.action == "create_backup" and made.backup_id in entry.detail and entry.rows == 22


def test_a_file_url_goes_through_pyarrow_filesystems_and_round_trips(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    from warehouse.backup import list_backups, restore_backup
    from warehouse.backup.store import Store

    config = make_config()
    world = world_factory(config)
    url = f"file://{tmp_path / 'remote'}"
    assert Store.open(url).url == url
    made = create_backup(config, url, now=kit.TAKEN)
    [entry] = list_backups(url, now=kit.RESTORED)
    assert entry.backup_id == made.backup_id and entry.location == f"{url}/{made.backup_id}"
    assert verify_backup(config, entry.location, now=kit.RESTORED, use_kafka=False).ok
    report = restore_backup(config, entry.location, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    assert report.rows == {t: kit.rows_of(world.layout, t) for t in ("http_request", "usage_event", "consent_record")}
