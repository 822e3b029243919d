"""Reading aioimaplib's answers: UID FETCH literals grouped per mail, whatever the order."""

from __future__ import annotations

from kanaal.email.imap import FetchedMail, parse_fetch, quote, uid_set


def test_fetch_lines_are_grouped_per_mail_with_their_uid() -> None:
    lines: list[bytes | bytearray] = [
        b"1 FETCH (UID 7 BODY[] {5}",
        bytearray(b"hello"),
        b")",
        b"2 FETCH (UID 9 BODY[] {3}",
        bytearray(b"bye"),
        b")",
        b"Fetch completed.",
    ]
    assert parse_fetch(lines) == [FetchedMail(7, b"hello"), FetchedMail(9, b"bye")]


def test_a_uid_after_the_literal_is_found_too() -> None:
    lines: list[bytes | bytearray] = [
        b"1 FETCH (BODY[] {2}",
        bytearray(b"hi"),
        b" UID 12)",
        b"2 FETCH (FLAGS (\\Seen) UID 13 BODY[] {2}",
        bytearray(b"ho"),
        b")",
        b"Fetch completed.",
    ]
    assert parse_fetch(lines) == [FetchedMail(12, b"hi"), FetchedMail(13, b"ho")]


def test_a_fetch_without_a_body_gives_no_mail() -> None:
    assert parse_fetch([b"1 FETCH (UID 3 FLAGS ())", b"Fetch completed."]) == []


def test_uid_sets_and_folder_names_are_written_for_the_wire() -> None:
    assert uid_set([5, 1, 3]) == "1,3,5"
    assert quote("Verwerkt 2026") == '"Verwerkt 2026"'
    assert quote("a\\b") == '"a\\\\b"'
