"""Writes the response-time report from the table.

    python -m chalicelib.reporting --out .run/report.html [--lang es] [--days 7] [--sla x:public=30m] [--local]

On AWS it reads ``TABLE_NAME`` with the environment's credentials (an operator's);
``--local`` reads the table of the running ``make run`` stack instead.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.ops.metrics import sla_targets
from chalicelib.reporting.crises import crises_from_items
from chalicelib.reporting.data import TableReader, conversations_from_items, tokens_from_items
from chalicelib.reporting.html import LANGUAGES, render
from chalicelib.reporting.model import SlaTargets, build_report

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
) -> Path:
    """Scan the table (once), compute, write the page to ``out``; returns its absolute path.
    SLA targets default to the ones the metrics use (``ops.metrics.sla_targets``)."""
    items = list(TableReader(client, table_name).items())
    now = now or datetime.now(UTC)
    report = build_report(
        conversations_from_items(items),
        now=now,
        table_name=table_name,
        sla=sla or sla_targets("first_response"),
        resolution_sla=resolution_sla or sla_targets("resolution"),
        window=window,
        crises=crises_from_items(items, since=now - window),
        tokens=tokens_from_items(items),
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
        sla = SlaTargets.parse(args.sla, base=sla_targets("first_response").targets)
        resolution_sla = SlaTargets.parse(args.resolution_sla, base=sla_targets("resolution").targets)
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
