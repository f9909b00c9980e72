"""What each process imports before it can serve: launch to ready is mostly import time.

Each check runs a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport sys\nprint(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_gateway_serves_without_the_search_index_libraries() -> None:
    # numpy, the stemmer and the embeddings load with the first tools, not before the gateway listens.
    loaded = modules_after("import gateway.app")
    assert "mcp" in loaded
    assert not loaded & {"numpy", "Stemmer", "tokenizers", "safetensors"}


@pytest.mark.parametrize("code", ["import cli.__main__", "import cli.serve_launch"])
def test_mcpproxy_serve_starts_its_children_before_importing_trio_or_httpx2(code: str) -> None:
    loaded = modules_after(code)
    assert not loaded & {"trio", "httpx2", "rich", "mcp", "zmq"}
