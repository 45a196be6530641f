"""Lambda code for the local stack: a deterministic zip of our packages, uploaded once per content.

The local runner imports handlers in-process, so the zip's job is to give each function a real
code location, as `sam deploy` would; `make package` builds the artifacts deployed to AWS.
Installed from the wheel, PROJECT_ROOT is site-packages: the zip holds the installed packages.
It holds every source any function ships (lambda_build.contents), so all three share one zip.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambda_build.contents import PROJECT_ROOT, ZIP_EPOCH, every_function_source, source_files


class ArtifactError(RuntimeError):
    """The code could not be uploaded to the artifacts bucket."""


def build_code_zip(sources: Sequence[str] | None = None, root: Path = PROJECT_ROOT) -> bytes:
    """Same sources, same bytes: files sorted, timestamps fixed, no caches."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in source_files(every_function_source() if sources is None else sources, root):
            info = zipfile.ZipInfo(str(path.relative_to(root)), ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def upload_code(s3: Any, bucket: str, code: bytes) -> str:
    """Uploads the zip under its content hash (a no-op when present) and returns its key."""
    key = f"code/{hashlib.sha256(code).hexdigest()}.zip"
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=code)
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactError(f"uploading s3://{bucket}/{key}: {exc}") from exc
    return key


def point_functions_at(sam_template: dict[str, Any], bucket: str, key: str) -> None:
    """Every AWS::Serverless::Function's CodeUri becomes the uploaded zip."""
    for resource in sam_template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{key}"
