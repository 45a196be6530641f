"""Deploys infra/template.yaml: SAM translated to CloudFormation, created through CloudFormation's API.

The same path serves the embedded moto server, LocalStack (AWS_ENDPOINT_URL) and AWS, so the
template stays the one source of truth. Resource names come only from stack outputs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from local_aws.embedded import sealed_botocore_session

TEMPLATE_HASH_TAG = "tickstream:template-sha256"
DEPLOY_TIMEOUT_S = 600.0
POLL_S = 0.5


class StackError(RuntimeError):
    """The stack could not be deployed or read; the message carries CloudFormation's reason."""


class StackNotFound(StackError):
    """No such stack: `tickstream up` has not been run against this endpoint."""


@dataclass(frozen=True)
class StackOutputs:
    """The names the template's Outputs give; every command finds resources through these."""

    StreamName: str
    StreamArn: str
    BarsTableName: str
    BarsTableStreamArn: str
    LedgerTableName: str
    DataBucketName: str
    SiteBucketName: str
    DeadLetterQueueUrl: str
    DeadLetterQueueArn: str
    AggregatorFunctionName: str
    ChartBuilderFunctionName: str
    AlarmTopicArn: str
    AlertStateTableName: str
    QuotePollerFunctionName: str = ""  # only with QuotePollMinutes > 0
    QuoteStateTableName: str = ""
    AlarmNotifierFunctionName: str = ""  # absent from stacks deployed before it

    def function_names(self) -> frozenset[str]:
        """The stack's functions: the aggregator, the chart builder, the alarm notifier, and the
        quote poller if deployed."""
        names = {
            self.AggregatorFunctionName,
            self.ChartBuilderFunctionName,
            self.QuotePollerFunctionName,
            self.AlarmNotifierFunctionName,
        }
        return frozenset(names - {""})

    @classmethod
    def from_stack(cls, stack: dict[str, Any]) -> StackOutputs:
        values = output_values(stack)
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise StackError(f"stack {stack['StackName']} lacks outputs {', '.join(missing)}")
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def load_template(path: Path) -> dict[str, Any]:
    """A template file as a dict, CloudFormation's short forms (!Ref, !GetAtt) included."""
    from samtranslator.yaml_helper import yaml_parse  # samtranslator: only where a template is read

    try:
        template: dict[str, Any] = yaml_parse(path.read_text())
    except OSError as exc:
        raise StackError(f"cannot read the template {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise StackError(f"the template {path} is not YAML: {exc}") from exc
    if not isinstance(template, dict):
        raise StackError(f"the template {path} is not a CloudFormation template")
    return template


def translate_template(sam: dict[str, Any], region: str) -> dict[str, Any]:
    """SAM to plain CloudFormation, as `sam deploy` has CloudFormation do it server-side."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translated: dict[str, Any] = Translator(
        None,
        Parser(),
        # Only its region is read (for the partition): no profile, which may not exist here.
        boto_session=boto3.Session(region_name=region, botocore_session=sealed_botocore_session()),
    ).translate(sam, parameter_values={})
    return translated


def output_values(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


class StackDeployer:
    def __init__(self, cloudformation: Any, stack_name: str) -> None:
        self._cf = cloudformation
        self.stack_name = stack_name

    def describe(self) -> dict[str, Any]:
        """The stack as DescribeStacks shows it; every command's first call, so its errors say where."""
        where = f"{self._cf.meta.endpoint_url} ({self._cf.meta.region_name})"
        try:
            stacks = self._cf.describe_stacks(StackName=self.stack_name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                raise StackNotFound(f"no stack {self.stack_name} at {where}") from exc
            raise StackError(f"reading stack {self.stack_name} at {where}: {exc}") from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise StackError(f"reading stack {self.stack_name} at {where}: {exc}") from exc
        if not stacks:
            raise StackNotFound(f"no stack {self.stack_name} at {where}")
        stack: dict[str, Any] = stacks[0]
        return stack

    def outputs(self) -> StackOutputs:
        return StackOutputs.from_stack(self.describe())

    def deployed_parameters(self) -> dict[str, str]:
        """The stack's parameter values as deployed; none when there is no stack yet."""
        try:
            stack = self.describe()
        except StackNotFound:
            return {}
        if stack["StackStatus"] == "ROLLBACK_COMPLETE":
            return {}
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}

    def deploy(self, template: dict[str, Any], parameters: dict[str, str]) -> tuple[dict[str, Any], str]:
        """Creates or updates the stack; unchanged template and parameters change nothing.

        Returns the stack as DescribeStacks shows it, and what was done.
        """
        body = json.dumps(template, sort_keys=True)
        digest = hashlib.sha256((body + json.dumps(parameters, sort_keys=True)).encode()).hexdigest()
        args: dict[str, Any] = {
            "StackName": self.stack_name,
            "TemplateBody": body,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            "Tags": [{"Key": TEMPLATE_HASH_TAG, "Value": digest}],
        }
        try:
            existing: dict[str, Any] | None = self.describe()
        except StackNotFound:
            existing = None
        if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
            self._call("delete_stack", StackName=self.stack_name)
            self._wait()
            existing = None
        if existing is None:
            self._call("create_stack", **args)
            action = "created"
        elif {t["Key"]: t["Value"] for t in existing.get("Tags", [])}.get(TEMPLATE_HASH_TAG) == digest:
            return existing, "unchanged"
        else:
            try:
                self._cf.update_stack(**args)
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise StackError(f"updating stack {self.stack_name}: {exc}") from exc
            action = "updated"
        return self._wait(), action

    def _call(self, operation: str, **kwargs: Any) -> None:
        try:
            getattr(self._cf, operation)(**kwargs)
        except ClientError as exc:
            raise StackError(f"{operation} {self.stack_name}: {exc}") from exc

    def _wait(self) -> dict[str, Any]:
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                stack = self.describe()
            except StackNotFound:
                return {}
            status = stack["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"):
                    return stack
                raise StackError(f"stack {self.stack_name} ended {status}: {self._failure_reasons()}")
            time.sleep(POLL_S)
        raise StackError(f"stack {self.stack_name} still in progress after {DEPLOY_TIMEOUT_S:.0f}s")

    def _failure_reasons(self) -> str:
        try:
            events = self._cf.describe_stack_events(StackName=self.stack_name)["StackEvents"]
        except ClientError:
            return "no events"
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if "FAILED" in e["ResourceStatus"]
        ]
        return "; ".join(reasons[:5]) or "no failure events"
