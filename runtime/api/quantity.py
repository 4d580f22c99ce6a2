"""Resource quantities (``500m``, ``1Gi``, ``1e3``) parsed to exact decimals.

Admission needs them to check signs, integer resources, requests against limits and PVC
growth. :func:`parse` returns ``None`` for text that is not a quantity.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

QUANTITY_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_quantity = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)").fullmatch
_exponent = re.compile(r"[eE]([-+]?[0-9]+)").fullmatch

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}

FORMAT_MSG = "quantities must match the regular expression '" + QUANTITY_RE + "'"


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Decimal | None:
    m = _quantity(text)
    if not m:
        return None
    number, suffix = m.groups()
    if number.count(".") > 1 or number in (".", "+.", "-.", "+", "-"):
        return None
    try:
        value = Decimal(number)
    except InvalidOperation:
        return None
    if suffix in _SUFFIX:
        return value * _SUFFIX[suffix]
    e = _exponent(suffix)
    if e:
        return value.scaleb(int(e.group(1)))
    return None


def parse(value: object) -> Decimal | None:
    """The quantity as a Decimal; ints and floats (JSON numbers) are accepted too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        return _parse_text(value.strip()) if value else None
    return None


def show(value: object) -> str:
    return value if isinstance(value, str) else str(value)
