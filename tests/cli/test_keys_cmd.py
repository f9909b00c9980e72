"""`mcpproxy keys`: bus keys made into the secrets store, shown public-only, exported per role."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from cli.__main__ import cli
from services.bus_keys import NEEDS, curve_keys, env_var, lookup_from, store_name
from services.secrets import SecretStore


def target(tmp_path: Path) -> list[str]:
    config = tmp_path / "mcp_config.json"
    config.write_text(json.dumps({"mcpServers": [], "secrets_backend": "file"}))
    return ["--config", str(config), "--data-dir", str(tmp_path / "data")]


def test_generated_keys_are_stored_and_only_public_ones_are_printed(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "generate", *target(tmp_path)])
    assert made.exit_code == 0, made.output
    store = SecretStore(tmp_path / "data", "file")
    secret = store.get_sync(store_name("server_secret"))
    assert secret and secret not in made.output
    assert store.get_sync(store_name("server_public")) in made.output
    shown = runner.invoke(cli, ["keys", "show", *target(tmp_path)])
    assert shown.exit_code == 0 and secret not in shown.output
    again = runner.invoke(cli, ["keys", "generate", *target(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output
    # What the supervisor reads at start: every key of its role, from the store.
    keys = curve_keys("supervisor", lookup_from({}, store.get_sync))
    assert keys.server_secret == secret and len(keys.allowed) == 2


def test_an_export_holds_only_its_roles_keys_as_env_lines_or_a_secret(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["keys", "generate", *target(tmp_path)])
    env = runner.invoke(cli, ["keys", "export", "worker", *target(tmp_path)])
    assert env.exit_code == 0, env.output
    names = [line.split("=", 1)[0] for line in env.output.splitlines()]
    assert names == [env_var(key) for key in NEEDS["worker"]]
    assert env_var("server_secret") not in env.output
    secret = runner.invoke(cli, ["keys", "export", "gateway", "--format", "secret", *target(tmp_path)])
    manifest = yaml.safe_load(secret.output)
    assert manifest["kind"] == "Secret" and manifest["metadata"]["name"] == "mcpproxy-bus-gateway"
    values = {
        var.removeprefix("MCPPROXY_BUS_").lower(): value for var, value in manifest["stringData"].items()
    }
    store = SecretStore(tmp_path / "data", "file")
    assert values == {key: store.get_sync(store_name(key)) for key in NEEDS["gateway"]}
