"""Behaviour profiles of the mock: the sound ``reference`` and the real ``obshell-4.5``.

Every difference between the two is a flag here; the server and the upgrade
handler read the flags and never test a profile's name. ``docs/deviations.md``
explains each flag, with the protocol section behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from obshell_contract.errors import UsageError

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """How the mock behaves where the real agent does something unsound."""

    name: str
    description: str

    # Body decryption (protocol §1.4, §2.4 e1-e5). Strict: standard base64, a
    # 32-byte ``Keys``, PKCS#7 checked, every failure a 400. Otherwise the
    # agent's way: base64 errors ignored, the pad byte trusted, panics.
    strict_body_decryption: bool

    # Panics (emulated or real) answered with the envelope built at process
    # start: frozen timestamp, duration 0, traceId "" (§2.4).
    recovery_response: bool

    # Whitespace-only version/release fail the ``required`` check (§4.1).
    blank_counts_as_missing: bool

    # version must be four dot-separated integers (§4.2 step 7).
    check_version_format: bool

    # A missing package is refused before any DAG exists (§4.2 step 8).
    package_precheck: bool

    # A whitespace-only upgradeDir means "the default" (§4.2 step 5).
    blank_upgrade_dir_is_default: bool

    # Any ".." segment in upgradeDir is refused, as the request schema says;
    # the agent refuses only those that climb out of its parent directory.
    reject_dot_dot_segments: bool

    # gin's trailing-slash redirect: 301/307 without an envelope (§3).
    redirect_trailing_slash: bool

    # A show_details that is not a bool leaves a nil pointer the handler
    # dereferences; GET /task/node/{id}?show_details=false does the same (§6).
    query_panics: bool


REFERENCE = Profile(
    name="reference",
    description="the sound behaviour the API promises (default)",
    strict_body_decryption=True,
    recovery_response=False,
    blank_counts_as_missing=True,
    check_version_format=True,
    package_precheck=True,
    reject_dot_dot_segments=True,
    blank_upgrade_dir_is_default=False,
    redirect_trailing_slash=False,
    query_panics=False,
)

OBSHELL_45 = Profile(
    name="obshell-4.5",
    description="the real obshell 4.5.0.0 agent, defects included",
    strict_body_decryption=False,
    recovery_response=True,
    blank_counts_as_missing=False,
    check_version_format=False,
    package_precheck=False,
    reject_dot_dot_segments=False,
    blank_upgrade_dir_is_default=True,
    redirect_trailing_slash=True,
    query_panics=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (REFERENCE, OBSHELL_45)}
DEFAULT_PROFILE = REFERENCE.name


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a :class:`UsageError` names the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise UsageError(
            f"--profile {name!r} is not a known profile; known: {known}"
        ) from None
