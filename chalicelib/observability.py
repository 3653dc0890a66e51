"""Structured logs and metrics (Powertools), shared by every handler.

Logs carry ids and counts, never message text or names: customer words and
personal data stay out of CloudWatch.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from chalicelib.redaction import install

SERVICE = "socialdesk"

logger = Logger(service=SERVICE)
install(logger)  # text, names, phone numbers and secrets never reach CloudWatch (LOG_FULL_TEXT=true to debug)
metrics = Metrics(namespace=SERVICE, service=SERVICE)
