"""In-memory stand-ins for the boto3 DynamoDB and S3 clients that bill every request as AWS does.

They implement exactly the calls and parameters the aggregator and the chart builder make
(PutItem with its three condition expressions, BatchGetItem with projections and
UnprocessedKeys, Query with Limit and pagination, GetObject, PutObject) and refuse anything
else, so a redesign that calls something new fails loudly instead of being priced at zero.
tests/integration/test_cost_meter_on_moto.py checks the request counts against moto.

Billing rules, from the DynamoDB developer guide:
- item size (CapacityUnitCalculations.html, "DynamoDB item sizes and formats"): the sum of
  attribute names and values; strings and binaries by their UTF-8 or raw bytes; numbers about
  1 byte per 2 significant digits plus 1; List and Map 3 bytes plus 1 byte per element; null
  and Boolean 1 byte. Sets are the sum of their elements (the guide gives them no overhead).
- capacity (read-write-operations.html, "Capacity unit consumption"): a write is 1 unit per
  1 KB of the larger of the item before and after it; a write whose condition fails still
  consumes units; an eventually consistent read is half a unit per 4 KB; BatchGetItem rounds
  each item up to 4 KB on its own; Query rounds the sum of the items it read up to 4 KB; a
  projection does not lower the units (they come from the item's size); reading an item that
  does not exist still consumes half a unit.
- Query pages stop at 1 MB of items read (Query.Pagination.html); BatchGetItem answers at most
  16 MB and leaves the rest in UnprocessedKeys (API_BatchGetItem.html).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

WRITE_UNIT_BYTES = 1024  # one write request unit per 1 KB written (read-write-operations.html)
READ_UNIT_BYTES = 4096  # one read request unit per 4 KB read, strongly consistent (same page)
EVENTUAL_READ_FACTOR = 0.5  # eventually consistent reads cost half (same page)
QUERY_PAGE_BYTES = 1024 * 1024  # Query returns at most 1 MB per call (Query.Pagination.html)
BATCH_GET_MAX_KEYS = 100  # BatchGetItem reads at most 100 items per call (API_BatchGetItem.html)
BATCH_GET_MAX_BYTES = 16 * 1024 * 1024  # and answers at most 16 MB (API_BatchGetItem.html)
LIST_MAP_OVERHEAD = 3  # bytes a List or Map adds, plus one per element (CapacityUnitCalculations.html)


def attribute_bytes(value: dict[str, Any]) -> int:
    """One attribute value's size, as the developer guide counts it."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-+").replace(".", "").lstrip("0").rstrip("0")
        exponent = digits.find("e")
        if exponent >= 0:
            digits = digits[:exponent].rstrip("0")
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "NS":
        return sum(attribute_bytes({"N": v}) for v in inner)
    if kind == "BS":
        return sum(map(len, inner))
    if kind == "M":
        return LIST_MAP_OVERHEAD + sum(len(k.encode()) + attribute_bytes(v) + 1 for k, v in inner.items())
    if kind == "L":
        return LIST_MAP_OVERHEAD + sum(attribute_bytes(v) + 1 for v in inner)
    return 1  # BOOL, NULL


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


def eventual_read_units(size: int) -> float:
    """Half a unit per started 4 KB; an absent item (size 0) still costs half a unit."""
    return EVENTUAL_READ_FACTOR * strong_read_units(size)


def strong_read_units(size: int) -> float:
    """A unit per started 4 KB; an absent item (size 0) still costs one."""
    return float(max(1, math.ceil(size / READ_UNIT_BYTES)))


@dataclass
class Usage:
    """What one function's calls cost: requests by operation, units, and S3 requests by bucket."""

    requests: Counter[str] = field(default_factory=Counter)
    write_units: int = 0
    read_units: float = 0.0
    failed_conditional_writes: int = 0
    bytes_read: int = 0
    s3_puts: Counter[str] = field(default_factory=Counter)
    s3_gets: Counter[str] = field(default_factory=Counter)

    def add(self, other: Usage) -> None:
        self.requests.update(other.requests)
        self.write_units += other.write_units
        self.read_units += other.read_units
        self.failed_conditional_writes += other.failed_conditional_writes
        self.bytes_read += other.bytes_read
        self.s3_puts.update(other.s3_puts)
        self.s3_gets.update(other.s3_gets)


@dataclass
class Meter:
    """Usage by scope (the function whose calls are running), and the largest item per table key."""

    scope: str = "other"
    usage: dict[str, Usage] = field(default_factory=dict)
    # (table, what) -> largest item size written; `what` from the item by `size_label`
    max_item: dict[tuple[str, str], int] = field(default_factory=dict)

    def current(self) -> Usage:
        return self.usage.setdefault(self.scope, Usage())


@dataclass(frozen=True)
class StreamRecord:
    """One NEW_IMAGE record of a table's stream, as a successful PutItem produces it."""

    table: str
    event_name: str  # INSERT or MODIFY
    keys: dict[str, Any]
    new_image: dict[str, Any]
    size: int  # the image's DynamoDB size


class EvictedItemRead(RuntimeError):
    """A read reached an item the stand-in no longer keeps: the figures would not be exact."""


def _client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


_TERM = re.compile(
    r"^(?:attribute_not_exists\((?P<absent>[#\w]+)\)|(?P<name>[#\w]+) (?P<op>=|<=|<) (?P<value>:\w+))$"
)


def _condition_holds(
    condition: str, item: dict[str, Any] | None, names: dict[str, str], values: dict[str, Any]
) -> bool:
    """The condition expressions the product writes: terms joined by OR, each attribute_not_exists(a),
    a = :v, a <= :v or a < :v (numbers compared as numbers)."""
    for term in condition.split(" OR "):
        match = _TERM.match(term.strip())
        if match is None:
            raise NotImplementedError(f"condition {condition!r} is not one the stand-in knows")
        if match["absent"]:
            if item is None or names.get(match["absent"], match["absent"]) not in item:
                return True
            continue
        if item is None:
            continue
        stored = item.get(names.get(match["name"], match["name"]))
        wanted = values[match["value"]]
        if stored is None or stored.keys() != wanted.keys():
            continue
        ((kind, left),) = stored.items()
        right = wanted[kind]
        if kind == "N":
            left, right = float(left), float(right)
        holds = {"=": left == right, "<=": left <= right, "<": left < right}[match["op"]]
        if holds:
            return True
    return False


@dataclass
class _Table:
    hash_key: str
    range_key: str | None
    stream: bool
    # hash key value -> sorted range key values, and (hash, range) -> (item, size)
    ranges: dict[Any, list[Any]] = field(default_factory=dict)
    items: dict[tuple[Any, Any], tuple[dict[str, Any], int]] = field(default_factory=dict)
    # hash key value -> the newest range key evicted (reads at or below it are refused)
    evicted_up_to: dict[Any, Any] = field(default_factory=dict)


def _key_value(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    return int(value) if kind == "N" else value


class MeteredDynamoDB:
    """The DynamoDB low-level client calls the product makes, billed into a Meter.

    `keep_newest` bounds memory on a day's run: per partition key only the newest items are
    kept, and any read that would reach an older one raises EvictedItemRead, so a result is
    either exact or refused.
    """

    def __init__(self, meter: Meter, keep_newest: int | None = None) -> None:
        self._meter = meter
        self._tables: dict[str, _Table] = {}
        self._keep_newest = keep_newest
        self.stream: list[StreamRecord] = []
        self.size_label: Callable[[str, dict[str, Any]], str] = lambda table, _item: table

    def create_table(self, name: str, hash_key: str, range_key: str | None, stream: bool) -> None:
        self._tables[name] = _Table(hash_key, range_key, stream)

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            raise _client_error("ResourceNotFoundException", "DescribeTable")
        return self._tables[name]

    def _key(self, table: _Table, item: dict[str, Any]) -> tuple[Any, Any]:
        return (
            _key_value(item[table.hash_key]),
            _key_value(item[table.range_key]) if table.range_key else None,
        )

    def _stored(self, table: _Table, key: tuple[Any, Any]) -> tuple[dict[str, Any], int] | None:
        found = table.items.get(key)
        evicted = table.evicted_up_to.get(key[0]) if found is None and table.range_key else None
        if evicted is not None and key[1] <= evicted:
            raise EvictedItemRead(f"{key} was evicted")
        return found

    def put_item(
        self,
        TableName: str,  # boto3's parameter names
        Item: dict[str, Any],
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        usage = self._meter.current()
        usage.requests["PutItem"] += 1
        table = self._table(TableName)
        key = self._key(table, Item)
        before = self._stored(table, key)
        size = item_bytes(Item)
        usage.write_units += max(1, math.ceil(max(size, before[1] if before else 0) / WRITE_UNIT_BYTES))
        if ConditionExpression is not None and not _condition_holds(
            ConditionExpression,
            before[0] if before else None,
            ExpressionAttributeNames or {},
            ExpressionAttributeValues or {},
        ):
            usage.failed_conditional_writes += 1
            raise _client_error("ConditionalCheckFailedException", "PutItem")
        # The product builds a fresh item for every put and never changes it after: kept as given.
        table.items[key] = (Item, size)
        label = (TableName, self.size_label(TableName, Item))
        self._meter.max_item[label] = max(self._meter.max_item.get(label, 0), size)
        if before is None and table.range_key:
            sorted_ranges = table.ranges.setdefault(key[0], [])
            bisect.insort(sorted_ranges, key[1])
            if self._keep_newest is not None and len(sorted_ranges) > self._keep_newest:
                oldest = sorted_ranges.pop(0)
                del table.items[(key[0], oldest)]
                table.evicted_up_to[key[0]] = oldest
        if table.stream:
            keys = {table.hash_key: Item[table.hash_key]}
            if table.range_key:
                keys[table.range_key] = Item[table.range_key]
            self.stream.append(StreamRecord(TableName, "MODIFY" if before else "INSERT", keys, Item, size))
        return {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        usage = self._meter.current()
        usage.requests["BatchGetItem"] += 1
        if sum(len(r["Keys"]) for r in RequestItems.values()) > BATCH_GET_MAX_KEYS:
            raise _client_error("ValidationException", "BatchGetItem")
        responses: dict[str, list[dict[str, Any]]] = {}
        unprocessed: dict[str, Any] = {}
        answered = 0
        for name, request in RequestItems.items():
            table = self._table(name)
            projection = _projection(request)
            found: list[dict[str, Any]] = []
            for index, key in enumerate(request["Keys"]):
                stored = self._stored(table, self._key(table, key))
                item = stored[0] if stored else None
                returned = item if item is None or projection is None else _project(item, projection)
                returned_size = item_bytes(returned) if returned is not None else 0
                if answered + returned_size > BATCH_GET_MAX_BYTES:
                    unprocessed[name] = {**request, "Keys": request["Keys"][index:]}
                    break
                answered += returned_size
                usage.read_units += eventual_read_units(stored[1] if stored else 0)
                if stored:
                    usage.bytes_read += stored[1]
                if returned is not None:
                    found.append(returned)
            responses[name] = found
        return {"Responses": responses, "UnprocessedKeys": unprocessed}

    def query(
        self,
        TableName: str,
        KeyConditionExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ScanIndexForward: bool = True,
        Limit: int | None = None,
        ExclusiveStartKey: dict[str, Any] | None = None,
        ConsistentRead: bool = False,
    ) -> dict[str, Any]:
        usage = self._meter.current()
        usage.requests["Query"] += 1
        table = self._table(TableName)
        match = re.fullmatch(
            r"(\w+) = (:\w+)(?: AND (\w+) BETWEEN (:\w+) AND (:\w+))?", KeyConditionExpression
        )
        if (
            match is None
            or match[1] != table.hash_key
            or table.range_key is None
            or match[3] not in (None, table.range_key)
        ):
            raise NotImplementedError(f"key condition {KeyConditionExpression!r}")
        hash_value = _key_value(ExpressionAttributeValues[match[2]])
        ranges = table.ranges.get(hash_value, [])
        if match[3] is not None:
            low = _key_value(ExpressionAttributeValues[match[4]])
            high = _key_value(ExpressionAttributeValues[match[5]])
            ranges = [r for r in ranges if low <= r <= high]
        order = ranges if ScanIndexForward else ranges[::-1]
        if ExclusiveStartKey is not None:
            after = _key_value(ExclusiveStartKey[table.range_key])
            order = [r for r in order if (r > after if ScanIndexForward else r < after)]
        items: list[dict[str, Any]] = []
        read = 0
        more = False
        for range_value in order:
            item, size = table.items[(hash_value, range_value)]
            if (Limit is not None and len(items) == Limit) or (items and read + size > QUERY_PAGE_BYTES):
                more = True
                break
            items.append(item)
            read += size
        if hash_value in table.evicted_up_to and (ScanIndexForward or not more):
            evicted = table.evicted_up_to[hash_value]
            if match[3] is None or _key_value(ExpressionAttributeValues[match[4]]) <= evicted:
                raise EvictedItemRead(f"a query of {hash_value} reached evicted items")
        usage.read_units += strong_read_units(read) if ConsistentRead else eventual_read_units(read)
        usage.bytes_read += read
        answer: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        if more and items:
            answer["LastEvaluatedKey"] = {
                table.hash_key: items[-1][table.hash_key],
                table.range_key: items[-1][table.range_key],
            }
        return answer


def _projection(request: dict[str, Any]) -> list[str] | None:
    expression = request.get("ProjectionExpression")
    if expression is None:
        return None
    names = request.get("ExpressionAttributeNames", {})
    return [names.get(part.strip(), part.strip()) for part in expression.split(",")]


def _project(item: dict[str, Any], attributes: list[str]) -> dict[str, Any]:
    return {name: item[name] for name in attributes if name in item}


def _etag(data: bytes) -> str:
    """S3's ETag of a single-part upload: the MD5 of the body, quoted."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


class _Body:
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def read(self) -> bytes:
        return self._stream.read()


class MeteredS3:
    """GetObject and PutObject, billed per request (a GET of a missing key is billed too), with
    ETags and the conditional PUTs (IfMatch, IfNoneMatch "*") the site's manifest uses."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._objects: dict[tuple[str, str], tuple[bytes, str]] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self._meter.current().s3_gets[Bucket] += 1
        found = self._objects.get((Bucket, Key))
        if found is None:
            raise _client_error("NoSuchKey", "GetObject")
        return {"Body": _Body(found[0]), "ContentType": found[1], "ETag": _etag(found[0])}

    def put_object(
        self,
        Bucket: str,
        Key: str,
        Body: bytes,
        ContentType: str = "binary/octet-stream",
        IfMatch: str | None = None,
        IfNoneMatch: str | None = None,
        **_headers: str,
    ) -> dict[str, Any]:
        self._meter.current().s3_puts[Bucket] += 1
        found = self._objects.get((Bucket, Key))
        if (IfMatch is not None and (found is None or _etag(found[0]) != IfMatch)) or (
            IfNoneMatch == "*" and found is not None
        ):
            raise _client_error("PreconditionFailed", "PutObject")
        self._objects[(Bucket, Key)] = (Body, ContentType)
        return {"ETag": _etag(Body)}
