#!/usr/bin/env python3
"""Fails when the crate's modules import each other in a cycle.

Reads every file under src/ (`#[cfg(test)]` items are left out: tests may reach
anywhere), collects each `crate::` and `super::` path, `use` trees included, and
resolves it to the deepest module it names. A reference from module A to module B is an
edge between the two children of their closest common ancestor that hold them: from
`telemetry::sentry` to `http::middleware` is `telemetry -> http`, from
`domain::list` to `domain::song` is `list -> song`. A module using its parent or its
children is not an edge (that is how Rust modules are built). Any strongly connected set
of two or more modules is a cycle; the script prints each with one reference per edge.

Usage: scripts/check-module-cycles.py [SRC_DIR]   (exit 1 on a cycle)
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "src")


def module_of(path: Path) -> tuple:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


FILES = {module_of(p): p for p in SRC.rglob("*.rs") if p.name != "main.rs"}
MODULES = set(FILES)


def strip(text: str) -> str:
    """The file's code without test modules, comments and string literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch, nxt = text[i], text[i + 1 : i + 2]
        if ch == "/" and nxt == "/":
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif ch == "/" and nxt == "*":
            i = text.find("*/", i + 2)
            i = n if i < 0 else i + 2
        elif ch == "r" and re.match(r'r#*"', text[i:]) and not (text[i - 1 : i].isalnum() or text[i - 1 : i] == "_"):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif ch == "'" and re.match(r"'(?:\\.|[^'\\])'", text[i:]):
            i += len(re.match(r"'(?:\\.|[^'\\])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(ch)
            i += 1
    text = "".join(out)
    # Drop each `#[cfg(test)]` item: up to its `;`, or its `{ ... }` block.
    while (cut := text.find("#[cfg(test)]")) >= 0:
        end = cut + len("#[cfg(test)]")
        semi, brace = text.find(";", end), text.find("{", end)
        if brace < 0 or 0 <= semi < brace:
            text = text[:cut] + text[semi + 1 :]
            continue
        depth, i = 0, brace
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        text = text[:cut] + text[i + 1 :]
    return text


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` as the paths `a::b`, `a::c::d`, `a::c::e`."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree.split(" as ")[0]]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    return [p for item in items if item for p in expand(prefix + item)]


def resolve(module: tuple, path: str):
    """The deepest known module named by `path`, seen from `module`."""
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    elif segments[0] in ("super", "self"):
        base = module
        while segments and segments[0] in ("super", "self"):
            if segments[0] == "super":
                base = base[:-1]
            segments = segments[1:]
        rest = segments
    else:
        return None
    target = base
    for segment in rest:
        if base + (segment,) in MODULES or target + (segment,) in MODULES:
            target = target + (segment,)
        else:
            break
    return target


def references(module: tuple, code: str):
    for tree in re.findall(r"\buse\s+([^;]+);", code):
        for path in expand(tree):
            yield path
    for path in re.findall(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
        yield path


edges = defaultdict(dict)
for module, path in FILES.items():
    code = strip(path.read_text())
    for ref in references(module, code):
        target = resolve(module, ref)
        if target is None or target == module:
            continue
        common = 0
        while common < min(len(module), len(target)) and module[common] == target[common]:
            common += 1
        if common == len(module) or common == len(target):
            continue  # parent and child
        a, b = module[: common + 1], target[: common + 1]
        edges[a].setdefault(b, f"{'::'.join(module)} uses {ref}")

# Tarjan's strongly connected components.
index, low, stack, on_stack, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, {}):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            sccs.append(component)


sys.setrecursionlimit(10000)
for node in list(edges):
    if node not in index:
        visit(node)

if not sccs:
    print(f"no import cycle among {len(MODULES)} modules")
    sys.exit(0)
for component in sccs:
    names = sorted("::".join(m) for m in component)
    print("cycle: " + " <-> ".join(names))
    members = set(component)
    for a in sorted(component):
        for b, why in sorted(edges[a].items()):
            if b in members:
                print(f"  {'::'.join(a)} -> {'::'.join(b)}: {why}")
sys.exit(1)
