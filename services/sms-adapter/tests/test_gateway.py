"""The SMS gateway mapping: signatures, numbers, ids, replies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kanaal.common.contract import Party
from kanaal.common.contract_kit import outbound_reply
from kanaal.sms.gateway import (
    InboundSms,
    SmsChannelConfig,
    gateway_request,
    sign,
    signature_is_valid,
    to_contact,
)

SECRET = b"gateway-secret"
CONFIG = SmsChannelConfig.model_validate(
    {"numbers": {"+31 97 010000000": {"subject": "algemeen"}, "3010": {"subject": "parkeren"}}}
)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def sms(**fields: object) -> InboundSms:
    base = {
        "id": "gw-1",
        "originator": "0612345678",
        "recipient": "+3197010000000",
        "body": "Is mijn paspoort klaar?",
        "received": "2026-11-22T11:59:58+01:00",
    }
    return InboundSms.model_validate({**base, **fields})


def test_a_signed_body_is_accepted_and_any_change_is_not() -> None:
    body = b'{"id": "gw-1"}'
    assert signature_is_valid(body, sign(body, SECRET), SECRET)
    assert not signature_is_valid(body + b" ", sign(body, SECRET), SECRET)
    assert not signature_is_valid(body, sign(body, b"other"), SECRET)
    assert not signature_is_valid(body, None, SECRET)
    assert not signature_is_valid(body, sign(body, SECRET).removeprefix("sha256="), SECRET)


def test_an_sms_becomes_a_contact_on_its_number() -> None:
    contact = to_contact(sms(), CONFIG, NOW)
    assert (contact.channel, contact.entry_point, contact.source_ref) == (
        "sms",
        "+3197010000000",
        "gw-1",
    )
    assert contact.party.phone == "+31612345678"
    assert contact.subject == "algemeen"
    assert contact.occurred_at == datetime(2026, 11, 22, 10, 59, 58, tzinfo=UTC)


def test_the_same_gateway_id_is_the_same_contact() -> None:
    assert to_contact(sms(), CONFIG, NOW).id == to_contact(sms(body="anders"), CONFIG, NOW).id
    assert to_contact(sms(), CONFIG, NOW).id != to_contact(sms(id="gw-2"), CONFIG, NOW).id


def test_a_short_number_entry_point_is_kept_as_dialled() -> None:
    assert to_contact(sms(recipient="3010"), CONFIG, NOW).subject == "parkeren"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"recipient": "+3197099999999"}, "not one of our SMS numbers"),
        ({"originator": "112"}, "not a personal phone number"),
    ],
)
def test_what_cannot_be_a_contact_says_why(fields: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        to_contact(sms(**fields), CONFIG, NOW)


def test_a_reply_goes_to_the_customers_number_from_our_number_with_its_id_as_reference() -> None:
    reply = outbound_reply(
        "sms", "+3197010000000", "Uw paspoort ligt klaar.", party=Party(phone="0612345678")
    )
    assert gateway_request(reply) == {
        "originator": "+3197010000000",
        "recipients": ["+31612345678"],
        "body": "Uw paspoort ligt klaar.",
        "reference": str(reply.id),
    }


def test_a_reply_without_a_phone_number_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="phone number"):
        gateway_request(outbound_reply("sms", "+3197010000000", "Hallo"))
