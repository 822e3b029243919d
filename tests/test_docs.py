"""The integrator guides state facts the code must keep: the id namespace and an example id."""

from __future__ import annotations

from pathlib import Path

from kanaal.common.contract import KANAAL_NS, contact_id

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_integrator_page_gives_the_real_namespace_and_a_correct_example_id() -> None:
    page = (DOCS / "integrators.md").read_text(encoding="utf-8")
    assert str(KANAAL_NS) in page
    assert str(contact_id("sms", "+3197010000001", "gw-1")) in page


def test_the_guides_link_each_other_and_exist() -> None:
    assert "adding-a-channel.md" in (DOCS / "integrators.md").read_text(encoding="utf-8")
    assert "integrators.md" in (DOCS / "adding-a-channel.md").read_text(encoding="utf-8")
