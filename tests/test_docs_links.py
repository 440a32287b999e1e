"""Every relative link of the README and of docs/*.md leads somewhere in the repository: to a file or
folder that exists and, for ``#anchor``, to a heading of that Markdown file (issue 18, point 11:
the 401 message and docs/benchmarks.md named documents the repository did not have)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: ``[text](target)`` and ``![alt](target)``; the target up to a space (a title may follow) or ``)``.
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: ``[label]: target`` reference definitions.
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s.*)?$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+).+?\1")


def _prose(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1, with inline code spans blanked
    (``blank_code``: where a link is code, not a link)."""
    out: list[tuple[int, str]] = []
    fence = ""
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            if not fence:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = ""
            continue
        if not fence:
            out.append(
                (number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line) if blank_code else line)
            )
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated one also as ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _number, line in _prose(path.read_text(), blank_code=False):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """The relative link targets of a Markdown file, with their line numbers."""
    found: list[tuple[int, str]] = []
    for number, line in _prose(path.read_text()):
        targets = [m.group(1) for m in _LINK.finditer(line)]
        ref = _REFERENCE.match(line)
        if ref:
            targets.append(ref.group(1))
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
                continue
            found.append((number, target))
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def problem(source: Path, target: str) -> str | None:
    """Why ``target``, linked from ``source``, leads nowhere; None when it resolves."""
    path_part, _, anchor = target.partition("#")
    if path_part:
        dest = (source.parent / path_part).resolve()
        if not dest.exists():
            return f"no file {_shown(dest)}"
        if not dest.is_relative_to(ROOT) and source.is_relative_to(ROOT):
            return "outside the repository"
    else:
        dest = source
    if anchor and dest.suffix == ".md" and dest.is_file() and anchor not in anchors(dest):
        return f"no heading #{anchor} in {_shown(dest)}"
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    broken = [
        f"{document.relative_to(ROOT)}:{number}: ({target}): {why}"
        for number, target in links(document)
        if (why := problem(document, target)) is not None
    ]
    assert broken == [], "links that lead nowhere:\n" + "\n".join(broken)


def test_the_documents_have_links_to_check() -> None:
    """The parser finds the links it is meant to (else the test above would pass on nothing)."""
    readme = [target for _number, target in links(ROOT / "README.md")]
    assert "docs/protocol.md" in readme and "#the-data-path-the-lean-wire" in readme
    assert "performance-method.md" in [t for _n, t in links(ROOT / "docs" / "benchmarks.md")]
    assert "the-data-path-the-lean-wire" in anchors(ROOT / "README.md")


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Top `code` heading: yes\n\n## Top code heading: yes\n\n"
        "[ok](#top-code-heading-yes) [ok2](#top-code-heading-yes-1) [bad](#nope)\n"
        "[gone](missing.md) ![img](doc.md) [web](https://example.com/x.md)\n"
        "```\n[in code](nowhere.md)\n```\n"
        "`[inline](nowhere.md)` and [ref]: also-missing.md\n"
    )
    found = {target: problem(doc, target) for _number, target in links(doc)}
    assert found["#top-code-heading-yes"] is None and found["#top-code-heading-yes-1"] is None
    assert str(found["#nope"]).startswith("no heading #nope in ")
    assert "no file" in str(found["missing.md"]) and found["doc.md"] is None
    assert "https://example.com/x.md" not in found and "nowhere.md" not in found


def test_no_document_names_a_design_note_the_repository_lacks() -> None:
    """Plain-text mentions too: docs/benchmarks.md named design/PERFORMANCE.md, the 401 message
    PROTOCOL.md; the documents and the messages of src/ name only files that are here."""
    names = re.compile(r"\b(?:design/)?[A-Z]+\.md\b")
    texts = {p: p.read_text() for p in DOCUMENTS}
    texts |= {p: p.read_text() for p in (ROOT / "src").rglob("*.py")}
    here = {p.name for p in ROOT.rglob("*.md") if not {".git", ".venv", "node_modules"} & set(p.parts)}
    mentions = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path, text in texts.items()
        for name in set(names.findall(text))
        if name.startswith("design/") or Path(name).name not in here
    )
    assert mentions == [], "names of documents that are not in the repository:\n" + "\n".join(mentions)
