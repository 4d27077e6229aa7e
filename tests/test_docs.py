"""The documentation stays true: every link resolves, every entry point and setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

PAGES = sorted([PROJECT_DIR / "README.md", PROJECT_DIR / "cli" / "README.md", *(PROJECT_DIR / "docs").glob("*.md")])
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")
README_MAX_LINES = 300


def prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (a repeated heading gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    for line in prose(page):
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            anchor, number = base, 0
            while anchor in found:
                number += 1
                anchor = f"{base}-{number}"
            found.add(anchor)
    return found


def relative_links(page: Path) -> list[str]:
    """Every link of the page that points into the repository."""
    return [
        target
        for line in prose(page)
        for target in _LINK.findall(line)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # https:, mailto:
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_the_readme_is_a_front_door() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert all(command in readme for command in ("make dev", "make test", "make deploy"))
    linked = {target.partition("#")[0] for target in relative_links(PROJECT_DIR / "README.md")}
    assert {f"docs/{page.name}" for page in (PROJECT_DIR / "docs").glob("*.md")} <= linked


def test_every_route_has_its_section_in_the_api_reference() -> None:
    from app import app

    headings = {line.lstrip("#").strip() for line in prose(PROJECT_DIR / "docs" / "api.md") if line.startswith("## ")}
    routes = {f"{method} {path}" for path, entries in app.routes.items() for method in entries}
    assert routes
    assert routes - headings == set()
    readme = (PROJECT_DIR / "README.md").read_text()
    assert all(f"`{route}`" in readme for route in routes)


def test_every_event_function_is_documented() -> None:
    from app import app

    docs = "\n".join(page.read_text() for page in PAGES)
    names = [source.name for source in app.event_sources] + [f.name for f in app.pure_lambda_functions]
    assert names
    assert [name for name in names if f"`{name}`" not in docs] == []


def test_every_setting_is_in_the_configuration_page() -> None:
    settings = set(re.findall(r'env\.get\("([A-Z_]+)"', (PROJECT_DIR / "chalicelib/core/config.py").read_text()))
    assert "STATE_TABLE" in settings
    page = (PROJECT_DIR / "docs" / "configuration.md").read_text()
    assert sorted(name for name in settings if f"`{name}`" not in page) == []
