"""A pytest plugin for the project's tests: dump each collected test's clauses.

Loaded with ``-p tests.support.clause_dump`` in a collect-only subprocess; the
JSON goes to the file named by ``OBSHELL_CLAUSE_DUMP``.
"""

from __future__ import annotations

import json
import os

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    clauses = {
        item.nodeid: [
            str(arg) for marker in item.iter_markers("clause") for arg in marker.args
        ]
        for item in session.items
    }
    with open(os.environ["OBSHELL_CLAUSE_DUMP"], "w", encoding="utf-8") as file:
        json.dump(clauses, file)
