"""The local DynamoDB keeps DynamoDB's per-item atomicity under concurrent writers.

Our ledgers and the crisis store count a thing as new only when a conditional write's
``ALL_OLD`` answer says it was absent; that is sound on DynamoDB because it applies each
write to an item atomically. moto's threaded server did not (two writers were both told
"new"), which made a crisis of 45 complaints count 46 now and then.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import boto3
import pytest

_tables = itertools.count(1)


@pytest.fixture
def table(moto_url: str) -> Iterator[str]:
    client = boto3.client("dynamodb")
    name = f"atomic-{next(_tables)}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    client.delete_table(TableName=name)


def test_concurrent_writers_each_see_an_entry_as_new_exactly_once(table: str) -> None:
    writers, entries = 4, 150
    told_new = [0] * writers
    errors: list[BaseException] = []

    def write(index: int) -> None:
        client = boto3.client("dynamodb")  # one per thread, like one per Lambda
        try:
            for entry in range(entries):
                answer = client.update_item(
                    TableName=table,
                    Key={"pk": {"S": "page"}},
                    UpdateExpression="SET #entry = :seen ADD writes :one",
                    ExpressionAttributeNames={"#entry": f"e{entry}"},
                    ExpressionAttributeValues={":seen": {"S": "x"}, ":one": {"N": "1"}},
                    ReturnValues="ALL_OLD",
                )
                if f"e{entry}" not in answer.get("Attributes", {}):
                    told_new[index] += 1
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "page"}})["Item"]
    assert int(item["writes"]["N"]) == writers * entries  # no write lost
    assert sum(told_new) == entries  # each entry new to exactly one writer
