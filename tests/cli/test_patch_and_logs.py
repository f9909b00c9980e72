"""Pure parts of `mcpproxy upstream`: flag parsing, the one merge patch, log following."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.__main__ import cli
from cli.patch_flags import build_patch, describe_patch, parse_env, parse_header
from cli.upstream_logs import new_lines

# The management commands are imported on first use; load them so the walk below sees them.
for _name in ("status", "upstream", "tools", "import", "doctor"):
    cli.get_command(click.Context(cli), _name)


def test_a_header_flag_splits_at_the_first_colon_and_keeps_the_rest() -> None:
    assert parse_header("X-Trace: on") == ("X-Trace", "on")
    assert parse_header("Authorization: Bearer new-token") == ("Authorization", "Bearer new-token")
    assert parse_header("X-Url:http://a:b") == ("X-Url", "http://a:b")
    assert parse_header("X-Empty:") == ("X-Empty", "")


@pytest.mark.parametrize("bad", ["no colon", ": value", "Bad Name: v"])
def test_a_malformed_header_flag_is_a_usage_error(bad: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_header(bad)


def test_an_env_flag_splits_at_the_first_equals_sign() -> None:
    assert parse_env("LOG_LEVEL=debug") == ("LOG_LEVEL", "debug")
    assert parse_env("A=b=c") == ("A", "b=c")
    assert parse_env("EMPTY=") == ("EMPTY", "")
    with pytest.raises(click.BadParameter):
        parse_env("NOEQUALS")


def test_mixed_sets_and_removals_make_one_merge_patch() -> None:
    patch = build_patch(
        headers=[("X-New", "v"), ("Authorization", "Bearer t")],
        header_removes=["X-Old"],
        env=[("LOG_LEVEL", "debug")],
        env_removes=["OBSOLETE"],
    )
    assert patch == {
        "headers": {"X-New": "v", "Authorization": "Bearer t", "X-Old": None},
        "env": {"LOG_LEVEL": "debug", "OBSOLETE": None},
    }


def test_other_fields_patch_only_when_given() -> None:
    assert build_patch(args=["a", "b"], enabled=False, command="node") == {
        "args": ["a", "b"],
        "command": "node",
        "enabled": False,
    }
    assert build_patch() == {}
    assert build_patch(args=[]) == {"args": []}


def test_setting_and_removing_the_same_header_is_refused() -> None:
    with pytest.raises(click.UsageError, match="X-A"):
        build_patch(headers=[("X-A", "1")], header_removes=["X-A"])


def test_the_patch_summary_names_keys_but_never_values() -> None:
    summary = describe_patch(build_patch(headers=[("Authorization", "Bearer sekrit")], header_removes=["X"]))
    assert summary == "set header Authorization; removed header X"
    assert "sekrit" not in summary


def test_following_a_log_prints_only_lines_past_the_previous_window() -> None:
    assert new_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]
    assert new_lines(["a", "b"], ["a", "b"]) == []
    assert new_lines([], ["x"]) == ["x"]
    assert new_lines(["a", "b"], ["x", "y"]) == ["x", "y"]  # more new lines than the window
    assert new_lines(["a", "a"], ["a", "a", "a"]) == ["a"]


def test_usage_errors_exit_2_before_any_request() -> None:
    runner = CliRunner()
    nothing = runner.invoke(cli, ["upstream", "patch", "synapbus", "--url", "http://127.0.0.1:9"])
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    bad = runner.invoke(cli, ["upstream", "patch", "synapbus", "--header", "nocolon"])
    assert bad.exit_code == 2
    args = runner.invoke(cli, ["tools", "call", "echo:add", "--args", "[1]"])
    assert args.exit_code == 2 and "JSON object" in args.output
    name = runner.invoke(cli, ["tools", "call", "no-colon"])
    assert name.exit_code == 2


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()

    def walk(group: click.Group, path: list[str]) -> list[list[str]]:
        # list_commands/get_command, not `.commands`: the top group loads its commands lazily, so
        # `.commands` holds only those some earlier test happened to load.
        context = click.Context(group)
        found = []
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None, [*path, name]
            found.append([*path, name])
            if isinstance(command, click.Group):
                found += walk(command, [*path, name])
        return found

    paths = walk(cli, [])
    assert ["keys", "export"] in paths and ["upstream", "patch"] in paths  # the walk reaches lazy groups
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, path


def test_top_level_help_documents_exit_codes_and_completion() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "3 proxy unreachable" in result.output and "4 not found" in result.output
    assert "_MCPPROXY_COMPLETE=bash_source" in result.output


def test_shell_completion_offers_subcommands_and_no_server_names_without_a_proxy(tmp_path: Path) -> None:
    env = {"_MCPPROXY_COMPLETE": "bash_complete", "COMP_WORDS": "mcpproxy upstream re", "COMP_CWORD": "2"}
    result = CliRunner().invoke(cli, [], prog_name="mcpproxy", env=env)
    assert result.output.split() == ["plain,reject", "plain,remove", "plain,restart"]
    config = tmp_path / "mcp_config.json"
    config.write_text('{"listen": "127.0.0.1:9", "mcpServers": []}')
    env = {
        "_MCPPROXY_COMPLETE": "bash_complete",
        "COMP_WORDS": "mcpproxy upstream restart e",
        "COMP_CWORD": "3",
        "MCPPROXY_CONFIG": str(config),
    }
    assert CliRunner().invoke(cli, [], prog_name="mcpproxy", env=env).output.strip() == ""
