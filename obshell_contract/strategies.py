"""Hypothesis strategies for malformed upgrade requests, and the run's profiles.

The schemas decide what is malformed: every strategy draws from a broad pool of
near-misses and plain noise, and keeps only values that
``upgrade-agent-request.schema.json`` rejects. Tightening the schema therefore
tightens the tests without touching this module.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from obshell_contract import schemas

__all__ = [
    "PROFILE_CI",
    "PROFILE_LIVE",
    "PROFILE_MOCK",
    "PROFILE_QUICK",
    "malformed_bodies",
    "malformed_releases",
    "malformed_upgrade_dirs",
    "malformed_versions",
    "register_profiles",
    "wrong_types",
]

PROFILE_MOCK = "obshell-mock"
PROFILE_LIVE = "obshell-live"
PROFILE_CI = "obshell-ci"
PROFILE_QUICK = "obshell-quick"

# Placeholders that satisfy the schema; a strategy swaps in one malformed field.
VALID_VERSION = "4.5.1.0"
VALID_RELEASE = "100000012026050802.el7"


def register_profiles() -> None:
    """Register the suite's three profiles; the plugin picks one per run.

    - mock: many examples, no deadline (the mock answers in milliseconds);
    - live: few examples, because every example is a real request to a real
      agent that may try a database login on a wrong password;
    - ci: derandomized so two CI runs of the same commit send the same inputs;
    - quick: a few derandomized examples, for running the suite many times over
      (the project's own effectiveness tests run it once per mock fault).
    """
    common: dict[str, Any] = {
        "deadline": None,
        # The explain phase traces coverage of the client; the report shows the
        # request and the reply instead, and the run stays fast.
        "phases": [p for p in Phase if p is not Phase.explain],
        "suppress_health_check": [
            HealthCheck.filter_too_much,
            HealthCheck.too_slow,
            # The client fixture is meant to be shared by every example of a test.
            HealthCheck.function_scoped_fixture,
        ],
        "print_blob": True,
    }
    settings.register_profile(PROFILE_MOCK, max_examples=100, **common)
    settings.register_profile(PROFILE_LIVE, max_examples=10, **common)
    settings.register_profile(PROFILE_CI, max_examples=80, derandomize=True, **common)
    settings.register_profile(PROFILE_QUICK, max_examples=8, derandomize=True, **common)


def _rejects(field: str, value: Any) -> bool:
    body = {"version": VALID_VERSION, "release": VALID_RELEASE, field: value}
    return not schemas.is_valid(body, schemas.REQUEST)


_digits = st.integers(min_value=0, max_value=99999).map(str)
_noise = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24
)


def malformed_versions() -> st.SearchStrategy[str]:
    """Strings the schema refuses as ``version``: part counts, letters, padding."""
    near_misses = st.one_of(
        st.lists(_digits, min_size=1, max_size=7).map(".".join),
        st.lists(_digits, min_size=4, max_size=4).map(
            lambda parts: ".".join(parts) + "."
        ),
        st.tuples(
            st.lists(_digits, min_size=4, max_size=4), st.sampled_from(" \t-+av")
        ).map(lambda pair: pair[1] + ".".join(pair[0])),
        st.tuples(st.lists(_digits, min_size=4, max_size=4), _noise).map(
            lambda pair: ".".join(pair[0]) + pair[1]
        ),
        st.sampled_from(
            [
                "",
                " ",
                "4.2",
                "4.2.1.1-1",
                "v4.2.1.1",
                "4..2.1",
                "\u0664.\u0662.\u0661.\u0661",
            ]
        ),
    )
    return st.one_of(near_misses, _noise).filter(lambda v: _rejects("version", v))


def malformed_releases() -> st.SearchStrategy[str]:
    """Strings the schema refuses as ``release``: no dot, no build number, junk."""
    distribution = st.text(alphabet=string.ascii_lowercase + string.digits, max_size=6)
    near_misses = st.one_of(
        _digits,
        st.tuples(
            st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), distribution
        ).map(".".join),
        st.tuples(_digits, st.sampled_from(["", " el7", "el 7", "el7/", "é"])).map(
            ".".join
        ),
        st.sampled_from(["", " ", ".el7", "el7", "1000.", "1000..el7", "-1.el7"]),
    )
    return st.one_of(near_misses, _noise).filter(lambda v: _rejects("release", v))


def malformed_upgrade_dirs() -> st.SearchStrategy[str]:
    """Paths the schema refuses as ``upgradeDir``: relative, traversal, odd ones."""
    segment = st.text(
        alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=8
    )
    near_misses = st.one_of(
        st.lists(segment, min_size=1, max_size=4).map("/".join),
        st.lists(st.one_of(segment, st.just("..")), min_size=1, max_size=5).map(
            lambda parts: "/" + "/".join([*parts, ".."])
        ),
        st.tuples(segment, st.sampled_from(" ;|$`'\"*?<>&!~%")).map(
            lambda p: "/" + p[0] + p[1]
        ),
        st.sampled_from(["tmp/x", "./x", "~/x", "/a/../../x", "/data/$(id)", "C:\\x"]),
    )
    return st.one_of(near_misses, _noise).filter(lambda v: _rejects("upgradeDir", v))


def wrong_types() -> st.SearchStrategy[Any]:
    """JSON values that are not strings (and not null, which means absent)."""
    return st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


def malformed_bodies() -> st.SearchStrategy[str]:
    """Plaintext bodies that are not one JSON object: arrays, scalars, trailing data."""
    valid = json.dumps({"version": VALID_VERSION, "release": VALID_RELEASE})
    return st.one_of(
        st.sampled_from(["[]", '"x"', "123", "true", "{}{}", "{", "}", "not json"]),
        st.lists(st.integers(), max_size=3).map(json.dumps),
        st.text(alphabet=string.printable, min_size=1, max_size=8)
        .filter(lambda tail: tail.strip() != "")
        .map(lambda tail: valid + " " + tail),
        st.just(f"[{valid}]"),
    )
