"""`tickstream up`'s deployment: the artifacts stack, the code zip, then infra/template.yaml."""

from __future__ import annotations

from tickstream.aws_clients import AwsClients
from tickstream.lambda_artifacts import build_code_zip, point_functions_at, upload_code
from tickstream.settings import Settings
from tickstream.stack import StackDeployer, StackOutputs, load_template, output_values, translate_template


def deploy_stack(clients: AwsClients, settings: Settings, shards: int) -> tuple[StackOutputs, str]:
    """Deploys to the local stack (embedded moto or AWS_ENDPOINT_URL), with the runner's checkpoints table."""
    cloudformation = clients.client("cloudformation")
    artifacts_template = load_template(settings.template_path.with_name("artifacts.yaml"))
    artifacts, _ = StackDeployer(cloudformation, f"{settings.stack_name}-artifacts").deploy(
        artifacts_template, {}
    )
    bucket = output_values(artifacts)["ArtifactsBucketName"]
    key = upload_code(clients.client("s3"), bucket, build_code_zip())
    sam = load_template(settings.template_path)
    point_functions_at(sam, bucket, key)
    parameters = {"ShardCount": str(shards), "LocalRunner": "true"}
    stack, action = StackDeployer(cloudformation, settings.stack_name).deploy(
        translate_template(sam, settings.region), parameters
    )
    return StackOutputs.from_stack(stack), action
