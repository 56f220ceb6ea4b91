"""Every relative link of the repository's Markdown files resolves, and no docs/ page is orphaned.

A link `[text](path)` or `[text](path#anchor)` (and a reference definition `[label]: path`)
must name a file or folder that exists, relative to the Markdown file; when it names a Markdown
file with an anchor (or is only `#anchor`), that file must have a heading with that GitHub-style
slug. Links to http(s):// and mailto: and links inside fenced code blocks or inline code are
ignored. README.md must link to every page under docs/.
"""

import os
import re
from pathlib import Path
from urllib.parse import unquote

# The folder holding pyproject.toml, wherever this file sits among the test tiers.
REPOSITORY = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SKIPPED_FOLDERS = {"node_modules", "__pycache__"}  # and every hidden folder (.venv, .git, .rakuten)

FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target><[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"^ {0,3}\[(?P<label>[^\]]+)\]:\s*(?P<target>\S+)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<title>.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.\-]*:|//)", re.IGNORECASE)  # http:, https:, mailto:...


def markdown_files() -> list[Path]:
    """Every Markdown file of the repository, outside hidden and generated folders."""
    found = []
    for folder, subfolders, files in os.walk(REPOSITORY):
        subfolders[:] = [
            name for name in subfolders if not name.startswith(".") and name not in SKIPPED_FOLDERS
        ]
        found.extend(Path(folder) / name for name in files if name.endswith(".md"))
    return sorted(found)


def prose_lines(text: str, *, blank_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans blanked unless not
    `blank_code` (a heading's anchor keeps the text of its code spans)."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening["fence"]
            continue
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
            continue
        if blank_code:
            line = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)
        lines.append((number, line))
    return lines


def slug(title: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lowercase, punctuation removed except
    hyphens (and underscores), each space a hyphen."""
    text = INLINE_LINK.sub(lambda m: m["text"], title)  # a link in a heading renders its text
    text = re.sub(r"<[^>]+>", "", text).lower()  # inline HTML renders no text of its own
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; repeated titles get -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), blank_code=False):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = slug(heading["title"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link of a Markdown file outside code."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        reference = REFERENCE.match(line)
        if reference:
            found.append((number, reference["target"].strip("<>")))
            continue
        found.extend((number, m["target"].strip("<>")) for m in INLINE_LINK.finditer(line))
    return found


def problem(source: Path, target: str) -> str | None:
    """What is wrong with the link `target` of `source`, or None when it resolves."""
    if not target:
        return "empty link target"
    if EXTERNAL.match(target):
        return None
    location, _, anchor = target.partition("#")
    resolved = (source.parent / unquote(location)).resolve() if location else source
    if not resolved.exists():
        return f"{unquote(location)} does not exist (looked for {resolved})"
    if anchor and resolved.suffix.lower() == ".md":
        if resolved.is_dir():
            return f"{location} is a folder; it cannot have the anchor #{anchor}"
        if unquote(anchor) not in anchors(resolved):
            where = resolved.relative_to(REPOSITORY)
            return f"no heading of {where} has the anchor #{anchor}"
    return None


def test_slug_follows_github() -> None:
    assert slug("Quick start") == "quick-start"
    assert slug("`drift_metrics`") == "drift_metrics"
    assert slug("Partitions: 40%, then +3% per load") == "partitions-40-then-3-per-load"
    assert slug("Corrections: `POST /feedback`, live accuracy") == (
        "corrections-post-feedback-live-accuracy"
    )
    assert slug("The full stack (deploy/)") == "the-full-stack-deploy"
    assert slug("See [the page](docs/data.md)") == "see-the-page"


def test_markdown_files_are_found() -> None:
    names = {path.relative_to(REPOSITORY).as_posix() for path in markdown_files()}
    assert "README.md" in names
    assert not any(name.startswith((".venv/", ".git/", ".rakuten/")) for name in names)


def test_every_relative_link_resolves() -> None:
    broken = []
    for path in markdown_files():
        for number, target in links(path):
            wrong = problem(path, target)
            if wrong:
                name = path.relative_to(REPOSITORY).as_posix()
                broken.append(f"{name}:{number}: link ({target}): {wrong}")
    assert not broken, "broken Markdown links:\n" + "\n".join(broken)


def test_readme_links_every_docs_page() -> None:
    readme = REPOSITORY / "README.md"
    linked = set()
    for _, target in links(readme):
        location = target.partition("#")[0]
        if location and not EXTERNAL.match(target):
            linked.add((readme.parent / unquote(location)).resolve())
    pages = sorted((REPOSITORY / "docs").rglob("*.md"))
    orphans = [page.relative_to(REPOSITORY).as_posix() for page in pages if page not in linked]
    assert not orphans, "README.md does not link to these docs pages: " + ", ".join(orphans)
