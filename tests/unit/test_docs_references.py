"""The repository explains itself: every reference in it resolves inside it.

Comments, docstrings and docs cite a heading of `docs/architecture.md` (such as
`docs/architecture.md#availability`), an ADR or the README — never the product brief's numbered
sections, which a maintainer with only the repository cannot open. And every relative Markdown link,
and every mention of a Markdown file with an anchor, points at a file that exists and, with an anchor,
at a heading that file has. A renamed heading or a moved ADR fails here instead of leaving a dead link.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OUTSIDE_REFERENCE = re.compile(
    r"\b(?:SPEC|DESIGN)\b"  # the brief's two documents by name, with or without a section or decision number
    r"|(?<![\w-])D(?:1[0-4]|[1-9])(?![\w-])"  # its decisions by number alone ("read-your-writes, D6")
)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
# A repository path to a Markdown file with an anchor, anywhere (code comments, docstrings, code spans);
# not one that is a Markdown link's target, which resolves relative to its file and is checked as a link.
MD_ANCHOR_MENTION = re.compile(r"(?<![\w/.-])(?<!\]\()((?:[\w-]+/)*[\w.-]+\.md)#([\w-]+)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def repository_files() -> list[Path]:
    """Tracked files and new ones not ignored: what a clone holds, without `.venv`, caches or data."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / name for name in sorted(set(listed.split("\0"))) if name and (ROOT / name).is_file()]


def text_files() -> Iterator[tuple[Path, str]]:
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        yield path, text


def outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """Line numbers and lines of Markdown prose, fenced code blocks left out."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: the link text of any link, lower case, punctuation other
    than hyphens dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown file; a repeated heading gets `-1`, `-2` … as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in outside_fences(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match is None:
            continue
        anchor = github_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return frozenset(found)


def broken(target: Path, anchor: str) -> str | None:
    """Why `target#anchor` does not resolve, or None when it does."""
    if not target.exists():
        return "no such file"
    if anchor and target.suffix == ".md" and anchor not in anchors(target):
        return f"no heading #{anchor} in {target.relative_to(ROOT)}"
    return None


def test_no_reference_points_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path, text in text_files()
        if path != Path(__file__).resolve()  # the pattern itself names what it looks for
        for number, line in enumerate(text.splitlines(), 1)
        if OUTSIDE_REFERENCE.search(line)
    ]
    assert offenders == [], (
        "cite a heading of docs/architecture.md, an ADR under docs/adr/ or the README instead:\n" + "\n".join(offenders)
    )


def test_relative_markdown_links_resolve() -> None:
    failures = []
    for path, text in text_files():
        if path.suffix != ".md":
            continue
        for number, line in outside_fences(text):
            for match in MARKDOWN_LINK.finditer(line):
                target = match.group(1)
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
                    continue
                file_part, _, anchor = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                reason = broken(resolved, anchor)
                if reason is not None:
                    failures.append(f"{path.relative_to(ROOT)}:{number}: {target}: {reason}")
    assert failures == [], "\n".join(failures)


def test_markdown_anchor_mentions_resolve() -> None:
    """`docs/architecture.md#availability` in a comment is read from the repository root."""
    failures = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(0)}: {reason}"
        for path, text in text_files()
        for number, line in enumerate(text.splitlines(), 1)
        for match in MD_ANCHOR_MENTION.finditer(line)
        if (reason := broken(ROOT / match.group(1), match.group(2))) is not None
    ]
    assert failures == [], "\n".join(failures)


def test_headings_get_the_anchors_links_use() -> None:
    """The anchor rule the checks above rely on, on headings this repository has."""
    assert github_anchor("2. Serialised appends") == "2-serialised-appends"
    assert github_anchor("Walk-through: from empty to a page with components") == (
        "walk-through-from-empty-to-a-page-with-components"
    )
    assert github_anchor("The `beacon` command") == "the-beacon-command"
    assert github_anchor("Read the log with the stock `eventsourcing` library") == (
        "read-the-log-with-the-stock-eventsourcing-library"
    )
