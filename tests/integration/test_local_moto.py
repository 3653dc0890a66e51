"""The local DynamoDB (``local/moto_server.py``) behaves as DynamoDB where our code relies on it:
per-item atomicity under concurrent writers, queries that read only their partition, and writes
whose cost does not grow with the square of the item's attributes (the 400 KB limit kept).

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


@pytest.fixture
def indexed_table(moto_url: str) -> Iterator[str]:
    client = boto3.client("dynamodb")
    name = f"indexed-{next(_tables)}"
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name_, "AttributeType": "S"} for name_ in ("pk", "sk", "gpk", "gsk")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "gsk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    client.delete_table(TableName=name)


def _query_all(client: object, **request: object) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    while True:
        page = client.query(**request)  # type: ignore[attr-defined]
        keys += [(item["pk"]["S"], item["sk"]["S"]) for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return keys
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_queries_read_their_partition_in_key_order_across_pages(indexed_table: str) -> None:
    """Queries on the table and on a sparse index return exactly their partition, in
    key order both ways, page after page, among many other partitions' items."""
    client = boto3.client("dynamodb")
    items = []
    for p in range(12):
        for s in range(9):
            item = {"pk": {"S": f"P{p:02d}"}, "sk": {"S": f"S{(s * 7) % 9}"}}
            if (p + s) % 3:  # a sparse index: a third of the items carry no index keys
                item |= {"gpk": {"S": f"G{(p * s) % 4}"}, "gsk": {"S": f"T{(p + s) % 5}"}}
            items.append(item)
            client.put_item(TableName=indexed_table, Item=item)

    for forward in (True, False):
        got = _query_all(
            client,
            TableName=indexed_table,
            KeyConditionExpression="pk = :p AND sk >= :s",
            ExpressionAttributeValues={":p": {"S": "P05"}, ":s": {"S": "S3"}},
            ScanIndexForward=forward,
            Limit=2,
        )
        expected = sorted(
            ((i["pk"]["S"], i["sk"]["S"]) for i in items if i["pk"]["S"] == "P05" and i["sk"]["S"] >= "S3"),
            reverse=not forward,
        )
        assert got == expected

        got = _query_all(
            client,
            TableName=indexed_table,
            IndexName="by-g",
            KeyConditionExpression="gpk = :g AND gsk < :t",
            ExpressionAttributeValues={":g": {"S": "G2"}, ":t": {"S": "T4"}},
            ScanIndexForward=forward,
            Limit=3,
        )
        in_index = [i for i in items if i.get("gpk", {}).get("S") == "G2" and i["gsk"]["S"] < "T4"]
        expected = [
            (i["pk"]["S"], i["sk"]["S"])
            for i in sorted(
                in_index,
                key=lambda i: (i["gsk"]["S"], i["pk"]["S"], i["sk"]["S"]),
                reverse=not forward,
            )
        ]
        assert got and got == expected


def test_a_write_measures_its_item_once_and_still_refuses_an_item_over_400_kb(table: str) -> None:
    """moto sized the whole item again at each attribute it added, so a write cost the
    square of its attributes (DynamoDB's does not); the size limit holds all the same."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    client = boto3.client("dynamodb")
    attributes = 200
    item = {"pk": {"S": "wide"}} | {f"a{n}": {"S": "x" * 100} for n in range(attributes)}
    measured = 0
    size = DynamoType.size

    def counted(self: DynamoType) -> int:
        nonlocal measured
        measured += 1
        return size(self)

    DynamoType.size = counted  # type: ignore[method-assign]  # the server runs in this process
    try:
        client.put_item(TableName=table, Item=item)
    finally:
        DynamoType.size = size  # type: ignore[method-assign]
    assert 0 < measured <= 3 * (attributes + 1)  # was about attributes² (20,000)
    assert len(client.get_item(TableName=table, Key={"pk": {"S": "wide"}})["Item"]) == attributes + 1

    # Two attributes of 205 KB each: each is under the limit, the item is not.
    with pytest.raises(client.exceptions.ClientError, match="Item size has exceeded the maximum allowed size"):
        client.put_item(TableName=table, Item={"pk": {"S": "big"}, "a": {"S": "x" * 205_000}, "b": {"S": "y" * 205_000}})
    assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "big"}})
    client.put_item(TableName=table, Item={"pk": {"S": "fits"}, "a": {"S": "x" * 195_000}, "b": {"S": "y" * 195_000}})
    assert "Item" in client.get_item(TableName=table, Key={"pk": {"S": "fits"}})
