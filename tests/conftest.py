"""Declared requirements: test groups that must run here rather than skip (MCPPROXY_REQUIRE).

Some tests need what the repository cannot carry: a Docker engine, Chromium, the WordLlama
embeddings, the retrieval eval set and its servers, a cgroup hierarchy the tests may write.
Such a test is marked `@pytest.mark.requires("<group>")` and skips, with the reason, where its
need is missing. MCPPROXY_REQUIRE, a comma list of groups (`.ci/run` names them all), declares
which must run: a skip in a required group is reported as a failure with the skip's reason, and
a required group none of whose tests ran fails the session. Unset, skips stay skips, and the
terminal summary lists them per group.

Skip from a sync fixture (or a sync test): pytest-trio drops the reason of a skip raised inside
a trio test or fixture, and the failure would then say only "Skipped".
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Final

import pytest

REQUIRE_ENV: Final = "MCPPROXY_REQUIRE"
GROUPS: Final[Mapping[str, str]] = {
    "docker": "a Docker engine that runs containers (Debian's docker.io, run as root; tests/dockerctl.py)",
    "chromium": "Debian's /usr/bin/chromium, driven by Playwright (tests/system/test_ui.py)",
    "embeddings": "the WordLlama static embeddings of the wordllama package (services/search.py)",
    "eval": "the retrieval eval set (../shared/eval or MCPPROXY_EVAL_SET) and its reference servers",
    "cgroups": "a writable cgroup hierarchy with the memory and pids controllers (v2, or v1 as root)",
    "netns": "root and iproute2's `ip`: network namespaces joined by veth pairs (tests/netns.py)",
    "prometheus": "Debian's /usr/bin/prometheus, a real scraper of /metrics (tests/system/test_metrics.py)",
}


@dataclass
class _Requirements:
    required: frozenset[str]
    ran: Counter[str] = field(default_factory=Counter)
    failed_skips: Counter[str] = field(default_factory=Counter)
    skipped: defaultdict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))


_STATE: Final = pytest.StashKey[_Requirements]()


def required_groups(value: str) -> frozenset[str]:
    """The groups a MCPPROXY_REQUIRE value names; UsageError on a name that is not a group."""
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(names - GROUPS.keys())
    if unknown:
        raise pytest.UsageError(
            f"{REQUIRE_ENV}={value!r} names unknown groups {unknown}; the groups are {', '.join(GROUPS)}"
        )
    return names


def _groups(item: pytest.Item) -> list[str]:
    return [group for marker in item.iter_markers("requires") for group in marker.args]


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"requires(*groups): needs what the repository cannot carry ({', '.join(GROUPS)}); "
        f"a skip fails where {REQUIRE_ENV} names the group",
    )
    config.stash[_STATE] = _Requirements(required_groups(os.environ.get(REQUIRE_ENV, "")))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in item.iter_markers("requires"):
            if not marker.args or not set(marker.args) <= GROUPS.keys():
                raise pytest.UsageError(
                    f"{item.nodeid}: requires{marker.args!r} must name groups among {', '.join(GROUPS)}"
                )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    groups = _groups(item)
    if not groups:
        return report
    state = item.config.stash[_STATE]
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        required = [group for group in groups if group in state.required]
        if required:
            report.outcome = "failed"
            report.longrepr = f"{REQUIRE_ENV} requires {', '.join(required)}, but the test skipped: {reason}"
            state.failed_skips.update(required)
        else:
            for group in groups:
                state.skipped[group].append((item.nodeid, reason))
    elif report.when == "call":
        state.ran.update(groups)
    return report


def _unrun(config: pytest.Config) -> list[str]:
    state = config.stash[_STATE]
    return sorted(group for group in state.required if not state.ran[group] + state.failed_skips[group])


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A required group can also vanish without one skip: deselected, or skipped while collecting.
    if session.config.option.collectonly:
        return
    if _unrun(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    state = config.stash[_STATE]
    if state.skipped:
        terminalreporter.section("skipped test groups")
        for group, skips in sorted(state.skipped.items()):
            terminalreporter.write_line(
                f"{group}: {len(skips)} skipped, needs {GROUPS[group]}; first reason: {skips[0][1]}"
            )
        terminalreporter.write_line(f"{REQUIRE_ENV}={','.join(sorted(state.skipped))} makes these failures")
    if state.required and not config.option.collectonly:
        terminalreporter.section(f"{REQUIRE_ENV}={','.join(sorted(state.required))}")
        for group in sorted(state.required):
            skipped = state.failed_skips[group]
            outcome = f"{skipped} skipped, each counted as a failure" if skipped else "none skipped"
            terminalreporter.write_line(f"{group}: {state.ran[group]} ran, {outcome}")
        for group in _unrun(config):
            terminalreporter.write_line(
                f"FAILED: required group {group} ran no test (deselected or skipped while collecting)",
                red=True,
            )
