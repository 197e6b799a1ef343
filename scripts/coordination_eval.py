#!/usr/bin/env python3
"""Scores `textreuse accounts` against the eval kit's ground truth.

    python3 scripts/coordination_eval.py --corpus $HOME/eval-data/dev_100k \
        --index /tmp/idx --bin target/release/textreuse --window 1h [-- extra accounts flags]

The generator (members.jsonl, posts.jsonl) knows which posts belong to which campaign and who
posted them when. Scores:

* precision of account edges: an edge is right when both accounts posted in one campaign;
* recall of coordinated pairs: the account pairs that co-posted at least two texts of one
  campaign within the window (pairs of posts of one campaign by the two accounts, at most the
  window apart, summed over campaigns) and that the edge list contains;
* groups (from a second run with --json): purity, the share of grouped accounts that posted
  in their group's main campaign (weighted by group size), and completeness, the share of a
  campaign's grouped accounts found in its largest group (weighted by those accounts).

Prints one JSON object with the counts and both scores.
"""
import argparse
import bisect
import collections
import csv
import io
import json
import os
import subprocess
import sys
import time


def parse_duration(s):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if s.isdigit():
        return int(s)
    total, num = 0, ""
    for c in s:
        if c.isdigit():
            num += c
        else:
            total += int(num) * units[c]
            num = ""
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="generator output directory")
    ap.add_argument("--index", required=True, help="index built from the corpus's posts.jsonl")
    ap.add_argument("--bin", default="target/release/textreuse")
    ap.add_argument("--window", default="1h")
    ap.add_argument("--min-truth-coposts", type=int, default=2,
                    help="co-posts within the window that make a pair coordinated (default 2)")
    ap.add_argument("extra", nargs="*", help="more flags for `textreuse accounts` (after --)")
    a = ap.parse_args()
    window = parse_duration(a.window)

    campaign_of = {}
    with open(os.path.join(a.corpus, "members.jsonl"), encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            campaign_of[m["id"]] = m["campaign"]
    by_campaign = collections.defaultdict(list)  # campaign -> [(ts, account)]
    with open(os.path.join(a.corpus, "posts.jsonl"), encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            c = campaign_of.get(p["id"])
            if c is not None:
                by_campaign[c].append((p["ts"], p["account"]))

    campaigns_of_account = collections.defaultdict(set)
    copost = collections.Counter()
    for c, posts in by_campaign.items():
        posts.sort()
        times = [t for t, _ in posts]
        for t, acc in posts:
            campaigns_of_account[acc].add(c)
        for i, (t, acc) in enumerate(posts):
            j = bisect.bisect_right(times, t + window)
            for k in range(i + 1, j):
                other = posts[k][1]
                if other != acc:
                    copost[tuple(sorted((acc, other)))] += 1
    truth = {p for p, n in copost.items() if n >= a.min_truth_coposts}

    base = [a.bin, "accounts", "--index", a.index, "--window", a.window]
    cmd = base + ["--csv"] + a.extra
    t0 = time.time()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    if run.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({run.returncode}): {run.stderr}")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    edges = {tuple(sorted((r["account_a"], r["account_b"]))) for r in rows}
    right = sum(1 for x, y in edges if campaigns_of_account[x] & campaigns_of_account[y])

    jrun = subprocess.run(base + ["--json"] + a.extra, capture_output=True, text=True)
    if jrun.returncode not in (0, 1):
        sys.exit(f"--json run failed ({jrun.returncode}): {jrun.stderr}")
    groups = json.loads(jrun.stdout)["groups"]
    pure = grouped = 0
    placed = collections.defaultdict(collections.Counter)  # campaign -> group -> accounts
    for g in groups:
        votes = collections.Counter(c for acc in g["accounts"] for c in campaigns_of_account[acc])
        main = votes.most_common(1)[0][0] if votes else None
        pure += sum(1 for acc in g["accounts"] if main in campaigns_of_account[acc])
        grouped += len(g["accounts"])
        for acc in g["accounts"]:
            for c in campaigns_of_account[acc]:
                placed[c][g["group"]] += 1
    whole = sum(max(v.values()) for v in placed.values())
    spread = sum(sum(v.values()) for v in placed.values())
    found = len(truth & edges)
    print(json.dumps({
        "command": " ".join(cmd),
        "window_s": window,
        "seconds": round(seconds, 2),
        "edges": len(edges),
        "edges_in_one_campaign": right,
        "precision": round(right / len(edges), 4) if edges else None,
        "truth_pairs": len(truth),
        "truth_pairs_found": found,
        "recall": round(found / len(truth), 4) if truth else None,
        "groups": len(groups),
        "largest_group": max((len(g["accounts"]) for g in groups), default=0),
        "group_purity": round(pure / grouped, 4) if grouped else None,
        "group_completeness": round(whole / spread, 4) if spread else None,
        "stderr": run.stderr.strip().splitlines()[-1:] if run.stderr else [],
    }, indent=1))


if __name__ == "__main__":
    main()
