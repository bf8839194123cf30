"""Kafka (confluent-kafka): one topic per installation (``<namespace>.events``), keyed by
the object's id so each object's events stay in one partition, in order; consumer groups
share the partitions, offsets committed after the events were handled.

URL: ``kafka://host:9092[,host2:9092][?partitions=8][&ack_wait=6]`` (``partitions``: for
the topic when the bus creates it; ``ack_wait``: the group members' session timeout).

A broker that is down costs a publish a bounded time: once librdkafka saw the brokers go
(or a publish failed), the next publish first asks for the topic's metadata for
:data:`PROBE_TIMEOUT` seconds; a publish waits at most :data:`PUBLISH_TIMEOUT` for its
acknowledgements, and what is still queued then is withdrawn, so a batch the relay tries
again is not also sent later from this producer's queue.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from ._bus import Delivery, ack_wait, register
from ._errors import BusUnavailable
from ._event import Event

if TYPE_CHECKING:
    from mediaplane.db import Database

log = structlog.get_logger("mediaplane.events")
_LIBRDKAFKA_LOG = logging.getLogger("mediaplane.events.kafka")

#: The longest one call waits for the brokers (a consumer's metadata, offsets).
CALL_TIMEOUT = 10.0
#: The longest a publish (or creating the topic) waits for the brokers to take a batch.
PUBLISH_TIMEOUT = 5.0
#: How long a publish after a failure waits for a broker to answer a metadata request.
PROBE_TIMEOUT = 2.0
PARTITIONS = 8
#: librdkafka errors that mean no broker can be reached now.
_DOWN = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
    }
)


def _topic(namespace: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", namespace) + ".events"


class KafkaBus:
    def __init__(self, url: str, namespace: str) -> None:
        parts = urlsplit(url)
        self.bootstrap = parts.netloc.rsplit("@", 1)[-1]
        self.partitions = int(parse_qs(parts.query).get("partitions", [PARTITIONS])[0])
        self.session_timeout = ack_wait(url)
        self.topic = _topic(namespace)
        self.description = f"kafka {self.bootstrap} ({self.topic})"
        self._producer: Producer | None = None
        self._topic_ready = False
        #: The brokers looked unreachable (librdkafka said so, or a publish failed): the
        #: next publish asks them first, for a short while.
        self._suspect = False
        #: librdkafka reported every broker down since the publish began: it stops waiting.
        self._all_down = False

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "socket.timeout.ms": int(CALL_TIMEOUT * 1000),
            "socket.connection.setup.timeout.ms": 5000,
            # librdkafka's lines (a broker down: one per reconnect) to logging, not stderr
            "logger": _LIBRDKAFKA_LOG,
            "log_level": 4,
            **extra,
        }

    def ensure_topic(self) -> None:
        """Create the topic on first use (a broker that auto-creates topics would make one
        partition: the group could not share the work)."""
        if self._topic_ready:
            return
        admin = AdminClient(self.config())
        topic = NewTopic(self.topic, num_partitions=self.partitions, replication_factor=1)
        future = admin.create_topics([topic], request_timeout=PUBLISH_TIMEOUT)[self.topic]
        try:
            future.result(PUBLISH_TIMEOUT + 1)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BusUnavailable(f"cannot create Kafka topic {self.topic}: {exc}") from exc
        except Exception as exc:  # a timeout of the future: the brokers do not answer
            raise BusUnavailable(f"Kafka is unreachable: {exc!r}") from exc
        self._topic_ready = True

    def producer(self) -> Producer:
        if self._producer is None:
            self.ensure_topic()
            timeout_ms = int(PUBLISH_TIMEOUT * 1000)
            self._producer = Producer(
                self.config(
                    acks="all",
                    # one request in flight per connection: a retry cannot reorder a batch
                    **{"max.in.flight.requests.per.connection": 1},
                    **{"linger.ms": 2, "message.timeout.ms": timeout_ms},
                    # a request a hung broker never answers fails within the publish's bound
                    **{"socket.timeout.ms": timeout_ms},
                    error_cb=self._error,
                )
            )
        return self._producer

    def _error(self, err: KafkaError) -> None:
        """librdkafka's error callback (served by poll/flush): remember a broker that is gone."""
        if err.code() in _DOWN:
            self._suspect = True
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._all_down = True

    def _probe(self, producer: Producer) -> None:
        """Ask a broker for the topic's metadata, :data:`PROBE_TIMEOUT` at most.

        :raises BusUnavailable: no broker answered.
        """
        try:
            meta = producer.list_topics(self.topic, timeout=PROBE_TIMEOUT)
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka is unreachable: {exc}") from exc
        topic = meta.topics.get(self.topic)
        err = topic.error if topic is not None else None
        if topic is None or (err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            self._topic_ready = False  # gone (deleted, or a broker that lost its data)
            self.ensure_topic()
        self._suspect = False

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        producer = self.producer()
        producer.poll(0)  # serve what librdkafka reported since (a broker that went away)
        if self._suspect:
            self._probe(producer)
        self._all_down = False
        failures: list[str] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        try:
            for e in events:
                while True:
                    try:
                        producer.produce(
                            self.topic,
                            e.dumps().encode(),
                            key=e.object_id.encode(),
                            headers={"event-id": e.id},
                            on_delivery=delivered,
                        )
                        break
                    except BufferError:  # the local queue is full: let it drain
                        producer.poll(0.1)
            left = self._flush(producer)
        except KafkaException as exc:
            self._withdraw(producer)
            raise BusUnavailable(f"Kafka did not take the events: {exc}") from exc
        if left or failures:
            # The batch stays unmarked in the outbox, sent again (same ids) by the relay.
            # What this producer still queues is withdrawn, or it would go out later as
            # well; a request already sent may still land (duplicates, the same ids).
            why = failures[0] if failures else f"{left} not acknowledged in time"
            if self._all_down and not failures:
                why = f"every broker is down ({left} not acknowledged)"
            self._withdraw(producer)
            raise BusUnavailable(f"Kafka did not take the events: {why}")

    def _flush(self, producer: Producer) -> int:
        """Wait for the acknowledgements, :data:`PUBLISH_TIMEOUT` at most, or until
        librdkafka says every broker is down; how many are still unacknowledged."""
        deadline = time.monotonic() + PUBLISH_TIMEOUT
        while True:
            left = int(producer.flush(min(0.1, max(0.0, deadline - time.monotonic()))))
            if not left or self._all_down or time.monotonic() >= deadline:
                return left

    def _withdraw(self, producer: Producer) -> None:
        self._suspect = True
        producer.purge(in_queue=True, in_flight=False, blocking=False)
        producer.poll(0)  # (their delivery reports: failed, purged)

    def subscribe(
        self, group: str | None, *, consumer: str | None = None, from_start: bool = False
    ) -> KafkaGroupReader | KafkaTail:
        self.ensure_topic()
        if group is None:
            return KafkaTail(self, from_start=from_start)
        name = consumer or f"{socket.gethostname()}:{os.getpid()}"
        return KafkaGroupReader(self, group, name, from_start=from_start)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(PUBLISH_TIMEOUT)
            self._producer = None


def _deliveries(msgs: list[Message]) -> list[Delivery]:
    out = []
    for m in msgs:
        err = m.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            raise BusUnavailable(f"Kafka: {err}")
        value = m.value()
        if value is not None:
            out.append(Delivery(Event.loads(value), f"{m.partition()}:{m.offset()}"))
    return out


def _ends(consumer: Consumer, topic: str) -> dict[int, int]:
    """Each partition's next offset now (where a new reader that skips the past begins)."""
    try:
        meta = consumer.list_topics(topic, timeout=CALL_TIMEOUT).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=CALL_TIMEOUT)[1]
            for p in meta.partitions
        }
    except KafkaException as exc:
        raise BusUnavailable(f"Kafka is unreachable: {exc}") from exc


class KafkaGroupReader:
    """A member of a consumer group. A new group begins at the topic's end as of this
    call (or its start with ``from_start``), not where the brokers' end is when the
    group's first join completes; a known group at its committed offsets."""

    def __init__(self, bus: KafkaBus, group: str, consumer: str, *, from_start: bool) -> None:
        self.topic = bus.topic
        session_ms = int(bus.session_timeout * 1000)
        self.consumer = Consumer(
            bus.config(
                **{
                    "group.id": group,
                    "client.id": consumer,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": session_ms,
                    "heartbeat.interval.ms": max(100, min(1000, session_ms // 3)),
                    "max.poll.interval.ms": 300000,
                }
            )
        )
        #: Where the group begins on a partition it has no offset for; None: the start.
        self._start = None if from_start else _ends(self.consumer, self.topic)
        self.consumer.subscribe([self.topic], on_assign=self._assigned)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=CALL_TIMEOUT)
        for tp in committed:
            if tp.offset < 0:  # the group has no offset here yet
                start = self._start
                tp.offset = OFFSET_BEGINNING if start is None else start.get(tp.partition, 0)
        consumer.assign(committed)

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        try:
            return _deliveries(self.consumer.consume(limit, max(timeout, 0.01)))
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka is unreachable: {exc}") from exc

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        nexts: dict[int, int] = {}
        for d in deliveries:
            partition, offset = (int(x) for x in d.token.split(":"))
            nexts[partition] = max(nexts.get(partition, 0), offset + 1)
        if not nexts:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in nexts.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partition meanwhile: its new owner gets these events
            # again (at least once, same ids).
            log.warning("events.kafka_commit_failed", error=str(exc))

    def close(self) -> None:
        self.consumer.close()  # leaves the group: its partitions move on at once


class KafkaTail:
    """Every event from now (or from the start), on every partition, no group."""

    def __init__(self, bus: KafkaBus, *, from_start: bool) -> None:
        self.consumer = Consumer(
            bus.config(**{"group.id": f"tail-{uuid.uuid4().hex}", "enable.auto.commit": False})
        )
        ends = _ends(self.consumer, bus.topic)
        self.consumer.assign(
            [
                TopicPartition(bus.topic, p, OFFSET_BEGINNING if from_start else end)
                for p, end in ends.items()
            ]
        )

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        try:
            return _deliveries(self.consumer.consume(limit, max(timeout, 0.01)))
        except KafkaException as exc:
            raise BusUnavailable(f"Kafka is unreachable: {exc}") from exc

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass

    def close(self) -> None:
        self.consumer.close()


def _open(url: str, database: Database | None, namespace: str) -> KafkaBus:
    return KafkaBus(url, namespace)


register("kafka", _open)
