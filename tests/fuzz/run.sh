#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR [SECONDS]: runs each fuzz target for SECONDS (default 20) over a
# copy of its corpus in the repo (the repo's corpus is never written). Exits non-zero on a crash.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Absolute: each target runs from its own scratch directory.
bin=$(cd "${1:?usage: run.sh BUILD_DIR [SECONDS]}" && pwd)
seconds=${2:-20}
rc=0
# Every target: tests/fuzz/<target>_fuzz.cc, with its seeds in corpus/<target>/.
for src in "$here"/*_fuzz.cc; do
  target=$(basename "${src%_fuzz.cc}")
  work=$(mktemp -d)
  cp -r "$here/corpus/$target/." "$work/"
  echo "== fuzzing ${target} for ${seconds}s"
  if ! (cd "$work" && "$bin/${target}_fuzz" -max_total_time="$seconds" -max_len=65536 \
          -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work" 2>&1 | tail -n 12); then
    rc=1
  fi
  if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $target found a failure; inputs kept in $work" >&2
    rc=1
  else
    rm -rf "$work"
  fi
done
exit $rc
