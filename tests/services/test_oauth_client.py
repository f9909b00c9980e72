"""The worker's OAuth pieces that need no authorization server: the loopback callback and the URL."""

from __future__ import annotations

import httpx2
import trio

from bus.messages import OAuthSpec, UpstreamSpec
from services.worker.oauth import CallbackListener, ProxyOAuth, SessionStore, free_port


async def test_the_callback_listener_takes_only_its_own_answer() -> None:
    port = free_port()
    listener = CallbackListener("gh", port)
    listener.expected_state = "s3cr3t-state"
    base = f"http://127.0.0.1:{port}"
    async with trio.open_nursery() as nursery:
        await listener.open(nursery)
        async with httpx2.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{base}/elsewhere?code=c&state=s3cr3t-state")).status_code == 404
            forged = await client.get(f"{base}/oauth/callback?code=c&state=other")
            assert forged.status_code == 400
            answer = await client.get(f"{base}/oauth/callback?code=the-code&state=s3cr3t-state&iss=x")
            assert answer.status_code == 200 and "signed in to gh" in answer.text
        with trio.fail_after(10):
            params = await listener.result()
        assert params == {"code": "the-code", "state": "s3cr3t-state", "iss": "x"}
    assert listener.answered  # and the listener closed: one answer is all it takes


def test_configured_scopes_win_and_extra_params_join_the_authorization_url() -> None:
    spec = UpstreamSpec(
        name="gh",
        protocol="streamable-http",
        url="https://example.test/mcp",
        oauth=OAuthSpec(scopes=["repo", "user"], extra_params={"audience": "api", "prompt": "consent"}),
    )

    async def nobody(url: str) -> None:
        raise AssertionError(url)

    auth = ProxyOAuth(
        spec,
        SessionStore(None, "gh", spec),
        "http://127.0.0.1:40000/oauth/callback",
        interactive=True,
        on_login_url=nobody,
        nursery=None,  # type: ignore[arg-type]  # not reached here
    )
    url = auth._with_config_params("https://as.test/authorize?state=abc&scope=mcp&code_challenge=C")
    query = dict(httpx2.URL(url).params)
    assert query == {
        "state": "abc",
        "scope": "repo user",
        "code_challenge": "C",
        "audience": "api",
        "prompt": "consent",
    }
