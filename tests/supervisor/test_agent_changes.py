"""The pure rules of what an agent may change (supervisor/agent_changes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bus.errors import ConfigError
from services.config_doc import ConfigDocument, PatchError, redact_server
from supervisor import agent_changes
from supervisor.agent_changes import AgentRefusedError


def document(**server: Any) -> ConfigDocument:
    base = {"name": "gh", "command": "npx", "args": ["-y", "gh-mcp"], "env": {"T": "${keyring:gh}"}}
    return ConfigDocument({"mcpServers": [{**base, **server}]})


def test_a_launch_change_is_held_as_a_proposal_and_quarantines_the_server() -> None:
    doc = document()
    assert agent_changes.propose(doc, "gh", {"command": "sh", "args": ["-c", "id"]}) == "proposed"
    server = doc.server("gh")
    assert server["command"] == "npx" and server["quarantined"] is True
    assert server["pending_change"]["proposed"]["command"] == "sh"
    assert server["pending_change"]["restore_quarantined"] is False
    view = redact_server(server)["pending_change"]
    assert view["fields"] == ["args", "command"]
    assert '+  "command": "sh"' in view["diff"]


def test_a_second_proposal_builds_on_the_first_and_gets_a_new_id() -> None:
    doc = document()
    agent_changes.propose(doc, "gh", {"command": "sh"})
    first = doc.server("gh")["pending_change"]["id"]
    agent_changes.propose(doc, "gh", {"env": {"EXTRA": "1"}})
    pending = doc.server("gh")["pending_change"]
    assert pending["id"] != first
    assert pending["proposed"]["command"] == "sh"
    assert pending["proposed"]["env"] == {"T": "${keyring:gh}", "EXTRA": "1"}
    assert pending["restore_quarantined"] is False, "the first proposal's memory of quarantine is kept"


def test_timeouts_apply_at_once_and_other_fields_are_refused() -> None:
    doc = document()
    assert agent_changes.propose(doc, "gh", {"init_timeout": "45s"}) == "applied"
    assert doc.server("gh")["init_timeout"] == "45s" and "quarantined" not in doc.server("gh")
    for field, value in (("quarantined", False), ("enabled", False), ("pending_change", None)):
        with pytest.raises(AgentRefusedError, match=field):
            agent_changes.propose(doc, "gh", {field: value})


@pytest.mark.parametrize(
    "patch",
    [
        {"env": {"S": "${keyring:other}"}},
        {"args": ["${env:AWS_SECRET_ACCESS_KEY}"]},
        {"url": "http://127.0.0.1:9/?k=${keyring:gh}x${keyring:bank}"},
    ],
)
def test_a_reference_the_server_did_not_use_is_refused(patch: dict[str, Any]) -> None:
    doc = document()
    with pytest.raises(AgentRefusedError, match="cannot be added from MCP"):
        agent_changes.propose(doc, "gh", patch)
    assert "pending_change" not in doc.server("gh")


def test_an_existing_reference_may_move_but_only_as_a_proposal() -> None:
    doc = document()
    agent_changes.propose(doc, "gh", {"env": {"T": None, "LEAK": "${keyring:gh}"}})
    assert doc.server("gh")["env"] == {"T": "${keyring:gh}"}


def test_approve_applies_exactly_the_reviewed_change() -> None:
    doc = document()
    agent_changes.propose(doc, "gh", {"args": ["-y", "gh-mcp@2"]})
    with pytest.raises(PatchError) as stale:
        agent_changes.approve(doc, "gh", "000000000000")
    assert stale.value.status == 409
    pending_id = doc.server("gh")["pending_change"]["id"]
    assert agent_changes.approve(doc, "gh", pending_id) is True
    server = doc.server("gh")
    assert server["args"] == ["-y", "gh-mcp@2"] and server["quarantined"] is False
    assert "pending_change" not in server
    doc.validated()


def test_reject_restores_the_quarantine_the_server_had() -> None:
    approved, held = document(), document(quarantined=True)
    for doc in (approved, held):
        agent_changes.propose(doc, "gh", {"command": "sh"})
        agent_changes.reject(doc, "gh")
        assert doc.server("gh")["command"] == "npx" and "pending_change" not in doc.server("gh")
    assert approved.server("gh")["quarantined"] is False
    assert held.server("gh")["quarantined"] is True
    with pytest.raises(PatchError):
        agent_changes.reject(approved, "gh")


def test_an_added_server_is_quarantined_and_may_not_reference_secrets() -> None:
    added = agent_changes.prepare_add({"name": "new", "command": "uvx", "args": ["x"]}, quarantine=True)
    assert added["quarantined"] is True
    with pytest.raises(AgentRefusedError):
        agent_changes.prepare_add({"name": "new", "url": "http://h/?t=${env:TOKEN}"}, quarantine=True)


def test_management_actions_need_the_key() -> None:
    for action in ("remove", "disable", "enable"):
        with pytest.raises(AgentRefusedError, match="API key"):
            agent_changes.check_management(action, keyed=False)
        agent_changes.check_management(action, keyed=True)
    agent_changes.check_management("restart", keyed=False)


def test_a_hand_edit_cannot_unquarantine_a_server_with_a_pending_change() -> None:
    doc = document()
    agent_changes.propose(doc, "gh", {"command": "sh"})
    doc.server("gh")["quarantined"] = False
    with pytest.raises(ConfigError, match="pending_change"):
        doc.validated()
