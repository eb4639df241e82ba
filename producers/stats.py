"""What an `EventProducer` has done so far, as `EventProducer.stats()` reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProducerStats:
    sent: int = 0
    handed: int = 0
    """events handed to the machine's `datamin agent` (``producer.agent_socket``), which sends them"""
    failed: int = 0
    spooled: int = 0
    dropped: int = 0
    replayed: int = 0
    invalid: int = 0
    queued: int = 0
    """events waiting in the queue when the snapshot was taken"""
    spool_bytes: int = 0
    """bytes of the spool's segment files when last measured by the sender"""
    spool_damaged: int = 0
    """damaged stretches of spooled records skipped when the spool was opened (their events are lost)"""
