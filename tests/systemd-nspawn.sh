#!/usr/bin/env bash
# Boots the release binary and systemd/ddh-renewd.service (unchanged) under a real systemd:
# a minimal Debian root built with mmdebstrap (no CA certificates), booted with systemd-nspawn -b
# with no network but loopback, the emulator as a sibling unit. tests/nspawn/check.sh runs the
# checklist inside (a renewal pass under the sandbox, READY/STATUS, /healthz, /metrics, journald
# fields, the watchdog, SIGKILL, stop with a call in flight, the ddh-renewd@.service template) and
# powers the container off. Prints the checklist and its duration; exits 1 if any check failed.
#
# Needs root, mmdebstrap and systemd-container (.ci/run installs them). The root is cached under
# target/nspawn/ and rebuilt only when the package list changes. If nspawn cannot boot here, this
# fails loudly: it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
suite=${DDH_NSPAWN_SUITE:-bookworm}
packages=systemd,systemd-sysv,dbus,curl,jq
cache=target/nspawn
key=$(printf '%s %s v1' "$suite" "$packages" | sha256sum | cut -c1-12)
base=$cache/root-$key

[ "$(id -u)" = 0 ] || { echo "systemd-nspawn test: must run as root" >&2; exit 1; }
for tool in mmdebstrap systemd-nspawn; do
  command -v "$tool" >/dev/null || { echo "systemd-nspawn test: $tool not found (apt-get install mmdebstrap systemd-container)" >&2; exit 1; }
done

bin=${DDH_NSPAWN_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet --bin ddh-renewd
  bin=target/release/ddh-renewd
fi

mkdir -p "$cache"
if [ ! -e "$base/.complete" ]; then
  rm -rf "$base"
  echo "== building a minimal $suite root ($packages)"
  mmdebstrap --quiet --variant=minbase --include="$packages" "$suite" "$base"
  touch "$base/.complete"
fi

work=$(mktemp -d "$cache/boot-XXXXXX")
machine=ddh-ci-$$
cleanup() {
  machinectl terminate "$machine" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
cp -a "$base" "$root"
results=$work/results
mkdir -p "$results"

# Installed the way README "Install" says; the unit file unchanged.
install -m 0755 "$bin" "$root/usr/local/bin/ddh-renewd"
install -d -m 0755 "$root/etc/ddh-renewd"
install -m 0644 tests/nspawn/ddh-renewd.toml "$root/etc/ddh-renewd/ddh-renewd.toml"
install -m 0644 tests/nspawn/acct2.toml "$root/etc/ddh-renewd/acct2.toml"
printf '%s' LTAI5tTestKeyId000000000 > "$root/etc/ddh-renewd/access_key_id"
printf '%s' TestSecret0123456789abcdefghijk > "$root/etc/ddh-renewd/access_key_secret"
chmod 0600 "$root/etc/ddh-renewd/access_key_id" "$root/etc/ddh-renewd/access_key_secret"
install -m 0644 systemd/ddh-renewd.service "$root/etc/systemd/system/ddh-renewd.service"
install -m 0644 systemd/ddh-renewd@.service "$root/etc/systemd/system/ddh-renewd@.service"
install -m 0644 tests/nspawn/ddh-emulator.service "$root/etc/systemd/system/ddh-emulator.service"
install -m 0644 tests/nspawn/ddh-check.service "$root/etc/systemd/system/ddh-check.service"
install -m 0755 tests/nspawn/check.sh "$root/usr/local/lib/ddh-check.sh"
ln -sf /etc/systemd/system/ddh-emulator.service "$root/etc/systemd/system/multi-user.target.wants/ddh-emulator.service"
ln -sf /etc/systemd/system/ddh-check.service "$root/etc/systemd/system/multi-user.target.wants/ddh-check.service"
# A machine id, so that the journal persists under its own directory.
systemd-machine-id-setup --root="$root" >/dev/null 2>&1 || true

echo "== booting $suite under systemd-nspawn -b (loopback only)"
boot_log=$work/boot.log
set +e
timeout 900 systemd-nspawn --quiet --boot --directory="$root" --machine="$machine" --register=no --keep-unit \
  --private-network --bind="$results:/results" --console=pipe > "$boot_log" 2>&1 < /dev/null
boot_rc=$?
set -e
if [ ! -s "$results/checklist.txt" ]; then
  echo "systemd-nspawn test: the container did not run the checklist (nspawn exit $boot_rc); boot log:" >&2
  tail -50 "$boot_log" >&2
  exit 1
fi
echo "== checklist (inside the container)"
cat "$results/checklist.txt"
rc=$(cat "$results/rc" 2>/dev/null || echo 1)
echo "== systemd-nspawn test: $(( $(date +%s) - start ))s in all (nspawn exit $boot_rc)"
if [ -n "${DDH_NSPAWN_KEEP:-}" ]; then cp -r "$results" "$DDH_NSPAWN_KEEP"; fi
if [ "$rc" != 0 ]; then
  echo "== journal of the failed run" >&2
  tail -150 "$results/journal.txt" >&2 || true
  exit 1
fi
