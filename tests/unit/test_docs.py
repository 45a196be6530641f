"""The README and docs/ stay navigable and true: every link resolves inside the repository, the
README stays short, and the contract names exactly the metrics and quarantine reasons the code has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market.ticks import RejectReason
from tickstream.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *DOCS]
# Issue 14: a README of about 10 KB, the rest in docs/.
README_MAX_BYTES = 10 * 1024
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Top-level folders whose files the docs name: every package, and the folders of data and text.
PACKAGES = tuple(sorted({p.parent.name for p in ROOT.glob("*/__init__.py")} | {"docs", "infra", "tests"}))
HANDLERS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "functions").glob("*/handler.py"))


def _prose(page: Path) -> str:
    """The page without its code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    links = _links(page)
    for link in links:
        assert not re.match(r"[a-z]+:", link), f"{page.name}: {link} leaves the repository"
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.is_relative_to(ROOT), f"{page.name}: {link} leaves the repository"
        assert path.exists(), f"{page.name}: {link} resolves to nothing"
        if anchor:
            assert anchor in _anchors(path), f"{page.name}: {link} names no heading of {path.name}"


def test_the_link_check_sees_links_and_headings() -> None:
    readme = ROOT / "README.md"
    assert "docs/contract.md" in _links(readme)
    assert "budgets" in _anchors(ROOT / "docs" / "contract.md")


def test_the_readme_is_short_and_reaches_every_page_of_docs() -> None:
    readme = ROOT / "README.md"
    assert readme.stat().st_size <= README_MAX_BYTES
    linked = {(readme.parent / link.partition("#")[0]).resolve() for link in _links(readme)}
    assert set(DOCS) <= linked


def _contract_section(title: str) -> str:
    text = (ROOT / "docs" / "contract.md").read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert match is not None, title
    return match.group(1)


def test_the_contract_names_exactly_the_metrics_the_functions_publish() -> None:
    published: set[str] = set()
    for handler in HANDLERS:
        source = (ROOT / handler).read_text()
        published |= set(re.findall(r'add_metric\(\s*"(\w+)"', source))
        published |= set(re.findall(r'name="(\w+)"', source))
    section = _contract_section("Names")
    named = set(re.findall(r"`([A-Z]\w+)`", section[section.index("Metrics") :]))
    assert len(published) > 15
    assert named == published


def test_the_contract_names_exactly_the_quarantine_reasons() -> None:
    section = _contract_section("A tick")
    paragraph = section[section.index("**Bad input never blocks") :]
    named = set(re.findall(r"`([a-z0-9_]+)`", paragraph))
    assert named == {reason.value for reason in RejectReason}


def test_every_source_path_the_docs_name_exists() -> None:
    """A doc that names a file (`tests/unit/test_docs.py`, `stores/bars_table.py`) names one that is there."""
    pattern = re.compile(rf"`((?:{'|'.join(PACKAGES)})/[\w./-]+)`")
    named = {path for page in PAGES for path in pattern.findall(FENCE.sub("", page.read_text()))}
    assert "tests/unit/test_crash_points.py" in named
    assert sorted(p for p in named if not (ROOT / p.rstrip("/")).exists()) == []


def _cheat_sheet_lines() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("tickstream ")]


def test_every_tickstream_line_of_the_readme_parses() -> None:
    """Each line of the README's cheat sheet names a command and options the CLI has: parsed with
    --help added, which exits before running anything (an unknown option exits with 2)."""
    lines = _cheat_sheet_lines()
    assert len(lines) > 10
    runner = CliRunner()
    for args in lines:
        done = runner.invoke(app, [*args, "--help"])
        assert done.exit_code == 0, (args, done.output)
    assert runner.invoke(app, ["up", "--no-such-option", "--help"]).exit_code == 2
