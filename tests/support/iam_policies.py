"""IAM as the stack deployed it: a function's role policies, and whether they allow a call."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from tests.support.local_stack import LocalStack


def granted(policies: list[dict[str, Any]], action: str, resource: str) -> bool:
    """IAM's Allow matching (`*` any run, `?` one character), for the statements this template
    writes: no Deny, no conditions."""

    def matches(patterns: str | list[str], value: str) -> bool:
        wanted = [patterns] if isinstance(patterns, str) else patterns
        return any(re.fullmatch(re.escape(p).replace(r"\*", ".*").replace(r"\?", "."), value) for p in wanted)

    return any(
        s["Effect"] == "Allow" and matches(s["Action"], action) and matches(s["Resource"], resource)
        for policy in policies
        for s in policy["Statement"]
    )


def role_policies(local_stack: LocalStack, function: str) -> list[dict[str, Any]]:
    """The execution role's inline policies as the stack deployed them: ARNs resolved."""
    iam = local_stack.client("iam")
    role = local_stack.client("lambda").get_function_configuration(FunctionName=function)["Role"]
    name = role.rsplit("/", 1)[-1]
    documents = [
        iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
        for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
    ]
    assert not iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    return [policy_document(d) for d in documents]


def policy_document(document: str | dict[str, Any]) -> dict[str, Any]:
    """moto 5.2's CloudFormation stores an inline role policy as Python's repr of the dict, not JSON."""
    if isinstance(document, dict):
        return document
    try:
        parsed: dict[str, Any] = json.loads(document)
    except json.JSONDecodeError:
        parsed = ast.literal_eval(document)
    return parsed
