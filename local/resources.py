"""The table and the dead-letter queue for the local stack, from ``infra/template.json``.

The CloudFormation template is the one description of the data plane: this module
reads the same file and turns its resource ``Properties`` into the boto3 calls
CloudFormation would make (``CreateTable`` + ``UpdateTimeToLive``, ``CreateQueue``),
so the local table has exactly the keys, index, stream and TTL of the deployed one.

Properties that mean nothing locally (point-in-time recovery, encryption at rest,
deletion protection, tags) are skipped, and not even resolved. Only the intrinsic functions the template needs are understood:
``Ref`` and ``Fn::Sub`` over ``Stage`` and the ``AWS::`` pseudo parameters.

Creating is idempotent: an existing table or queue of the same name is reused.
Works against moto, in-process (``mock_aws``) or as a server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account

# CloudFormation AWS::SQS::Queue properties that are CreateQueue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedrivePolicy",
    "RedriveAllowPolicy",
)
# The table properties that matter locally; the rest are not even resolved.
_TABLE_PROPERTIES = (
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "TimeToLiveSpecification",
)
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template holds something this translation does not understand."""


@dataclass(frozen=True)
class LocalResources:
    """Where the local stack's data lives."""

    table_name: str
    stream_arn: str
    dlq_url: str


def create_local_resources(
    *,
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    template_path: Path | str,
    stage: str = "local",
) -> LocalResources:
    """Create (or reuse) the template's table and queue for ``stage``.

    Parameters
    ----------
    dynamodb, sqs:
        boto3 clients, normally pointed at moto.
    template_path:
        ``infra/template.json``.
    stage:
        The value of the template's ``Stage`` parameter (names become
        ``socialdesk-<stage>-...``); ``local`` is allowed here although the
        template only accepts ``dev`` and ``prod`` on AWS.
    """
    template = json.loads(Path(template_path).read_text())
    parameters = {
        "Stage": stage,
        "AWS::Region": dynamodb.meta.region_name,
        "AWS::AccountId": LOCAL_ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": f"socialdesk-{stage}",
        "AWS::URLSuffix": "amazonaws.com",
    }
    table = _single_resource(template, "AWS::DynamoDB::Table")
    queue = _single_resource(template, "AWS::SQS::Queue")
    table_name, stream_arn = _ensure_table(dynamodb, _resolved(table, _TABLE_PROPERTIES, parameters))
    dlq_url = _ensure_queue(sqs, _resolved(queue, ("QueueName", *_QUEUE_ATTRIBUTES), parameters))
    return LocalResources(table_name=table_name, stream_arn=stream_arn, dlq_url=dlq_url)


def resolve(value: Any, parameters: dict[str, str]) -> Any:
    """Replace ``Ref`` and ``Fn::Sub`` in ``value`` using ``parameters``.

    Any other intrinsic function raises ``TemplateError``, so a template change
    this module cannot follow fails loudly instead of creating something else.
    """
    if isinstance(value, list):
        return [resolve(item, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        key, argument = next(iter(value.items()))
        if key == "Ref":
            return _lookup(argument, parameters)
        if key == "Fn::Sub":
            return _substitute(argument, parameters)
        if key.startswith("Fn::") or key == "Condition":
            raise TemplateError(f"{key} is not supported by local/resources.py")
    return {key: resolve(item, parameters) for key, item in value.items()}


def table_request(properties: dict[str, Any]) -> dict[str, Any]:
    """CreateTable arguments for resolved ``AWS::DynamoDB::Table`` properties."""
    request: dict[str, Any] = {
        "TableName": properties["TableName"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in properties:
        request["ProvisionedThroughput"] = _throughput(properties["ProvisionedThroughput"])
    indexes = []
    for index in properties.get("GlobalSecondaryIndexes", []):
        entry = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        if "ProvisionedThroughput" in index:
            entry["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
        indexes.append(entry)
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    local_indexes = [
        {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        for index in properties.get("LocalSecondaryIndexes", [])
    ]
    if local_indexes:
        request["LocalSecondaryIndexes"] = local_indexes
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


def queue_request(properties: dict[str, Any]) -> dict[str, Any]:
    """CreateQueue arguments for resolved ``AWS::SQS::Queue`` properties."""
    if "QueueName" not in properties:
        raise TemplateError("the queue needs a QueueName to be found again locally")
    attributes = {}
    for name in _QUEUE_ATTRIBUTES:
        if name in properties:
            attributes[name] = _attribute_string(properties[name])
    return {"QueueName": properties["QueueName"], "Attributes": attributes}


def _single_resource(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    # ``Fn::ForEach::...`` entries (the per-channel alarms) are lists the transform expands: no table or queue there.
    found = [r for r in template.get("Resources", {}).values() if isinstance(r, dict) and r.get("Type") == resource_type]
    if len(found) != 1:
        raise TemplateError(f"expected exactly one {resource_type} in the template, found {len(found)}")
    return found[0]


def _resolved(resource: dict[str, Any], names: tuple[str, ...], parameters: dict[str, str]) -> dict[str, Any]:
    properties = resource.get("Properties", {})
    return {name: resolve(properties[name], parameters) for name in names if name in properties}


def _lookup(name: str, parameters: dict[str, str]) -> str:
    if name not in parameters:
        raise TemplateError(f"cannot resolve {name!r} locally")
    return parameters[name]


def _substitute(argument: str | list[Any], parameters: dict[str, str]) -> str:
    if isinstance(argument, list):
        text, extra = argument
        parameters = {**parameters, **{k: resolve(v, parameters) for k, v in extra.items()}}
    else:
        text = argument
    substituted = _SUB_VARIABLE.sub(lambda match: _lookup(match.group(1), parameters), text)
    return substituted.replace("${!", "${")


def _throughput(value: dict[str, Any]) -> dict[str, int]:
    return {key: int(value[key]) for key in ("ReadCapacityUnits", "WriteCapacityUnits")}


def _attribute_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _error_code(exc: Exception) -> str | None:
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


def _ensure_table(client: DynamoDBClient, properties: dict[str, Any]) -> tuple[str, str]:
    name = properties["TableName"]
    try:
        table = client.describe_table(TableName=name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        table = client.create_table(**table_request(properties))["TableDescription"]
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    if "StreamSpecification" in properties and not table.get("LatestStreamArn"):
        raise TemplateError(f"table {name} exists without a stream; delete it and run again")
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        status = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return name, table.get("LatestStreamArn", "")


def _ensure_queue(client: SQSClient, properties: dict[str, Any]) -> str:
    request = queue_request(properties)
    try:
        return client.create_queue(**request)["QueueUrl"]
    except Exception as exc:
        # Same name, other attributes (e.g. an older template): reuse the queue as it is.
        if _error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        return client.get_queue_url(QueueName=request["QueueName"])["QueueUrl"]
