"""Root conftest: load the project's pytest plugin, and nothing else.

The plugin is also registered under the same name through the ``pytest11``
entry point, so an installed copy works outside this checkout; pytest loads a
plugin name once.
"""

from __future__ import annotations

pytest_plugins = ["obshell_contract.plugin"]
