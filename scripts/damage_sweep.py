#!/usr/bin/env python3
"""Damage sweep: every file of a small index x truncations and byte flips x commands.

Builds a small index with the release binary (two segments, a deletion bitmap, a saved
cluster assignment, stored texts with a dictionary), records the undamaged answers, then
for every file of the index and every damage (truncations, byte flips in the header, the
section table and the body) runs each command on a fresh copy of the damaged index and
classifies the run:

  read commands   query --json --limit 0, clusters --json, stats --json, verify
  write commands  merge, delete --id, build --append, clusters --save

  error      exit 2 (or 1) with a message: the damage was refused
  correct    exit 0 and the same answer as the undamaged index (harmless damage)
  wrong      exit 0 and a different answer: a silent wrong answer
  panic      exit 101 or killed by a signal
  hang       no answer within --timeout seconds

A write command that exits 0 is judged by what it leaves behind: the same read commands
on its result are compared with their answers on the undamaged index after the same write.
Different answers while `verify` passes on the result are *laundered* (the damage now
carries fresh checksums); different answers that `verify` catches are *kept* (still
damage, not laundered); equal answers are *correct*.

    python3 scripts/damage_sweep.py [--bin target/release/textreuse] [--json OUT]
        [--flips N] [--seed S] [--keep DIR] [--files SUBSTR]

Prints a table of counts per command, and the first examples of each bad class.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READS = ["query", "clusters", "stats", "verify"]
WRITES = ["merge", "delete", "append", "clusters_save"]


def run(bin_, args, timeout):
    try:
        p = subprocess.run([bin_] + args, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ("hang", -1, b"", b"")
    return (None, p.returncode, p.stdout, p.stderr)


def normalize(cmd, out, d):
    """Drops what varies between runs (timings, the index's path) from an answer."""
    s = out.decode("utf-8", "replace").replace(d, "INDEX")
    s = re.sub(r'"took_us":\d+,?', "", s)
    s = re.sub(r'"(seconds|elapsed_s|took_s|took_ms)":[0-9.e+-]+,?', "", s)
    return s


class Sweep:
    def __init__(self, a):
        self.a = a
        self.bin = os.path.abspath(a.bin)
        self.tmp = a.keep or tempfile.mkdtemp(prefix="damage-sweep-")
        os.makedirs(self.tmp, exist_ok=True)
        self.counts = defaultdict(Counter)
        self.examples = defaultdict(list)

    # ---- setup ------------------------------------------------------------------------
    def setup(self):
        lines = open(os.path.join(REPO, "data", "sample.jsonl"), encoding="utf-8").read().splitlines()
        self.first = os.path.join(self.tmp, "first.jsonl")
        self.second = os.path.join(self.tmp, "second.jsonl")
        self.more = os.path.join(self.tmp, "more.jsonl")
        self.queries = os.path.join(self.tmp, "queries.jsonl")
        open(self.first, "w").write("\n".join(lines[:1200]) + "\n")
        open(self.second, "w").write("\n".join(lines[1200:1500]) + "\n")
        more = []
        for i, l in enumerate(lines[1500:1600]):
            d = json.loads(l)
            d["id"] = "more-%d" % i
            more.append(json.dumps(d, ensure_ascii=False))
        open(self.more, "w").write("\n".join(more) + "\n")
        q = [json.dumps({"id": "q%d" % i, "text": json.loads(lines[i])["text"]}, ensure_ascii=False)
             for i in list(range(0, 1500, 50)) + [3, 1203, 1250]]
        open(self.queries, "w").write("\n".join(q) + "\n")
        ids = [str(json.loads(lines[i])["id"]) for i in (5, 17, 1210)]
        self.delete_id = str(json.loads(lines[40])["id"])
        base = os.path.join(self.tmp, "base")
        shutil.rmtree(base, ignore_errors=True)
        self.must(["build", "--input", self.first, "--index", base, "-q"])
        self.must(["build", "--append", "--input", self.second, "--index", base, "-q"])
        self.must(["delete", "--index", base, "-q"] + sum((["--id", i] for i in ids), []))
        self.must(["clusters", "--index", base, "--save", "--json"])
        self.base = base
        self.files = []
        for root, _, names in os.walk(base):
            for n in names:
                rel = os.path.relpath(os.path.join(root, n), base)
                if n != "LOCK":
                    self.files.append(rel)
        self.files.sort()
        if self.a.files:
            self.files = [f for f in self.files if self.a.files in f]
        # Undamaged answers: of the reads, and of the reads after each write.
        self.pristine = self.reads(base)
        self.after = {}
        for w in WRITES:
            d = self.copy(base, "pristine-" + w)
            st, code, out, err = self.write(w, d)
            if st or code != 0:
                sys.exit("undamaged %s failed (%s): %s" % (w, code, err.decode()))
            self.after[w] = self.reads(d)
            shutil.rmtree(d)

    def must(self, args):
        st, code, out, err = run(self.bin, args, 600)
        if st or code != 0:
            sys.exit("%s failed: %s" % (" ".join(args), err.decode()))

    def copy(self, src, name):
        d = os.path.join(self.tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(src, d, symlinks=True)
        return d

    # ---- commands ---------------------------------------------------------------------
    def read(self, cmd, d):
        t = self.a.timeout
        if cmd == "query":
            return run(self.bin, ["query", "--index", d, "--input", self.queries, "--json", "--limit", "0"], t)
        if cmd == "clusters":
            return run(self.bin, ["clusters", "--index", d, "--json"], t)
        if cmd == "stats":
            return run(self.bin, ["stats", "--index", d, "--json"], t)
        if cmd == "verify":
            return run(self.bin, ["verify", "--index", d], t)
        raise ValueError(cmd)

    def write(self, cmd, d):
        t = self.a.timeout
        if cmd == "merge":
            return run(self.bin, ["merge", "--index", d, "--max-segments", "1"], t)
        if cmd == "delete":
            return run(self.bin, ["delete", "--index", d, "--id", self.delete_id, "-q"], t)
        if cmd == "append":
            return run(self.bin, ["build", "--append", "--input", self.more, "--index", d, "-q"], t)
        if cmd == "clusters_save":
            return run(self.bin, ["clusters", "--index", d, "--save", "--json"], t)
        raise ValueError(cmd)

    def reads(self, d):
        """The answers of every read command on index `d`: (class-relevant tuple)."""
        out = {}
        for c in READS:
            st, code, o, e = self.read(c, d)
            out[c] = (st, code, normalize(c, o, d) if code == 0 else "")
        return out

    # ---- classification ---------------------------------------------------------------
    @staticmethod
    def crashed(st, code):
        if st == "hang":
            return "hang"
        if code == 101 or code < 0:
            return "panic"
        return None

    def classify_read(self, cmd, res, d):
        st, code, out, err = res
        bad = self.crashed(st, code)
        if bad:
            return bad, err
        if code != 0:
            return "error", err
        if (st, code, normalize(cmd, out, d)) == self.pristine[cmd]:
            return "correct", b""
        return "wrong", out[:300]

    def classify_write(self, cmd, res, d):
        st, code, out, err = res
        bad = self.crashed(st, code)
        if bad:
            return bad, err
        if code != 0:
            return "error", err
        after = self.reads(d)
        for c in READS:
            b = self.crashed(after[c][0], after[c][1])
            if b:
                return "later-" + b, ("%s after %s" % (c, cmd)).encode()
        if after == self.after[cmd]:
            return "correct", b""
        if after["verify"][1] == 0:
            diff = [c for c in READS if after[c] != self.after[cmd][c]]
            return "laundered", ("differs: %s" % diff).encode()
        return "kept", b""

    # ---- damages ----------------------------------------------------------------------
    def damages(self, rel, data):
        n = len(data)
        rng = random.Random("%s:%d" % (rel, self.a.seed))
        out = []
        for cut in sorted({0, 8, 16, 24, n // 2, n - 1}):
            if 0 <= cut < n:
                out.append(("truncate@%d" % cut, data[:cut]))
        offs = set()
        for o in (0, 8, 12, 16, 24, 40):  # magic, version, count, table checksum, table
            if o < n:
                offs.add(o)
        while len(offs) < min(n, 6 + self.a.flips):
            lo = 24 if rng.random() < 0.3 and n > 300 else 0
            hi = min(n, 300) if lo == 24 else n
            offs.add(rng.randrange(lo, hi))
        for o in sorted(offs):
            b = bytearray(data)
            b[o] ^= 1 << rng.randrange(8)
            out.append(("flip@%d" % o, bytes(b)))
        return out

    def sweep(self):
        t0 = time.time()
        runs = 0
        for rel in self.files:
            data = open(os.path.join(self.base, rel), "rb").read()
            for name, damaged in self.damages(rel, data):
                work = self.copy(self.base, "work")
                open(os.path.join(work, rel), "wb").write(damaged)
                for c in READS:
                    cls, why = self.classify_read(c, self.read(c, work), work)
                    self.note(c, cls, rel, name, why)
                    runs += 1
                for w in WRITES:
                    d = self.copy(work, "work-" + w)
                    cls, why = self.classify_write(w, self.write(w, d), d)
                    self.note(w, cls, rel, name, why)
                    runs += 1
                    shutil.rmtree(d)
                shutil.rmtree(work)
        self.seconds = time.time() - t0
        self.runs = runs

    def note(self, cmd, cls, rel, name, why):
        self.counts[cmd][cls] += 1
        if cls not in ("error", "correct") and len(self.examples[(cmd, cls)]) < 5:
            msg = why.decode("utf-8", "replace").strip().splitlines()
            self.examples[(cmd, cls)].append("%s %s: %s" % (rel, name, msg[-1] if msg else ""))

    def report(self):
        classes = ["error", "correct", "wrong", "kept", "laundered", "panic", "hang",
                   "later-panic", "later-hang"]
        used = [c for c in classes if any(self.counts[k][c] for k in self.counts)]
        print("%d files, %d damaged copies, %d command runs in %.0f s (%s)" % (
            len(self.files), self.runs // (len(READS) + len(WRITES)), self.runs,
            self.seconds, self.bin))
        print("| command | " + " | ".join(used) + " |")
        print("|---|" + "---|" * len(used))
        for cmd in READS + WRITES:
            print("| %s | %s |" % (cmd, " | ".join(str(self.counts[cmd][c]) for c in used)))
        for (cmd, cls), ex in sorted(self.examples.items()):
            print("\n%s %s (first %d):" % (cmd, cls, len(ex)))
            for e in ex:
                print("  " + e)
        if self.a.json:
            json.dump({"files": self.files, "runs": self.runs, "seconds": self.seconds,
                       "counts": {k: dict(v) for k, v in self.counts.items()},
                       "examples": {"%s/%s" % k: v for k, v in self.examples.items()}},
                      open(self.a.json, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "textreuse"))
    ap.add_argument("--flips", type=int, default=4, help="random byte flips per file (besides the header's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--files", help="only files whose path contains this")
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--json", help="also write the counts as JSON here")
    a = ap.parse_args()
    s = Sweep(a)
    try:
        s.setup()
        s.sweep()
        s.report()
    finally:
        if not a.keep:
            shutil.rmtree(s.tmp, ignore_errors=True)
    bad = sum(s.counts[c][k] for c in s.counts for k in ("wrong", "laundered", "panic", "hang",
                                                         "later-panic", "later-hang"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
