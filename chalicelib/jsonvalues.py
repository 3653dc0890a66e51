"""Reading optional parts of a JSON document (a platform's payload, an API's answer): an object
or an array where one is expected, an empty one otherwise.

Apart from ``http.py`` so that a webhook's normalizer does not load the HTTP client for them.
"""

from __future__ import annotations

from typing import Any


def json_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (optional nested fields)."""
    return value if isinstance(value, dict) else {}


def json_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
