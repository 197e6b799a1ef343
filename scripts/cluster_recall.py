#!/usr/bin/env python3
"""Campaign recall and precision of `textreuse clusters --json` on a generated corpus (the
eval kit's members.jsonl), per perturbation op (issue 20: do truncate/affix members join
their campaign's cluster?).

    textreuse clusters --index IDX --json [--containment 0.8] > clusters.jsonl
    python scripts/cluster_recall.py --corpus $D/dev_100k clusters.jsonl [more.jsonl ...]

For every campaign member q (every one, not a sample): recall = the share of the other
members of q's campaign that are in q's cluster (0 when q is in no cluster); precision =
the share of q's cluster-mates that are members of q's campaign (members in no cluster or
alone are left out). Both are macro averages over members; the per-op rows take the members
whose recipe has that op. Background posts in clusters holding campaign members are counted.
"""
import argparse
import json
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="dir with members.jsonl")
    ap.add_argument("clusters", nargs="+", help="clusters --json outputs")
    a = ap.parse_args()
    campaign_of, ops_of = {}, {}
    members = defaultdict(set)
    with open(f"{a.corpus}/members.jsonl") as f:
        for line in f:
            m = json.loads(line)
            pid = str(m["id"])
            campaign_of[pid] = m["campaign"]
            ops_of[pid] = {r["op"] for r in m["recipe"]}
            members[m["campaign"]].add(pid)
    all_ops = sorted({o for ops in ops_of.values() for o in ops})
    print(f"{'file':<28} {'op':<12} {'members':>7} {'recall':>7} {'precision':>9}")
    for path in a.clusters:
        cluster_of, posts = {}, []
        with open(path) as f:
            for line in f:
                if line.strip():
                    c = json.loads(line)
                    for p in c["posts"]:
                        cluster_of[p] = len(posts)
                    posts.append(c["posts"])
        rec, prec = defaultdict(list), defaultdict(list)
        for q, camp in campaign_of.items():
            others = members[camp] - {q}
            if not others:
                continue
            ci = cluster_of.get(q)
            got = set(posts[ci]) - {q} if ci is not None else set()
            r = len(got & others) / len(others)
            p = len(got & members[camp]) / len(got) if got else None
            for key in ["all"] + sorted(ops_of[q]):
                rec[key].append(r)
                if p is not None:
                    prec[key].append(p)
        bg = sum(
            1
            for c in posts
            if any(p in campaign_of for p in c)
            for p in c
            if p not in campaign_of
        )
        for key in ["all"] + all_ops:
            if not rec[key]:
                continue
            r = sum(rec[key]) / len(rec[key])
            p = sum(prec[key]) / len(prec[key]) if prec[key] else float("nan")
            print(f"{path[-28:]:<28} {key:<12} {len(rec[key]):>7} {r:>7.3f} {p:>9.3f}")
        print(f"{path[-28:]:<28} background posts in campaign clusters: {bg}; clusters: {len(posts)}")


if __name__ == "__main__":
    main()
