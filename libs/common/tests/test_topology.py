"""The broker topology: every queue quorum, bounded, dead-lettered; the config says which exist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import pytest

from kanaal.common.config import ConfigError, load_topology
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import (
    DEAD,
    DEFAULT_DELIVERY_LIMIT,
    EVENTS,
    EXCHANGES,
    HOLD_SECONDS,
    OUTBOUND,
    WORK,
    Event,
    Topology,
    apply,
    hold_queue,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO_ROOT / "deploy" / "config"

PRIMARY = [
    "dossier.intake",
    "dossier.events",
    "router.intake",
    "outbound.email",
    "outbound.web",
    "work.central",
    "work.escalation",
    "work.subject.parkeren",
]


@pytest.fixture
def topology() -> Topology:
    return Topology.build(["web", "email", "web"], ["work.subject.parkeren", "work.central"])


def test_every_queue_has_a_dead_letter_partner_and_each_channel_a_rejected_queue(
    topology: Topology,
) -> None:
    names = [queue.name for queue in topology.queues]
    rejected = ["dead.intake.email", "dead.intake.web"]
    assert sorted(names) == sorted(PRIMARY + [f"dead.{name}" for name in PRIMARY] + rejected)
    assert len(names) == len(set(names))


def test_inbound_only_channels_get_a_rejected_queue_but_no_outbound_queue() -> None:
    topology = Topology.build(["email"], [], ["phone", "email"])
    names = {queue.name for queue in topology.queues}
    assert {"dead.intake.phone", "dead.intake.email", "outbound.email"} <= names
    assert "outbound.phone" not in names
    assert topology.queue("dead.intake.phone").bindings == ((DEAD, "dead.intake.phone"),)


@pytest.mark.parametrize("name", PRIMARY)
def test_a_queue_is_quorum_with_a_delivery_limit_and_dead_letters_to_kanaal_dead(
    topology: Topology, name: str
) -> None:
    assert topology.queue(name).arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": DEFAULT_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "kanaal.dead",
        "x-dead-letter-routing-key": f"dead.{name}",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@pytest.mark.parametrize("name", PRIMARY)
def test_a_dead_queue_keeps_messages_for_ever_and_is_bound_to_its_key(
    topology: Topology, name: str
) -> None:
    dead = topology.queue(f"dead.{name}")
    assert dead.arguments == {"x-queue-type": "quorum"}
    assert dead.bindings == ((DEAD, f"dead.{name}"),)


def test_intake_and_outbound_and_work_queues_are_bound_where_their_publishers_publish(
    topology: Topology,
) -> None:
    bindings = {(queue.name, exchange.name, key) for queue, exchange, key in topology.bindings()}
    assert ("dossier.intake", "kanaal.events", "contact.received.*") in bindings
    assert ("router.intake", "kanaal.events", "contact.registered.*") in bindings
    assert ("dossier.events", "kanaal.events", "contact.routed.*") in bindings
    assert ("dossier.events", "kanaal.events", "case.closed") in bindings
    assert ("outbound.email", "kanaal.outbound", "email") in bindings
    assert ("outbound.web", "kanaal.outbound", "web") in bindings
    assert ("work.subject.parkeren", "kanaal.work", "work.subject.parkeren") in bindings
    assert ("work.central", "kanaal.work", "work.central") in bindings
    assert ("work.escalation", "kanaal.work", "work.escalation") in bindings


def test_the_dossier_does_not_hear_its_own_registrations(topology: Topology) -> None:
    keys = {key for _, key in topology.queue("dossier.events").bindings}
    assert not any(key.startswith(("contact.received", "contact.registered")) for key in keys)


def test_the_four_exchanges_have_the_types_of_the_design(topology: Topology) -> None:
    assert topology.exchanges == EXCHANGES
    assert {e.name: e.type.value for e in EXCHANGES} == {
        "kanaal.events": "topic",
        "kanaal.work": "direct",
        "kanaal.outbound": "direct",
        "kanaal.dead": "direct",
    }
    assert (EVENTS, WORK, OUTBOUND, DEAD) == EXCHANGES


def test_contact_events_carry_the_channel_in_their_routing_key() -> None:
    assert Event.CONTACT_RECEIVED.key("web") == "contact.received.web"
    assert Event.CASE_CLOSED.key() == "case.closed"
    with pytest.raises(ValueError, match="needs a channel"):
        Event.CONTACT_ROUTED.key()


def test_asking_for_an_unknown_queue_names_it(topology: Topology) -> None:
    with pytest.raises(KeyError, match=r"work\.subject\.afval"):
        topology.queue("work.subject.afval")


def test_the_shipped_config_gives_the_subject_queues_and_outbound_channels() -> None:
    topology = load_topology(CONFIG_DIR)
    names = {queue.name for queue in topology.queues}
    for subject in ("parkeren", "afval", "paspoort", "belastingen"):
        assert f"work.subject.{subject}" in names
        assert f"dead.work.subject.{subject}" in names
    assert {"outbound.email", "outbound.web", "work.central", "work.escalation"} <= names
    assert "outbound.phone" not in names  # phone has no outbound in channels.yaml


def write_config(folder: Path, routing: str, channels: str = "channels: {}\n") -> Path:
    (folder / "channels.yaml").write_text(channels, encoding="utf-8")
    (folder / "routing.yaml").write_text(routing, encoding="utf-8")
    return folder


def test_a_bad_work_queue_name_in_routing_yaml_names_the_file_and_the_key(tmp_path: Path) -> None:
    write_config(tmp_path, "queues:\n  - work.subject.parkeren\n  - Werkbak Parkeren\n")
    with pytest.raises(ConfigError) as info:
        load_topology(tmp_path)
    assert info.value.path == tmp_path / "routing.yaml"
    assert str(tmp_path / "routing.yaml") in str(info.value)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("queues.1: ")


def test_a_bad_default_queue_names_the_default_key(tmp_path: Path) -> None:
    write_config(tmp_path, "default: central\n")
    with pytest.raises(ConfigError, match="default: String should match pattern"):
        load_topology(tmp_path)


def test_routing_yaml_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    write_config(tmp_path, "queues: [work.central\n")
    with pytest.raises(ConfigError, match=r"routing\.yaml: not valid YAML"):
        load_topology(tmp_path)


def test_routing_yaml_that_is_a_list_says_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write_config(tmp_path, "- work.central\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_topology(tmp_path)


def test_a_missing_channels_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "routing.yaml").write_text("{}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"channels\.yaml: file not found"):
        load_topology(tmp_path)


def test_a_bad_channel_slug_in_channels_yaml_names_it(tmp_path: Path) -> None:
    write_config(tmp_path, "{}\n", channels="channels:\n  E-Mail:\n    outbound: true\n")
    with pytest.raises(ConfigError) as info:
        load_topology(tmp_path)
    assert info.value.path == tmp_path / "channels.yaml"
    assert info.value.problems[0].startswith("channels.E-Mail.[key]: ")


def test_empty_config_files_give_the_minimal_topology(tmp_path: Path) -> None:
    write_config(tmp_path, "", channels="")
    names = {
        queue.name for queue in load_topology(tmp_path).queues if not queue.name.startswith("dead.")
    }
    assert names == {
        "dossier.intake",
        "dossier.events",
        "router.intake",
        "work.central",
        "work.escalation",
    }
    with_router = {
        queue.name
        for queue in load_topology(tmp_path, router=True).queues
        if not queue.name.startswith("dead.")
    }
    assert with_router - names == {
        "router.timers",
        "router.events",
        *(f"router.hold.{s}s" for s in HOLD_SECONDS),
        "work.central.urgent",
        "work.escalation.urgent",
    }


def test_every_work_queue_in_the_config_has_an_urgent_partner_bound_to_its_own_key() -> None:
    topology = load_topology(CONFIG_DIR, router=True)
    work = [q for q in topology.queues if q.name.startswith("work.")]
    normal = {q.name for q in work if not q.name.endswith(".urgent")}
    assert {q.name for q in work} == normal | {f"{name}.urgent" for name in normal}
    assert topology.queue("work.subject.parkeren.urgent").bindings == (
        (WORK, "work.subject.parkeren.urgent"),
    )


def test_rule_targets_and_escalation_queues_in_routing_yaml_are_declared(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "strategy: group\n"
        "rules:\n"
        "  - {name: a, target: work.skill.parkeren, escalation: [{queue: work.skill.lead}]}\n"
        "  - {name: b, target: 42}\n"
        "escalation: [{queue: work.location.noord}]\n",
    )
    names = {queue.name for queue in load_topology(tmp_path).queues}
    assert {
        "work.skill.parkeren",
        "work.skill.lead",
        "work.location.noord",
        "work.group.ondernemers",
        "work.group.inwoners",
    } <= names


def test_a_holding_queue_expires_its_messages_into_router_timers() -> None:
    hold = hold_queue(30)
    assert hold.name == "router.hold.30s"
    assert hold.arguments == {
        "x-queue-type": "quorum",
        "x-message-ttl": 30_000,
        "x-dead-letter-exchange": "kanaal.work",
        "x-dead-letter-routing-key": "router.timers",
    }


# --- against the real broker ------------------------------------------------------------------


async def test_applying_the_topology_twice_changes_nothing_and_events_reach_the_dossier(
    rabbit_vhost: RabbitVhost, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    topology = load_topology(CONFIG_DIR)
    await apply(rabbit_vhost.url, topology)
    await apply(rabbit_vhost.url, topology)

    for queue in topology.queues:  # passive: fails if a queue is missing
        await amqp_channel.declare_queue(queue.name, passive=True)
    events = await amqp_channel.get_exchange("kanaal.events")
    await events.publish(
        aio_pika.Message(b'{"hello": "dossier"}', message_id="m-1"),
        routing_key="contact.received.web",
    )
    received = await rabbit_vhost.get("dossier.intake")
    assert received.body == b'{"hello": "dossier"}'
    assert received.message_id == "m-1"


async def test_a_queue_changed_by_hand_is_reported_not_silently_redeclared(
    rabbit_vhost: RabbitVhost, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    await amqp_channel.declare_queue(
        "router.intake", durable=True, arguments={"x-queue-type": "classic"}
    )
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        await apply(rabbit_vhost.url, load_topology(CONFIG_DIR))


async def test_a_message_dead_lettered_from_a_queue_lands_in_its_dead_queue(
    rabbit_vhost: RabbitVhost, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    await apply(rabbit_vhost.url, load_topology(CONFIG_DIR))
    router_intake = await amqp_channel.get_queue("router.intake")
    events = await amqp_channel.get_exchange("kanaal.events")
    await events.publish(aio_pika.Message(b"poison"), routing_key="contact.registered.email")
    delivered = None
    for _ in range(100):
        delivered = await router_intake.get(fail=False, timeout=5)
        if delivered is not None:
            break
        await asyncio.sleep(0.05)
    assert delivered is not None
    await delivered.reject(requeue=False)
    dead = await rabbit_vhost.get("dead.router.intake")
    assert dead.body == b"poison"
