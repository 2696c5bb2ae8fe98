#!/bin/sh
# One command from a fresh Debian 12 machine: install what is missing,
# build, then run a make target.
#   ./build.sh demo    the main job on the embedded default
#   ./build.sh check   the whole test suite (plain, then ASan+UBSan)
set -e
cd "$(dirname "$0")"
sh scripts/install-deps.sh
target=${1:-all}
shift 2>/dev/null || true
jobs=$(nproc 2>/dev/null || echo 2)
case "$target" in
    check)
        make -j"$jobs" check "$@"
        make -j"$jobs" SAN=1 check "$@" ;;
    *)
        make -j"$jobs" "$target" "$@" ;;
esac
