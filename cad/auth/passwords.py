"""Password rules: long, not the username, not a common password (or one dressed up)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from cad.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 200

# What people add to a common word to pass a rule: digits, symbols, a year.
_DRESSING = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("cad.auth").joinpath("data/common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def check_password(password: str, username: str, field: str = "password") -> None:
    """Raise Invalid naming the rule the password breaks; return when it is acceptable."""
    if len(password) < MIN_LENGTH:
        raise Invalid(field, f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise Invalid(field, f"at most {MAX_LENGTH} characters")
    lowered = password.lower()
    name = username.strip().lower()
    if name and (lowered == name or _DRESSING.sub("", lowered) == name):
        raise Invalid(field, "must not be the username")
    if len(set(lowered)) < 4:
        raise Invalid(field, "too few different characters")
    common = common_passwords()
    stem = _DRESSING.sub("", lowered)
    if lowered in common or stem in common or (not stem and lowered.strip("0123456789") == ""):
        raise Invalid(field, "too common: choose a passphrase of several words")
    if _is_sequence(lowered):
        raise Invalid(field, "a keyboard or number sequence is too easy to guess")


def _is_sequence(text: str) -> bool:
    # "123456789012", "abcdefghijkl": each character one on from the last.
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:], strict=False)}
    return steps <= {1, -1, -9}
