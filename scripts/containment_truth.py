#!/usr/bin/env python3
"""Exact containment ground truth for the dev corpus (issue 20), in the style of the eval
kit's truth.py (/work/shared/eval).

    python scripts/containment_truth.py --eval /work/shared/eval --corpus $D/dev_100k

Queries: every campaign member (members.jsonl) whose recipe has a `truncate` or `affix` op.
Tokenization/shingling: the kit's common.tok-v1 with --fold (default t2s), shingles of --k
(default 3) tokens.  For each query Q it finds EVERY post P with
  contains     |Q & P| / |Q| >= --threshold   (P holds the query: `query --containment C`)
  contained_in |Q & P| / |P| >= --threshold   (P lies inside the query: `--contained-in C`)
exactly, from an inverted index over interned shingle strings (no hashing, no collisions):
a post with |Q & P| > 0 shares a shingle with Q, so the candidates are complete.

Writes into --out (default --corpus):
  containment_k{K}[_t2s].jsonl  {"qid","campaign","ops","n_shingles",
                                 "contains":[[id,c],..], "contained_in":[[id,c],..]}
                                 (c desc, then id; the query itself included)
  containment_meta[_t2s].json   parameters, timings, summary stats
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", default="/work/shared/eval", help="the eval kit (for common.py)")
    ap.add_argument("--corpus", required=True, help="dir with posts.jsonl, members.jsonl")
    ap.add_argument("--out", default=None)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--fold", choices=["none", "t2s"], default="t2s")
    ap.add_argument("--ops", default="truncate,affix", help="recipe ops that make a member a query")
    ap.add_argument("--max-posts", type=int, default=200000)
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.eval))
    import common  # noqa: E402

    out = a.out or a.corpus
    fold = None if a.fold == "none" else a.fold
    suffix = "" if fold is None else "_" + fold
    want_ops = set(a.ops.split(","))

    t0 = time.time()
    texts = []
    for p in common.read_jsonl(os.path.join(a.corpus, "posts.jsonl")):
        if p["id"] != len(texts):
            raise SystemExit("posts.jsonl ids must be 0..N-1 in order")
        texts.append(p["text"])
        if len(texts) > a.max_posts:
            raise SystemExit(f"corpus larger than --max-posts={a.max_posts}")
    N = len(texts)
    queries = []
    for m in common.read_jsonl(os.path.join(a.corpus, "members.jsonl")):
        ops = sorted({r["op"] for r in m["recipe"]} & want_ops)
        if ops:
            queries.append((m["id"], m["campaign"], ops))
    queries.sort()

    intern = {}
    indptr = np.zeros(N + 1, dtype=np.int64)
    chunks = []
    for i, t in enumerate(texts):
        sh = common.shingles(common.tokenize(t, fold), a.k)
        ids = np.fromiter((intern.setdefault(s, len(intern)) for s in sh), dtype=np.int32, count=len(sh))
        chunks.append(ids)
        indptr[i + 1] = indptr[i] + len(ids)
    ind = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    sizes = np.diff(indptr).astype(np.int64)
    doc = np.repeat(np.arange(N, dtype=np.int32), sizes)
    order = np.argsort(ind, kind="stable")
    post_docs = doc[order]
    post_ptr = np.zeros(len(intern) + 1, dtype=np.int64)
    np.cumsum(np.bincount(ind, minlength=len(intern)), out=post_ptr[1:])
    t_index = time.time() - t0

    t1 = time.time()
    path = os.path.join(out, f"containment_k{a.k}{suffix}.jsonl")
    eps = 1e-12
    n_contains = n_inside = 0
    with open(path, "w") as f:
        for q, camp, ops in queries:
            qs = ind[indptr[q]:indptr[q + 1]]
            contains, inside = [], []
            if len(qs):
                cand = np.concatenate([post_docs[post_ptr[s]:post_ptr[s + 1]] for s in qs])
                u, c = np.unique(cand, return_counts=True)
                for name, frac, lst in (("contains", c / len(qs), contains),
                                        ("contained_in", c / sizes[u], inside)):
                    keep = frac >= a.threshold - eps
                    uu, ff = u[keep], frac[keep]
                    o = np.lexsort((uu, -ff))
                    lst.extend([int(uu[j]), round(float(ff[j]), 6)] for j in o)
            n_contains += max(0, len(contains) - 1)
            n_inside += max(0, len(inside) - 1)
            f.write(json.dumps({"qid": q, "campaign": camp, "ops": ops, "n_shingles": int(len(qs)),
                                "contains": contains, "contained_in": inside}) + "\n")
    meta = {"corpus": a.corpus, "n_posts": N, "k": a.k, "threshold": a.threshold, "fold": a.fold,
            "ops": sorted(want_ops), "n_queries": len(queries), "tokenization": common.TOKENIZATION,
            "nonself_contains_total": n_contains, "nonself_contained_in_total": n_inside,
            "seconds_index": round(t_index, 2), "seconds_query": round(time.time() - t1, 2)}
    with open(os.path.join(out, f"containment_meta{suffix}.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    print(json.dumps({k: v for k, v in meta.items() if k != "tokenization"}))


if __name__ == "__main__":
    main()
