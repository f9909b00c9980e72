"""The docker SDK internal the engine relies on: present in the installed SDK, a changed SDK refused."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from docker.api.client import APIClient

from bus.errors import IncompatibleLibraryError
from services.docker_engine import WRITTEN_FOR, problems

REPO = Path(__file__).resolve().parents[2]


def test_the_installed_sdk_keeps_the_attach_response_on_the_socket() -> None:
    assert problems() == []
    assert version("docker").startswith(f"{WRITTEN_FOR}.")


def test_pyproject_pins_the_docker_sdk_to_the_series_the_engine_was_written_for() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("docker>=") and d.endswith(f",<{int(WRITTEN_FOR) + 1}") for d in dependencies)


def test_an_sdk_that_no_longer_keeps_the_response_is_refused() -> None:
    class Forgetful(APIClient):  # type: ignore[misc]  # what a later SDK might do
        def _get_raw_response_socket(self, response: Any) -> Any:
            return response.raw

    found = problems(Forgetful)
    assert found == ["APIClient._get_raw_response_socket keeps the response on the socket as _response"]
    refused = r"docker \S+ is not the version mcpproxy was written for \(docker 7\)"
    with pytest.raises(IncompatibleLibraryError, match=refused):
        IncompatibleLibraryError.require("docker", WRITTEN_FOR, found)
