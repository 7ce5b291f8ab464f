"""Helpers for the project's own tests (servers, builders); not part of the package."""

from __future__ import annotations
