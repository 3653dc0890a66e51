"""Reading the metrics the handlers print as CloudWatch does: EMF lines on standard output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Point:
    """One metric value with the dimension values printed beside it and its dimension sets."""

    value: list[float]
    unit: str
    dimensions: dict[str, str]
    sets: list[list[str]]


def points(out: str, name: str) -> list[Point]:
    """Every ``name`` value in the captured output ``out``."""
    found = []
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob: dict[str, Any] = json.loads(line)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "socialdesk"
        units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
        if name in units:
            keys = {key for group in directive["Dimensions"] for key in group}
            value = blob[name]
            found.append(
                Point(
                    value=value if isinstance(value, list) else [value],
                    unit=units[name],
                    dimensions={key: blob[key] for key in keys},
                    sets=[sorted(group) for group in directive["Dimensions"]],
                )
            )
    return found
