"""pytest-xdist scheduling for a live agent: every test that upgrades on one worker.

A live agent has one maintenance lock and can be upgraded to a package once,
so the tests that start upgrades (the suite's ``test_upgrade*.py`` modules)
must run in order on a single worker. xdist's own ``xdist_group`` marker does
not survive pytest 9's node ids, hence a scheduler keyed on module names.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler import LoadScopeScheduling

__all__ = ["UPGRADE_MODULE_PREFIX", "UpgradeScheduling"]

UPGRADE_MODULE_PREFIX = "test_upgrade"
_UPGRADE_SCOPE = "obshell-contract:upgrades"


class UpgradeScheduling(LoadScopeScheduling):
    """One scope for all upgrade tests; every other test is a scope of its own."""

    def _split_scope(self, nodeid: str) -> str:
        module = PurePosixPath(nodeid.split("::", 1)[0]).name
        return _UPGRADE_SCOPE if module.startswith(UPGRADE_MODULE_PREFIX) else nodeid
