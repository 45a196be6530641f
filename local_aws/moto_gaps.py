"""Template resources moto's CloudFormation skips, applied from the same template.

moto 5.2's CloudFormation creates an S3 bucket with its encryption and tags only: bucket
policies and website configurations in the template are dropped without a word, it has no
model for AWS::CloudWatch::Alarm, AWS::Lambda::EventInvokeConfig or AWS::SNS::Subscription at
all, a stack update keeps a schedule rule's first expression, and an update parses every
changed resource, those whose condition is false too (a new code zip then fails on the quote
poller's role, never created). Against a local endpoint, `tickstream up` sends the template
without the resources whose condition is false and that the stack does not have, and
applies the rest through the S3, CloudWatch, Lambda, EventBridge and SNS APIs, with their values
resolved from the deployed stack, so the template stays the one description of them.
An intrinsic this resolver does not know is an error, never a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local_aws.stack import StackError

# What moto 5.2's CloudFormation creates nothing for; the functions below apply them.
MOTO_UNMODELLED_TYPES = frozenset(
    {
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::SNS::Subscription",
        "AWS::S3::BucketPolicy",
    }
)
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")
NO_VALUE = object()


class UnsupportedTemplate(StackError):
    """The template uses an intrinsic function or shape that this resolver cannot evaluate."""


@dataclass(frozen=True)
class StackContext:
    parameters: Mapping[str, str]
    physical_ids: Mapping[str, str]  # logical id -> physical id (a bucket's name, a queue's URL)
    region: str
    account: str
    stack_name: str
    mappings: Mapping[str, Any] = field(default_factory=dict)  # the template's Mappings
    resource_types: Mapping[str, str] = field(default_factory=dict)  # logical id -> resource type

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise UnsupportedTemplate(f"Ref to unknown name {name!r}")

    def attribute(self, logical: str, attribute: str) -> str:
        """The attributes the gaps need: a function's or a bucket's ARN, a queue's name (from its URL)."""
        physical = self.physical_ids.get(logical, "")
        if attribute == "Arn" and physical and self.resource_types.get(logical) == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{physical}"
        if attribute == "Arn" and physical and not physical.startswith("https://"):
            return f"arn:aws:s3:::{physical}"
        if attribute == "QueueName" and physical.startswith("https://"):
            return physical.rsplit("/", 1)[-1]
        raise UnsupportedTemplate(f"GetAtt {logical}.{attribute} is not resolved for moto")


def resolve(value: Any, context: StackContext, conditions: Mapping[str, bool]) -> Any:
    if isinstance(value, list):
        items = [resolve(v, context, conditions) for v in value]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return context.ref(argument)
        if key == "Fn::GetAtt":
            logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return context.attribute(logical, attribute)
        if key == "Fn::Sub":
            if not isinstance(argument, str):
                raise UnsupportedTemplate("Fn::Sub with a variable map")
            return _SUB_VARIABLE.sub(lambda m: _sub_variable(m.group(1), context), argument)
        if key == "Fn::FindInMap":
            name, top, second = (resolve(a, context, conditions) for a in argument)
            try:
                return context.mappings[name][str(top)][second]
            except KeyError as exc:
                raise UnsupportedTemplate(f"Fn::FindInMap {name}/{top}/{second}: no such entry") from exc
        if key == "Fn::If":
            name, when_true, when_false = argument
            return resolve(when_true if conditions[name] else when_false, context, conditions)
        if key.startswith("Fn::"):
            raise UnsupportedTemplate(f"{key} is not resolved for moto")
    resolved = {k: resolve(v, context, conditions) for k, v in value.items()}
    return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def _sub_variable(name: str, context: StackContext) -> str:
    if "." in name and not name.startswith("AWS::"):
        logical, attribute = name.split(".", 1)
        return context.attribute(logical, attribute)
    return str(context.ref(name))


def evaluate_conditions(template: Mapping[str, Any], context: StackContext) -> dict[str, bool]:
    conditions: dict[str, bool] = {}
    truth = _truth(context, conditions)
    for name, expression in template.get("Conditions", {}).items():
        conditions[name] = truth(expression)
    return conditions


class RuleBroken(StackError):
    """A template rule's assertion is false for these parameters: CloudFormation refuses the stack."""


def check_rules(template: Mapping[str, Any], context: StackContext) -> None:
    """The template's Rules, which moto does not check, asserted as CloudFormation does at create."""
    truth = _truth(context, {})
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule:
            raise UnsupportedTemplate(f"rule {name}: RuleCondition is not checked for moto")
        for assertion in rule.get("Assertions", []):
            if not truth(assertion["Assert"]):
                raise RuleBroken(f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")


def _truth(context: StackContext, conditions: Mapping[str, bool]) -> Any:
    """Evaluates condition functions over the context, given the conditions known so far."""

    def truth(expression: Any) -> bool:
        ((key, argument),) = expression.items()
        if key == "Fn::Equals":
            left, right = (resolve(a, context, conditions) for a in argument)
            return bool(left == right)
        if key == "Fn::Not":
            return not truth(argument[0])
        if key == "Fn::And":
            return all(truth(a) for a in argument)
        if key == "Fn::Or":
            return any(truth(a) for a in argument)
        if key == "Condition":
            return conditions[argument]
        raise UnsupportedTemplate(f"condition function {key}")

    return truth


def _deployed(
    template: Mapping[str, Any], context: StackContext, types: tuple[str, ...]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(logical id, type, resolved properties) of each resource of these types the stack created."""
    conditions = evaluate_conditions(template, context)
    for logical, resource in template.get("Resources", {}).items():
        if resource["Type"] not in types:
            continue
        if "Condition" in resource and not conditions[resource["Condition"]]:
            continue
        yield logical, resource["Type"], resolve(resource.get("Properties", {}), context, conditions)


def apply_s3_gaps(template: Mapping[str, Any], context: StackContext, s3: Any) -> list[str]:
    """Applies the template's bucket policies and website configurations; returns what was applied."""
    applied = []
    try:
        for logical, kind, properties in _deployed(
            template, context, ("AWS::S3::BucketPolicy", "AWS::S3::Bucket")
        ):
            if kind == "AWS::S3::BucketPolicy":
                s3.put_bucket_policy(
                    Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"])
                )
                applied.append(logical)
            elif "WebsiteConfiguration" in properties:
                website = properties["WebsiteConfiguration"]
                s3.put_bucket_website(
                    Bucket=context.physical_ids[logical],
                    WebsiteConfiguration={"IndexDocument": {"Suffix": website["IndexDocument"]}},
                )
                applied.append(f"{logical}.WebsiteConfiguration")
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"applying S3 settings moto's CloudFormation skipped: {exc}") from exc
    return applied


ALARM_PROPERTIES = (
    "AlarmName",
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "OKActions",
)


# DescribeAlarms takes at most 100 names (CloudWatch API reference, DescribeAlarms).
MAX_ALARM_NAMES = 100


def apply_alarm_gaps(template: Mapping[str, Any], context: StackContext, cloudwatch: Any) -> list[str]:
    """Creates the template's CloudWatch alarms, which moto's CloudFormation skips; returns their names.

    moto puts an alarm that is put again back to its first state; CloudWatch keeps the state of
    an alarm it updates. So an alarm as deployed is not put again, and a changed one gets its
    state back at once: the runner reads no change from it, and the chat gets no recovery that
    never happened.
    """
    requests = []
    for _, _, properties in _deployed(template, context, ("AWS::CloudWatch::Alarm",)):
        unknown = set(properties) - set(ALARM_PROPERTIES)
        if unknown:
            raise UnsupportedTemplate(f"alarm properties {sorted(unknown)} are not applied for moto")
        if "AlarmName" not in properties:
            raise UnsupportedTemplate("an alarm without AlarmName: name it in the template")
        request = {k: properties[k] for k in ALARM_PROPERTIES if k in properties}
        for number in ("Period", "EvaluationPeriods"):
            request[number] = int(request[number])
        request["Threshold"] = float(request["Threshold"])
        requests.append(request)
    names = [r["AlarmName"] for r in requests]
    try:
        before: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), MAX_ALARM_NAMES):
            answer = cloudwatch.describe_alarms(AlarmNames=names[start : start + MAX_ALARM_NAMES])
            before |= {a["AlarmName"]: a for a in answer["MetricAlarms"]}
        for request in requests:
            alarm = before.get(request["AlarmName"])
            if alarm is not None and all(alarm.get(k) == v for k, v in request.items()):
                continue  # as deployed: put again, it would flicker to its first state
            cloudwatch.put_metric_alarm(**request)
            if alarm is not None:
                cloudwatch.set_alarm_state(
                    AlarmName=alarm["AlarmName"],
                    StateValue=alarm["StateValue"],
                    StateReason=alarm.get("StateReason", ""),
                )
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"creating the alarms moto's CloudFormation skipped: {exc}") from exc
    return names


EVENT_INVOKE_CONFIG_PROPERTIES = (
    "FunctionName",
    "Qualifier",
    "MaximumRetryAttempts",
    "MaximumEventAgeInSeconds",
    "DestinationConfig",
)


def apply_event_invoke_config_gaps(
    template: Mapping[str, Any], context: StackContext, lambda_client: Any
) -> list[str]:
    """Sets the template's asynchronous invocation configs (retries, event age, destinations),
    which moto's CloudFormation skips; returns the functions configured.

    moto keeps every config put and answers with the first, so an older one is deleted first.
    """
    functions = []
    try:
        for _, _, properties in _deployed(template, context, ("AWS::Lambda::EventInvokeConfig",)):
            unknown = set(properties) - set(EVENT_INVOKE_CONFIG_PROPERTIES)
            if unknown:
                raise UnsupportedTemplate(f"invoke config properties {sorted(unknown)} are not applied")
            if properties.get("Qualifier", "$LATEST") != "$LATEST":
                raise UnsupportedTemplate("invoke configs of versions or aliases are not applied for moto")
            name = properties["FunctionName"]
            request: dict[str, Any] = {"FunctionName": name}
            for number in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
                if number in properties:
                    request[number] = int(properties[number])
            if properties.get("DestinationConfig"):
                request["DestinationConfig"] = properties["DestinationConfig"]
            try:
                lambda_client.delete_function_event_invoke_config(FunctionName=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
            lambda_client.put_function_event_invoke_config(**request)
            functions.append(name)
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"setting the invoke configs moto's CloudFormation skipped: {exc}") from exc
    return functions


def apply_schedule_gaps(template: Mapping[str, Any], context: StackContext, events: Any) -> list[str]:
    """Sets each scheduled rule's expression and state as the template says; returns the rules set.

    moto's CloudFormation keeps an existing rule's expression on a stack update, so a changed
    QuotePollMinutes would otherwise leave the local schedule at its first rate.
    """
    rules = []
    try:
        for logical, _, properties in _deployed(template, context, ("AWS::Events::Rule",)):
            if "ScheduleExpression" not in properties:
                continue
            name = context.physical_ids[logical]
            events.put_rule(
                Name=name,
                ScheduleExpression=properties["ScheduleExpression"],
                State=properties.get("State", "ENABLED"),
                **({"Description": properties["Description"]} if "Description" in properties else {}),
            )
            rules.append(name)
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"setting the schedules moto's CloudFormation kept: {exc}") from exc
    return rules


def _subscriptions(template: Mapping[str, Any], context: StackContext) -> set[tuple[str, str, str]]:
    """(topic ARN, protocol, endpoint) of each subscription the template makes with these values."""
    found = set()
    for _, _, properties in _deployed(template, context, ("AWS::SNS::Subscription",)):
        unknown = set(properties) - {"TopicArn", "Protocol", "Endpoint"}
        if unknown:
            raise UnsupportedTemplate(f"subscription properties {sorted(unknown)} are not applied for moto")
        found.add((properties["TopicArn"], properties["Protocol"], properties["Endpoint"]))
    return found


def apply_subscription_gaps(
    template: Mapping[str, Any], context: StackContext, sns: Any, previous: StackContext | None = None
) -> list[str]:
    """Subscribes the template's endpoints to its topics, which moto's CloudFormation skips, and
    unsubscribes those the template made with the `previous` values and no longer makes (an
    AlertEmail changed or unset); a subscription made otherwise is left alone. Returns the ARNs
    of the template's subscriptions. SNS answers an existing subscription with its ARN."""
    wanted = _subscriptions(template, context)
    dropped = (_subscriptions(template, previous) if previous is not None else set()) - wanted
    arns = []
    try:
        for topic, protocol, endpoint in sorted(wanted):
            answer = sns.subscribe(
                TopicArn=topic, Protocol=protocol, Endpoint=endpoint, ReturnSubscriptionArn=True
            )
            arns.append(answer["SubscriptionArn"])
        for topic in {t for t, _, _ in dropped}:
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            for subscription in (s for page in pages for s in page["Subscriptions"]):
                if (topic, subscription["Protocol"], subscription["Endpoint"]) in dropped:
                    sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"applying the subscriptions moto's CloudFormation skipped: {exc}") from exc
    return arns


def without_unmet_conditions(
    template: Mapping[str, Any], context: StackContext, held: Collection[str]
) -> dict[str, Any]:
    """The template without the resources and outputs whose condition is false for these
    parameters, unless moto holds them for the stack: an update then never parses a resource
    that refers to one never created, and never has moto remove one it cannot."""
    conditions = evaluate_conditions(template, context)

    def met(entry: Mapping[str, Any]) -> bool:
        return "Condition" not in entry or conditions[entry["Condition"]]

    pruned = dict(template)
    pruned["Resources"] = {k: v for k, v in template.get("Resources", {}).items() if met(v) or k in held}
    if "Outputs" in template:
        pruned["Outputs"] = {k: v for k, v in template["Outputs"].items() if met(v)}
    return pruned
