"""Data access for the site bucket: the chart builder's only S3 code."""

from __future__ import annotations

from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from charts.site import SymbolEntry, chart_key, entries_from_manifest, index_html, manifest_json

# Charts change as bars do; a minute's caching keeps the page fresh without refetching each view.
CACHE_CONTROL = "public, max-age=60"


class SiteError(RuntimeError):
    """The site bucket could not be read or written; worth retrying."""


class SiteObjectMissing(SiteError):
    """No such page, manifest or chart in the site bucket."""


class SiteBucket:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def put_chart(self, symbol: str, interval: str, png: bytes) -> None:
        self._put(chart_key(symbol, interval), png, "image/png")

    def read_entries(self) -> dict[str, SymbolEntry]:
        try:
            body, _ = self.read("manifest.json")
        except SiteObjectMissing:
            return {}
        return entries_from_manifest(orjson.loads(body))

    def read(self, key: str) -> tuple[bytes, str]:
        """An object of the site and its content type (the manifest, or a page for `tickstream view`)."""
        try:
            found = self._client.get_object(Bucket=self.bucket, Key=key)
            return found["Body"].read(), found.get("ContentType", "application/octet-stream")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise SiteObjectMissing(key) from exc
            raise SiteError(f"reading {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise SiteError(f"reading {key}: {exc}") from exc

    def publish(self, entries: dict[str, SymbolEntry], generated_at: int) -> None:
        """The manifest first, so the page never lists charts the manifest does not."""
        self._put("manifest.json", manifest_json(entries.values(), generated_at), "application/json")
        self._put("index.html", index_html(entries.values(), generated_at), "text/html; charset=utf-8")

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, CacheControl=CACHE_CONTROL
            )
        except (ClientError, BotoCoreError) as exc:
            raise SiteError(f"writing s3://{self.bucket}/{key}: {exc}") from exc
