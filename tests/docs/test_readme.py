"""README.md stays short, and every relative link in it resolves: to a file of the repository,
and where it names an anchor, to a heading of that file (slugged as the docs site slugs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def headings(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (code blocks left out)."""
    found, fence = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"#{1,6} (.+?)\s*$", line)):
            found.add(slugify(m[1].replace("`", ""), "-"))
    return found


def relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def broken(source: Path, root: Path = ROOT) -> list[str]:
    out = []
    for target in relative_links(source.read_text()):
        name, _, anchor = target.partition("#")
        path = (source.parent / name).resolve() if name else source
        if not path.exists() or root.resolve() not in path.parents:
            out.append(f"{target}: no such file")
        elif anchor and anchor not in headings(path):
            out.append(f"{target}: no heading #{anchor} in {path.name}")
    return out


def test_the_readme_is_short_and_every_link_in_it_resolves():
    assert len(README.read_text().splitlines()) <= 250
    assert relative_links(README.read_text()), "the README links into the docs"
    assert broken(README) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A section `here`\n")
    page.write_text("# Page\n\n[ok](other.md#a-section-here) [bad](missing.md) [anchor](other.md#nope) "
                    "[self](#page) [web](https://example.org)\n")
    assert broken(page, root=tmp_path) == ["missing.md: no such file",
                                           "other.md#nope: no heading #nope in other.md"]


@pytest.mark.parametrize("heading, slug", [("Reading the report", "reading-the-report"),
                                           ("W&B", "wb"), ("The studies in optuna-dashboard",
                                                           "the-studies-in-optuna-dashboard")])
def test_anchors_are_slugged_as_the_site_slugs_them(tmp_path, heading, slug):
    page = tmp_path / "p.md"
    page.write_text(f"## {heading}\n")
    assert slug in headings(page)
