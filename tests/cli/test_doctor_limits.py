"""`doctor` says what enforces resource limits here and which variables each stdio upstream gets."""

from __future__ import annotations

import json

from cli.doctor_limits import env_checks, limits_check
from services.config import parse_config


def test_doctor_names_the_variables_of_each_stdio_upstream_by_source_and_never_their_values() -> None:
    config = parse_config(
        json.dumps(
            {
                "env": {"HTTPS_PROXY": "http://proxy:3128", "TOKEN": "${keyring:corp}"},
                "mcpServers": [
                    {"name": "local", "command": "run", "env": {"TOKEN": "own-value"}},
                    {"name": "remote", "url": "https://example.com/mcp"},
                ],
            }
        )
    )
    shell = {
        "PATH": "/bin",
        "SSL_CERT_FILE": "/ca.pem",
        "no_proxy": "localhost",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    [check] = env_checks(config, shell)
    assert check.name == "env local"
    assert check.detail == (
        "from this shell: PATH, SSL_CERT_FILE, no_proxy; global env: HTTPS_PROXY; own env: TOKEN"
    )
    assert "own-value" not in check.detail and "proxy:3128" not in check.detail


def test_doctor_reports_a_mechanism_for_every_limit() -> None:
    check = limits_check()
    for name in ("memory", "pids", "cpu", "open_files"):
        assert f"{name}: " in check.detail
    assert check.level in ("ok", "info")
