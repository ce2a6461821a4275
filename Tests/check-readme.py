#!/usr/bin/env python3
"""Every test the README's guarantees table names exists: a row cannot cite a test that was
renamed or deleted. The architecture table's "depends on" column names exactly the modules
each target depends on in Package.swift. Exit 1 naming what disagrees."""
import json, os, re, subprocess, sys

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

# The module graph: README's architecture table against `swift package dump-package`.
package = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=root, check=True, capture_output=True, text=True).stdout)
targets = {t["name"]: t for t in package["targets"] if t["type"] in ("regular", "system", "executable")}
def internal(target):
    names = set()
    for dependency in target["dependencies"]:
        for kind in ("byName", "target"):
            if kind in dependency and dependency[kind][0] in targets:
                names.add(dependency[kind][0])
    return names
architecture = readme.split("## Architecture", 1)[1].split("\n\n| module", 1)[1].split("\n\n", 1)[0]
graph_errors = []
listed = set()
for line in architecture.splitlines()[2:]:
    cells = [c.strip() for c in line.split("|")]
    modules = re.findall(r"`(?:Sources|Tests)/([A-Za-z0-9-]+)`", cells[1])
    if not modules or not cells[4] or cells[4].startswith("every module"):
        listed.update(modules)
        continue
    said = {n for n in re.findall(r"[A-Za-z0-9-]+", cells[4]) if n in targets}
    for module in modules:
        listed.add(module)
        if said != internal(targets[module]):
            graph_errors.append(f"{module}: README says {sorted(said)}, Package.swift {sorted(internal(targets[module]))}")
unlisted = sorted(set(targets) - listed)
if unlisted:
    graph_errors.append(f"targets missing from the architecture table: {unlisted}")
print(f"README module graph: {len(listed)} targets, {len(graph_errors)} disagreements")
for error in graph_errors:
    print("  " + error)
sys.exit(1 if missing or graph_errors else 0)
