"""The embedded AWS: moto's server, with stream event source mappings stored but not run.

moto invokes a mapped function on every Kinesis put and DynamoDB stream write, through Docker
(none here), one record at a time and without Lambda's batching semantics; it logs a failure
into the function's log group each time. `tickstream consume` is what runs the mappings
locally, so moto keeps them as configuration only, as docs/local-aws.md describes.

moto's server also redoes per request work whose answer cannot change while it runs; a local
replay makes tens of thousands of requests, so `speed_up_moto` keeps such answers, and stops
Nagle's algorithm from holding each response back.
Every response stays byte for byte what moto would send; see each patch for why.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from typing import Any

import moto.backends
import moto.core.responses
from moto.awslambda.models import LambdaBackend
from moto.core import serialize
from moto.core.constants import MISSING
from moto.core.utils import get_value, method_names_from_class
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import main


def _stored_not_run(*_args: Any, **_kwargs: Any) -> None:
    """The local runner, not moto, delivers stream records to functions."""


def speed_up_moto() -> None:
    """Per request costs of moto 5.2's server that a replay pays tens of thousands of times.

    - Nagle's algorithm: werkzeug sends the status and headers, then the body, in two writes;
      the body waited for the client's acknowledgement of the headers (about 4 ms a request).
    - moto lists its package directory (os.listdir and an isdir per entry) to route every
      request, and lists the handler class's methods with inspect.getmembers to find the
      action: both are fixed once moto is imported.
    - The response serializer asks six alias providers, for every member of every value, which
      keys to look for; for a plain dict the answer depends on the shape, its parent shape
      and the member's name only, so it is asked once (a DynamoDB stream GetRecords of 1,000
      records took 2 s, nearly all of it here).
    - A DynamoDB Query on a table's key sorts every item of the table and keeps the queried
      partition's; it now sorts that partition only, which yields the same list.
    """
    MotoRequestHandler.disable_nagle_algorithm = True
    modules = frozenset(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> Iterable[str]:
        return modules

    moto.backends.list_of_moto_modules = list_of_moto_modules
    moto.core.responses.method_names_from_class = functools.cache(method_names_from_class)  # type: ignore[attr-defined]
    _cache_serializer_keys()
    _query_one_partition()


def _cache_serializer_keys() -> None:
    picked = serialize.ResponseSerializer.get_value
    keys_of: dict[tuple[Any, Any, str], tuple[str, ...]] = {}

    def get_value_of_member(self: serialize.ResponseSerializer, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        if (
            type(value) is not dict
            or type(picker) is not serialize.XFormedAttributePicker
            or picker.alias_providers is not serialize.DEFAULT_ALIAS_PROVIDERS
        ):
            return picked(self, value, key, shape)
        # No alias provider reads a dict's contents: only its class name, which is "dict".
        cache_key = (shape, getattr(shape, "parent", None), key)
        keys = keys_of.get(cache_key)
        if keys is None:
            context = serialize.AttributePickerContext(obj=value, key=key, shape=shape)
            keys = keys_of[cache_key] = tuple(picker.get_possible_keys(context))
        # What AttributePicker.__call__ does with the keys; a dict's get is moto's get_value
        # for a key without a dot, without raising KeyError for each absent one.
        for possible_key in keys:
            member = (
                get_value(value, possible_key, MISSING)
                if "." in possible_key
                else value.get(possible_key, MISSING)
            )
            if member is not MISSING:
                break
        else:
            member = None
        if picker.response_transformers:
            key_path = f"{'.'.join(self.path)}.{key}"
            for transform_path, transform in picker.response_transformers.items():
                if key_path.endswith(transform_path):
                    return transform(member)
        return member

    serialize.ResponseSerializer.get_value = get_value_of_member  # type: ignore[method-assign]


def _query_one_partition() -> None:
    every_item = Table.all_items
    query = Table.query
    querying = threading.local()

    def all_items(self: Table) -> list[Any]:
        partition = getattr(querying, "partition", None)
        if partition is None or partition[0] is not self:
            return every_item(self)
        # The items all_items would return whose hash key is the queried one, in its order.
        found = self.items.get(partition[1])
        if found is None:
            return []
        items = list(found.values()) if self.range_key_attr else [found]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    def query_of_partition(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        querying.partition = (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            querying.partition = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query_of_partition  # type: ignore[method-assign]


if __name__ == "__main__":
    LambdaBackend.send_kinesis_message = _stored_not_run  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = _stored_not_run  # type: ignore[method-assign,assignment]
    speed_up_moto()
    main()
