"""infra/template.yaml passes cfn-lint and checkov, and its IAM has no wildcard it does not explain.

checkov lives in its own virtualenv (`make test` builds .venv-checkov): its pinned dependencies
clash with ours.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_aws.deploy import check_parameters, parameter_overrides, stack_parameters
from local_aws.moto_gaps import RuleBroken, StackContext, check_rules
from local_aws.stack import StackError, load_template
from tickstream.settings import PROJECT_ROOT, TEMPLATE_PATH

CHECKOV = PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"
# The one service here whose actions support no resource-level permissions.
ACTIONS_WITHOUT_RESOURCES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_template_passes_cfn_lint_without_errors_or_warnings() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_template_passes_checkov_with_zero_failed_checks() -> None:
    assert CHECKOV.exists(), "checkov is installed by `make test` into .venv-checkov"
    done = subprocess.run(
        # --skip-download: no call to Prisma Cloud for guidelines; the checks ship with checkov.
        [str(CHECKOV), "--file", str(TEMPLATE_PATH), "--skip-download", "--compact", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Failed checks: 0" in done.stdout, done.stdout


def test_every_checkov_suppression_says_why() -> None:
    template = load_template(TEMPLATE_PATH)
    skips = [
        (logical, skip)
        for logical, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical, skip in skips:
        reason = str(skip.get("comment", ""))
        assert len(reason.split()) >= 12, f"{logical} skips {skip['id']} without a reason"


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                yield logical, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_grants_no_wildcard_action_and_star_resources_only_where_aws_requires_it() -> None:
    template = load_template(TEMPLATE_PATH)
    statements = list(_statements(template))
    assert {logical for logical, _ in statements} >= {"AggregatorRole", "ChartBuilderRole", "ProducerPolicy"}
    for logical, statement in statements:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        actions = _as_list(statement["Action"])
        assert all("*" not in action for action in actions), (logical, actions)
        if "*" in _as_list(statement["Resource"]):
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, (logical, statement)
    # Functions run with these roles, not with roles SAM would generate from policy templates.
    for function in ("AggregatorFunction", "ChartBuilderFunction"):
        properties = template["Resources"][function]["Properties"]
        assert "Policies" not in properties
        assert properties["Role"] == {"Fn::GetAtt": [function.replace("Function", "Role"), "Arn"]}


def test_producer_policy_only_puts_records_on_the_stacks_stream() -> None:
    template = load_template(TEMPLATE_PATH)
    statements = [s for logical, s in _statements(template) if logical == "ProducerPolicy"]
    assert [set(_as_list(s["Action"])) for s in statements] == [{"kinesis:PutRecords", "kinesis:ListShards"}]
    assert [s["Resource"] for s in statements] == [{"Fn::GetAtt": ["TickStream", "Arn"]}]


def test_up_overrides_only_parameters_the_template_has_and_does_not_set_itself() -> None:
    template = load_template(TEMPLATE_PATH)
    assert parameter_overrides(["QuotePollMinutes=5", "AlertEmail=a@b.c"], template) == {
        "QuotePollMinutes": "5",
        "AlertEmail": "a@b.c",
    }
    for pair, problem in [
        ("QuotePollMinutes", "expected Key=Value"),
        ("NoSuchParameter=1", "no such parameter"),
        ("LocalRunner=false", "no such parameter"),
        ("ShardCount=2", "set by `tickstream up` itself: give --shards N"),
        ("SiteAccess=cloudfront", "set by `tickstream up` itself"),
    ]:
        with pytest.raises(StackError, match=re.escape(problem)):
            parameter_overrides([pair], template)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("TumblingWindowSeconds", "5000", "'TumblingWindowSeconds' must be a number not greater than 900"),
        ("TumblingWindowSeconds", "-1", "Parameter 'TumblingWindowSeconds' must be a number not less than 0"),
        ("TumblingWindowSeconds", "sixty", "Parameter 'TumblingWindowSeconds' must be a number"),
        # float() takes these; a template's number does not.
        ("TumblingWindowSeconds", "nan", "Parameter 'TumblingWindowSeconds' must be a number"),
        ("TumblingWindowSeconds", "1_0", "Parameter 'TumblingWindowSeconds' must be a number"),
        ("TumblingWindowSeconds", " 60", "Parameter 'TumblingWindowSeconds' must be a number"),
        ("TumblingWindowSeconds", "\uff16\uff10", "Parameter 'TumblingWindowSeconds' must be a number"),
        ("TumblingWindowSeconds", "1e2", "Parameter 'TumblingWindowSeconds' must be a number"),
        ("ShardCount", "0", "Parameter 'ShardCount' must be a number not less than 1"),
        ("AlertEmail", "notanemail", "Parameter 'AlertEmail' must match pattern ^$|^[^@\\s]+@[^@\\s]+$"),
        ("BarIntervals", "2m", "Parameter 'BarIntervals' must match pattern"),
        # The pattern must match the whole value, as CloudFormation matches it.
        ("BarIntervals", "1m,5m,", "Parameter 'BarIntervals' must match pattern"),
        ("QuotePollMinutes", "3", "Parameter 'QuotePollMinutes' must be one of AllowedValues: 0, 1, 2, 5"),
        ("SiteAccess", "ftp", "Parameter 'SiteAccess' must be one of AllowedValues: cloudfront, s3-website"),
    ],
)
def test_parameter_values_are_checked_as_cloudformation_checks_them(
    key: str, value: str, message: str
) -> None:
    declared = load_template(TEMPLATE_PATH)["Parameters"]
    defaults = stack_parameters(declared, {}, {})
    check_parameters(declared, defaults)
    with pytest.raises(StackError, match=re.escape(message)):
        check_parameters(declared, {**defaults, key: value})


def test_unstated_parameters_keep_their_deployed_values_then_the_defaults() -> None:
    declared = load_template(TEMPLATE_PATH)["Parameters"]
    deployed = {"ShardCount": "2", "TumblingWindowSeconds": "30", "BarIntervals": "1m,1h"}
    values = stack_parameters(declared, {"BarIntervals": "1m"}, deployed)
    assert values["ShardCount"] == "2"
    assert values["TumblingWindowSeconds"] == "30"
    assert values["BarIntervals"] == "1m"
    assert values["MaximumRecordAgeSeconds"] == "21600"
    assert set(values) == set(declared)


def test_the_templates_rules_refuse_two_sources_of_the_quote_api_key_before_deploying() -> None:
    template = load_template(TEMPLATE_PATH)
    defaults = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}

    def context(**parameters: str) -> StackContext:
        return StackContext({**defaults, **parameters}, {}, "us-east-1", "123456789012", "t")

    check_rules(template, context(QuoteApiKeyParameter="/k"))
    check_rules(template, context(QuoteApiKeySecret="k"))
    with pytest.raises(RuleBroken, match="not both"):
        check_rules(template, context(QuoteApiKeyParameter="/k", QuoteApiKeySecret="k"))
