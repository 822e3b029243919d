"""The broker topology of DESIGN.md as values: exchanges, queues, bindings, dead-lettering.

Services import names from here instead of spelling them; `kanaal topology apply`
declares the whole of it, and each service declares the part it consumes at start.
Declaration is idempotent as long as a queue's arguments do not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import aio_pika
from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue


class WorkKind(StrEnum):
    """The five ways to steer work, each a family of work queues (werkbakken)."""

    LOCATION = "location"
    SKILL = "skill"
    SUBJECT = "subject"
    GROUP = "group"
    CHANNEL = "channel"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: ExchangeType

    def rabbit(self) -> RabbitExchange:
        return RabbitExchange(self.name, type=self.type, durable=True)


EVENTS: Final = Exchange("kanaal.events", ExchangeType.TOPIC)
WORK: Final = Exchange("kanaal.work", ExchangeType.DIRECT)
OUTBOUND: Final = Exchange("kanaal.outbound", ExchangeType.DIRECT)
DEAD: Final = Exchange("kanaal.dead", ExchangeType.DIRECT)
EXCHANGES: Final = (EVENTS, WORK, OUTBOUND, DEAD)

DEFAULT_DELIVERY_LIMIT: Final = 10


class Event(StrEnum):
    """Event names: the AMQP `type` property and the stem of the routing key."""

    CONTACT_RECEIVED = "contact.received"
    CONTACT_REGISTERED = "contact.registered"
    CONTACT_ROUTED = "contact.routed"
    CONTACT_SENT = "contact.sent"
    CONTACT_FAILED = "contact.failed"
    #: Later facts about a received contact (a `ContactUpdate`), e.g. a counter visit's desk events.
    CONTACT_UPDATED = "contact.updated"
    CASE_CLAIMED = "case.claimed"
    CASE_TRANSFERRED = "case.transferred"
    CASE_ESCALATED = "case.escalated"
    CASE_CLOSED = "case.closed"
    WORK_ITEM = "work.item"
    #: The `type` of an outbound contact on `kanaal.outbound` (routing key: the channel).
    CONTACT_OUTBOUND = "contact.outbound"

    def key(self, channel: str | None = None) -> str:
        """The routing key on `kanaal.events`: contact events carry the channel."""
        if self.value.startswith("contact."):
            if channel is None:
                raise ValueError(f"{self.value} needs a channel")
            return f"{self.value}.{channel}"
        return self.value

    def pattern(self) -> str:
        """A binding pattern that matches this event on every channel."""
        return f"{self.value}.*" if self.value.startswith("contact.") else self.value


@dataclass(frozen=True)
class Queue:
    """A durable queue; quorum with a delivery limit and dead-lettering unless told otherwise.

    `message_ttl_ms` and `dead_letter_to` make a holding queue: messages wait there for
    the TTL and are then dead-lettered to `dead_letter_to` (exchange name, routing key),
    at least once unless `at_least_once` is off.
    """

    name: str
    queue_type: QueueType = QueueType.QUORUM
    delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT
    dead_letter: bool = True
    bindings: tuple[tuple[Exchange, str], ...] = field(default_factory=tuple)
    message_ttl_ms: int | None = None
    dead_letter_to: tuple[str, str] | None = None
    at_least_once: bool = True

    @property
    def dead_letter_key(self) -> str:
        return f"dead.{self.name}"

    @property
    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": self.queue_type.value}
        if self.queue_type is QueueType.QUORUM and self.delivery_limit is not None:
            args["x-delivery-limit"] = self.delivery_limit
        if self.message_ttl_ms is not None:
            args["x-message-ttl"] = self.message_ttl_ms
        if self.dead_letter:
            exchange, key = self.dead_letter_to or (DEAD.name, self.dead_letter_key)
            args["x-dead-letter-exchange"] = exchange
            args["x-dead-letter-routing-key"] = key
            if self.queue_type is QueueType.QUORUM and self.at_least_once:
                # At-least-once dead-lettering: a message is never lost between the two queues.
                args["x-dead-letter-strategy"] = "at-least-once"
                args["x-overflow"] = "reject-publish"
        return args

    def rabbit(self) -> RabbitQueue:
        """The FastStream queue object a subscriber uses (binds its first binding key)."""
        routing_key = self.bindings[0][1] if self.bindings else ""
        queue: RabbitQueue = RabbitQueue(  # type: ignore[call-overload]
            self.name,
            queue_type=self.queue_type,
            durable=True,
            arguments=self.arguments,
            routing_key=routing_key,
        )
        return queue

    def dead(self) -> Queue:
        """The queue that keeps what this queue dead-lettered."""
        return Queue(
            self.dead_letter_key,
            delivery_limit=None,
            dead_letter=False,
            bindings=((DEAD, self.dead_letter_key),),
        )


def work_queue_name(kind: WorkKind | str, name: str | None = None) -> str:
    """`work.<kind>.<name>`, or `work.central` / `work.escalation` for the two singletons."""
    return f"work.{kind}" if name is None else f"work.{kind}.{name}"


WORK_CENTRAL: Final = work_queue_name("central")
WORK_ESCALATION: Final = work_queue_name("escalation")

DOSSIER_INTAKE: Final = Queue(
    "dossier.intake", bindings=((EVENTS, Event.CONTACT_RECEIVED.pattern()),)
)
DOSSIER_EVENTS: Final = Queue(
    "dossier.events",
    bindings=tuple(
        (EVENTS, event.pattern())
        for event in (
            Event.CONTACT_ROUTED,
            Event.CONTACT_SENT,
            Event.CONTACT_FAILED,
            Event.CONTACT_UPDATED,
            Event.CASE_CLAIMED,
            Event.CASE_TRANSFERRED,
            Event.CASE_ESCALATED,
            Event.CASE_CLOSED,
        )
    ),
)
ROUTER_INTAKE: Final = Queue(
    "router.intake", bindings=((EVENTS, Event.CONTACT_REGISTERED.pattern()),)
)


def outbound_queue(channel: str) -> Queue:
    """`outbound.<channel>`: answers the dossier sends out through one channel."""
    return Queue(f"outbound.{channel}", bindings=((OUTBOUND, channel),))


def rejected_queue(channel: str) -> Queue:
    """`dead.intake.<channel>`: what the channel's adapter could not take in, with why."""
    key = f"dead.intake.{channel}"
    return Queue(key, delivery_limit=None, dead_letter=False, bindings=((DEAD, key),))


def work_queue(name: str) -> Queue:
    """A work queue; the router publishes to `kanaal.work` with the queue's name as key."""
    return Queue(name, bindings=((WORK, name),))


#: Suffix of a work queue's urgent partner. Quorum queues on RabbitMQ 3.10 have no
#: priorities (`x-max-priority`), so urgent work waits in `work.<kind>.<name>.urgent`
#: and whoever takes work takes from the urgent partner first.
URGENT_SUFFIX: Final = ".urgent"


def urgent_queue_name(name: str) -> str:
    """`work.x.urgent`: the queue urgent items of work queue `work.x` wait in."""
    return f"{name}{URGENT_SUFFIX}"


# The router's SLA timers. A timer waits in a holding queue whose per-queue TTL is one
# of HOLD_SECONDS, then RabbitMQ dead-letters it through `kanaal.work` to `router.timers`,
# where the router checks it: escalate, or wait again. Timers live in the broker, so
# they survive a router restart. Holding queues dead-letter at most once (the queue
# leader republishes the expired timer itself), keeping RabbitMQ 3.10's at-least-once
# dead-letter worker out of TTL expiry; only a broker crash at that instant loses one.
ROUTER_TIMERS: Final = Queue("router.timers", bindings=((WORK, "router.timers"),))
HOLD_SECONDS: Final = (1, 5, 30, 300, 3600)


def hold_queue(seconds: int) -> Queue:
    """`router.hold.<seconds>s`: timers wait here `seconds`, then go to `router.timers`."""
    return Queue(
        f"router.hold.{seconds}s",
        delivery_limit=None,
        message_ttl_ms=seconds * 1000,
        dead_letter_to=(WORK.name, "router.timers"),
        at_least_once=False,
    )


HOLD_QUEUES: Final = tuple(hold_queue(s) for s in HOLD_SECONDS)

# What the router must remember across restarts (which work was claimed, transferred,
# escalated, closed) reaches it on `router.events`; it journals them in its own store.
ROUTER_EVENTS: Final = Queue(
    "router.events",
    bindings=tuple(
        (EVENTS, event.pattern())
        for event in (
            Event.CASE_CLAIMED,
            Event.CASE_TRANSFERRED,
            Event.CASE_ESCALATED,
            Event.CASE_CLOSED,
        )
    ),
)


@dataclass(frozen=True)
class Topology:
    """Everything the suite declares, derived from the channels and the work queues in use."""

    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]

    @classmethod
    def build(
        cls,
        outbound_channels: Iterable[str],
        work_queues: Iterable[str],
        channels: Iterable[str] = (),
        *,
        router: bool = False,
    ) -> Topology:
        """The topology; with `router`, also the urgent partner of every work queue and
        the router's timer, holding and state queues (what `load_topology` builds)."""
        primary = [DOSSIER_INTAKE, DOSSIER_EVENTS, ROUTER_INTAKE]
        primary += [outbound_queue(c) for c in sorted(set(outbound_channels))]
        names = set(work_queues) | {WORK_CENTRAL, WORK_ESCALATION}
        for name in sorted(names):
            primary.append(work_queue(name))
            if router:
                primary.append(work_queue(urgent_queue_name(name)))
        if router:
            primary += [ROUTER_TIMERS, ROUTER_EVENTS]
        rejected = [rejected_queue(c) for c in sorted(set(channels) | set(outbound_channels))]
        extra = HOLD_QUEUES if router else ()
        return cls(EXCHANGES, (*(q for p in primary for q in (p, p.dead())), *rejected, *extra))

    def queue(self, name: str) -> Queue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(name)

    def bindings(self) -> Iterator[tuple[Queue, Exchange, str]]:
        for queue in self.queues:
            for exchange, key in queue.bindings:
                yield queue, exchange, key


def definitions(topology: Topology, vhost: str = "/") -> dict[str, Any]:
    """The topology in RabbitMQ's definitions format, for operators who import definitions."""
    return {
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in topology.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": q.arguments,
            }
            for q in topology.queues
        ],
        "bindings": [
            {
                "source": exchange.name,
                "vhost": vhost,
                "destination": queue.name,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for queue, exchange, key in topology.bindings()
        ],
    }


async def declare(channel: aio_pika.abc.AbstractChannel, topology: Topology) -> None:
    """Declare exchanges, queues and bindings; safe to run again and again."""
    exchanges = {}
    for exchange in topology.exchanges:
        exchanges[exchange.name] = await channel.declare_exchange(
            exchange.name, aio_pika.ExchangeType(exchange.type.value), durable=True
        )
    for queue in topology.queues:
        declared = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
        for exchange, key in queue.bindings:
            await declared.bind(exchanges[exchange.name], routing_key=key)


async def apply(url: str, topology: Topology) -> None:
    """Connect to `url` and declare `topology` there."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        await declare(await connection.channel(), topology)
