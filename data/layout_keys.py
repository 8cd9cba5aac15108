"""Webdataset keys for the items a dataset layout lists, the same on every machine.

An item's key starts as its path relative to the input, without the extension. :func:`unique_keys`
makes each webdataset-safe (:func:`data.shards.sanitize_key`; a name with nothing ASCII left becomes
``u`` and a hash of the path) and gives keys that collide a suffix from a hash of the path; the
first in order keeps the plain key.
"""

from __future__ import annotations

import hashlib

from data.shards import sanitize_key


def unique_keys(stems: list[str]) -> list[str]:
    """One unique webdataset key for each relative stem, in order."""
    taken: set[str] = set()
    keys: list[str] = []
    for stem in stems:
        digest = hashlib.sha1(stem.encode()).hexdigest()
        try:
            key = base = sanitize_key(stem)
        except ValueError:  # nothing ASCII left, e.g. a name in another script
            key = base = "u" + digest[:12]
        n = 1
        while key in taken:  # the first in order keeps the plain key
            key = f"{base}_{digest[:8]}" + (f"_{n}" if n > 1 else "")
            n += 1
        taken.add(key)
        keys.append(key)
    return keys
