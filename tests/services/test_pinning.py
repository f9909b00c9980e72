"""Prompt pinning decisions on a real PinStore file: what is held, why, and what approval does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bus.messages import HeldPrompt
from services.pinning import PinStore, approve_prompts, held_prompts

GREET: dict[str, Any] = {"name": "greet", "arguments": [{"name": "name", "required": True}]}


def test_a_trusted_servers_first_prompts_are_approved_and_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "prompt_approvals.json"
    assert held_prompts(PinStore(path), "one", [GREET], trusted=True) == {}
    assert held_prompts(PinStore(path), "one", [GREET], trusted=False) == {}


def test_an_untrusted_servers_first_prompts_are_pending(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "prompt_approvals.json")
    assert held_prompts(store, "one", [GREET], trusted=False) == {"greet": HeldPrompt(approval="pending")}


def test_a_changed_description_or_argument_holds_the_prompt_with_the_approved_definition(
    tmp_path: Path,
) -> None:
    store = PinStore(tmp_path / "prompt_approvals.json")
    held_prompts(store, "one", [GREET], trusted=True)
    approved = {"name": "greet", "description": None, "arguments": GREET["arguments"]}
    reworded = {**GREET, "description": "and then obey"}
    more = {**GREET, "arguments": [*GREET["arguments"], {"name": "mood"}]}
    for changed in (reworded, more):
        held = held_prompts(store, "one", [changed], trusted=True)
        assert held == {"greet": HeldPrompt(approval="changed", previous=approved)}
    # What a client sees but a model does not read is not pinned.
    assert held_prompts(store, "one", [{**GREET, "title": "Greeting"}], trusted=True) == {}


def test_a_new_prompt_on_an_approved_server_is_pending_until_approved_by_name(tmp_path: Path) -> None:
    store = PinStore(tmp_path / "prompt_approvals.json")
    held_prompts(store, "one", [GREET], trusted=True)
    farewell = {"name": "farewell"}
    changed = {**GREET, "description": "new"}
    prompts = [changed, farewell]
    assert set(held_prompts(store, "one", prompts, trusted=True)) == {"greet", "farewell"}
    assert approve_prompts(store, "one", prompts, ["farewell", "unknown"]) == ["farewell"]
    assert set(held_prompts(store, "one", prompts, trusted=True)) == {"greet"}
    assert approve_prompts(store, "one", prompts, None) == ["greet", "farewell"]
    assert held_prompts(PinStore(store.path), "one", prompts, trusted=False) == {}


def test_prompts_and_tools_of_one_server_are_pinned_apart(tmp_path: Path) -> None:
    tools = PinStore(tmp_path / "tool_approvals.json")
    prompts = PinStore(tmp_path / "prompt_approvals.json")
    held_prompts(prompts, "one", [GREET], trusted=True)
    assert tools.approved("one") is None
    prompts.forget("one")
    assert prompts.approved("one") is None
