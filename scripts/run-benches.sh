#!/bin/sh
# Run every benchmark binary in DIR (or those whose name contains PATTERN).
# Each prints a human-readable table and, as its last line, one JSON object.
dir=$1
pattern=$2
rc=0
for b in "$dir"/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *"$pattern"*) ;; *) continue ;; esac
    echo "== $(basename "$b")"
    "$b" --json || rc=1
done
exit $rc
