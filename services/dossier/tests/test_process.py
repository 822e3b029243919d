"""`python -m kanaal.dossier` as operators run it: registers, stops cleanly, keeps logs clean."""

from __future__ import annotations

import signal
from pathlib import Path

import aio_pika
import httpx

from kanaal.common.contract import ContactMessage, RegisteredContact
from kanaal.common.testing import RabbitVhost, free_port, start_service

CONFIG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "config"
TOKEN = "process-test-token"
PERSONAL = ("Fenna", "Zwartveld", "fenna.zwartveld", "13572468", "111222333", "Zuiderkade")


async def test_the_service_registers_a_contact_and_logs_no_personal_data(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    database_url: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "KANAAL_AMQP_URL": rabbit_vhost.url,
        "KANAAL_CONFIG_DIR": str(CONFIG_DIR),
        "KANAAL_DATABASE_URL": database_url,
        "KANAAL_DOSSIER_API_TOKEN": TOKEN,
        "KANAAL_DOSSIER_PORT": str(port),
        "KANAAL_LOG_LEVEL": "DEBUG",
    }
    service = start_service("dossier", "kanaal.dossier", port, env, tmp_path)
    try:
        contact = ContactMessage.new(
            channel="email",
            entry_point="info@gemeente.nl",
            source_ref="<abc@example.org>",
            party={
                "name": "Fenna Zwartveld",
                "email": "fenna.zwartveld@example.org",
                "phone": "06 13572468",
                "identifiers": {"bsn": "111222333"},
            },
            subject="parkeren",
            text="Mijn vergunning voor de Zuiderkade is verlopen.",
        )
        exchange = await amqp_channel.get_exchange("kanaal.events")
        await exchange.publish(
            aio_pika.Message(
                contact.model_dump_json().encode(),
                content_type="application/json",
                message_id=str(contact.id),
                type="contact.received",
            ),
            routing_key="contact.received.email",
        )
        [message] = await rabbit_vhost.wait_for("router.intake", 1, timeout=15)
        registered = RegisteredContact.model_validate_json(message.body)
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
            response = await client.get(
                f"/api/v1/cases/{registered.case_ref}",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert response.status_code == 200
    finally:
        exit_code = service.stop()
    log = service.log()
    assert "Application shutdown complete" in log, log[-3000:]
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete (-15); see the report.
    assert exit_code in (0, -signal.SIGTERM), log[-3000:]
    assert str(contact.id) in log
    for secret in PERSONAL:
        assert secret not in log, f"the dossier logged personal data ({secret!r})"
