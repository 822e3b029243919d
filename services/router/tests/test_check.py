"""`kanaal rules check` and `explain`: every problem with its line; decisions with reasons."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from typer.testing import CliRunner

from kanaal.cli.main import build_app
from kanaal.common.config import ConfigError
from kanaal.common.contract import ContactMessage
from kanaal.router.app import RulesHolder
from kanaal.router.check import check_text
from kanaal.router.rules import RoutingRules

REPO_ROOT = Path(__file__).resolve().parents[3]
SHIPPED = REPO_ROOT / "deploy" / "config" / "routing.yaml"


def problems(text: str) -> list[tuple[int, str, str]]:
    config, found = check_text(text)
    assert (config is None) == bool(found)
    return [(p.line, p.key, p.message) for p in found]


def test_the_shipped_routing_yaml_has_no_problems() -> None:
    assert problems(SHIPPED.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("strategy: by-moon\n", 1, "strategy", "Input should be 'location', 'channel', 'group', "
         "'subject' or 'central'"),
        ("strategy: subject\ncolour: blue\n", 2, "colour", "unknown field"),
        ("rules:\n  - name: a\n    when:\n      channl: phone\n    target: work.central\n", 4,
         "rules.0.when.channl", "unknown field"),
        ("rules:\n  - name: a\n    target: work.central\n    prio: 3\n", 4, "rules.0.prio",
         "unknown field"),
        ("rules:\n  - name: a\n    when: {text: 'pas(poort'}\n    target: work.central\n", 3,
         "rules.0.when.text.regex",
         "bad regex 'pas(poort': missing ), unterminated subpattern at position 3"),
        ("rules:\n  - name: a\n    target: work.skil.parkeren\n", 3, "rules.0.target",
         "unknown queue 'work.skil.parkeren': a work queue is work.central, work.escalation or "
         "work.<location|skill|subject|group|channel>.<name>"),
        ("rules:\n  - name: a\n    target: work.central\n    escalation:\n"
         "      - queue: work.team.x\n", 5, "rules.0.escalation.0.queue",
         "unknown queue 'work.team.x': a work queue is work.central, work.escalation or "
         "work.<location|skill|subject|group|channel>.<name>"),
        ("rules:\n  - name: a\n    target: work.central\n    sla: 3 days\n", 4, "rules.0.sla",
         "'3 days' is not a duration: write a positive number and s, m, h or d (30s, 15m, 4h, 2d)"),
        ("rules:\n  - name: a\n    target: work.central\n    priority: 12\n", 4,
         "rules.0.priority", "Input should be less than or equal to 9"),
        ("rules:\n  - name: a\n    when: {channel: {regex: x, present: true}}\n"
         "    target: work.central\n", 3, "rules.0.when.channel",
         "a condition is a value, a list, or one of equals, in, present, regex, min/max"),
        ("rules:\n  - name: a\n    when: {}\n", 2, "rules.0.target", "Field required"),
        ("calendar:\n  opening_hours: '17:00-08:30'\n", 2, "calendar.opening_hours",
         "opening hours must be a time range within one day"),
        ("queues: [work.subject.parkeren, parkeren]\n", 1, "queues.1",
         "String should match pattern "
         "'^work\\.(central|escalation|[a-z]+\\.[a-z0-9][a-z0-9_-]*)$'"),
        ("rules: [\n", 2, "",
         "not valid YAML: expected the node content, but found '<stream end>'"),
        ("- a\n", 1, "", "the top level must be a mapping"),
    ],
)  # fmt: skip
def test_each_kind_of_problem_is_reported_on_its_line(
    text: str, line: int, key: str, message: str
) -> None:
    assert problems(text) == [(line, key, message)]


SHADOWING = """\
rules:
  - name: telefoon
    when: {channel: [phone, counter]}
    target: work.channel.phone
  - name: telefoon-afval
    when: {channel: phone, subject: afval}
    target: work.skill.afval
  - name: spoed
    when: {priority: {min: 5}}
    target: work.skill.spoed
  - name: zeer-spoed
    when: {priority: {min: 8}}
    target: work.skill.zeer-spoed
  - name: parkeren-regex
    when: {subject: {regex: "^park"}}
    target: work.skill.parkeren
  - name: parkeren
    when: {subject: parkeren}
    target: work.skill.parkeren
  - name: e-mail
    when: {channel: email}
    target: work.channel.email
  - name: alles
    target: work.central
  - name: na-alles
    when: {channel: web}
    target: work.channel.web
"""


def test_a_rule_an_earlier_rule_always_catches_is_reported_as_shadowed() -> None:
    assert problems(SHADOWING) == [
        (5, "rules.1", "rule 'telefoon-afval' can never match: rule 'telefoon' (line 2) "
         "matches every contact it matches"),
        (11, "rules.3", "rule 'zeer-spoed' can never match: rule 'spoed' (line 8) "
         "matches every contact it matches"),
        (17, "rules.5", "rule 'parkeren' can never match: rule 'parkeren-regex' (line 14) "
         "matches every contact it matches"),
        (25, "rules.8", "rule 'na-alles' can never match: rule 'alles' (line 23) "
         "matches every contact it matches"),
    ]  # fmt: skip


def test_every_problem_is_reported_in_one_run_in_line_order() -> None:
    text = (
        "strategy: subject\n"
        "rules:\n"
        "  - name: a\n"
        "    when: {channl: phone}\n"
        "    target: work.skil.x\n"
        "  - name: b\n"
        "    target: work.central\n"
        "  - name: b\n"
        "    target: work.central\n"
        "    sla: 2w\n"
        "stratgey: central\n"
    )
    assert [(line, key) for line, key, _ in problems(text)] == [
        (4, "rules.0.when.channl"),
        (5, "rules.0.target"),
        (10, "rules.2.sla"),
        (11, "stratgey"),
    ]
    valid_twice = text.replace("    sla: 2w\n", "")
    assert [(line, key) for line, key, _ in problems(valid_twice)][-3:] == [
        (8, "rules.2"),
        (8, "rules.2.name"),
        (10, "stratgey"),
    ]


def test_loading_a_file_with_problems_raises_with_every_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("strategy: nowhere\nqueues: [Bad]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        RoutingRules.load(path)
    assert info.value.path == path
    assert [p.split(":")[0] for p in info.value.problems] == ["line 1", "line 2"]


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("KANAAL_CONFIG_DIR", raising=False)
    return CliRunner()


def test_rules_check_on_the_shipped_file_says_ok(runner: CliRunner) -> None:
    result = runner.invoke(build_app(), ["rules", "check"])
    assert result.exit_code == 0, result.output
    assert "deploy/config/routing.yaml: ok, strategy subject, 4 rule(s)" in result.output


def test_rules_check_prints_file_line_key_and_problem_and_fails(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("rules:\n  - name: a\n    target: work.skil.x\n", encoding="utf-8")
    result = runner.invoke(build_app(), ["rules", "check", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3: rules.0.target: unknown queue 'work.skil.x'" in result.output
    assert "1 problem(s)" in result.output


def test_rules_explain_prints_the_decision_and_why_earlier_rules_did_not_match(
    runner: CliRunner, tmp_path: Path
) -> None:
    contact = ContactMessage.new(
        channel="phone",
        entry_point="+31201234567",
        source_ref=f"call-{uuid.uuid4()}",
        text="Mijn paspoort is verlopen, bel me op 0612345678",
        channel_data={"callback": False},
    )
    path = tmp_path / "contact.json"
    path.write_text(contact.model_dump_json(), encoding="utf-8")
    result = runner.invoke(build_app(), ["rules", "explain", str(path)])
    assert result.exit_code == 0, result.output
    assert "rule terugbelverzoek: no (channel_data.callback = True: is False)" in result.output
    assert "decision: work.subject.reisdocumenten (rule reisdocumenten, priority 0)" in (
        result.output
    )
    assert "sla: 2d, due at " in result.output
    assert "escalation: work.escalation" in result.output
    assert "0612345678" not in result.output


def test_rules_explain_refuses_a_file_that_is_not_a_contact(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "contact.json"
    path.write_text(json.dumps({"channel": "web"}), encoding="utf-8")
    result = runner.invoke(build_app(), ["rules", "explain", str(path)])
    assert result.exit_code == 2
    assert "not a contact" in result.output


def test_the_router_refuses_to_start_on_a_bad_routing_yaml_naming_line_and_problem(
    tmp_path: Path,
) -> None:
    shutil.copy(REPO_ROOT / "deploy" / "config" / "channels.yaml", tmp_path / "channels.yaml")
    (tmp_path / "routing.yaml").write_text(
        "rules:\n  - name: a\n    target: work.skil.x\n", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "kanaal.router"],
        env={
            **os.environ,
            "KANAAL_CONFIG_DIR": str(tmp_path),
            "KANAAL_ROUTER_STATE_PATH": str(tmp_path / "state.db"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "line 3: rules.0.target: unknown queue 'work.skil.x'" in result.stderr


async def test_a_failed_reload_keeps_the_last_good_rules_and_counts_the_failure(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("rules: [{name: a, target: work.skill.a}]\n", encoding="utf-8")
    declared: list[str] = []

    async def declare() -> None:
        declared.append("topology")

    holder = RulesHolder(path, declare)
    failures = REGISTRY.get_sample_value("kanaal_router_rule_reload_failures_total") or 0.0

    path.write_text("rules: [{name: a, target: work.skil.b}]\n", encoding="utf-8")
    assert holder.changed()
    assert await holder.reload() is False
    assert "work.skill.a" in holder.rules.queues
    assert REGISTRY.get_sample_value("kanaal_router_rule_reload_failures_total") == failures + 1
    assert declared == []

    path.write_text("rules: [{name: a, target: work.skill.b}]\n", encoding="utf-8")
    assert await holder.reload() is True
    assert "work.skill.b" in holder.rules.queues
    assert declared == ["topology"]  # a new queue is declared before it is used


LONG_CHAIN = """
sla: {default: 2d}
escalation: [{queue: work.escalation}]
rules:
  - name: traag
    when: {channel: email}
    target: work.skill.post
    sla: 4h
    escalation:
      - {queue: work.skill.teamleiders, sla: 1d}
      - {queue: work.skill.management, sla: 2d}
      - {queue: work.escalation}
"""


def test_the_longest_wait_is_the_slowest_sla_chain(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(LONG_CHAIN, encoding="utf-8")
    rules = RoutingRules.load(path)
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert rules.longest_wait(now) == timedelta(days=3, hours=4)
    # In a calendar, days are working days: from a Friday, 2d + 1d run into next week.
    path.write_text(
        "calendar: {working_days: [mon, tue, wed, thu, fri], opening_hours: '08:00-17:00',"
        " timezone: UTC}\n" + LONG_CHAIN,
        encoding="utf-8",
    )
    friday = datetime(2026, 3, 6, 9, tzinfo=UTC)
    assert RoutingRules.load(path).longest_wait(friday) == timedelta(days=5, hours=4)


async def test_the_router_warns_when_a_timer_would_outlast_what_it_remembers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(LONG_CHAIN, encoding="utf-8")

    async def declare() -> None:
        return None

    with capture_logs() as logs:
        RulesHolder(path, declare, retention=timedelta(days=30))
    assert not [entry for entry in logs if entry["log_level"] == "warning"]
    with capture_logs() as logs:
        RulesHolder(path, declare, retention=timedelta(days=3))
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "KANAAL_ROUTER_RETENTION_DAYS" in warning["event"]
    assert warning["longest_days"] == 3.2
    assert warning["retention_days"] == 3
