"""Load the shared webhook fixtures in ``tests/events``.

``load_event(name)`` returns a fresh, mutable copy of the payload (tests may edit it);
``event_bytes(name)`` returns the compact JSON body a platform would POST, which is
what the signature is computed over. ``name`` may omit the ``.json`` suffix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def event_path(name: str) -> Path:
    """The fixture file for ``name`` (``"meta_whatsapp_text"`` or ``"meta_whatsapp_text.json"``)."""
    filename = name if name.endswith(".json") else f"{name}.json"
    path = EVENTS_DIR / filename
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in EVENTS_DIR.glob("*.json")))
        raise FileNotFoundError(f"no webhook fixture {filename!r} in {EVENTS_DIR} (available: {available})")
    return path


def load_event(name: str) -> dict[str, Any]:
    """The fixture as a new dict (every call returns an independent copy)."""
    payload = json.loads(event_path(name).read_text(encoding="utf-8"))
    if not isinstance(payload, dict):
        raise ValueError(f"fixture {name!r} is not a JSON object")
    return payload


def event_bytes(name: str) -> bytes:
    """The fixture as the compact JSON body a platform sends (non-ASCII escaped as ``\\uXXXX``, as Meta signs it)."""
    return json.dumps(load_event(name), separators=(",", ":")).encode("utf-8")


def all_event_names() -> list[str]:
    """Every fixture name, without the ``.json`` suffix."""
    return sorted(p.stem for p in EVENTS_DIR.glob("*.json"))
