"""The low-level MCP server both endpoints run (`/mcp` and `/mcp/all`): it announces list changes, the
tasks capability or extension for the era it speaks, and instructions written for each caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import mcp.types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gateway.access import Identity, current_identity

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"


class CatalogServer(Server[Any]):
    """A low-level Server that announces prompt and resource list changes (and tools', if `tools_changed`),
    and the `tasks` capability to 2025-era clients while `task_capability` gives one (the Tasks
    extension to 2026-era clients while `task_extension` says so)."""

    tools_changed = False
    task_capability: Callable[[], types.ServerTasksCapability | None] | None = None
    task_extension: Callable[[], bool] | None = None
    """Whether to advertise the 2026-07-28 Tasks extension (gateway/ext_tasks.py) to that era."""
    instructions_for: Callable[[Identity], str] | None = None
    """The instructions for a caller (gateway/instructions.py); None: the fixed ones."""
    _fixed_instructions: str | None = None

    @property
    def instructions(self) -> str | None:
        """Asked for by `initialize` and `server/discover`, without the request: written now for
        the caller the front door admitted (gateway/access.py `serving`)."""
        if self.instructions_for is not None:
            return self.instructions_for(current_identity())
        return self._fixed_instructions

    @instructions.setter
    def instructions(self, value: str | None) -> None:
        self._fixed_instructions = value

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(
            notification_options, experimental_capabilities, extensions, protocol_version=protocol_version
        )
        if protocol_version in MODERN_PROTOCOL_VERSIONS:  # (2026-07-28 moved tasks into an extension)
            if self.task_extension is not None and self.task_extension():
                extensions = {**(capabilities.extensions or {}), TASKS_EXTENSION: {}}
                return capabilities.model_copy(update={"extensions": extensions})
            return capabilities
        if self.task_capability is None:
            return capabilities
        tasks = self.task_capability()
        return capabilities if tasks is None else capabilities.model_copy(update={"tasks": tasks})

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = NotificationOptions(
            prompts_changed=True, resources_changed=True, tools_changed=self.tools_changed
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)
