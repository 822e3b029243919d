"""The committed AsyncAPI document is the one the contract and topology generate."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import yaml

from kanaal.common.asyncapi import asyncapi_yaml

REPO = Path(__file__).resolve().parents[3]


def test_the_committed_asyncapi_document_is_up_to_date() -> None:
    committed = (REPO / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert committed == asyncapi_yaml(version("kanaal-common")), (
        "docs/asyncapi.yaml is stale: run `uv run kanaal asyncapi` and commit it"
    )


def test_the_document_names_every_queue_a_service_consumes_and_every_event() -> None:
    document = yaml.safe_load(asyncapi_yaml("test"))
    channels = document["channels"]
    queues = {
        c["bindings"]["amqp"]["queue"]["name"]
        for c in channels.values()
        if c["bindings"]["amqp"]["is"] == "queue"
    }
    assert {"dossier.intake", "dossier.events", "router.intake", "outbound.{channel}"} <= queues
    addresses = {c["address"] for c in channels.values()}
    assert {"contact.received.{channel}", "contact.registered.{channel}", "case.escalated"} <= (
        addresses
    )
    assert "ContactMessage" in document["components"]["schemas"]
