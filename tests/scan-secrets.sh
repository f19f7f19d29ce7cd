#!/usr/bin/env bash
# After the test suite ran with DDH_TEST_ARTIFACTS=DIR, search every database and command log the
# tests produced for any secret the tests used. Config and key files are excluded: they hold
# secrets by design. Exits 1 naming the file if a secret is found.
set -euo pipefail
dir=${1:?usage: scan-secrets.sh ARTIFACT_DIR}
secrets=(
  TestSecret0123456789abcdefghijk   # the emulator's test AccessKey secret (every command's env)
  wrong-secret-do-not-print         # the wrong secret of tests/sync.rs
  file-secret-value                 # the key-file secret of tests/config.rs
  SECRET-TOKEN                      # the webhook token of tests/config.rs
  T0KEN-9f3a                        # the robot tokens of tests/notify.rs
  s3cret-9f3a                       # their signing secrets and the SMTP password
)
# Secrets and session tokens the emulator issued during the tests (short-lived credentials).
while IFS= read -r s; do
  [ -n "$s" ] && secrets+=("$s")
done < <(find "$dir" -type f -name '*.secrets' -exec cat {} + 2>/dev/null | sort -u)
mapfile -t files < <(find "$dir" -type f \( -name '*.db' -o -name '*.db-wal' -o -name '*.db-shm' -o -name '*.log' \))
if [ "${#files[@]}" -eq 0 ]; then
  echo "scan-secrets: no databases or logs under $dir: the tests did not keep artifacts" >&2
  exit 1
fi
found=0
patterns=$(mktemp)
trap 'rm -f "$patterns"' EXIT
printf '%s\n' "${secrets[@]}" > "$patterns"
if hits=$(grep -l -a -F -f "$patterns" -- "${files[@]}"); then
  echo "scan-secrets: secret found in: $hits" >&2
  found=1
fi
[ "$found" -eq 0 ] || exit 1
echo "scan-secrets: ${#files[@]} databases and logs searched for ${#secrets[@]} secrets (fixed ones, and the session secrets and tokens the emulator issued): none found"
