"""Pure rendering of a case's contacts as VNG Klantinteracties resources, to feed Open Klant.

A contact becomes a Klantcontact; the customer on it a Betrokkene that points to the
Partij; the case a Onderwerpobject (objecttype `zaak`) on every Klantcontact; an
agent's answer gets its Actor (soortActor `medewerker`); attachments become Bijlagen.
Derived ids are uuid5 of the contact id, so exporting twice gives the same resources.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from kanaal.common.contract import ContactMessage, Direction

REGISTER: Final = "open-kanaal"
IDENTIFIER_CODES: Final[Mapping[str, tuple[str, str, str]]] = {
    # our identifier type: (codeObjecttype, codeSoortObjectId, codeRegister)
    "bsn": ("natuurlijk_persoon", "bsn", "brp"),
    "kvk_nummer": ("niet_natuurlijk_persoon", "kvk_nummer", "hr"),
    "rsin": ("niet_natuurlijk_persoon", "rsin", "hr"),
    "vestigingsnummer": ("vestiging", "vestigingsnummer", "hr"),
}


def derived_id(contact_id: uuid.UUID, what: str) -> str:
    return str(uuid.uuid5(contact_id, what))


def render_case(
    case_ref: str,
    party_id: uuid.UUID,
    party_name: str | None,
    identifiers: Mapping[str, str],
    contacts: Sequence[ContactMessage],
    agents: Mapping[uuid.UUID, str],
) -> dict[str, Any]:
    """The case's contacts as `klantcontacten`, `betrokkenen`, `onderwerpobjecten`, ...

    `identifiers` holds only what the caller may see; `agents` names the author of each
    outbound contact.
    """
    klantcontacten: list[dict[str, Any]] = []
    betrokkenen: list[dict[str, Any]] = []
    onderwerpobjecten: list[dict[str, Any]] = []
    bijlagen: list[dict[str, Any]] = []
    actoren: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        kc_id = str(contact.id)
        betrokkene_id = derived_id(contact.id, "betrokkene")
        onderwerp_id = derived_id(contact.id, "onderwerpobject")
        bijlage_ids = [
            derived_id(contact.id, f"bijlage:{i}") for i in range(len(contact.attachments))
        ]
        actor_ids: list[str] = []
        agent = agents.get(contact.id)
        if contact.direction is Direction.OUTBOUND and agent:
            actor_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kanaal:agent:{agent}"))
            actor_ids.append(actor_id)
            actoren[actor_id] = {
                "uuid": actor_id,
                "soortActor": "medewerker",
                "indicatieActief": True,
                "actoridentificator": {
                    "objectId": agent,
                    "codeObjecttype": "mdw",
                    "codeRegister": REGISTER,
                    "codeSoortObjectId": "idf",
                },
            }
        klantcontacten.append(
            {
                "uuid": kc_id,
                "kanaal": contact.channel,
                "onderwerp": contact.subject or "",
                "inhoud": contact.text,
                "indicatieContactGelukt": True,
                "taal": contact.language,
                "vertrouwelijk": contact.confidential,
                "plaatsgevondenOp": contact.occurred_at.isoformat(),
                "hadBetrokkenen": [{"uuid": betrokkene_id}],
                "hadBetrokkenActoren": [{"uuid": a} for a in actor_ids],
                "gingOverOnderwerpobjecten": [{"uuid": onderwerp_id}],
                "omvatteBijlagen": [{"uuid": b} for b in bijlage_ids],
                "kanaalgegevens": {
                    "richting": "inkomend"
                    if contact.direction is Direction.INBOUND
                    else "uitgaand",
                    "ingang": contact.entry_point,
                    "bronReferentie": contact.source_ref,
                },
            }
        )
        adressen = [
            {"soortDigitaalAdres": soort, "adres": value}
            for soort, value in (
                ("email", contact.party.email),
                ("telefoonnummer", contact.party.phone),
            )
            if value
        ]
        betrokkenen.append(
            {
                "uuid": betrokkene_id,
                "hadKlantcontact": {"uuid": kc_id},
                "wasPartij": {"uuid": str(party_id)},
                "rol": "klant",
                "initiator": contact.direction is Direction.INBOUND,
                "organisatienaam": "",
                "contactnaam": {"achternaam": contact.party.name or party_name or ""},
                "digitaleAdressen": adressen,
            }
        )
        onderwerpobjecten.append(
            {
                "uuid": onderwerp_id,
                "klantcontact": {"uuid": kc_id},
                "wasKlantcontact": None,
                "onderwerpobjectidentificator": {
                    "objectId": case_ref,
                    "codeObjecttype": "zaak",
                    "codeRegister": REGISTER,
                    "codeSoortObjectId": "zaaknummer",
                },
            }
        )
        for bijlage_id, attachment in zip(bijlage_ids, contact.attachments, strict=True):
            bijlagen.append(
                {
                    "uuid": bijlage_id,
                    "wasBijlageVanKlantcontact": {"uuid": kc_id},
                    "bijlageidentificator": {
                        "objectId": attachment.uri,
                        "codeObjecttype": attachment.content_type,
                        "codeRegister": REGISTER,
                        "codeSoortObjectId": "uri",
                    },
                    "bestandsnaam": attachment.filename,
                    "sha256": attachment.sha256,
                }
            )
    partij = {
        "uuid": str(party_id),
        "naam": party_name or "",
        "partijIdentificatoren": [
            {
                "partijIdentificator": {
                    "codeObjecttype": codes[0],
                    "codeSoortObjectId": codes[1],
                    "codeRegister": codes[2],
                    "objectId": value,
                }
            }
            for kind, value in sorted(identifiers.items())
            if (codes := IDENTIFIER_CODES.get(kind)) is not None
        ],
    }
    return {
        "zaak": case_ref,
        "partijen": [partij],
        "klantcontacten": klantcontacten,
        "betrokkenen": betrokkenen,
        "onderwerpobjecten": onderwerpobjecten,
        "bijlagen": bijlagen,
        "actoren": list(actoren.values()),
    }
