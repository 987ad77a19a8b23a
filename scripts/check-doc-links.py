#!/usr/bin/env python3
"""Checks that every relative link and #anchor in the repository's markdown resolves.

For every tracked markdown file (`git ls-files '*.md'`, node_modules left out) it checks
each inline link `[text](target)`, reference definition `[id]: target` and HTML
`href="target"` that is not a URL: the file or folder must exist, and an `#anchor` must be
a heading of the target file under GitHub's rules (lower case; punctuation other than
`-` and `_` dropped; spaces become `-`; the second heading of the same text gets `-1`,
the third `-2`) or an explicit `<a id=...>` / `<a name=...>`. Links inside code (fenced
blocks and `inline code`) are not links and are skipped.

It also checks the `runbook_url` of every alert in deploy/prometheus/alerts.yml and
helm/starsongs/files/alerts.yml: a path relative to the repository root, or a GitHub URL
whose path after `blob/<ref>/` is one, ending in an #anchor that must resolve the same way.

Usage: scripts/check-doc-links.py   (from anywhere in the repository; exit 1 listing each
broken link as FILE:LINE: TARGET: reason)
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
ALERT_FILES = ["deploy/prometheus/alerts.yml", "helm/starsongs/files/alerts.yml"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
EXPLICIT_ANCHOR = re.compile(r"<a\s[^>]*?(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HREF = re.compile(r"\bhref\s*=\s*[\"']([^\"']+)[\"']", re.I)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def tracked_markdown():
    out = subprocess.run(
        ["git", "ls-files", "-z", "*.md"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    return sorted(p for p in out.split("\0") if p and "node_modules/" not in p)


def lines_outside_code(text):
    """Yields (line number, line) for lines outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield number, line


def slug(title):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"<[^>]+>", "", title)  # inline HTML
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and _ (Unicode)
    return text.replace(" ", "-")


_anchor_cache = {}


def anchors_of(path):
    """Every anchor GitHub makes for a markdown file."""
    if path in _anchor_cache:
        return _anchor_cache[path]
    text = path.read_text(encoding="utf-8")
    anchors, seen = set(), {}
    previous = None
    for _, line in lines_outside_code(text):
        for m in EXPLICIT_ANCHOR.finditer(line):
            anchors.add(m.group(1))
        title = None
        m = HEADING.match(line)
        if m:
            title = m.group(2)
        elif previous is not None and previous.strip() and SETEXT.match(line) \
                and not previous.lstrip().startswith(("-", "*", "|", ">")) \
                and not HEADING.match(previous):
            title = previous
        previous = line
        if title is None:
            continue
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    _anchor_cache[path] = anchors
    return anchors


def check_target(source, target):
    """None if `target` (relative to the file `source`) resolves, else the reason."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
        return None  # a URL: not checked here
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part)
    if path_part:
        base = ROOT if path_part.startswith("/") else source.parent
        dest = (base / path_part.lstrip("/")).resolve()
        try:
            dest.relative_to(ROOT)
        except ValueError:
            return "points outside the repository"
        if not dest.exists():
            return "no such file"
    else:
        dest = source
    if not anchor:
        return None
    if dest.is_dir() or dest.suffix.lower() not in (".md", ".markdown"):
        return "an anchor into something that is not a markdown file"
    if unquote(anchor) not in anchors_of(dest):
        return f"no heading or anchor #{anchor} in {dest.relative_to(ROOT)}"
    return None


def links_in(text):
    for number, line in lines_outside_code(text):
        bare = INLINE_CODE.sub("", line)
        for pattern in (INLINE_LINK, HREF):
            for m in pattern.finditer(bare):
                yield number, m.group(1)
        m = REFERENCE_DEF.match(bare)
        if m:
            yield number, m.group(1)


def runbook_target(url):
    """The repository path#anchor a runbook_url names."""
    m = re.match(r"^https?://github\.com/[^/]+/[^/]+/(?:blob|tree)/[^/]+/(.+)$", url)
    if m:
        return m.group(1)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url):
        return None
    return url


def main():
    broken = []
    files = tracked_markdown()
    for name in files:
        source = ROOT / name
        if not source.exists():
            continue  # deleted in the work tree, not yet in the index
        for number, target in links_in(source.read_text(encoding="utf-8")):
            reason = check_target(source, target)
            if reason:
                broken.append(f"{name}:{number}: {target}: {reason}")
    runbooks = 0
    for name in ALERT_FILES:
        path = ROOT / name
        if not path.exists():
            broken.append(f"{name}: missing")
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            m = re.search(r"runbook_url:\s*[\"']?([^\"'\s]+)", line)
            if not m:
                continue
            runbooks += 1
            target = runbook_target(m.group(1))
            if target is None:
                broken.append(f"{name}:{number}: {m.group(1)}: not a GitHub URL or repository path")
                continue
            if "#" not in target:
                broken.append(f"{name}:{number}: {m.group(1)}: no #anchor")
                continue
            reason = check_target(ROOT / "runbook_url", target)
            if reason:
                broken.append(f"{name}:{number}: {m.group(1)}: {reason}")
    if broken:
        print(f"{len(broken)} broken link(s):")
        print("\n".join(broken))
        return 1
    print(f"ok: {len(files)} markdown files, {runbooks} runbook_url values")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
