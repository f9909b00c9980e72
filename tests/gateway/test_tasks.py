"""Task ids through the proxy: `<server>:<upstream task id>`, split at the first `:`."""

from __future__ import annotations

import pytest

from gateway.tasks import shown_id, split_id


@pytest.mark.parametrize(
    ("server", "task_id"),
    [
        ("everything", "786512e2-9e0d-44bd-8f29-789f320fe840"),
        ("a.b-c_d", "job:42:retry"),  # an upstream's id may hold the separator itself
        ("x", ":"),
    ],
)
def test_a_task_id_names_its_server_and_keeps_the_upstream_id_whole(server: str, task_id: str) -> None:
    assert split_id(shown_id(server, task_id)) == (server, task_id)


@pytest.mark.parametrize("shown", ["", "no-separator", ":only-an-id", "only-a-server:"])
def test_an_id_without_a_server_and_an_upstream_id_is_not_a_proxy_task_id(shown: str) -> None:
    assert split_id(shown) is None
