"""When two references name one order: the key the duplicate check and the claims compare, never what is sent.

Exports write one order number in more than one way: a Mac re-export in Unicode's decomposed form (`Cafe` + a
combining accent for `Café`), a zero-width space or a byte-order mark pasted in, full-width digits from an East
Asian keyboard, and a JSON writer's `7002.0` for `7002`. Each would otherwise be a new reference, and so a new
label. The key is Unicode NFKC without invisible format characters, and a whole number written with a zero
fraction as the number. Case is kept: EasyPost's references are case-sensitive, and `ord-1` and `ORD-1` may be two
orders. The reference sent to the API and written to outputs is the row's own, unchanged (a journal or a claim
made by an older shipctl stays found under it).
"""

from __future__ import annotations

import re
import unicodedata

_ZERO_FRACTION = re.compile(r"([0-9]+)\.0+")


def reference_key(reference: str) -> str:
    key = reference
    if not key.isascii():  # ASCII is its own key: the common case costs one scan
        key = "".join(c for c in unicodedata.normalize("NFKC", key) if unicodedata.category(c) != "Cf").strip()
    if key.endswith("0") and (whole := _ZERO_FRACTION.fullmatch(key)) is not None:
        key = whole.group(1)
    return key
