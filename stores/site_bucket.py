"""Data access for the site bucket: the chart builder's only S3 code."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stores.site_content import (
    Manifest,
    SymbolEntry,
    chart_key,
    entries_from_manifest,
    index_html,
    manifest_json,
)

# Charts change as bars do; a minute's caching keeps the page fresh without refetching each view.
CACHE_CONTROL = "public, max-age=60"


class SiteError(RuntimeError):
    """The site bucket could not be read or written; worth retrying."""


class SiteObjectMissing(SiteError):
    """No such page, manifest or chart in the site bucket."""


class ManifestChanged(SiteError):
    """Another invocation wrote the manifest since it was read: read it again and reapply."""


# S3 answers a failed If-Match or If-None-Match with 412, and two conditional writes racing on
# one key with 409 (S3 user guide, "Add preconditions to S3 operations with conditional requests").
_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class SiteBucket:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def put_chart(self, symbol: str, interval: str, png: bytes) -> None:
        key = chart_key(symbol, interval)
        try:
            self._put(key, png, "image/png")
        except (ClientError, BotoCoreError) as exc:
            raise SiteError(f"writing s3://{self.bucket}/{key}: {exc}") from exc

    def read_manifest(self) -> Manifest:
        try:
            found = self._client.get_object(Bucket=self.bucket, Key="manifest.json")
            body = found["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return Manifest({}, None)
            raise SiteError(f"reading manifest.json: {exc}") from exc
        except BotoCoreError as exc:
            raise SiteError(f"reading manifest.json: {exc}") from exc
        entries, problems = entries_from_manifest(body)
        return Manifest(entries, found["ETag"], tuple(problems))

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

    def publish(self, entries: dict[str, SymbolEntry], generated_at: int, read: str | None) -> None:
        """The page, then the manifest, written only over the version read (`read`, its ETag, or
        None for none), so two invocations never lose each other's pending charts.

        The page first: a page that fails leaves the manifest as it was, so whatever this call
        drew stays pending and the next invocation writes both; the last manifest written is
        always preceded by a page of the same entries.
        """
        page = index_html(entries.values(), generated_at)
        try:
            self._put("index.html", page, "text/html; charset=utf-8")
        except (ClientError, BotoCoreError) as exc:
            raise SiteError(f"writing s3://{self.bucket}/index.html: {exc}") from exc
        condition = {"IfMatch": read} if read is not None else {"IfNoneMatch": "*"}
        body = manifest_json(entries.values(), generated_at)
        try:
            self._put("manifest.json", body, "application/json", condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _CONDITION_FAILED:
                raise ManifestChanged("manifest.json changed since it was read") from exc
            raise SiteError(f"writing s3://{self.bucket}/manifest.json: {exc}") from exc
        except BotoCoreError as exc:
            raise SiteError(f"writing s3://{self.bucket}/manifest.json: {exc}") from exc

    def _put(self, key: str, body: bytes, content_type: str, condition: dict[str, str] | None = None) -> None:
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            CacheControl=CACHE_CONTROL,
            **(condition or {}),
        )
