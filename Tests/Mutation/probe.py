#!/usr/bin/env python3
"""The mutation probe: seeds one bug at a time (Tests/Mutation/mutants.json) into a copy of
the tree, builds, runs the tests that guard the rule, and reports each mutant as killed (a
test failed, and which) or survived. Exit 1 when any mutant survives or no longer applies.
A mutant with "engine": "postgres" (code that runs only on a server) has its tests run on a
throwaway PostgreSQL cluster (Tests/Postgres/with-postgres.sh).

  Tests/Mutation/run.sh                     every mutant
  Tests/Mutation/run.sh --only NAME[,NAME]  the named ones
  Tests/Mutation/run.sh --count 4 --seed S  a seeded rotating subset
  Tests/Mutation/run.sh --check             only prove every mutant still applies (its
                                            code is there exactly once); no build
  --in-place                                mutate this checkout and build into .build
                                            (CI: a fresh clone whose .build is already
                                            built, so each mutant builds incrementally);
                                            each file is restored after its mutant, also
                                            on SIGINT and SIGTERM, and the restored tree
                                            built again at the end
"""
import argparse, json, os, random, re, shutil, signal, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, ".build-mutation")
TREE = os.path.join(WORK, "tree")
SCRATCH = os.path.join(WORK, "build")


def copy_tree():
    """The tracked files of the repository, copied fresh (the build folder is kept)."""
    if os.path.exists(TREE):
        shutil.rmtree(TREE)
    os.makedirs(TREE)
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True, capture_output=True).stdout.split(b"\0")
    for name in files:
        if not name:
            continue
        path = name.decode()
        source = os.path.join(ROOT, path)
        if not os.path.isfile(source):
            continue
        target = os.path.join(TREE, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)


def run(arguments, timeout):
    return subprocess.run(arguments, cwd=TREE, capture_output=True, text=True, timeout=timeout)


def probe(mutant, log):
    path = os.path.join(TREE, mutant["file"])
    with open(path, encoding="utf-8") as f:
        original = f.read()
    if original.count(mutant["find"]) != 1:
        return "stale", "the code to mutate is no longer there exactly once"
    with open(path, "w", encoding="utf-8") as f:
        f.write(original.replace(mutant["find"], mutant["replace"], 1))
    try:
        build = run(["swift", "build", "--build-tests", "--scratch-path", SCRATCH], 3600)
        log.write(build.stdout + build.stderr)
        if build.returncode != 0:
            return "invalid", "the mutant does not build"
        try:
            command = ["swift", "test", "--skip-build", "--scratch-path", SCRATCH, "--filter", mutant["filter"]]
            if mutant.get("engine") == "postgres":
                # Code that runs only on a server: its tests on a throwaway cluster.
                command = [os.path.join(ROOT, "Tests", "Postgres", "with-postgres.sh"), "env", "QDWALLET_TEST_ENGINE=postgres"] + command
            tests = run(command, 900)
        except subprocess.TimeoutExpired:
            subprocess.run(["pkill", "-f", "qdwalletPackageTests"])
            return "killed", "the tests hung for 15 minutes"
        log.write(tests.stdout + tests.stderr)
        if tests.returncode == 0:
            return "survived", "every test of " + mutant["filter"] + " passed"
        failed = sorted(set(re.findall(r"✘ Test (\w+)\(", tests.stdout + tests.stderr)))
        return "killed", ", ".join(failed[:4]) or "the test run failed"
    finally:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only")
    parser.add_argument("--count", type=int)
    parser.add_argument("--seed", default=str(int(time.time()) // 86400))
    parser.add_argument("--in-place", action="store_true")
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    with open(os.path.join(ROOT, "Tests", "Mutation", "mutants.json"), encoding="utf-8") as f:
        mutants = json.load(f)
    if options.check:
        # Every mutant, not the subset a run draws: a change that moves a mutant's code fails
        # here at once rather than on the run whose seed happens to draw it.
        stale = []
        for mutant in mutants:
            with open(os.path.join(ROOT, mutant["file"]), encoding="utf-8") as f:
                found = f.read().count(mutant["find"])
            if found != 1:
                stale.append(mutant["name"])
                print(f"stale     {mutant['name']:28} {mutant['file']}: its code is there {found} times, not once")
        print(f"mutation probe: {len(mutants) - len(stale)} of {len(mutants)} mutants apply")
        sys.exit(1 if stale else 0)
    if options.only:
        names = options.only.split(",")
        unknown = [n for n in names if n not in {m["name"] for m in mutants}]
        if unknown:
            sys.exit("no mutant named " + ", ".join(unknown))
        mutants = [m for m in mutants if m["name"] in names]
    elif options.count:
        mutants = random.Random(options.seed).sample(mutants, min(options.count, len(mutants)))
        print(f"mutation probe: seed {options.seed}, {len(mutants)} mutants")
    global TREE, SCRATCH
    if options.in_place:
        TREE, SCRATCH = ROOT, os.path.join(ROOT, ".build")
        if subprocess.run(["git", "-C", ROOT, "diff", "--quiet"]).returncode != 0:
            sys.exit("--in-place needs a checkout without uncommitted changes")
        # A signal becomes an exception, so the finally of probe() restores the file.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    else:
        copy_tree()
    os.makedirs(WORK, exist_ok=True)
    bad = 0
    with open(os.path.join(WORK, "probe.log"), "w", encoding="utf-8") as log:
        for mutant in mutants:
            outcome, detail = probe(mutant, log)
            print(f"{outcome:9} {mutant['name']:28} {mutant['rule']}: {detail}", flush=True)
            bad += outcome != "killed"
        if options.in_place and mutants:
            # .build holds the last mutant's build: build the restored tree again, so that a
            # `swift test --skip-build` after the probe tests the code as it is.
            build = run(["swift", "build", "--build-tests", "--scratch-path", SCRATCH], 3600)
            log.write(build.stdout + build.stderr)
            if build.returncode != 0:
                print("mutation probe: the restored tree does not build; see " + os.path.join(WORK, "probe.log"))
                bad += 1
    print(f"mutation probe: {len(mutants) - bad} killed, {bad} not killed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
