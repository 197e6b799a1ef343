#!/usr/bin/env bash
# Byte-identity check for refactors that must change no answer and no byte on disk.
#
# usage: scripts/bytecheck.sh BIN OUTDIR [CORPUS.jsonl]
#
# With the binary BIN, on data/sample.jsonl (and CORPUS, e.g. a generated dev_100k
# posts.jsonl), runs: build; build of the first 80% then build --append of the rest;
# delete of every fifth id of the first 10%; clusters --save; merge. After each step it
# records the md5 of every index file, `query --json --limit 0 --input` (took_us removed)
# and `clusters --json`; the v1-v3 fixtures are queried and clustered too. Run it with the
# base binary and with the new one, then `diff -r OUT_BASE OUT_NEW` must print nothing.
set -euo pipefail
BIN=$(realpath "$1"); OUT=$2; CORPUS=${3:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$OUT"; mkdir -p "$OUT"; W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
snap() { # name dir
  (cd "$2" && find . -type f ! -name LOCK | sort | xargs md5sum) > "$OUT/$1.md5"
  { "$BIN" query --index "$2" --json --limit 0 --input "$Q" 2>"$OUT/$1.query.err" || echo "rc=$?"; } \
    | sed -E 's/"took_us":[0-9]+,//' > "$OUT/$1.query.json"
  "$BIN" clusters --index "$2" --json -j 2 > "$OUT/$1.clusters.json" 2>/dev/null || echo "rc=$?" >> "$OUT/$1.clusters.json"
}
run() { # name input
  local n=$1 in=$2 total
  Q=$W/$n.q.jsonl; awk 'NR%37==1' "$in" | head -3000 > "$Q"
  "$BIN" build -q -j 2 --input "$in" --index "$W/$n.full" > /dev/null; snap "$n.full" "$W/$n.full"
  total=$(wc -l < "$in"); head -n $((total*8/10)) "$in" > "$W/a.jsonl"; tail -n +$((total*8/10+1)) "$in" > "$W/b.jsonl"
  "$BIN" build -q -j 2 --input "$W/a.jsonl" --index "$W/$n.liv" > /dev/null
  "$BIN" build -q -j 2 --append --input "$W/b.jsonl" --index "$W/$n.liv" > /dev/null; snap "$n.append" "$W/$n.liv"
  head -n $((total/10)) "$in" | awk 'NR%5==0' \
    | python3 -c 'import sys,json; [print(json.loads(l)["id"]) for l in sys.stdin]' > "$W/ids"
  "$BIN" delete -q --ids "$W/ids" --index "$W/$n.liv" > /dev/null; snap "$n.delete" "$W/$n.liv"
  "$BIN" clusters --save -j 2 --index "$W/$n.liv" > /dev/null 2>&1; snap "$n.save" "$W/$n.liv"
  "$BIN" merge -j 2 --index "$W/$n.liv" > /dev/null 2>&1; snap "$n.merge" "$W/$n.liv"
}
run sample "$REPO/data/sample.jsonl"
if [ -n "$CORPUS" ]; then run corpus "$CORPUS"; fi
for f in "$REPO"/tests/fixtures/v*; do
  [ -d "$f" ] || continue; b=$(basename "$f"); cp -r "$f/index" "$W/fx-$b"
  Q=$f/posts.jsonl; snap "fx-$b" "$W/fx-$b"
done
echo "bytecheck: outputs in $OUT"
