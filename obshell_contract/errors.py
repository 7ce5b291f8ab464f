"""Exceptions raised by obshell-contract.

ContractError
├── DecryptionError      a header or body could not be decrypted
├── SchemaError          a schema file is missing or invalid
├── TransportError       the target did not answer with an envelope
└── UsageError           a bad option or argument from the user
"""

from __future__ import annotations

__all__ = [
    "ContractError",
    "DecryptionError",
    "SchemaError",
    "TransportError",
    "UsageError",
]


class ContractError(Exception):
    """Base class of every error this package raises on purpose."""


class DecryptionError(ContractError):
    """A header or body could not be decrypted or did not decrypt to JSON."""


class SchemaError(ContractError):
    """A schema could not be loaded, or a ``$ref`` points nowhere."""


class TransportError(ContractError):
    """The target's answer was not an obshell envelope (not JSON, wrong shape)."""


class UsageError(ContractError):
    """A value from the user is invalid; the message names it and what was expected."""
