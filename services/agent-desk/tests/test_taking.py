"""Taking work through the desk against the real RabbitMQ, dossier and router: each agent
gets only their work, urgent first, never one item twice, stale items skipped, capacity
kept, nothing redelivered on the way."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from kanaal.common.contract import ContactMessage, Direction
from kanaal.common.topology import urgent_queue_name

from .conftest import PARKEREN, Suite


async def test_two_agents_each_get_only_their_work_urgent_first_within_capacity(
    suite: Suite,
) -> None:
    anna, bram = suite.desk("anna"), suite.desk("bram")
    normal = await suite.send(subject="parkeren")
    urgent = await suite.send(subject="parkeren", priority=9, text="Auto weggesleept!")
    at_noord = await suite.send(
        channel="counter", entry_point="noord", location="noord", subject="afval", text="Vraag"
    )
    second_noord = await suite.send(
        channel="counter", entry_point="noord", location="noord", subject="afval", text="Nog een"
    )
    await suite.wait_depth(PARKEREN, 1)
    await suite.wait_depth(urgent_queue_name(PARKEREN), 1)
    await suite.wait_depth("work.location.noord", 2)

    me = (await anna.get("/api/v1/me")).json()
    assert me["queues"] == [PARKEREN, "work.central"]

    first = (await anna.post("/api/v1/next")).json()
    assert (first["status"], first["taken_from"]) == ("claimed", urgent_queue_name(PARKEREN))
    assert first["contact_id"] == str(urgent.id)
    second = (await anna.post("/api/v1/next")).json()
    assert (second["contact_id"], second["queue"]) == (str(normal.id), PARKEREN)
    assert (await anna.post("/api/v1/next")).json()["status"] == "empty"

    taken = (await bram.post("/api/v1/next")).json()
    assert (taken["status"], taken["queue"]) == ("claimed", "work.location.noord")
    # The dossier registers deliveries concurrently: two visits sent back to back may be
    # routed in either order. Bram gets one, and the other once he has closed it.
    visits = {str(at_noord.id), str(second_noord.id)}
    assert taken["contact_id"] in visits
    # Bram's capacity is 1: the second visit stays in its queue for somebody else.
    full = (await bram.post("/api/v1/next")).json()
    assert (full["status"], full["held"], full["capacity"]) == ("at_capacity", 1, 1)
    assert await suite.depth("work.location.noord") == 1
    closed = await bram.post(f"/api/v1/cases/{taken['case_ref']}/close", json={"outcome": "klaar"})
    assert closed.status_code == 200, closed.text
    again = (await bram.post("/api/v1/next")).json()
    assert again["contact_id"] == (visits - {taken["contact_id"]}).pop()

    assert (await suite.desk(None).post("/api/v1/next")).status_code == 401
    assert (await suite.desk("nobody").get("/api/v1/me")).status_code == 401


async def test_next_takes_urgent_first_then_the_oldest_item_across_the_agents_queues(
    suite: Suite,
) -> None:
    # Anna serves work.subject.parkeren before work.central; the older item waits in central.
    older = await suite.send(subject="overig", text="Vraag over iets anders")
    await _dossier_knows_waiting(suite, "work.central", 1)
    newer = await suite.send(subject="parkeren")
    await _dossier_knows_waiting(suite, PARKEREN, 1)
    urgent = await suite.send(subject="parkeren", priority=9, text="Auto weggesleept!")
    await suite.wait_depth(urgent_queue_name(PARKEREN), 1)
    anna = suite.desk("anna")
    assert (await anna.get("/api/v1/me")).json()["queues"] == [PARKEREN, "work.central"]

    taken = [(await anna.post("/api/v1/next")).json() for _ in range(3)]
    assert [t["contact_id"] for t in taken] == [str(urgent.id), str(older.id), str(newer.id)]
    assert [t["taken_from"] for t in taken] == [
        urgent_queue_name(PARKEREN),
        "work.central",
        PARKEREN,
    ]
    assert all(t["redelivered"] == 0 for t in taken)


async def test_fifty_concurrent_nexts_from_ten_agents_give_every_item_to_exactly_one(
    suite: Suite,
) -> None:
    contacts = [await suite.send(subject="parkeren") for _ in range(50)]
    await suite.wait_depth(PARKEREN, 50, timeout=60)
    agents = [f"kcc{i}" for i in range(10)]

    started = time.perf_counter()
    results = await asyncio.gather(
        *(suite.desk(agent).post("/api/v1/next") for agent in agents for _ in range(5))
    )
    elapsed = time.perf_counter() - started
    bodies = [r.json() for r in results]
    assert all(b["status"] == "claimed" for b in bodies), bodies
    taken = Counter(b["contact_id"] for b in bodies)
    assert set(taken) == {str(c.id) for c in contacts}
    assert max(taken.values()) == 1
    assert len({b["case_ref"] for b in bodies}) == 50
    assert await suite.depth(PARKEREN) == 0
    # Nothing was handed back or dead-lettered on the way.
    assert await suite.depth(f"dead.{PARKEREN}") == 0
    for agent in agents:
        held = (await suite.desk(agent).get("/api/v1/me")).json()["held"]
        assert len(held) == 5
    print(f"\n50 concurrent nexts from 10 agents: {elapsed:.2f} s, {50 / elapsed:.0f} claims/s")


async def test_a_reply_to_an_email_case_reaches_outbound_email(suite: Suite) -> None:
    contact = await suite.send(
        channel="email",
        entry_point="info@gemeente.example",
        source_ref="<vraag-7@example.org>",
        party={"name": "Fenna", "email": "fenna@example.org"},
        text="Wanneer wordt het afval opgehaald?",
    )
    await suite.wait_depth(PARKEREN, 1)
    anna = suite.desk("anna")
    taken = (await anna.post("/api/v1/next")).json()
    ref = taken["case_ref"]
    view = (await anna.get(f"/api/v1/cases/{ref}")).json()
    assert view["reply_channel"] == "email"
    assert view["party"]["contacts"][0]["channel"] == "email"

    sent = await anna.post(f"/api/v1/cases/{ref}/reply", json={"text": "Dinsdag."})
    assert sent.status_code == 200, sent.text
    assert sent.json()["channel"] == "email"
    [outbound] = await suite.vhost.wait_for("outbound.email", 1, timeout=15)
    answer = ContactMessage.model_validate_json(outbound.body)
    assert answer.direction is Direction.OUTBOUND
    assert (answer.case_ref, answer.in_reply_to) == (ref, contact.source_ref)
    assert answer.party.email == "fenna@example.org"

    note = await anna.post(f"/api/v1/cases/{ref}/notes", json={"text": "Klant tevreden."})
    assert note.status_code == 200, note.text
    closed = await anna.post(f"/api/v1/cases/{ref}/close", json={"outcome": "beantwoord"})
    assert closed.json()["status"] == "closed"
    kinds = [e["kind"] for e in (await anna.get(f"/api/v1/cases/{ref}")).json()["case"]["timeline"]]
    assert {"case.replied", "case.noted", "case.closed"} <= set(kinds)


async def test_a_phone_reply_is_a_callback_marked_done(suite: Suite) -> None:
    await suite.send(
        channel="phone",
        entry_point="14020",
        party={"phone": "+31612345678"},
        text="Gemiste oproep",
        channel_data={"callback": False},
    )
    await suite.wait_depth(PARKEREN, 1)
    anna = suite.desk("anna")
    ref = (await anna.post("/api/v1/next")).json()["case_ref"]
    done = await anna.post(f"/api/v1/cases/{ref}/reply", json={"text": "Teruggebeld: geregeld."})
    assert done.status_code == 200, done.text
    assert done.json()["callback"] is True
    case = (await anna.get(f"/api/v1/cases/{ref}")).json()["case"]
    [called] = [e for e in case["timeline"] if e["kind"] == "case.called_back"]
    assert called["data"]["text"] == "Teruggebeld: geregeld."


async def test_a_transfer_moves_the_case_and_the_old_item_turns_stale(suite: Suite) -> None:
    contact = await suite.send(subject="parkeren")
    await suite.wait_depth(PARKEREN, 1)
    sara = suite.desk("sara")
    found = await sara.get("/api/v1/queues")
    assert found.status_code == 200
    [row] = [q for q in found.json() if q["queue"] == PARKEREN]
    assert row["ready"] == 1
    assert "anna" in row["agents"]

    # The supervisor transfers the waiting case without taking it: its item stays behind.
    registered = await _case_of(suite, contact)
    moved = await sara.post(
        f"/api/v1/cases/{registered}/transfer",
        json={"queue": "work.location.noord", "reason": "afspraak aan de balie in Noord"},
    )
    assert moved.status_code == 200, moved.text
    await suite.wait_depth("work.location.noord", 1)
    assert await suite.depth(PARKEREN) == 1

    # Anna serves parkeren: the stale item is acked and skipped, and nothing is left for her.
    empty = (await suite.desk("anna").post("/api/v1/next")).json()
    assert (empty["status"], empty["skipped"]) == ("empty", {"transferred": 1})
    assert await suite.depth(PARKEREN) == 0
    assert await suite.depth(f"dead.{PARKEREN}") == 0
    # Bram serves Noord: the case is his.
    taken = (await suite.desk("bram").post("/api/v1/next")).json()
    assert (taken["taken_from"], taken["case_ref"]) == ("work.location.noord", registered)


async def _case_of(suite: Suite, contact: ContactMessage) -> str:
    """The case reference of a contact, from the dossier (as the service that routes it)."""
    async with httpx.AsyncClient(base_url=suite.dossier.url) as http:
        for _ in range(100):
            response = await http.get(
                f"/api/v1/contacts/{contact.id}",
                headers={"Authorization": "Bearer token-of-sara"},
            )
            if response.status_code == 200:
                return str(response.json()["case_ref"])
            await asyncio.sleep(0.1)
    pytest.fail("the contact was never registered")


async def _dossier_knows_waiting(suite: Suite, queue: str, waiting: int) -> None:
    """Until the dossier counts `waiting` unclaimed cases in `queue` (routing is recorded
    asynchronously), so that the next contact is measurably younger."""
    async with httpx.AsyncClient(base_url=suite.dossier.url) as http:
        for _ in range(200):
            rows = (
                await http.get("/api/v1/queues", headers={"Authorization": "Bearer token-of-sara"})
            ).json()
            if any(r["queue"] == queue and r["waiting"] == waiting for r in rows):
                await asyncio.sleep(0.05)
                return
            await asyncio.sleep(0.05)
    pytest.fail(f"the dossier never counted {waiting} waiting in {queue}")
