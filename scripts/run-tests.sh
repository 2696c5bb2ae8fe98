#!/bin/sh
# Run every cmocka test binary in DIR (optionally those whose name contains
# PATTERN), print each binary's output, and end with one summary line:
#   N passed, N failed, N skipped
# A binary that crashes or exits non-zero without reporting a failure is
# counted as one failed test. Exit status: 0 only if nothing failed.
# Idle OpenMP threads sleep rather than spin: the suite may share the cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
dir=$1
pattern=$2
launcher=$3   # optional, e.g. "mpirun -np 2"
passed=0; failed=0; skipped=0; failed_bins=""
for t in "$dir"/test_*; do
    [ -f "$t" ] || continue
    [ -x "$t" ] || continue
    case "$t" in *"$pattern"*) ;; *) continue ;; esac
    out=$(mktemp)
    start=$(date +%s)
    $launcher "$t" >"$out" 2>&1
    rc=$?
    end=$(date +%s)
    cat "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' "$out" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' "$out" | tail -n 1)
    s=$(grep -c '^\[  SKIPPED \]' "$out")
    rm -f "$out"
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p - s)); failed=$((failed + f)); skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failed_bins="$failed_bins $(basename "$t")"
    echo "-- $(basename "$t"): rc=$rc, $((end - start)) s"
done
[ -n "$failed_bins" ] && echo "failed binaries:$failed_bins"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
