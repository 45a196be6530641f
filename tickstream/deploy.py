"""`tickstream up`'s deployment: the artifacts stack, the code zip, then infra/template.yaml."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tickstream.aws_clients import AwsClients
from tickstream.lambda_artifacts import build_code_zip, point_functions_at, upload_code
from tickstream.moto_gaps import (
    StackContext,
    apply_alarm_gaps,
    apply_event_invoke_config_gaps,
    apply_s3_gaps,
    check_rules,
)
from tickstream.settings import Settings
from tickstream.stack import (
    StackDeployer,
    StackError,
    StackOutputs,
    load_template,
    output_values,
    translate_template,
)

# Parameters `up` sets itself: the shard count has its own option, the rest make the stack local.
MANAGED_PARAMETERS = frozenset({"ShardCount", "LocalRunner", "SiteAccess"})


def parameter_overrides(pairs: Sequence[str], template: Mapping[str, Any]) -> dict[str, str]:
    """`Key=Value` pairs, as `sam deploy --parameter-overrides` takes them, checked against the template."""
    known = template.get("Parameters", {})
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise StackError(f"--parameter {pair!r}: expected Key=Value")
        if key not in known:
            raise StackError(f"--parameter {key}: the template has no such parameter ({', '.join(known)})")
        if key in MANAGED_PARAMETERS:
            raise StackError(f"--parameter {key}: set by `tickstream up` itself")
        overrides[key] = value
    return overrides


def deploy_stack(
    clients: AwsClients, settings: Settings, shards: int, overrides: Sequence[str] = ()
) -> tuple[StackOutputs, str]:
    """Deploys to the local stack (embedded moto or AWS_ENDPOINT_URL), with the runner's checkpoints table."""
    sam = load_template(settings.template_path)
    # Locally the site is an S3 website: the page is readable at <endpoint>/<bucket>/index.html.
    parameters = {
        **parameter_overrides(overrides, sam),
        "ShardCount": str(shards),
        "LocalRunner": "true",
        "SiteAccess": "s3-website",
    }
    # CloudFormation checks the template's Rules before it creates anything; moto does not.
    check_rules(sam, _context(sam, parameters, {}, settings, ""))
    cloudformation = clients.client("cloudformation")
    artifacts_template = load_template(settings.template_path.with_name("artifacts.yaml"))
    artifacts, _ = StackDeployer(cloudformation, f"{settings.stack_name}-artifacts").deploy(
        artifacts_template, {}
    )
    bucket = output_values(artifacts)["ArtifactsBucketName"]
    key = upload_code(clients.client("s3"), bucket, build_code_zip())
    point_functions_at(sam, bucket, key)
    template = translate_template(sam, settings.region)
    stack, action = StackDeployer(cloudformation, settings.stack_name).deploy(template, parameters)
    # Any local endpoint: the embedded moto, moto in docker-compose, or an emulator whose own
    # CloudFormation already applied these (they are then set again to the same values).
    if settings.endpoint_url is not None:
        _apply_what_moto_skipped(clients, settings, template, parameters)
    return StackOutputs.from_stack(stack), action


def _context(
    template: dict[str, Any],
    parameters: Mapping[str, str],
    physical_ids: Mapping[str, str],
    settings: Settings,
    account: str,
) -> StackContext:
    """The template's parameter defaults overridden by the given values, its mappings, and the
    stack's resources."""
    defaults = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    return StackContext(
        {**defaults, **parameters},
        physical_ids,
        settings.region,
        account,
        settings.stack_name,
        template.get("Mappings", {}),
    )


def _apply_what_moto_skipped(
    clients: AwsClients, settings: Settings, template: dict[str, Any], parameters: dict[str, str]
) -> None:
    cloudformation = clients.client("cloudformation")
    try:
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=settings.stack_name)
        resources = [r for page in pages for r in page["StackResourceSummaries"] if "LogicalResourceId" in r]
        account = clients.client("sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"reading stack {settings.stack_name}: {exc}") from exc
    physical_ids = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources}
    context = _context(template, parameters, physical_ids, settings, account)
    apply_s3_gaps(template, context, clients.client("s3"))
    apply_alarm_gaps(template, context, clients.client("cloudwatch"))
    apply_event_invoke_config_gaps(template, context, clients.client("lambda"))
