"""Writes the response-time report from the table.

    python -m chalicelib.reporting --out .run/report.html [--lang es] [--days 7] [--sla x:public=30m] [--local]

On AWS it reads ``TABLE_NAME`` with the environment's credentials (an operator's);
``--local`` reads the table of the running ``make run`` stack instead.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.reporting.data import TableReader
from chalicelib.reporting.html import LANGUAGES, render
from chalicelib.reporting.model import DEFAULT_RESOLUTION_SLA_SECONDS, Crisis, SlaTargets, build_report

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_OUT = Path(".run/report.html")


def write_report(
    client: DynamoDBClient,
    table_name: str,
    out: Path,
    *,
    lang: str = "en",
    now: datetime | None = None,
    sla: SlaTargets | None = None,
    resolution_sla: SlaTargets | None = None,
    window: timedelta = timedelta(days=7),
    crises: Sequence[Crisis] | None = None,
) -> Path:
    """Scan the table, compute, write the page to ``out``; returns its absolute path."""
    conversations = TableReader(client, table_name).conversations()
    report = build_report(
        conversations,
        now=now or datetime.now(UTC),
        table_name=table_name,
        sla=sla,
        resolution_sla=resolution_sla,
        window=window,
        crises=crises,
    )
    page = render(report, lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out.resolve()


def _local_table() -> str:
    """Point boto3 at the running ``make run`` stack; its table's name."""
    from local.defaults import aws_environment, read_state

    state = read_state()
    os.environ.update(aws_environment(state["moto_url"]))
    return str(state["table_name"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.reporting", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write the page (default {DEFAULT_OUT})")
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=os.environ.get("REPORT_LANGUAGE") or "en",
        help="labels in English or Spanish (default: REPORT_LANGUAGE, else en)",
    )
    parser.add_argument("--days", type=float, default=7, help="the period the charts cover (default 7 days)")
    parser.add_argument(
        "--sla",
        action="append",
        default=[],
        metavar="CHANNEL=DURATION",
        help="first-response target, e.g. x:public=30m, messenger=12h, private=24h (repeatable)",
    )
    parser.add_argument(
        "--resolution-sla",
        action="append",
        default=[],
        metavar="CHANNEL=DURATION",
        help="resolution target, same form (default 3 days)",
    )
    parser.add_argument("--local", action="store_true", help="read the table of the running `make run` stack")
    args = parser.parse_args(argv)

    table = _local_table() if args.local else os.environ.get("TABLE_NAME")
    if not table:
        parser.error("set TABLE_NAME to the messages table (with an operator's AWS credentials), or use --local")
    try:
        sla = SlaTargets.parse(args.sla)
        resolution_sla = SlaTargets.parse(args.resolution_sla, base=DEFAULT_RESOLUTION_SLA_SECONDS)
    except ValueError as exc:
        parser.error(str(exc))

    import boto3
    from botocore.config import Config

    client = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    started = time.monotonic()
    path = write_report(
        client, table, args.out, lang=args.lang, sla=sla, resolution_sla=resolution_sla, window=timedelta(days=args.days)
    )
    print(f"Response-time report ({time.monotonic() - started:.1f} s): {path}")
    return 0
