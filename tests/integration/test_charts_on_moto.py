"""Charts on a real moto server: bars in, PNGs and the site out, access as the template says."""

from __future__ import annotations

import io
import time
import urllib.error
import urllib.request

import matplotlib.image as mpimg
import pytest

from tests.support.local_stack import LocalStack, run_cli
from tickstream.stack import StackDeployer

pytestmark = pytest.mark.integration

SYMBOLS = ["A+B", "X.Y-Z", "MSFT"]


def anonymous_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_charts_are_drawn_published_and_redrawn_only_where_asked(local_stack: LocalStack) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "charts"}
    assert run_cli(["up", "--shards", "2"], env).returncode == 0
    outputs = StackDeployer(local_stack.client("cloudformation"), "charts").outputs()
    produced = run_cli(
        [
            "produce",
            "--symbols",
            ",".join(SYMBOLS),
            "--count",
            "6000",
            "--rate",
            "2",
            "--pace",
            "max",
            "--seed",
            "9",
        ],
        env,
    )
    assert produced.returncode == 0, produced.stderr
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr
    assert f"{outputs.ChartBuilderFunctionName}: 1 invocations" in consumed.stdout

    # The bars table's stream drove the chart builder: the site exists before any `charts` command.
    s3 = local_stack.client("s3")
    site = outputs.SiteBucketName
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=site)["Contents"]}
    expected = {f"charts/{s}/{i}.png" for s in SYMBOLS for i in ("1m", "5m", "1h", "1d", "1w")}
    assert expected | {"index.html", "manifest.json"} == keys
    built = run_cli(["charts", "--all"], env)
    assert built.returncode == 0, built.stderr
    for key in expected:
        head = s3.head_object(Bucket=site, Key=key)
        assert head["ContentType"] == "image/png"
        assert head["CacheControl"] == "public, max-age=60"
        image = mpimg.imread(io.BytesIO(s3.get_object(Bucket=site, Key=key)["Body"].read()), format="png")
        assert image.shape[:2] == (480, 800)
        assert image.std() > 0.05

    base = f"{local_stack.endpoint}/{site}"
    assert anonymous_status(f"{base}/index.html") == 200
    assert anonymous_status(f"{base}/charts/A%2BB/1m.png") == 200
    s3.put_object(Bucket=site, Key="private.txt", Body=b"not for the public")
    assert anonymous_status(f"{base}/private.txt") == 403
    data_key = next(o["Key"] for o in s3.list_objects_v2(Bucket=outputs.DataBucketName)["Contents"])
    assert anonymous_status(f"{local_stack.endpoint}/{outputs.DataBucketName}/{data_key}") == 403

    before = {k: s3.head_object(Bucket=site, Key=k)["LastModified"] for k in expected}
    time.sleep(1.1)
    again = run_cli(["charts", "--symbol", "A+B"], env)
    assert again.returncode == 0, again.stderr
    after = {k: s3.head_object(Bucket=site, Key=k)["LastModified"] for k in expected}
    changed = {k for k in expected if after[k] != before[k]}
    assert changed == {k for k in expected if k.startswith("charts/A+B/")}
