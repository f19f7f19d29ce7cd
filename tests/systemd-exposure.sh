#!/usr/bin/env bash
# Fails unless `systemd-analyze security --offline=yes` rates systemd/ddh-renewd.service at an
# exposure of 2.0 or less. Prints the score.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(systemd-analyze security --offline=yes systemd/ddh-renewd.service 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for ddh-renewd.service: \([0-9.]*\).*/\1/p' | tail -1)
if [ -z "$score" ]; then
  printf '%s\n' "$out" >&2
  echo "systemd-exposure: could not read the exposure score" >&2
  exit 1
fi
echo "systemd-exposure: ddh-renewd.service exposure $score (limit 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'
