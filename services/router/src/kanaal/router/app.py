"""The router's shell: registered contacts become work items, expired SLAs escalations.

Consumes `router.intake` (decide, publish the work item, its SLA timer and
`contact.routed`), `router.timers` (an SLA passed: escalate unless the work was claimed)
and `router.events` (what was claimed, transferred, escalated, closed; journalled in
SQLite with what the router routed, so that it survives a restart). Reloads
routing.yaml on SIGHUP and when the file changes, keeping the last good rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
from fastapi import FastAPI
from faststream import AckPolicy
from faststream.rabbit.annotations import RabbitMessage as Delivery
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field, ValidationError

from kanaal.common.config import ROUTING_FILE, ConfigError, load_topology
from kanaal.common.contract import RegisteredContact, WorkItem
from kanaal.common.logging import get_logger
from kanaal.common.messaging import (
    Publisher,
    describe_validation_error,
    make_broker,
    raw_body,
    subscribe,
)
from kanaal.common.service import broker_check, service_app
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.common.topology import (
    EVENTS,
    ROUTER_EVENTS,
    ROUTER_INTAKE,
    ROUTER_TIMERS,
    WORK,
    Event,
    apply,
    hold_queue,
    urgent_queue_name,
)
from kanaal.router.escalation import (
    EscalationTimer,
    TimerMessage,
    WaitingWork,
    escalate,
    timer_batches,
)
from kanaal.router.intake import RECONNECT_SECONDS, BatchIntake, Outgoing, Plan
from kanaal.router.journal import DEFAULT_RETENTION_DAYS, Journal, apply_event
from kanaal.router.lock import AnotherRouterRuns, RouterLock
from kanaal.router.rules import RoutingRules
from kanaal.router.sla import due_at

log = get_logger(__name__)

ROUTED = Counter(
    "kanaal_router_routed_total",
    "Contacts routed, by deciding rule and work queue",
    ["rule", "queue"],
)
DECISION_SECONDS = Histogram(
    "kanaal_router_decision_seconds", "Time to decide one contact's queue (rate = decisions/s)"
)
ESCALATIONS = Counter(
    "kanaal_router_escalations_total",
    "Work escalated because its SLA passed unclaimed",
    ["from_queue", "to_queue"],
)
RELOADS = Counter("kanaal_router_rule_reloads_total", "routing.yaml reloads that took effect")
RELOAD_FAILURES = Counter(
    "kanaal_router_rule_reload_failures_total",
    "routing.yaml reloads refused (last good rules kept)",
)
QUEUE_DEPTH = Gauge("kanaal_router_queue_depth", "Messages in a work queue", ["queue"])
OLDEST_AGE = Gauge(
    "kanaal_router_oldest_waiting_seconds",
    "Age of the oldest routed, unclaimed contact of a work queue (urgent partner included)",
    ["queue"],
)

TIMER_TYPE = "router.timer"
FORGET_INTERVAL_SECONDS = 3600.0


class RouterSettings(ServiceSettings):
    router_port: int = Field(SERVICE_PORTS["router"], description="router HTTP port")
    router_reload_interval: float = Field(
        2.0, ge=0, description="seconds between checks of routing.yaml for changes; 0 = off"
    )
    router_metrics_interval: float = Field(
        5.0, gt=0, description="seconds between work-queue depth and age measurements"
    )
    router_intake_batch: int = Field(
        500,
        ge=1,
        le=5000,
        description="registered contacts routed, confirmed and acked together (intake prefetch)",
    )
    router_state_path: Path = Field(
        Path("var/router-state.db"),
        description="SQLite file journalling routed, claimed, escalated and closed work",
    )
    router_lock_wait: float = Field(
        15.0,
        ge=0,
        description="seconds a starting router waits for router.lock while another router "
        "goes away; then it refuses to start (one router per vhost)",
    )
    router_retention_days: int = Field(
        DEFAULT_RETENTION_DAYS,
        ge=1,
        le=3650,
        description="days the router remembers claims, transfers, closes and escalations "
        "for its SLA timers; must be longer than the longest SLA chain",
    )


class RulesHolder:
    """The rules in force; a reload that fails keeps them."""

    def __init__(
        self,
        path: Path,
        declare: Callable[[], Awaitable[None]],
        retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS),
    ) -> None:
        self.path = path
        self.rules = RoutingRules.load(path)  # refuses to start on a bad file
        self._declare = declare
        self._retention = retention
        self._warn_if_timers_outlive_memory()
        self._stamp = self._file_stamp()
        self._lock = asyncio.Lock()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def changed(self) -> bool:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True

    async def reload(self) -> bool:
        async with self._lock:
            try:
                rules = RoutingRules.load(self.path)
                if rules.queues - self.rules.queues:
                    await self._declare()
            except (ConfigError, OSError, aio_pika.exceptions.AMQPError) as exc:
                RELOAD_FAILURES.inc()
                problems = exc.problems if isinstance(exc, ConfigError) else [type(exc).__name__]
                log.error(
                    "routing.yaml reload failed; keeping the last good rules", problems=problems
                )
                return False
            self.rules = rules
            RELOADS.inc()
            self._warn_if_timers_outlive_memory()
            log.info(
                "routing.yaml reloaded", rules=len(rules.config.rules), queues=len(rules.queues)
            )
            return True

    def _warn_if_timers_outlive_memory(self) -> None:
        """A timer due after the retention could escalate work whose claim was forgotten."""
        longest = self.rules.longest_wait(datetime.now(UTC))
        if longest > self._retention:
            log.warning(
                "an SLA chain in routing.yaml outlasts what the router remembers: raise "
                "KANAAL_ROUTER_RETENTION_DAYS, or claimed work may be escalated after all",
                longest_days=round(longest / timedelta(days=1), 1),
                retention_days=self._retention.days,
            )


def create_app(settings: RouterSettings) -> FastAPI:
    url = settings.amqp_url.get_secret_value()

    async def declare() -> None:
        await apply(url, load_topology(settings.config_dir, router=True))

    retention = timedelta(days=settings.router_retention_days)
    holder = RulesHolder(settings.config_dir / ROUTING_FILE, declare, retention)
    broker = make_broker(settings, "router")
    # FastStream logs every delivery at INFO; at thousands a second that is the router's
    # main cost. Its warnings and errors still show; the router logs what matters itself.
    logging.getLogger("kanaal.router.broker").setLevel(logging.WARNING)
    publisher = Publisher(broker, settings.publish_timeout)
    waiting = WaitingWork()
    caught_up = asyncio.Event()
    journal = Journal(settings.router_state_path, settings.router_retention_days)

    async def publish_work(item: WorkItem, urgent: bool, body: bytes | None = None) -> None:
        await publisher.publish(
            body or item.model_dump_json().encode(),
            exchange=WORK,
            routing_key=urgent_queue_name(item.queue) if urgent else item.queue,
            message_type=Event.WORK_ITEM,
            message_id=item.contact_id,
        )

    async def schedule(timers: list[EscalationTimer]) -> None:
        """Timers back into the holding queues, one message per queue."""
        for seconds, batch in timer_batches(timers, datetime.now(UTC)).items():
            await publisher.to_queue(
                batch,
                queue=hold_queue(seconds).name,
                message_type=TIMER_TYPE,
                message_id=batch.batch_id,
            )

    def plan(body: bytes) -> Plan:
        """One registered contact: its work item, `contact.routed` and SLA timer (pure)."""
        registered = RegisteredContact.model_validate_json(body)
        rules = holder.rules
        with DECISION_SECONDS.time():
            decision = rules.decide(registered)
        contact = registered.contact
        now = datetime.now(UTC)
        due = due_at(now, decision.sla, rules.config.calendar) if decision.sla else None
        item = WorkItem(
            contact_id=contact.id,
            case_ref=registered.case_ref,
            party_id=registered.party_id,
            channel=contact.channel,
            subject=contact.subject,
            location=contact.location,
            queue=decision.queue,
            rule=decision.rule,
            priority=decision.priority,
            sla_due_at=due,
            routed_at=now,
            agent=decision.agent,
        )
        work = item.model_dump_json().encode()  # serialised once, published twice
        messages = [
            Outgoing(
                WORK.name,
                urgent_queue_name(item.queue) if decision.urgent else item.queue,
                work,
                Event.WORK_ITEM,
                str(contact.id),
            ),
            Outgoing(
                EVENTS.name,
                Event.CONTACT_ROUTED.key(contact.channel),
                work,
                Event.CONTACT_ROUTED,
                str(contact.id),
            ),
        ]
        timers = []
        if due is not None and decision.escalation:
            timers.append(EscalationTimer(item=item, due_at=due, steps=list(decision.escalation)))
        return Plan(messages, record=(item, work), shared=timers)

    def batch_timers(timers: list[EscalationTimer]) -> list[Outgoing]:
        """The SLA timers of a whole intake batch: one message per holding queue."""
        return [
            Outgoing(
                "",
                hold_queue(seconds).name,
                batch.model_dump_json().encode(),
                TIMER_TYPE,
                batch.batch_id,
            )
            for seconds, batch in timer_batches(timers, datetime.now(UTC)).items()
        ]

    def routed(records: list[tuple[WorkItem, bytes]]) -> None:
        """After the batch is confirmed: remember it (for the oldest-age metric), count it."""
        journal.append_many(Event.CONTACT_ROUTED, [work for _, work in records])
        for item, _ in records:
            waiting.routed(item)
            ROUTED.labels(item.rule, item.queue).inc()

    intake = BatchIntake(
        url,
        ROUTER_INTAKE,
        plan=plan,
        combine=batch_timers,
        settled=routed,
        batch=settings.router_intake_batch,
        retry_delay=settings.retry_delay,
        publish_timeout=settings.publish_timeout,
        app_id="kanaal-router",
    )

    async def fire(message: TimerMessage) -> None:
        # Until the state stream is read to its end, a claim could be unknown here.
        await caught_up.wait()
        now = datetime.now(UTC)
        later: list[EscalationTimer] = []
        for timer in message.timers:
            if waiting.is_settled(timer.item):
                continue
            if now < timer.due_at:
                later.append(timer)
                continue
            await escalate_now(timer, now)
        await schedule(later)

    async def escalate_now(timer: EscalationTimer, now: datetime) -> None:
        rules = holder.rules
        outcome = escalate(timer, now, rules.config.calendar)
        await publish_work(outcome.item, outcome.item.priority >= rules.config.urgent_priority)
        # The next timer before the event: once the event is folded in, a redelivered
        # timer counts as settled and would not schedule it again.
        if outcome.next_timer is not None:
            await schedule([outcome.next_timer])
        await publisher.event(
            Event.CASE_ESCALATED,
            outcome.event,
            message_id=f"{timer.item.contact_id}:escalated:{outcome.item.escalation_step}",
        )
        waiting.case_event(outcome.event)
        ESCALATIONS.labels(timer.item.queue, outcome.item.queue).inc()
        log.info(
            "escalated",
            contact_id=str(timer.item.contact_id),
            from_queue=timer.item.queue,
            to_queue=outcome.item.queue,
        )

    subscribe(
        broker,
        ROUTER_TIMERS,
        model=TimerMessage,
        effect=fire,
        publisher=publisher,
        retry_delay=settings.retry_delay,
        description="SLA timers back from their holding queue: escalate unless claimed.",
    )

    async def record(message: Delivery) -> None:
        """Journal one event from `router.events`, fold it into `waiting`, then ack."""
        await caught_up.wait()
        raw = message.raw_message
        try:
            journal.append(raw.type or "", raw.body)
            apply_event(waiting, raw.type or "", raw.body)
        except ValidationError as exc:
            await publisher.dead_letter(message, ROUTER_EVENTS, describe_validation_error(exc))
        await message.ack()

    broker.subscriber(
        ROUTER_EVENTS.rabbit(),
        ROUTER_EVENTS.bindings[0][0].rabbit(),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title=f"{ROUTER_EVENTS.name}:consume",
        description="Routed, claimed, transferred, escalated and closed work, for SLA timers.",
    )(record)

    lock = RouterLock(url, settings.router_lock_wait)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # One router per vhost (see kanaal.router.lock); it declares the whole topology,
        # its own queues and urgent partners included, before it consumes; then drains
        # in-flight work on the way out.
        await lock.acquire()
        try:
            await declare()
            await broker.start()
            try:
                async with running(broker):
                    yield
            finally:
                await broker.stop()
        finally:
            await lock.release()

    async def keep_lock() -> None:
        """Take the lock again after the broker connection dropped; if another router
        has it by then, this one stops consuming (the other routes)."""
        while True:
            await lock.lost.wait()
            try:
                await lock.acquire()
            except AnotherRouterRuns:
                log.error("another router took the lock: this router stops routing")
                intake.stop()
                await broker.stop()
                return
            except (aio_pika.exceptions.AMQPError, OSError, TimeoutError):
                await asyncio.sleep(RECONNECT_SECONDS)

    @asynccontextmanager
    async def running(_: object) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(url, timeout=10)
        tasks: set[asyncio.Task[None]] = set()
        intake_task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()

        def reload_now() -> None:
            task = asyncio.create_task(_reload(holder))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            await asyncio.to_thread(journal.replay, waiting)
            caught_up.set()
            intake_task = asyncio.create_task(intake.run())
            tasks.add(asyncio.create_task(watch_rules(holder, settings.router_reload_interval)))
            tasks.add(asyncio.create_task(forget_old(waiting, journal, retention)))
            tasks.add(asyncio.create_task(keep_lock()))
            tasks.add(
                asyncio.create_task(
                    measure_queues(connection, holder, waiting, settings.router_metrics_interval)
                )
            )
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, reload_now)
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
            # The batch in hand is finished and acked; what waits goes back to the queue.
            intake.stop()
            if intake_task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(intake_task), settings.publish_timeout + 5
                    )
                intake_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await intake_task
            for task in tasks:
                task.cancel()
            # Shutdown must end: a task stuck in a broker call does not hold the process.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
            with contextlib.suppress(TimeoutError, aio_pika.exceptions.AMQPError, OSError):
                await asyncio.wait_for(connection.close(), 10)
            journal.close()

    async def state_ready() -> bool:
        return caught_up.is_set()

    async def intake_ready() -> bool:
        return intake.connected

    async def lock_ready() -> bool:
        return lock.held

    return service_app(
        "router",
        settings,
        checks={
            "broker": broker_check(broker),
            "state": state_ready,
            "intake": intake_ready,
            "lock": lock_ready,
        },
        lifespan=lifespan,
    )


async def _reload(holder: RulesHolder) -> None:
    await holder.reload()


async def watch_rules(holder: RulesHolder, interval: float) -> None:
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        if holder.changed():
            await holder.reload()


async def forget_old(waiting: WaitingWork, journal: Journal, retention: timedelta) -> None:
    """Once an hour, drop from memory and journal what is older than the retention."""
    while True:
        await asyncio.sleep(FORGET_INTERVAL_SECONDS)
        forgotten = waiting.forget(datetime.now(UTC) - retention)
        deleted = journal.forget()
        log.info("old work events forgotten", in_memory=forgotten, in_journal=deleted)


async def measure_queues(
    connection: aio_pika.abc.AbstractRobustConnection,
    holder: RulesHolder,
    waiting: WaitingWork,
    interval: float,
) -> None:
    """Depth of every work queue (from the broker) and age of its oldest waiting contact."""
    while True:
        try:
            await _measure(connection, holder, waiting)
        except (aio_pika.exceptions.AMQPError, OSError, RuntimeError):
            log.warning("measuring the work queues failed; trying again")
        await asyncio.sleep(interval)


async def _measure(
    connection: aio_pika.abc.AbstractRobustConnection, holder: RulesHolder, waiting: WaitingWork
) -> None:
    channel = await connection.channel()
    try:
        ages = waiting.oldest(datetime.now(UTC))
        for name in sorted(holder.rules.queues):
            OLDEST_AGE.labels(name).set(ages[name].total_seconds() if name in ages else 0.0)
            for queue_name in (name, urgent_queue_name(name)):
                try:
                    declared = await channel.declare_queue(queue_name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
                    continue
                QUEUE_DEPTH.labels(queue_name).set(declared.declaration_result.message_count or 0)
    finally:
        if not channel.is_closed:
            await channel.close()
