#!/usr/bin/env bash
# Idle footprint of `ddh-renewd run` with 10,000 hosts in the inventory (none due): resident memory
# and CPU time over one idle minute, read from /proc. Prints figures; asserts nothing.
# Usage: bash benches/idle-footprint.sh   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ddh-renewd
bin=$PWD/target/release/ddh-renewd
dir=$(mktemp -d)
trap 'kill -TERM "${pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf '[database]\npath = "%s/fp.db"\n[metrics]\nlisten = "127.0.0.1:0"\n[ecs]\nendpoint = "http://127.0.0.1:1"\n' "$dir" > "$dir/fp.toml"
python3 - "$dir/hosts.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("dedicated_host_id,region_id,expired_time,charge_type,renewal_status\n")
    for i in range(10000):
        f.write(f"dh-fp-{i:05},cn-hangzhou,2031-0{1 + i % 9}-{1 + i % 28:02}T16:00Z,PrePaid,AutoRenewal\n")
PY
"$bin" --config "$dir/fp.toml" hosts import "$dir/hosts.csv"
ALIBABA_CLOUD_ACCESS_KEY_ID=idle ALIBABA_CLOUD_ACCESS_KEY_SECRET=idle "$bin" --config "$dir/fp.toml" run 2>"$dir/run.log" &
pid=$!
sleep 10   # start-up and the catch-up pass
hz=$(getconf CLK_TCK)
t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
sleep 60
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "idle footprint, 10,000 hosts: RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB); CPU $(( (t1 - t0) * 1000 / hz )) ms in 60 s idle (clock tick $((1000 / hz)) ms)"
