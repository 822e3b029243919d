"""`kanaal demo`: a few sample contacts into a running suite, one per channel.

They go onto `kanaal.events` exactly as the adapters publish them
(`contact.received.<channel>`, persistent, confirmed), so the demo needs neither a
mail server nor a telephone exchange, only the broker `make run` uses. One customer
(made up) writes an e-mail, fills in the web form, misses a call-back and visits the
counter in Noord: four cases that the sample agents take from their queues.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated

import aio_pika
import typer
from rich.console import Console
from rich.table import Table

from kanaal.common.contract import ContactMessage
from kanaal.common.messaging import contract_message
from kanaal.common.settings import ServiceSettings
from kanaal.common.topology import EVENTS, Event

console = Console(highlight=False)

NAME = "Fenna de Boer"
EMAIL = "fenna.deboer@example.org"
PHONE = "+31612345678"


def sample_contacts(run: str, now: datetime) -> list[ContactMessage]:
    """Four contacts of one customer; `run` makes each demo run new (no dedup)."""
    common = {"received_at": now, "occurred_at": now}
    return [
        ContactMessage.new(
            channel="email",
            entry_point="info@gemeente.example",
            source_ref=f"<demo-{run}-mail@example.org>",
            party={"name": NAME, "email": EMAIL},
            subject="parkeren",
            text="Mijn bewonersvergunning is verlopen. Kan ik die verlengen zonder nieuwe "
            "aanvraag?",
            channel_data={"subject_line": "Parkeervergunning verlopen"},
            **common,
        ),
        ContactMessage.new(
            channel="web",
            entry_point="contactformulier",
            source_ref=f"demo-{run}-web",
            party={"name": NAME, "email": EMAIL, "phone": PHONE},
            subject="afval",
            text="De groene container is vandaag niet geleegd.",
            **common,
        ),
        ContactMessage.new(
            channel="phone",
            entry_point="14020",
            source_ref=f"demo-{run}-call",
            party={"phone": PHONE},
            subject="afval",
            text="Gemiste oproep (geen antwoord), terugbellen gevraagd",
            channel_data={"callback": True, "outcome": "missed", "hangup_cause": "noAnswer"},
            **common,
        ),
        ContactMessage.new(
            channel="counter",
            entry_point="noord",
            location="noord",
            source_ref=f"demo-{run}-A023",
            party={"name": NAME, "email": EMAIL},
            subject="belastingen",
            text="Vraag over de aanslag gemeentelijke belastingen (ticket A023)",
            channel_data={"ticket": "A023", "status": "waiting"},
            **common,
        ),
    ]


async def publish(url: str, contacts: list[ContactMessage], pause: float = 0.0) -> None:
    """Publish `contacts` in order, `pause` seconds apart (so that they wait in the queues
    in the order the customer made them, and "next" hands them out in that order)."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EVENTS.name)
        for number, contact in enumerate(contacts):
            if number and pause:
                await asyncio.sleep(pause)
            await exchange.publish(
                contract_message(
                    contact, message_type=Event.CONTACT_RECEIVED, message_id=contact.id
                ),
                routing_key=Event.CONTACT_RECEIVED.key(contact.channel),
            )


def demo(
    amqp_url: Annotated[
        str | None, typer.Option(help="default: KANAAL_AMQP_URL, else the local broker")
    ] = None,
) -> None:
    """Send sample e-mail, web, phone and counter contacts into a running suite."""
    url = amqp_url or ServiceSettings().amqp_url.get_secret_value()
    contacts = sample_contacts(str(int(time.time())), datetime.now(UTC))
    try:
        asyncio.run(publish(url, contacts, pause=0.3))
    except (OSError, aio_pika.exceptions.AMQPException, TimeoutError) as exc:
        console.print(
            f"[red]error:[/] the broker did not take the contacts ({exc.__class__.__name__}); "
            "is the suite running (`make run`)?"
        )
        raise typer.Exit(8) from exc
    table = Table("channel", "entry point", "subject", "what", title="sent to kanaal.events")
    for contact in contacts:
        table.add_row(
            contact.channel, contact.entry_point, contact.subject or "-", contact.text[:60]
        )
    console.print(table)
    console.print(
        "Now open the desk at http://127.0.0.1:8087 and log in as anna (token: "
        "KANAAL_AGENT_ANNA_TOKEN in var/dev.env); bram (KANAAL_AGENT_BRAM_TOKEN) serves Noord."
    )
