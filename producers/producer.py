"""EventProducer: what a web server process uses to publish raw events to Kafka.

``publish(event_type, record)`` checks the event type, puts the record on a bounded queue and returns
at once; it never raises and never blocks. A background sender thread encodes the record with the
latest raw schema (``schemas.encode``: ~10 µs, kept off the request path) and sends it with
the configured transport (acks=all, idempotence, LZ4: a quarter of gzip's CPU), keyed by
the UTF-8 subject key so that a person's events and consent land in one partition.

Delivery while Kafka is away (see producers.spool):

- A send error, a send that cannot get metadata, a Kafka client that cannot be built, or a queue more
  than 90 % full while sends stall (a send blocked > 100 ms) puts the producer in spool mode: events
  go, in order, to the local disk spool.
- While the spool holds anything, new events go behind it (order kept), and the sender replays the
  spool one batch at a time; the spool's marker moves only over records the broker acknowledged.
  When the spool is empty the producer sends directly again. A restarted process replays what its
  predecessor spooled.
- Exactly once, precisely: within one process every spooled event is sent until acknowledged and never
  again after (kafka-python's idempotent producer removes duplicates of its own retries). Across a
  crash, the records of the one replay batch (``replay_batch``) that were acknowledged but whose
  marker had not yet reached the disk are sent again, and events sent directly whose acknowledgement
  was lost when Kafka gave up on them are spooled and sent again; every raw event carries a random
  ``event_id`` (``request_id`` for privacy requests) that tells such repeats apart downstream (the
  warehouse's ``duplicate_events`` view lists them; ``count(DISTINCT event_id)`` counts them once).
- Lost: only what a crashed process held in memory (its queue and unacknowledged in-flight sends),
  events refused when both the queue and the spool were full or the disk refused the spool's write
  (rolled back; counted as ``dropped``, logged), and spooled records found damaged when the spool is
  opened (``spool_damaged``, logged).

With ``producer.agent_socket`` set, the sender hands each encoded batch to the machine's `datamin
agent` in one write instead, and runs no Kafka client while the agent takes them; what the agent does
not take is sent as above (see `producers.agent`).

Counters (``stats()``): handed (to the agent), sent (acknowledged direct sends; the sender counts them
in the order sent, in its rounds (at least every 0.5 s), and always before a flush or close returns),
failed (sends Kafka failed; each is then spooled), spooled, dropped, replayed (spooled events
acknowledged), invalid (records that did not fit their schema, or whose ``publish_later`` build
raised), spool_damaged; logged every ``log_interval`` seconds.

Throughput: the sender takes what is queued in batches (up to ``SENDER_BATCH``), encodes a whole batch
and then sends it, without a callback per record in kafka-python's I/O thread; the partitioner places
keys exactly as kafka-python's DefaultPartitioner does, remembering recent keys' hashes.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable
from typing import Any

from datamin.config import Config
from producers import forksafe
from producers.client import KafkaClient, kafka_factory
from producers.queue import Bytes, Item
from producers.sender import Sender
from producers.stats import ProducerStats

__all__ = ["EventProducer", "KafkaClient", "ProducerStats", "kafka_factory"]

log = logging.getLogger(__name__)


class EventProducer(Sender):
    """Publishes raw events; see the module docstring for what is guaranteed. Safe to create before a
    fork: the child process gets a sender of its own (``producers.forksafe``)."""

    def __init__(self, config: Config, **options: Any) -> None:
        super().__init__(config, **options)
        self._pid = os.getpid()

        def restart() -> None:  # in the child: everything of its own, the spool too
            Sender.__init__(self, config, **{k: v for k, v in options.items() if k != "spool"})
            self._pid = os.getpid()

        forksafe.watch(self, restart)

    # -- the caller's side: never raises, never blocks ------------------------------------------

    def publish(self, event_type: str, record: dict[str, Any], *, timeout: float = 0.0) -> bool:
        """Queues one raw event; False only when it was refused (unknown type, closed, queue full).

        ``timeout`` > 0 waits that long for room in the queue (batch tools such as the log shipper);
        web requests keep the default 0 and never wait. The record is owned by the producer from here
        on: do not change it after the call."""
        return self._enqueue((event_type, record), timeout,
                             valid=event_type in self._topics and isinstance(record, dict))

    def publish_later(self, event_type: str, build: Callable[..., dict[str, Any]], *args: Any) -> bool:
        """Queues the event that ``build(*args)`` returns, called later in the sender thread (in a batch,
        off the request's path); otherwise as ``publish``. ``build`` must not depend on the calling
        thread, and ``args`` must not change after the call; if it raises, the event is counted as
        invalid and logged."""
        return self._enqueue((event_type, build, args), 0.0, valid=event_type in self._topics)

    def publish_bytes(self, topic: str, value: bytes, key: bytes | None = None, *, timeout: float = 0.0) -> bool:
        """Queues an already-encoded message (e.g. a dead-letter JSON) for ``topic``: same queue, spool
        and guarantees as ``publish``; False only when it was refused."""
        return self._enqueue(Bytes(topic, key, value), timeout)

    def publish_encoded(self, messages: list[Bytes], *, timeout: float = 0.0) -> int:
        """Queues already-encoded messages in order, under one lock (what the agent takes from a frame);
        how many were queued. The rest were refused (the producer closed, or no room came within
        ``timeout``) and are counted as dropped."""
        try:
            if self._pid != os.getpid():
                forksafe.restart_in_child(self)
            queued = 0 if self._closed else self._queue.put_all(list(messages), timeout)
        except Exception:  # never into the caller
            log.exception("datamin producer: publish failed unexpectedly")
            queued = 0
        for _ in range(len(messages) - queued):
            self._drop("the producer is closed" if self._closed else "the queue is full (the sender cannot keep up)")
        return queued

    def _enqueue(self, item: Item, timeout: float, *, valid: bool = True) -> bool:
        """Puts ``item`` on the sender's queue; never raises. False when it was refused: not ``valid``
        (counted as invalid), the producer closed or the queue full (counted as dropped)."""
        try:
            if self._pid != os.getpid():  # forked without Python's fork hooks
                forksafe.restart_in_child(self)
            if not valid:
                self._count("invalid")
                return False
            if self._closed:
                self._drop("the producer is closed")
                return False
            self._queue.put(item, timeout)
            return True
        except queue.Full:
            self._drop("the queue is full (the sender cannot keep up)")
            return False
        except Exception:  # never into the request path
            log.exception("datamin producer: publish failed unexpectedly")
            self._count("dropped")
            return False

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event published before the call is acknowledged by Kafka or fsynced to
        the spool; False when that did not happen within ``timeout`` seconds."""
        return self._control("flush", timeout)
