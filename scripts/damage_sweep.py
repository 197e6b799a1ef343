#!/usr/bin/env python3
"""Damage sweep of the write commands (issue 16): no write may launder damage.

usage: scripts/damage_sweep.py BIN [--posts N]

Builds a small index from data/sample.jsonl (two segments, a deletion bitmap, saved
clusters). Then, for every file of the index, it applies each damage (truncations and byte
flips at several offsets) and runs each write command: `merge`, `delete --id`, `build
--append`, `clusters --save`. A run is

- *refused* when the command exits non-zero;
- *clean* when it exits 0 and the index then answers 50 lookups exactly as the same command
  does on the undamaged index (the damage was in something the command did not use, and
  `verify` still reports it, or the command removed the damaged file);
- *laundered* (a silent wrong answer) when it exits 0, `verify` passes afterwards, and the
  answers differ from the undamaged run's;
- a *panic* when it exits 101.

Prints the counts and the laundered/panic cases; exits 1 if there is any.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(bin_, *args):
    return subprocess.run([bin_, *args], capture_output=True, text=True)


def answers(bin_, index, queries):
    r = run(bin_, "query", "--index", index, "--json", "--limit", "0", "--input", queries)
    return r.returncode, re.sub(r'"took_us":\d+,', "", r.stdout)


def main():
    bin_ = os.path.abspath(sys.argv[1])
    n = int(sys.argv[sys.argv.index("--posts") + 1]) if "--posts" in sys.argv else 400
    lines = open(os.path.join(REPO, "data", "sample.jsonl"), encoding="utf-8").read().splitlines()
    tmp = tempfile.mkdtemp(prefix="damage-sweep-")
    try:
        first, second = os.path.join(tmp, "a.jsonl"), os.path.join(tmp, "b.jsonl")
        more, queries = os.path.join(tmp, "more.jsonl"), os.path.join(tmp, "q.jsonl")
        open(first, "w").write("\n".join(lines[: n // 2]) + "\n")
        open(second, "w").write("\n".join(lines[n // 2 : n]) + "\n")
        open(more, "w").write("\n".join(lines[n : n + 30]) + "\n")
        open(queries, "w").write("\n".join(lines[: n : max(1, n // 50)]) + "\n")
        pristine = os.path.join(tmp, "pristine")
        for args in (
            ["build", "-q", "--input", first, "--index", pristine],
            ["build", "-q", "--append", "--input", second, "--index", pristine],
            ["delete", "-q", "--index", pristine, "--id", json.loads(lines[3])["id"].__str__()],
            ["clusters", "--save", "--index", pristine],
        ):
            r = run(bin_, *args)
            assert r.returncode == 0, (args, r.stderr)
        del_id = str(json.loads(lines[7])["id"])
        commands = {
            "merge": ["merge", "--index", "{d}"],
            "delete": ["delete", "-q", "--index", "{d}", "--id", del_id],
            "append": ["build", "-q", "--append", "--input", more, "--index", "{d}"],
            "clusters --save": ["clusters", "--save", "--index", "{d}"],
        }
        # What each command gives on the undamaged index.
        want = {}
        for name, args in commands.items():
            d = os.path.join(tmp, "want")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(pristine, d)
            r = run(bin_, *[a.format(d=d) for a in args])
            assert r.returncode == 0, (name, r.stderr)
            want[name] = answers(bin_, d, queries)
        files = []
        for root, _, names in os.walk(pristine):
            for f in names:
                if f != "LOCK":
                    files.append(os.path.relpath(os.path.join(root, f), pristine))
        files.sort()
        counts = {"refused": 0, "clean": 0, "laundered": 0, "panic": 0}
        bad = []
        for rel in files:
            data = open(os.path.join(pristine, rel), "rb").read()
            size = len(data)
            damages = [("truncate", k) for k in sorted({0, size // 3, size // 2, max(0, size - 1)})]
            damages += [("flip", k) for k in sorted({0, 8, 40, size // 4, size // 2, 3 * size // 4, size - 1}) if 0 <= k < size]
            for kind, at in damages:
                for name, args in commands.items():
                    d = os.path.join(tmp, "work")
                    shutil.rmtree(d, ignore_errors=True)
                    shutil.copytree(pristine, d)
                    p = os.path.join(d, rel)
                    b = bytearray(data)
                    if kind == "truncate":
                        b = b[:at]
                    else:
                        b[at] ^= 0x55
                    open(p, "wb").write(bytes(b))
                    r = run(bin_, *[a.format(d=d) for a in args])
                    what = f"{rel} {kind}@{at} {name}"
                    if r.returncode == 101:
                        counts["panic"] += 1
                        bad.append(("panic", what, r.stderr[-300:]))
                    elif r.returncode != 0 and not (name == "delete" and r.returncode == 1):
                        counts["refused"] += 1
                    else:
                        verified = run(bin_, "verify", "--index", d).returncode == 0
                        got = answers(bin_, d, queries)
                        if verified and got != want[name]:
                            counts["laundered"] += 1
                            bad.append(("laundered", what, ""))
                        else:
                            counts["clean"] += 1
        runs = sum(counts.values())
        print(f"damage sweep: {len(files)} files, {runs} write runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        for kind, what, err in bad:
            print(f"  {kind}: {what} {err}")
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
