"""The contract suite's pytest plugin (being assembled; see obshell_contract.report)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clause(*ids): the contract clauses this test checks"
    )
