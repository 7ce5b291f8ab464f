"""The package's one logger; library code never configures handlers."""

from __future__ import annotations

import logging

__all__ = ["logger"]

logger = logging.getLogger("obshell_contract")
