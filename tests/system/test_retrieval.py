"""Search quality through the whole proxy: the retrieval eval of bench/retrieval_eval.py, in the suite.

`mcpproxy serve` runs the seven reference servers of mcpproxy-retrieval-v1; every
query of the golden set and of our two holdout sets goes to `retrieve_tools`
over MCP, and the set's own scorer grades the runs. The metrics table is
printed even when output is captured, so CI logs show it.

The eval set is read from `shared/eval` beside the checkout (MCPPROXY_EVAL_SET
overrides it). Without it, or where its servers cannot be installed, the test
skips with the reason; MCPPROXY_REQUIRE=eval (CI) turns that into a failure.
Embeddings are used when they load; the `embeddings` tests of
tests/services/test_search.py are the ones that require them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from bench.retrieval_eval import PUBLISHED, evaluate, install_servers, missing_inputs, table
from services.search import StaticEmbedder

pytestmark = [pytest.mark.system, pytest.mark.requires("eval")]

# The targets. With embeddings the proxy clears them on every set by >= 0.04; BM25 alone
# clears them on the golden set by less than 0.01, too thin a margin to assert: there the test
# asserts only a clear lead over mcpproxy-go's published scores.
TARGET_RECALL_AT_5: Final = 0.85
TARGET_MRR: Final = 0.70
BASELINE: Final = PUBLISHED["mcpproxy-go, published (golden)"]
LEAD_OVER_BASELINE: Final = 0.10


@pytest.fixture
def eval_servers() -> None:
    """The eval set and its seven servers, installed. (A skip raised inside a trio test loses its
    reason in pytest-trio, so it is raised here, in a sync fixture.)"""
    problem = missing_inputs()
    if problem is not None:
        pytest.skip(f"the retrieval eval cannot run here: {problem}")
    failure = install_servers()
    if failure is not None:
        pytest.skip(f"the Python eval servers cannot be installed: {failure}")


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("eval_servers")
async def test_retrieve_tools_meets_the_quality_targets_on_golden_and_holdout_queries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = await evaluate(tmp_path)
    embeddings = StaticEmbedder.load() is not None
    with capsys.disabled():
        mode = "BM25 + embeddings" if embeddings else "BM25 only (embeddings off or not installed)"
        print(f"\nretrieve_tools through mcpproxy serve, 7 reference servers, {mode}")
        print(table(results | PUBLISHED))

    assert results["golden"]["queries"] == 47
    if embeddings:
        for name, metrics in results.items():
            assert metrics["recall@5"] >= TARGET_RECALL_AT_5, (name, metrics)
            assert metrics["mrr"] >= TARGET_MRR, (name, metrics)
    else:
        golden = results["golden"]
        assert golden["recall@5"] >= BASELINE["recall@5"] + LEAD_OVER_BASELINE, golden
        assert golden["mrr"] >= BASELINE["mrr"] + LEAD_OVER_BASELINE, golden
