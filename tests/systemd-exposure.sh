#!/usr/bin/env bash
# Fails unless `systemd-analyze security --offline=yes` rates systemd/ddh-renewd.service and the
# per-account template systemd/ddh-renewd@.service at an exposure of 2.0 or less. Prints the scores.
set -euo pipefail
cd "$(dirname "$0")/.."
for unit in systemd/ddh-renewd.service systemd/ddh-renewd@.service; do
  out=$(systemd-analyze security --offline=yes "$unit" 2>&1)
  score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -1)
  if [ -z "$score" ]; then
    printf '%s\n' "$out" >&2
    echo "systemd-exposure: could not read the exposure score of $unit" >&2
    exit 1
  fi
  echo "systemd-exposure: $(basename "$unit") exposure $score (limit 2.0)"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'
done
