"""Which of our sources each Lambda function ships: the one list `make package` and `tickstream up` read.

Light on purpose (no pip, no boto3): the local deploy zips the union of these sources, and
`make package` builds each function's artifact from its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Installed from the wheel, this is site-packages, where our packages and infra/ sit side by side.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Modules and the data files they read (alerts/rules.yaml, functions/quote_poller/sources.yaml), as deployed.
SOURCE_SUFFIXES = (".py", ".yaml")
# Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
# 250 MB unzipped for a function and its layers; the small functions' own budget is a 10 MB zip.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
SMALL_ZIP_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True)
class FunctionPackage:
    name: str
    logical_id: str  # the template's resource, whose `sam build` target copies this package
    handler: str
    sources: tuple[str, ...]  # our packages, as paths under the project root
    requirements: tuple[str, ...]  # distribution names; their specifiers come from pyproject.toml
    zip_limit: int | None = None

    def folder(self, build: Path) -> Path:
        return build / self.name

    def zip_path(self, build: Path) -> Path:
        return build / f"{self.name}.zip"


AGGREGATOR = FunctionPackage(
    "aggregator",
    "AggregatorFunction",
    "functions.aggregator.handler.handler",
    ("market", "stores", "functions/__init__.py", "functions/aggregator"),
    ("aws-lambda-powertools", "aws-xray-sdk", "orjson", "msgspec", "protobuf"),
    zip_limit=SMALL_ZIP_LIMIT,
)
CHART_BUILDER = FunctionPackage(
    "charts",
    "ChartBuilderFunction",
    "functions.chart_builder.handler.handler",
    ("market", "stores", "functions/__init__.py", "functions/chart_builder", "alerts", "webclients"),
    (
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "orjson",
        "protobuf",
        "pandas",
        "mplfinance",
        "pillow",
        "requests",
        "PyYAML",
    ),
)
# tzdata: zoneinfo's fallback where the runtime has no /usr/share/zoneinfo (intraday quotes carry a zone).
QUOTE_POLLER = FunctionPackage(
    "quote-poller",
    "QuotePollerFunction",
    "functions.quote_poller.handler.handler",
    ("market", "producer", "webclients", "functions/__init__.py", "functions/quote_poller"),
    ("aws-lambda-powertools", "aws-xray-sdk", "orjson", "protobuf", "requests", "PyYAML", "tzdata"),
    zip_limit=SMALL_ZIP_LIMIT,
)
ALARM_NOTIFIER = FunctionPackage(
    "alarm-notifier",
    "AlarmNotifierFunction",
    "functions.alarm_notifier.handler.handler",
    (
        "functions/__init__.py",
        "functions/alarm_notifier",
        "alerts/__init__.py",
        "alerts/slack_webhook.py",
        "alerts/webhook_config.py",
        "webclients",
    ),
    ("aws-lambda-powertools", "aws-xray-sdk", "requests"),
    zip_limit=SMALL_ZIP_LIMIT,
)
FUNCTIONS = (AGGREGATOR, CHART_BUILDER, QUOTE_POLLER, ALARM_NOTIFIER)


def source_files(sources: Sequence[str], root: Path = PROJECT_ROOT) -> Iterator[Path]:
    """The files of the given packages and single modules, sorted, without caches, each once
    (one function ships a module of a package another ships whole)."""
    seen: set[Path] = set()
    for source in sources:
        path = root / source
        found = (
            [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in SOURCE_SUFFIXES)
        )
        for file in found:
            if file not in seen:
                seen.add(file)
                yield file


def every_function_source() -> tuple[str, ...]:
    """What the local stack's one code zip holds: everything any function ships."""
    return tuple(sorted({source for function in FUNCTIONS for source in function.sources}))
