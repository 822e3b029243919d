"""`kanaal demo`'s contacts reach the queues the sample agents serve, as one customer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kanaal.common.agents import load_agents
from kanaal.common.config import ROUTING_FILE, WorkQueuesConfig, load_section
from kanaal.desk.demo import publish, sample_contacts
from kanaal.desk.served import served_queues

from .conftest import DEPLOY_CONFIG, Suite


async def test_the_demo_contacts_land_in_queues_the_sample_agents_serve(suite: Suite) -> None:
    await publish(suite.vhost.url, sample_contacts("test", datetime.now(UTC)))
    expected = {
        "work.subject.parkeren": 1,
        "work.subject.afval": 1,
        "work.skill.terugbellen": 1,
        "work.location.noord": 1,
    }
    for queue, count in expected.items():
        await suite.wait_depth(queue, count)
    declared = load_section(Path(DEPLOY_CONFIG) / ROUTING_FILE, WorkQueuesConfig).work_queues
    served = {
        a.id: set(served_queues(a, declared).queues) for a in load_agents(DEPLOY_CONFIG).agents
    }
    assert set(expected) - {"work.location.noord"} <= served["anna"]
    assert "work.location.noord" in served["bram"]
