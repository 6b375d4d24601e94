#!/usr/bin/env python3
"""Fails on a reference to a file or section the repository does not have.

check-references.py SOURCE_ROOT

Reads every file git tracks (or, outside a checkout, every file) and checks:
  - `docs/NAME.md` and, inside docs/, `NAME.md` name files that exist;
  - `docs/NAME.md §N` (also `§N-§M`, `§N-M`) name sections: NAME.md has a
    heading `## N. ...` for each;
  - Markdown links [text](target#anchor) in .md files resolve: the file
    exists and the anchor is one of its headings;
  - paths in backquotes that start with a top-level folder of the project
    (`preload/conn/stream.c`, `tests/lib/with-registry`) exist;
  - nothing cites a design brief outside the repository.
Prints one line per broken reference; exit status 1 if there is any.
"""
import os
import re
import subprocess
import sys

TOP = ("preload/", "registryfs/", "include/", "tests/", "contrib/", "bench/",
       "docs/", "debian/", ".ci/")
TEXT = re.compile(r"(\.(c|h|md|sh|py|js|build|txt|1|8|service)|/tssx|/with-registry|/run|README)$")
DOC_SECTION = re.compile(r"(?:docs/)?([A-Za-z0-9_-]+\.md) §(\d+)(?:-§?(\d+))?")
DOC_FILE = re.compile(r"\bdocs/([A-Za-z0-9_-]+\.md)")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`([A-Za-z0-9_./-]+)`")
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared/|detection-notes")


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files"], check=True,
                             capture_output=True, text=True).stdout
        return [f for f in out.splitlines() if os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        return [os.path.relpath(os.path.join(d, f), root)
                for d, _, fs in os.walk(root) for f in fs]


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def headings(path):
    with open(path, encoding="utf-8") as f:
        return [line.lstrip("#").strip() for line in f if line.startswith("#")]


def section_numbers(path):
    nums = set()
    for h in headings(path):
        m = re.match(r"(\d+)\.", h)
        if m:
            nums.add(int(m.group(1)))
    return nums


def check_file(root, rel, text, errors):
    here = os.path.dirname(rel)
    in_docs = rel.startswith("docs/")

    def doc_path(name):
        return os.path.join(root, "docs", name)

    for n, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{n}"
        if OUTSIDE.search(line):
            errors.append(f"{where}: cites a file outside the repository")
        for m in DOC_FILE.finditer(line):
            if not os.path.isfile(doc_path(m.group(1))):
                errors.append(f"{where}: docs/{m.group(1)} does not exist")
        for m in DOC_SECTION.finditer(line):
            name = m.group(1)
            if not in_docs and not line[max(0, m.start() - 5):m.start() + 5].count("docs/"):
                continue
            if not os.path.isfile(doc_path(name)):
                errors.append(f"{where}: docs/{name} does not exist")
                continue
            first = int(m.group(2))
            last = int(m.group(3) or first)
            have = section_numbers(doc_path(name))
            for num in range(first, last + 1):
                if num not in have:
                    errors.append(f"{where}: docs/{name} has no section {num}")
        if rel.endswith(".md"):
            for m in MD_LINK.finditer(line):
                target = m.group(1)
                if re.match(r"[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                path = os.path.normpath(os.path.join(root, here, file_part)) if file_part \
                    else os.path.join(root, rel)
                if not os.path.exists(path):
                    errors.append(f"{where}: link to missing {target}")
                elif anchor and path.endswith(".md") and \
                        anchor not in {slug(h) for h in headings(path)}:
                    errors.append(f"{where}: {file_part or rel} has no heading #{anchor}")
            for m in CODE_PATH.finditer(line):
                path = m.group(1)
                if path.startswith(TOP) and "*" not in path and \
                        not os.path.exists(os.path.join(root, path)):
                    errors.append(f"{where}: `{path}` does not exist")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check-references.py SOURCE_ROOT")
    root = sys.argv[1]
    errors = []
    for rel in tracked_files(root):
        # This file's own examples are not references.
        if not TEXT.search(rel) or rel.startswith("tests/docs/"):
            continue
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        check_file(root, rel, text, errors)
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
