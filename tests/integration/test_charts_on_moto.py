"""Charts on a real moto server: bars in, PNGs and the site out, access as the template says."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image as mpimg
import orjson
import pytest
from playwright.sync_api import Page, sync_playwright

from local_aws.embedded import free_local_port
from local_aws.stack import StackOutputs
from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli

pytestmark = pytest.mark.integration

SYMBOLS = ["A+B", "X.Y-Z", "MSFT"]


def anonymous_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass(frozen=True)
class ChartStack:
    env: dict[str, str]
    outputs: StackOutputs
    consumed: str


@pytest.fixture(scope="module")
def chart_stack(local_stack: LocalStack) -> ChartStack:
    """A stack whose ticks were produced and consumed: the chart builder ran from the bars stream."""
    env = {**local_stack.env, "TICKSTREAM_STACK": "charts"}
    outputs = local_stack.deploy("charts", 2, env=env)
    symbols = ",".join(SYMBOLS)
    produced = run_cli(
        ["produce", "--symbols", symbols, "--count", "6000", "--rate", "2", "--pace", "max", "--seed", "9"],
        env,
    )
    assert produced.returncode == 0, produced.stderr
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr
    return ChartStack(env, outputs, consumed.stdout)


def test_charts_are_drawn_published_and_redrawn_only_where_asked(
    local_stack: LocalStack, chart_stack: ChartStack
) -> None:
    env, outputs = chart_stack.env, chart_stack.outputs
    assert f"{outputs.ChartBuilderFunctionName}: 1 invocations" in chart_stack.consumed

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
        assert image.shape[:2] == (540, 960)  # twice the page's 480 x 270 cell
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


OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
SCROLL_THROUGH = """async () => {
  for (let y = 0; y < document.body.scrollHeight; y += 400) {
    window.scrollTo(0, y);
    await new Promise((done) => setTimeout(done, 30));
  }
}"""
# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# loopback-only machine refuses; --no-sandbox because tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Each change in the summary is one line of text, "-3.00 %" never "-3.00" over "%".
ONE_LINE_CHANGES = """Array.from(document.querySelectorAll('td[id^="change-"]')).every(cell => {
  const text = document.createRange();
  text.selectNodeContents(cell);
  return text.getClientRects().length === 1;
})"""


def test_the_page_shows_every_symbol_and_every_chart_in_a_real_browser(
    local_stack: LocalStack, chart_stack: ChartStack
) -> None:
    """At a laptop's and a phone's width: the summary table first, the legend, the as-of time and
    lag, every chart loaded, nothing wider than the screen; then a redraw of one symbol's charts
    reaches the open page through manifest.json, those images only."""
    assert CHROMIUM.exists(), "make test installs Debian's chromium"
    url = f"{local_stack.endpoint}/{chart_stack.outputs.SiteBucketName}/index.html"
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width in (1600, 768, 400, 320):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(url, wait_until="load")
                page.evaluate(SCROLL_THROUGH)  # lazy images load as a reader scrolls to them
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])"
                )
                assert len(images) == len(SYMBOLS) * 5
                assert all(natural == 960 for _, natural in images), images
                headings = page.locator("h2").all_inner_texts()
                assert sorted(headings) == sorted(SYMBOLS)
                rows = page.locator("table tbody tr").all()
                assert [r.locator("td").first.inner_text() for r in rows] == sorted(SYMBOLS)
                assert all(r.locator("td").count() == 6 for r in rows)
                first_table, first_chart = page.evaluate(
                    "[document.querySelector('table').getBoundingClientRect().top,"
                    " document.images[0].getBoundingClientRect().top]"
                )
                assert first_table < first_chart  # the summary comes first
                assert page.locator(".legend span").all_inner_texts() == ["MA 5", "MA 25", "last price"]
                assert page.locator("#asof").inner_text().endswith("UTC")
                assert page.locator("#lag").inner_text() != "n/a"
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                table = "document.querySelector('.table')"
                assert page.evaluate(f"{table}.scrollWidth <= {table}.clientWidth")  # no scroll of its own
                assert page.evaluate(ONE_LINE_CHANGES), "a change figure wraps: its % on a line of its own"
                page.screenshot(path=str(OUTPUT / f"site-{width}px.png"), full_page=True)
                if width == 400:
                    _a_redraw_reaches_the_open_page(page, chart_stack.env)
                    _a_hostile_manifest_is_shown_as_text_entry_by_entry(page, local_stack, chart_stack)
                page.close()
        finally:
            browser.close()


def _a_hostile_manifest_is_shown_as_text_entry_by_entry(
    page: Page, local_stack: LocalStack, chart_stack: ChartStack
) -> None:
    """Entries the chart builder would never write are skipped one by one; figures are text."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    manifest = {
        "generated_at": int(time.time()) + 5,
        "symbols": [
            None,
            {"symbol": 5},
            {
                "symbol": "A+B",
                "updated_at": "soon",
                "last_price": "<b>9</b>",
                "drawn_at": {"1m": "javascript:x"},
            },
            {"symbol": "MSFT", "last_price": "777.77", "day_change_pct": "-3.00", "updated_at": 1e300},
        ],
    }
    s3, site = local_stack.client("s3"), chart_stack.outputs.SiteBucketName
    published = s3.get_object(Bucket=site, Key="manifest.json")["Body"].read()
    s3.put_object(Bucket=site, Key="manifest.json", Body=orjson.dumps(manifest))
    try:
        page.evaluate("window.tickstream.refresh()")
        page.wait_for_function("document.getElementById('last-MSFT').textContent === '777.77'")
    finally:  # the module's other tests read the site the chart builder published
        s3.put_object(Bucket=site, Key="manifest.json", Body=published)
    assert page.locator("#change-MSFT").get_attribute("class") == "down"
    assert page.locator("#schange-MSFT").inner_text() == "-3.00\u00a0%"
    assert page.locator("[id='last-A%2BB']").inner_text() == "<b>9</b>"
    assert page.locator("[id='last-A%2BB'] b").count() == 0
    assert errors == []


def _a_redraw_reaches_the_open_page(page: Page, env: dict[str, str]) -> None:
    sources = dict(page.evaluate("Array.from(document.images).map(i => [i.id, i.getAttribute('src')])"))
    time.sleep(1.1)  # drawn_at has a resolution of a second
    assert run_cli(["charts", "--symbol", "A+B"], env).returncode == 0
    page.evaluate("window.tickstream.refresh()")
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    now = dict(page.evaluate("Array.from(document.images).map(i => [i.id, i.getAttribute('src')])"))
    changed = {key for key in sources if now[key] != sources[key]}
    assert changed == {key for key in sources if key.startswith("chart-A%2BB-")}
    drawn = page.locator("[id='chart-A%2BB-1m']").get_attribute("data-drawn")
    assert (
        page.locator("[id='caption-A%2BB-1m']")
        .inner_text()
        .endswith(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(drawn or 0))))
    )


def test_new_bars_wait_for_their_interval_and_the_sweep_draws_them_and_only_them(
    local_stack: LocalStack, chart_stack: ChartStack
) -> None:
    """Bars of A+B change a few seconds after its charts were drawn: the stream batch draws none of
    them (at most once per interval) and marks them pending in the manifest; the one-minute sweep,
    stepped past the longest interval, draws exactly A+B's and leaves nothing pending."""
    env, outputs = chart_stack.env, chart_stack.outputs
    s3 = local_stack.client("s3")
    keys = [f"charts/{s}/{i}.png" for s in SYMBOLS for i in ("1m", "5m", "1h", "1d", "1w")]
    assert run_cli(["charts", "--symbol", "A+B"], env).returncode == 0
    before = {k: s3.head_object(Bucket=outputs.SiteBucketName, Key=k)["LastModified"] for k in keys}
    time.sleep(1.1)
    produced = run_cli(["produce", "--symbols", "A+B", "--count", "50", "--pace", "max", "--seed", "10"], env)
    assert produced.returncode == 0, produced.stderr
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr
    waited = {k: s3.head_object(Bucket=outputs.SiteBucketName, Key=k)["LastModified"] for k in keys}
    # The 1m chart may be due already on a slow machine (a minute since it was drawn); no other is.
    assert {k for k in keys if waited[k] != before[k]} <= {"charts/A+B/1m.png"}
    manifest = orjson.loads(s3.get_object(Bucket=outputs.SiteBucketName, Key="manifest.json")["Body"].read())
    pending = {e["symbol"]: set(e["pending"]) for e in manifest["symbols"]}
    assert pending["A+B"] >= {"5m", "1h", "1d", "1w"}
    assert pending["MSFT"] == pending["X.Y-Z"] == set()

    week_later = time.time() + 8 * 86_400
    sweep = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.scheduled_polls",
            "--function",
            outputs.ChartBuilderFunctionName,
            str(week_later),
            str(week_later + 60),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert sweep.returncode == 0, sweep.stderr
    counts = json.loads(sweep.stdout.splitlines()[-1])[outputs.ChartBuilderFunctionName]
    assert (counts["invokes"], counts["errors"]) == (1, 0)
    after = {k: s3.head_object(Bucket=outputs.SiteBucketName, Key=k)["LastModified"] for k in keys}
    assert {k for k in keys if after[k] != before[k]} == {k for k in keys if k.startswith("charts/A+B/")}
    manifest = orjson.loads(s3.get_object(Bucket=outputs.SiteBucketName, Key="manifest.json")["Body"].read())
    assert all(e["pending"] == [] for e in manifest["symbols"])


def test_view_serves_the_published_site_and_nothing_else(chart_stack: ChartStack) -> None:
    port = free_local_port()
    viewer = subprocess.Popen(
        [*TICKSTREAM, "view", "--port", str(port)],
        env=chart_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert viewer.stdout is not None
        assert f"at http://127.0.0.1:{port}/" in viewer.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/", timeout=10) as page:
            html = page.read().decode()
            assert page.headers["Content-Type"].startswith("text/html")
        assert "MSFT" in html
        with urllib.request.urlopen(f"{base}/charts/MSFT/1m.png", timeout=10) as chart:
            assert chart.read().startswith(b"\x89PNG")
        with urllib.request.urlopen(f"{base}/charts/A%2BB/1h.png", timeout=10) as chart:
            assert chart.headers["Content-Type"] == "image/png"
        assert anonymous_status(f"{base}/charts/NOPE/1m.png") == 404
        assert anonymous_status(f"{base}/charts/../index.html.png") == 404
        assert anonymous_status(f"{base}/secrets.txt") == 404
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
    assert viewer.returncode == 0
