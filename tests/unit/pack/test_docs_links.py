"""Every relative link of the user's pages resolves: README.md, CHANGELOG.md and docs/*.md. A link's file exists
(a picture too), and a `#anchor` is the GitHub slug of a heading of the page it points to. Links inside code
(fenced blocks, `inline spans`) are text, not links; absolute URLs are not fetched (no network here)."""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title"; <...> autolinks are absolute.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ABSOLUTE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but `-` and `_` removed, spaces as
    `-` (a run of spaces stays a run of hyphens, as GitHub keeps them)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[`*]", "", text).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading's later ones get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(page.read_text()):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = slug(heading[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(page.read_text()):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, match[1]))
    return found


def dead_links(page: Path, root: Path = ROOT) -> list[str]:
    """`page:line: target (why)` for each relative link that does not resolve."""
    dead = []
    for number, target in links(page):
        if ABSOLUTE.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not linked.exists():
            dead.append(f"{where} (no such file)")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            dead.append(f"{where} (no heading with that anchor in {linked.name})")
    return dead


def test_the_pages_are_there():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "CHANGELOG.md", "docs/files.md"} <= names, names
    assert all(p.exists() for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    assert links(page) or page.name == "CHANGELOG.md", f"{page.name} links nothing"
    assert dead_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(ROOT / "README.md") if not ABSOLUTE.match(t)}
    assert [p.name for p in PAGES[2:] if p.resolve() not in linked] == []


def test_a_dead_path_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `as_stored` policy: files kept low-bit\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "[good](other.md#the-as_stored-policy-files-kept-low-bit) [self](#a-page) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad anchor](other.md#nothing-here) `[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
    )
    dead = [entry.split(": ", 1)[1] for entry in dead_links(page, tmp_path)]
    assert dead == ["missing.md (no such file)", "other.md#nothing-here (no heading with that anchor in other.md)"]


def test_slugs_are_githubs():
    assert slug("LTX-2 A2V for ComfyUI — quantized, within a VRAM budget") == (
        "ltx-2-a2v-for-comfyui--quantized-within-a-vram-budget"
    )
    assert slug("Each file read once: stage 2 on stage 1's transformer") == (
        "each-file-read-once-stage-2-on-stage-1s-transformer"
    )
    assert slug("`make bench-quant` (2026-11-24)") == "make-bench-quant-2026-11-24"
