"""The project documents itself: every relative link in the README, the changelog and docs/ resolves
inside the repository, and every ``#anchor`` names a heading of its target, as GitHub renders it.

A cloner has nothing outside the repository, so a link to a sibling checkout (``../shared``) or to a
moved file is a broken page for them; this test fails on it before a reader does.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", REPO / "CHANGELOG.md", REPO / "examples" / "README.md",
                *(REPO / "docs").glob("*.md")])
DOCS = ("rules.md", "events.md", "cli.md", "http.md", "operations.md", "security.md", "alerting.md", "runbook.md",
        "design.md", "benchmarks.md", "testing.md", "sources.md")
_PARSER = MarkdownIt("commonmark").enable("table")


def links(path: Path) -> list[str]:
    """Every link and image target of a Markdown file (code spans and blocks hold none)."""
    found = []
    for token in _PARSER.parse(path.read_text(encoding="utf-8")):
        for child in token.children or ():
            target = child.attrGet("href" if child.type == "link_open" else "src" if child.type == "image" else "")
            if target is not None:
                found.append(str(target))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercased, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    tokens = _PARSER.parse(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    result = set()
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        text = "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline"))
        base = slug(text)
        result.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return frozenset(result)


def broken(page: Path, target: str) -> str | None:
    """Why a link target of ``page`` is broken, or None when it resolves inside the repository."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None  # an absolute URL: not ours to check offline
    path = unquote(parts.path)
    # "/x" is the repository's root (as GitHub renders it): docs/ links to code without "../"
    base = REPO if path.startswith("/") else page.parent
    destination = (base / path.lstrip("/")).resolve() if path else page
    if not destination.is_relative_to(REPO):
        return f"{target}: points outside the repository"
    if not destination.exists():
        return f"{target}: {destination.relative_to(REPO)} does not exist"
    if parts.fragment and destination.suffix == ".md" and parts.fragment not in anchors(destination):
        return f"{target}: no heading with anchor #{parts.fragment} in {destination.relative_to(REPO)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    targets = links(page)
    assert targets, f"{page.name} has no links: the parser found nothing, so the check would prove nothing"
    problems = [problem for target in targets if (problem := broken(page, target)) is not None]
    assert not problems, f"broken links in {page.relative_to(REPO)}:\n" + "\n".join(problems)


def test_the_docs_exist_and_the_readme_links_to_each() -> None:
    readme = set(links(REPO / "README.md"))
    for name in DOCS:
        assert (REPO / "docs" / name).is_file()
        assert f"docs/{name}" in readme, f"README.md does not link to docs/{name}"


def test_the_check_catches_a_missing_file_an_outside_target_and_a_missing_anchor() -> None:
    page = REPO / "docs" / "rules.md"
    assert broken(page, "../shared/SPEC.md") is not None
    assert broken(page, "../../shared/SPEC.md") is not None
    assert broken(page, "missing.md") is not None
    assert broken(page, "#no-such-heading") is not None
    assert broken(page, "events.md#no-such-heading") is not None
    assert broken(page, "#capacity-levels-and-hysteresis") is None
    assert broken(page, "https://example.com/anything") is None
    assert broken(page, "/schemas/events.py") is None  # the repository's root
    assert broken(page, "/../shared/SPEC.md") is not None


def test_anchor_slugs_follow_github() -> None:
    assert slug("HTTP (every worker, port ENDUSERS_WEB_PORT, default 6066)") == (
        "http-every-worker-port-endusers_web_port-default-6066")
    assert slug("Classes: internal and external") == "classes-internal-and-external"
    assert slug("Live pipeline: tests/bench/run.py") == "live-pipeline-testsbenchrunpy"
