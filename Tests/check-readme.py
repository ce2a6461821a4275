#!/usr/bin/env python3
"""Every test the README's guarantees table names exists: a row cannot cite a test that was
renamed or deleted. Exit 1 naming the missing ones."""
import os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
table = readme.split("## What is guaranteed, and how it is tested", 1)[1].split("\n\n", 2)[1]
named = set()
for line in table.splitlines()[2:]:
    cells = line.split("|")
    if len(cells) > 3:
        named.update(re.findall(r"`([a-zA-Z][A-Za-z0-9]+)`", cells[3]))
sources = ""
for folder, _, files in os.walk(os.path.join(root, "Tests")):
    for name in files:
        if name.endswith(".swift"):
            sources += open(os.path.join(folder, name), encoding="utf-8").read()
missing = sorted(n for n in named if not re.search(r"(func|struct|class) " + n + r"\b", sources))
print(f"README guarantees: {len(named)} tests named, {len(missing)} missing {missing if missing else ''}")
sys.exit(1 if missing else 0)
