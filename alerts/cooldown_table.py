"""Data access for the alert-state table: when each rule last fired for each symbol.

A claim is one conditional PutItem, so two invocations that see the same move cannot both send
it. Items expire through the table's TTL a day after their cooldown ends.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alerts.service import CooldownUnavailable

# Kept a day past the cooldown, then removed by DynamoDB's TTL (which takes epoch seconds).
EXPIRY_MARGIN_MS = 86_400_000


class CooldownTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def claim(self, rule: str, symbol: str, now_ms: int, cooldown_ms: int) -> bool:
        """True if the rule may fire for the symbol now (and it is now recorded as fired)."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"{rule}#{symbol}"},
                    "fired_at": {"N": str(now_ms)},
                    "expires_at": {"N": str((now_ms + cooldown_ms + EXPIRY_MARGIN_MS) // 1000)},
                },
                ConditionExpression="attribute_not_exists(pk) OR fired_at <= :cutoff",
                ExpressionAttributeValues={":cutoff": {"N": str(now_ms - cooldown_ms)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise CooldownUnavailable(f"claiming {rule} for {symbol}: {exc}") from exc
        except BotoCoreError as exc:
            raise CooldownUnavailable(f"claiming {rule} for {symbol}: {exc}") from exc
        return True
