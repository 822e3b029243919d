"""A schemathesis run against the served OpenAPI document: no request gets a 5xx.

The adapter runs as its own process (as `kanaal up` runs it) on the test's vhost; the
run is bounded (a fixed number of examples per operation) to stay well under a minute.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from kanaal.common.testing import RabbitVhost, free_port, start_service

REPO = Path(__file__).resolve().parents[3]
EXAMPLES_PER_OPERATION = 80


def test_fuzzing_the_openapi_document_finds_no_server_error(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "KANAAL_AMQP_URL": rabbit_vhost.url,
        "KANAAL_CONFIG_DIR": str(REPO / "deploy" / "config"),
        "KANAAL_WEB_PORT": str(port),
        "KANAAL_WEB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'web.db'}",
        "KANAAL_WEB_ATTACHMENT_DIR": str(tmp_path / "attachments"),
        "KANAAL_WEB_REGISTRATION_WAIT": "0",
        "KANAAL_WEB_RATE_LIMIT": "100000",
        "KANAAL_DOSSIER_URL": "http://127.0.0.1:9",
    }
    web = start_service("web", "kanaal.web", port, env, tmp_path)
    try:
        schema = schemathesis.openapi.from_url(f"{web.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert any(op.path == "/api/v1/messages" for op in operations)
        failures: list[str] = []
        for operation in operations:

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
            )
            @given(case=operation.as_strategy())
            def fuzz(case: schemathesis.Case) -> None:
                response = case.call(base_url=web.url, timeout=10)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.path}: {response.status_code}")
                case.validate_response(response, checks=[not_a_server_error])

            fuzz()
        assert not failures
    finally:
        assert web.stop() == 0
    assert "Traceback" not in web.log()
