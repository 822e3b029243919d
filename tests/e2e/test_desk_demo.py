"""The README's walk-through, as a newcomer does it: `make run`'s development secrets, the
suite's services as processes, `kanaal demo`, and the sample agents handling every demo
contact at the desk with the tokens from `var/dev.env`."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from kanaal.cli.up import read_env_file
from kanaal.common.testing import RabbitVhost

from .conftest import REPO, RunServices

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def dev_env(folder: Path) -> dict[str, str]:
    """`make run`'s var/dev.env, made by the Makefile's own recipe in `folder`."""
    (folder / "deploy").symlink_to(REPO / "deploy")
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(REPO / "Makefile"),
            "-C",
            str(folder),
            "dev-env",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return read_env_file(folder / "var" / "dev.env")


async def waiting_in_dossier(dossier: str, token: str, expected: dict[str, int]) -> None:
    """Until the dossier counts the demo's cases waiting in their queues."""
    async with httpx.AsyncClient(base_url=dossier) as http:
        for _ in range(300):
            rows = (
                await http.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"})
            ).json()
            found = {r["queue"]: r["waiting"] for r in rows if r["queue"] in expected}
            if found == expected:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the dossier counts {found}, not {expected}")


async def test_the_demo_walk_through_every_contact_handled_by_the_sample_agents(
    run_services: RunServices, rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    secrets = dev_env(tmp_path)
    anna_token, bram_token = secrets["KANAAL_AGENT_ANNA_TOKEN"], secrets["KANAAL_AGENT_BRAM_TOKEN"]
    running = run_services(
        "dossier",
        "router",
        "desk",
        **secrets,
        KANAAL_ROUTER_STATE_PATH=str(tmp_path / "router-state.db"),
        KANAAL_DESK_SESSIONS_PATH=str(tmp_path / "desk-sessions.db"),
    )
    desk = running["desk"].url

    kanaal = Path(sys.executable).with_name("kanaal")
    demo = await asyncio.to_thread(
        subprocess.run,
        [str(kanaal), "demo"],
        env={**os.environ, **secrets, "KANAAL_AMQP_URL": rabbit_vhost.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "http://127.0.0.1:8087" in demo.stdout
    assert "KANAAL_AGENT_ANNA_TOKEN in var/dev.env" in demo.stdout
    await waiting_in_dossier(
        running["dossier"].url,
        anna_token,
        {
            "work.subject.parkeren": 1,
            "work.subject.afval": 1,
            "work.skill.terugbellen": 1,
            "work.location.noord": 1,
        },
    )

    # In the browser: the login with the token from var/dev.env leads to the queues.
    async with httpx.AsyncClient(base_url=desk, timeout=30) as browser:
        [csrf] = CSRF.findall((await browser.get("/login")).text)
        done = await browser.post("/login", data={"token": anna_token, "csrf": csrf})
        assert done.status_code == 303, done.text
        home = await browser.get("/")
        assert "Anna de Vries" in home.text
        assert "work.subject.parkeren" in home.text

    anna = httpx.AsyncClient(
        base_url=desk, headers={"Authorization": f"Bearer {anna_token}"}, timeout=30
    )
    bram = httpx.AsyncClient(
        base_url=desk, headers={"Authorization": f"Bearer {bram_token}"}, timeout=30
    )
    async with anna, bram:
        # Anna: oldest first, as the demo sent them: the e-mail, the web form, the missed call.
        handled: list[tuple[str, str]] = []
        for _ in range(3):
            taken = (await anna.post("/api/v1/next")).json()
            assert taken["status"] == "claimed", taken
            view: dict[str, Any] = (await anna.get(f"/api/v1/cases/{taken['case_ref']}")).json()
            assert view["party"]["name"] == "Fenna de Boer"
            # One customer: every channel she used is in view, with the counter's location.
            contacts = view["party"]["contacts"]
            assert {c["channel"] for c in contacts} == {"email", "web", "phone", "counter"}
            assert {c.get("location") for c in contacts if c["channel"] == "counter"} == {"noord"}
            sent = await anna.post(
                f"/api/v1/cases/{taken['case_ref']}/reply", json={"text": "Geregeld, groet Anna."}
            )
            assert sent.status_code == 200, sent.text
            closed = await anna.post(
                f"/api/v1/cases/{taken['case_ref']}/close", json={"outcome": "beantwoord"}
            )
            assert closed.json()["status"] == "closed", closed.text
            handled.append((taken["channel"], sent.json()["channel"]))
        assert handled == [("email", "email"), ("web", "web"), ("phone", "phone")]
        assert (await anna.post("/api/v1/next")).json()["status"] == "empty"

        # Bram serves Noord: the counter visit.
        taken = (await bram.post("/api/v1/next")).json()
        assert (taken["status"], taken["channel"]) == ("claimed", "counter"), taken
        noted = await bram.post(
            f"/api/v1/cases/{taken['case_ref']}/notes", json={"text": "Aan de balie uitgelegd."}
        )
        assert noted.status_code == 200, noted.text
        closed = await bram.post(
            f"/api/v1/cases/{taken['case_ref']}/close", json={"outcome": "beantwoord"}
        )
        assert closed.json()["status"] == "closed", closed.text

    [answer] = await rabbit_vhost.wait_for("outbound.email", 1, timeout=15)
    assert b"Geregeld, groet Anna." in answer.body
