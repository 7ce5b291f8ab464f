"""``python -m obshell_contract.mock``: the ``obshell-mock`` command."""

from __future__ import annotations

import sys

from obshell_contract.mock.cli import main

if __name__ == "__main__":
    sys.exit(main())
