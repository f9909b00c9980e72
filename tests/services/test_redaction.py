"""Masking for display and scrubbing of free text: pure functions, and the upstream log file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config_doc import ConfigDocument, PatchError, redact_server
from services.redaction import (
    SCRUBBED,
    SecretValues,
    is_sensitive_param,
    literal_secrets,
    redact_url,
    scrub_urls,
)
from services.upstream_log import RotatingLog

SECRET = "sk-live-" + "Q" * 24 + "42"


@pytest.mark.parametrize(
    "name", ["api_key", "apiKey", "APIKEY", "access_token", "token", "sig", "X-Amz-Signature", "password"]
)
def test_query_parameters_named_like_credentials_are_sensitive(name: str) -> None:
    assert is_sensitive_param(name)


@pytest.mark.parametrize("name", ["q", "page", "format", "design", "limit"])
def test_ordinary_query_parameters_are_not(name: str) -> None:
    assert not is_sensitive_param(name)


def test_a_url_view_masks_credentials_and_sensitive_query_values_and_keeps_references() -> None:
    shown = redact_url(f"https://bot:{SECRET}@api.test/mcp?api_key={SECRET}&page=2&sig=${{keyring:sig}}")
    assert SECRET not in shown
    assert "@api.test/mcp?api_key=••••42 (34 chars)&page=2&sig=${keyring:sig}" in shown
    assert redact_url("https://${keyring:creds}@api.test/mcp") == "https://${keyring:creds}@api.test/mcp"
    assert redact_url("https://api.test/mcp?page=2") == "https://api.test/mcp?page=2"


def test_urls_in_error_text_lose_credentials_and_every_query_value() -> None:
    text = (
        f"upstream failed: HTTP 404 Not Found from http://user:{SECRET}@127.0.0.1:9/mcp?api_key={SECRET}&x=1."
    )
    scrubbed = scrub_urls(text)
    assert SECRET not in scrubbed and "user" not in scrubbed
    assert (
        scrubbed
        == "upstream failed: HTTP 404 Not Found from http://••••@127.0.0.1:9/mcp?api_key=••••&x=••••."
    )


def test_literal_secrets_are_found_under_sensitive_names_in_urls_and_args() -> None:
    found = literal_secrets(
        headers={"Authorization": f"Bearer {SECRET}", "X-Trace": "on", "X-Ref": "${keyring:r}"},
        env={"DB_PASSWORD": "hunter2hunter2", "LOG_LEVEL": "debug"},
        url="https://u:p%40ss@h.test/mcp?access_token=tok123456789&page=2",
        args=["--api-key=arg-secret-1", "--verbose"],
        client_secret="client-secret-1",
    )
    assert {f"Bearer {SECRET}", SECRET, "hunter2hunter2", "p@ss", "tok123456789"} <= found
    assert {"arg-secret-1", "client-secret-1"} <= found
    assert not {"on", "debug", "2", "--verbose"} & found
    assert not any("keyring" in value for value in found)


def test_known_values_are_masked_by_value_in_views_wherever_they_stand() -> None:
    known = SecretValues([SECRET, "true"], min_chars=8)
    view = {
        "headers": {"X-Custom": SECRET, "X-On": "true"},
        "args": [f"--flag={SECRET}"],
        "env": {"REF": "${keyring:x}"},
    }
    shown = known.mask_json(view)
    assert shown == {
        "headers": {"X-Custom": "••••42 (34 chars)", "X-On": "true"},
        "args": ["--flag=••••42 (34 chars)"],
        "env": {"REF": "${keyring:x}"},
    }


def test_scrubbing_json_keeps_the_object_when_nothing_is_there() -> None:
    known = SecretValues([SECRET])
    clean = {"content": [{"type": "text", "text": "nothing here"}]}
    assert known.scrub_json(clean) is clean
    dirty = {"content": [{"type": "text", "text": f"env: TOKEN={SECRET}"}], "structuredContent": {SECRET: 1}}
    assert known.scrub_json(dirty) == {
        "content": [{"type": "text", "text": f"env: TOKEN={SCRUBBED}"}],
        "structuredContent": {SCRUBBED: 1},
    }


def test_the_upstream_log_never_holds_a_hidden_value_even_split_across_writes(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "server.log")
    log.hide(SecretValues([SECRET]))
    data = f"starting with token {SECRET}\nand again {SECRET}, done\n".encode()
    for start in range(0, len(data), 5):  # every value arrives cut into pieces
        log.write(data[start : start + 5])
    log.note(f"connected to http://user:pw@h/mcp?key={SECRET}")
    log.write(b"tail without newline sk-li")  # a prefix of the value, then the end of the output
    log.close()
    written = (tmp_path / "server.log").read_text()
    assert SECRET not in written
    assert written == (
        "starting with token ••••\nand again ••••, done\n"
        "[mcpproxy] connected to http://••••@h/mcp?key=••••\n"
        "tail without newline sk-li"
    )


def test_a_view_echoed_back_in_a_patch_keeps_the_stored_url_args_and_client_secret() -> None:
    server = {
        "name": "s",
        "url": f"https://bot:{SECRET}@api.test/mcp?api_key={SECRET}",
        "args": ["--verbose", f"--api-key={SECRET}"],
        "oauth": {"client_id": "c", "client_secret": SECRET},
    }
    doc = ConfigDocument({"mcpServers": [dict(server)]})
    view = redact_server(server)
    shown_args = SecretValues([SECRET], min_chars=8).mask_json(view["args"])
    doc.patch("s", {"url": view["url"], "args": shown_args, "oauth": view["oauth"], "enabled": False})
    assert doc.server("s") == {**server, "enabled": False}
    with pytest.raises(PatchError, match="url: holds a masked value"):
        doc.patch("s", {"url": view["url"].replace("/mcp", "/other")})
    with pytest.raises(PatchError, match="args: holds a masked value"):
        doc.patch("s", {"args": shown_args[1:]})


def test_a_value_that_holds_a_reference_is_a_template_shown_as_written_and_a_literal_stays_masked() -> None:
    server = {
        "name": "remote",
        "url": "https://api.test/mcp",
        "headers": {
            "Authorization": "Bearer ${keyring:ex_token}",
            "X-Api-Key": SECRET,
            "Cookie": "a=${env:A}; b=${keyring:b}",
        },
        "env": {"DB_PASSWORD": "${env:PW}", "API_TOKEN": SECRET},
    }
    view = redact_server(server)
    assert view["headers"] == {
        "Authorization": "Bearer ${keyring:ex_token}",
        "X-Api-Key": "••••42 (34 chars)",
        "Cookie": "a=${env:A}; b=${keyring:b}",
    }
    assert view["env"] == {"DB_PASSWORD": "${env:PW}", "API_TOKEN": "••••42 (34 chars)"}
    # A known secret value written inside a template is still masked by value.
    assert (
        SecretValues([SECRET]).mask_json(f"Bearer {SECRET} ${{env:X}}") == "Bearer ••••42 (34 chars) ${env:X}"
    )
