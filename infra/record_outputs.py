"""Copy the data stack's outputs into the Chalice stage config and IAM policy.

``infra/template.json`` creates the table and the dead-letter queue; ``chalice deploy``
needs their names and ARNs before it runs (``app.py`` reads ``STREAM_ARN`` at import
time to declare the stream event source). This writes, for one stage:

* ``.chalice/config.json`` → ``stages.<stage>.environment_variables``:
  ``TABLE_NAME``, ``STREAM_ARN``, ``DLQ_URL``;
* ``.chalice/policy-<stage>.json`` (the stage's ``iam_policy_file``): every DynamoDB
  table ARN becomes the stack's table (``/index/...`` and ``/stream/*`` suffixes
  kept), every SQS ARN the stack's queue, and every other ARN gets the stack's
  region and account id in place of the placeholders.

Usage::

    python -m infra.record_outputs --stage prod --stack socialdesk-prod
    python -m infra.record_outputs --stage dev --outputs-file outputs.json   # offline

``--outputs-file`` takes any of: ``{"TableName": ..., ...}``, the list from
``aws cloudformation describe-stacks --query 'Stacks[0].Outputs'``, or the whole
``describe-stacks`` response.

The transformations are pure functions (``apply_to_config``, ``apply_to_policy``)
so they can be tested without AWS.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_OUTPUTS = ("TableName", "TableStreamArn", "DeadLetterQueueUrl", "DeadLetterQueueArn")


class OutputsError(ValueError):
    """The stack outputs are missing something or do not fit together."""


@dataclass(frozen=True)
class Arn:
    """The six fields of an ARN (``resource`` keeps any ``/`` or ``:`` it has)."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn | None:
        """The ARN in ``text``, or None if it is not one (e.g. ``*``)."""
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            return None
        return cls(*parts[1:])

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


@dataclass(frozen=True)
class StackOutputs:
    """What the stage needs from the data stack."""

    table_name: str
    stream_arn: str
    dlq_url: str
    dlq_arn: str

    @property
    def table_arn(self) -> str:
        """The table's ARN, derived from its stream's."""
        return self.stream_arn.split("/stream/", 1)[0]

    @property
    def region(self) -> str:
        return self._arn(self.stream_arn).region

    @property
    def account(self) -> str:
        return self._arn(self.stream_arn).account

    @staticmethod
    def _arn(text: str) -> Arn:
        arn = Arn.parse(text)
        if arn is None:
            raise OutputsError(f"not an ARN: {text!r}")
        return arn

    def validate(self) -> StackOutputs:
        """Check the outputs describe one table and one queue in one account and region."""
        stream, queue = self._arn(self.stream_arn), self._arn(self.dlq_arn)
        if stream.service != "dynamodb" or "/stream/" not in stream.resource:
            raise OutputsError(f"TableStreamArn is not a DynamoDB stream ARN: {self.stream_arn}")
        if stream.resource.split("/")[1] != self.table_name:
            raise OutputsError(f"TableStreamArn {self.stream_arn} is not the stream of table {self.table_name}")
        if queue.service != "sqs" or not self.dlq_url.endswith(f"/{queue.account}/{queue.resource}"):
            raise OutputsError(f"DeadLetterQueueUrl {self.dlq_url} and DeadLetterQueueArn {self.dlq_arn} disagree")
        if (queue.region, queue.account) != (stream.region, stream.account):
            raise OutputsError("the table and the queue are in different regions or accounts")
        return self


def parse_outputs(document: Any) -> StackOutputs:
    """Stack outputs from a dict, an ``Outputs`` list or a ``describe-stacks`` response."""
    if isinstance(document, dict) and "Stacks" in document:
        document = document["Stacks"][0].get("Outputs", [])
    if isinstance(document, list):
        document = {entry["OutputKey"]: entry["OutputValue"] for entry in document}
    if not isinstance(document, dict):
        raise OutputsError("outputs must be a JSON object or a list of OutputKey/OutputValue entries")
    missing = [key for key in REQUIRED_OUTPUTS if not document.get(key)]
    if missing:
        raise OutputsError(f"stack outputs lack {', '.join(missing)}")
    return StackOutputs(
        table_name=document["TableName"],
        stream_arn=document["TableStreamArn"],
        dlq_url=document["DeadLetterQueueUrl"],
        dlq_arn=document["DeadLetterQueueArn"],
    ).validate()


def policy_file_name(config: dict[str, Any], stage: str) -> str:
    """The stage's IAM policy file (Chalice's default is ``policy-<stage>.json``)."""
    stage_config = config.get("stages", {}).get(stage, {})
    return stage_config.get("iam_policy_file") or config.get("iam_policy_file") or f"policy-{stage}.json"


def apply_to_config(config: dict[str, Any], stage: str, outputs: StackOutputs) -> dict[str, Any]:
    """A copy of the Chalice config with the stage's resource variables set."""
    if stage not in config.get("stages", {}):
        raise OutputsError(f"stage {stage!r} is not in .chalice/config.json")
    updated = copy.deepcopy(config)
    variables = updated["stages"][stage].setdefault("environment_variables", {})
    variables.update(TABLE_NAME=outputs.table_name, STREAM_ARN=outputs.stream_arn, DLQ_URL=outputs.dlq_url)
    return updated


def apply_to_policy(policy: dict[str, Any], outputs: StackOutputs) -> dict[str, Any]:
    """A copy of the IAM policy pointing at the stack's table, stream and queue."""
    updated = copy.deepcopy(policy)
    for statement in updated.get("Statement", []):
        for key in ("Resource", "NotResource"):
            if isinstance(statement.get(key), str):
                statement[key] = rewrite_resource(statement[key], outputs)
            elif isinstance(statement.get(key), list):
                statement[key] = [rewrite_resource(resource, outputs) for resource in statement[key]]
    return updated


def rewrite_resource(resource: str, outputs: StackOutputs) -> str:
    """One policy resource, pointed at the stack's resources, region and account."""
    arn = Arn.parse(resource)
    if arn is None:
        return resource
    if arn.service == "dynamodb" and arn.resource.startswith("table/"):
        _, _, suffix = arn.resource.partition("/")[2].partition("/")
        if not suffix:
            return outputs.table_arn
        if suffix.startswith("stream/") and suffix != "stream/*":
            return outputs.stream_arn
        return f"{outputs.table_arn}/{suffix}"
    if arn.service == "sqs":
        return outputs.dlq_arn
    if arn.region and arn.account:
        return str(Arn(arn.partition, arn.service, outputs.region, outputs.account, arn.resource))
    return resource


def fetch_outputs(stack_name: str, region: str | None = None) -> Any:
    """The ``describe-stacks`` response of ``stack_name`` (needs AWS credentials)."""
    import boto3

    return boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack_name)


def _write_json(path: Path, document: dict[str, Any]) -> bool:
    text = json.dumps(document, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m infra.record_outputs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, help="Chalice stage to update (dev, prod)")
    parser.add_argument("--stack", help="CloudFormation stack name (default: socialdesk-<stage>)")
    parser.add_argument("--outputs-file", type=Path, help="read the outputs from this JSON file instead of AWS")
    parser.add_argument("--region", help="AWS region of the stack (default: the AWS CLI/boto3 default)")
    parser.add_argument("--project-dir", type=Path, default=ROOT, help="the Chalice project (default: this repo)")
    args = parser.parse_args(argv)

    try:
        if args.outputs_file:
            document = json.loads(args.outputs_file.read_text())
        else:
            stack = args.stack or f"socialdesk-{args.stage}"
            try:
                document = fetch_outputs(stack, args.region)
            except Exception as exc:  # botocore: no credentials, no such stack, no network
                raise OutputsError(f"could not read the outputs of stack {stack}: {exc}") from exc
        outputs = parse_outputs(document)
        chalice_dir = args.project_dir / ".chalice"
        config_path = chalice_dir / "config.json"
        config = json.loads(config_path.read_text())
        policy_path = chalice_dir / policy_file_name(config, args.stage)
        new_config = apply_to_config(config, args.stage, outputs)
        new_policy = apply_to_policy(json.loads(policy_path.read_text()), outputs)
    except (OutputsError, OSError, json.JSONDecodeError) as exc:
        print(f"record_outputs: {exc}", file=sys.stderr)
        return 1
    for path, document in ((config_path, new_config), (policy_path, new_policy)):
        changed = _write_json(path, document)
        print(f"{'updated' if changed else 'unchanged'}: {path.relative_to(args.project_dir)}")
    print(f"stage {args.stage}: table {outputs.table_name}, stream {outputs.stream_arn}, queue {outputs.dlq_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
