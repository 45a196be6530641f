"""`tickstream up`'s deployment: the artifacts stack, the code zip, then infra/template.yaml."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from lambda_build.artifacts import build_code_zip, point_functions_at, upload_code
from local_aws.moto_gaps import (
    MOTO_UNMODELLED_TYPES,
    StackContext,
    apply_alarm_gaps,
    apply_event_invoke_config_gaps,
    apply_s3_gaps,
    apply_schedule_gaps,
    apply_subscription_gaps,
    check_rules,
    without_unmet_conditions,
)
from local_aws.stack import (
    StackDeployer,
    StackError,
    StackOutputs,
    load_template,
    output_values,
    translate_template,
)


class Clients(Protocol):
    """boto3 clients by service name, all for the same endpoint, region and credentials."""

    def client(self, service: str) -> Any: ...


class Target(Protocol):
    """Which stack, from which template, where (no endpoint: AWS itself); the CLI's settings are one."""

    @property
    def stack_name(self) -> str: ...

    @property
    def template_path(self) -> Path: ...

    @property
    def region(self) -> str: ...

    @property
    def endpoint_url(self) -> str | None: ...


# Parameters `up` sets itself: the shard count has its own option; the site is an S3 website locally.
MANAGED_PARAMETERS = frozenset({"ShardCount", "SiteAccess"})


def artifacts_stack_name(stack_name: str) -> str:
    """The stack `up` deploys infra/artifacts.yaml as, beside the application's."""
    return f"{stack_name}-artifacts"


def runner_checkpoints_table(clients: Clients, settings: Target) -> str:
    """The local runner's checkpoints table, an output of the artifacts stack."""
    artifacts = StackDeployer(clients.client("cloudformation"), artifacts_stack_name(settings.stack_name))
    stack = artifacts.describe()
    return output_values(stack).get("RunnerCheckpointsTableName", "")


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
            hint = ": give --shards N" if key == "ShardCount" else ""
            raise StackError(f"--parameter {key}: set by `tickstream up` itself{hint}")
        overrides[key] = value
    return overrides


# A number as a template parameter is written: ASCII digits, an optional sign and fraction. Python's
# float() also takes "nan", "1_0", " 60" and full-width digits, which no template means.
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def check_parameters(declared: Mapping[str, Any], values: Mapping[str, str]) -> None:
    """CloudFormation's checks of parameter values, with its messages, made before anything is created.

    AllowedPattern must match the whole value, as CloudFormation matches it.
    """
    for key, value in values.items():
        spec = declared[key]
        if spec.get("Type") == "Number":
            if _PLAIN_NUMBER.fullmatch(value) is None:
                raise StackError(f"Parameter '{key}' must be a number")
            number = float(value)
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise StackError(f"Parameter '{key}' must be a number not less than {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise StackError(f"Parameter '{key}' must be a number not greater than {spec['MaxValue']}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            raise StackError(f"Parameter '{key}' must contain at least {spec['MinLength']} characters")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            raise StackError(f"Parameter '{key}' must contain at most {spec['MaxLength']} characters")
        allowed = [str(a) for a in spec.get("AllowedValues", [])]
        if allowed and value not in allowed:
            raise StackError(f"Parameter '{key}' must be one of AllowedValues: {', '.join(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise StackError(f"Parameter '{key}' must match pattern {pattern}")


def stack_parameters(
    declared: Mapping[str, Any], given: Mapping[str, str], deployed: Mapping[str, str]
) -> dict[str, str]:
    """Every parameter's value: given now, else as deployed (CloudFormation's UsePreviousValue), else
    the template's default; so a plain `up` changes nothing that an earlier `up` set."""
    values = {}
    for key, spec in declared.items():
        if key in given:
            values[key] = given[key]
        elif key in deployed:
            values[key] = deployed[key]
        elif "Default" in spec:
            values[key] = str(spec["Default"])
    return values


def check_given(settings: Target, overrides: Sequence[str]) -> None:
    """The values given on the command line, checked before anything starts or is created."""
    sam = load_template(settings.template_path)
    check_parameters(sam.get("Parameters", {}), parameter_overrides(overrides, sam))


@dataclass(frozen=True)
class Deployment:
    outputs: StackOutputs
    action: str  # created, updated or unchanged
    parameters: dict[str, str]  # as deployed
    changed: dict[str, tuple[str, str]]  # parameter -> (before, after), on an update


def deploy_stack(
    clients: Clients, settings: Target, shards: int | None = None, overrides: Sequence[str] = ()
) -> Deployment:
    """Deploys to the local stack (embedded moto or AWS_ENDPOINT_URL), with the runner's checkpoints table.

    `shards` None keeps the deployed shard count (the template's default on a new stack).
    """
    sam = load_template(settings.template_path)
    declared = sam.get("Parameters", {})
    given = parameter_overrides(overrides, sam)
    if shards is not None:
        given["ShardCount"] = str(shards)
    # Locally the site is an S3 website: the page is readable at <endpoint>/<bucket>/index.html.
    given["SiteAccess"] = "s3-website"
    cloudformation = clients.client("cloudformation")
    deployer = StackDeployer(cloudformation, settings.stack_name)
    deployed = deployer.deployed_parameters()
    parameters = stack_parameters(declared, given, deployed)
    check_parameters(declared, parameters)
    # CloudFormation checks the template's Rules before it creates anything; moto does not.
    check_rules(sam, _context(sam, parameters, {}, settings, ""))
    artifacts_template = load_template(settings.template_path.with_name("artifacts.yaml"))
    artifacts, _ = StackDeployer(cloudformation, artifacts_stack_name(settings.stack_name)).deploy(
        artifacts_template, {}
    )
    bucket = output_values(artifacts)["ArtifactsBucketName"]
    key = upload_code(clients.client("s3"), bucket, build_code_zip())
    point_functions_at(sam, bucket, key)
    template = translate_template(sam, settings.region)
    sent = template
    if settings.endpoint_url is not None:
        held = _resources_moto_holds(clients, settings) if deployed else set()
        sent = without_unmet_conditions(template, _context(template, parameters, {}, settings, ""), held)
    stack, action = deployer.deploy(sent, parameters)
    # Any local endpoint: the embedded moto, moto in docker-compose, or an emulator whose own
    # CloudFormation already applied these (they are then set again to the same values).
    if settings.endpoint_url is not None:
        _apply_what_moto_skipped(clients, settings, template, parameters, deployed)
    changed = {k: (deployed[k], v) for k, v in parameters.items() if k in deployed and deployed[k] != v}
    return Deployment(StackOutputs.from_stack(stack), action, parameters, changed)


def _context(
    template: dict[str, Any],
    parameters: Mapping[str, str],
    physical_ids: Mapping[str, str],
    settings: Target,
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
        {logical: resource["Type"] for logical, resource in template.get("Resources", {}).items()},
    )


def _stack_resources(clients: Clients, settings: Target) -> dict[str, str]:
    """The deployed stack's resources: logical id -> physical id."""
    cloudformation = clients.client("cloudformation")
    try:
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=settings.stack_name)
        resources = [r for page in pages for r in page["StackResourceSummaries"] if "LogicalResourceId" in r]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"reading stack {settings.stack_name}: {exc}") from exc
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources}


def _resources_moto_holds(clients: Clients, settings: Target) -> set[str]:
    """The deployed stack's resources as moto keeps them: those it created, and those of the
    types it has no model for (it lists them without a name, and holds them as nothing, which
    it cannot delete: leaving one out of an update would fail it)."""
    try:
        body = clients.client("cloudformation").get_template(StackName=settings.stack_name)["TemplateBody"]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"reading the template of stack {settings.stack_name}: {exc}") from exc
    deployed = json.loads(body) if isinstance(body, str) else body
    unmodelled = {
        logical
        for logical, resource in deployed.get("Resources", {}).items()
        if resource.get("Type") in MOTO_UNMODELLED_TYPES
    }
    return set(_stack_resources(clients, settings)) | unmodelled


def _apply_what_moto_skipped(
    clients: Clients,
    settings: Target,
    template: dict[str, Any],
    parameters: dict[str, str],
    deployed: Mapping[str, str],
) -> None:
    """`deployed`: the parameters the stack had before this deploy (none for a new stack)."""
    physical_ids = _stack_resources(clients, settings)
    try:
        account = clients.client("sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"reading the account of stack {settings.stack_name}: {exc}") from exc
    context = _context(template, parameters, physical_ids, settings, account)
    apply_s3_gaps(template, context, clients.client("s3"))
    apply_alarm_gaps(template, context, clients.client("cloudwatch"))
    apply_event_invoke_config_gaps(template, context, clients.client("lambda"))
    apply_schedule_gaps(template, context, clients.client("events"))
    previous = _context(template, deployed, physical_ids, settings, account) if deployed else None
    apply_subscription_gaps(template, context, clients.client("sns"), previous)
