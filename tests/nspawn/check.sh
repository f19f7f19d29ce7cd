#!/bin/bash
# The checklist of tests/systemd-nspawn.sh, run inside the booted container by ddh-check.service.
# Every line is "ok - …" or "FAIL - …"; the result goes to /results (a bind mount).
set -uo pipefail
out=/results/checklist.txt
: > "$out"
fails=0
say() { echo "$*" | tee -a "$out"; }
ok() { say "ok - $*"; }
fail() { say "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
# wait_for SECONDS DESCRIPTION COMMAND…: polls once a second, bounded.
wait_for() {
  local secs=$1 what=$2; shift 2
  for _ in $(seq "$secs"); do
    if "$@" >/dev/null 2>&1; then ok "$what"; return 0; fi
    sleep 1
  done
  fail "$what (not within ${secs}s)"
  return 1
}
emu=http://127.0.0.1:18080/_emulator
prop() { systemctl show -P "$2" "$1"; }
ledger_count() { curl -sf "$emu/ledger" | jq "[.[] | select(.Source == \"api\" and (.DedicatedHostId | startswith(\"$1\")))] | length"; }
each_once() { # each_once PREFIX N: N hosts with that prefix, each renewed exactly once
  curl -sf "$emu/ledger" | jq -e --arg p "$1" --argjson n "$2" \
    '[.[] | select(.Source == "api" and (.DedicatedHostId | startswith($p))) | .DedicatedHostId]
     | (length == $n) and ((unique | length) == $n)' >/dev/null
}
# Run a command the way the service runs (README "Install", step 5).
asd() {
  systemd-run --quiet --pipe --wait --collect -p DynamicUser=yes -p StateDirectory=ddh-renewd \
    -p LoadCredential=access_key_id:/etc/ddh-renewd/access_key_id \
    -p LoadCredential=access_key_secret:/etc/ddh-renewd/access_key_secret \
    -E DDH_RENEWD_CONFIG=/etc/ddh-renewd/ddh-renewd.toml /usr/local/bin/ddh-renewd "$@"
}

say "# systemd $(systemctl --version | head -1 | cut -d' ' -f2), $(. /etc/os-release; echo "$PRETTY_NAME"), no CA certificates: $([ -e /etc/ssl/certs/ca-certificates.crt ] && echo present || echo absent)"
wait_for 30 "emulator unit up" curl -sf "$emu/clock"

# Three hosts due (expiring in three days), seen as the cloud shows them.
exp=$(date -u -d '+3 days' +%Y-%m-%dT%H:%MZ)
hosts=$(jq -n --arg e "$exp" '[range(3) | {DedicatedHostId: "dh-nspawn\(.)", RegionId: "cn-hangzhou", ChargeType: "PrePaid", ExpiredTime: $e}]')
curl -sf -X POST -H 'content-type: application/json' -d "$hosts" "$emu/hosts" >/dev/null
check "check-config under the unit's sandbox settings" asd check-config
check "sync by hand, as the service user" asd sync
check "policy set AutoRenewal for the three hosts" asd policy set --region cn-hangzhou \
  --ids dh-nspawn0,dh-nspawn1,dh-nspawn2 --renewal-status AutoRenewal --duration 1 --period-unit Month

# First start with the renewal slowed down in the cloud (4 s): stop while it is in flight. The
# daemon waits for the call, records it and exits 0; the next start pays nothing again.
curl -sf -X PUT -H 'content-type: application/json' \
  -d '{"seed": 1, "rules": [{"action": "RenewDedicatedHosts", "probability": 1.0, "kind": "delay", "ms": 4000}]}' "$emu/faults" >/dev/null
systemctl start ddh-renewd.service
check "ddh-renewd.service active (READY reached: Type=notify)" test "$(prop ddh-renewd.service ActiveState)" = active
say "#   STATUS=$(prop ddh-renewd.service StatusText)"
wait_for 60 "a renewal in flight (the cloud takes 4 s)" bash -c "curl -sf $emu/inflight | jq -e '.renewing | length > 0'"
t0=$(date +%s)
systemctl stop ddh-renewd.service
check "systemctl stop during the send: Result=success, exit status 0" \
  bash -c '[ "$(systemctl show -P Result ddh-renewd.service)" = success ] && [ "$(systemctl show -P ExecMainStatus ddh-renewd.service)" = 0 ]'
took=$(( $(date +%s) - t0 ))
check "systemctl stop waited for the call in flight (${took}s; the cloud takes 4 s)" test "$took" -ge 2
wait_for 10 "the journal shows the shutdown path" bash -c 'journalctl -u ddh-renewd.service --no-pager | grep -q "signal received: finishing in-flight calls"'
curl -sf -X PUT -H 'content-type: application/json' -d '[]' "$emu/faults" >/dev/null
systemctl start ddh-renewd.service
wait_for 60 "a renewal pass under the sandbox: each of the 3 due hosts renewed once" each_once dh-nspawn 3
sleep 2
check "still once after the start that followed the stop" each_once dh-nspawn 3
status=$(prop ddh-renewd.service StatusText)
say "#   STATUS=$status"
check "STATUS names the next window" grep -q "next window" <<<"$status"
check "/healthz ok" bash -c 'curl -sf http://127.0.0.1:9466/healthz | jq -e ".healthy == true"'
check "/metrics served (build_info, hosts by state)" bash -c 'curl -sf http://127.0.0.1:9466/metrics | grep -q "^ddh_renewd_build_info" && curl -sf http://127.0.0.1:9466/metrics | grep -q "^ddh_renewd_hosts{"'
journal_fields() {
  journalctl -u ddh-renewd.service -o json --no-pager |
    jq -e -s '[.[] | select(.HOST_ID != null and .CLIENT_TOKEN != null)] | length > 0' >/dev/null
}
wait_for 10 "journald carries HOST_ID and CLIENT_TOKEN fields on renewal lines" journal_fields
say "#   $(journalctl -u ddh-renewd.service -o json --no-pager | jq -c -s '[.[] | select(.HOST_ID != null and .CLIENT_TOKEN != null)][0] | {MESSAGE, HOST_ID, CLIENT_TOKEN, PRIORITY}')"

# Watchdog: a hung main loop is killed and restarted, and the restart pays nothing twice.
mkdir -p /run/systemd/system/ddh-renewd.service.d
printf '[Service]\nWatchdogSec=4s\nRestartSec=1s\n' > /run/systemd/system/ddh-renewd.service.d/test.conf
systemctl daemon-reload
systemctl restart ddh-renewd.service
wait_for 20 "restarted with WatchdogSec=4s" test "$(prop ddh-renewd.service ActiveState)" = active
before=$(prop ddh-renewd.service NRestarts)
pid=$(prop ddh-renewd.service MainPID)
kill -STOP "$pid"
wait_for 40 "SIGSTOPped daemon killed by the watchdog and restarted" \
  bash -c "[ \"\$(systemctl show -P NRestarts ddh-renewd.service)\" -gt $before ] && [ \"\$(systemctl show -P ActiveState ddh-renewd.service)\" = active ] && [ \"\$(systemctl show -P MainPID ddh-renewd.service)\" != $pid ]"
check "the journal says watchdog timeout" bash -c 'journalctl -u ddh-renewd.service --no-pager | grep -qi "watchdog timeout"'
sleep 3
check "after the watchdog restart: still each host once" each_once dh-nspawn 3

# SIGKILL: restarted (Restart=on-failure), catches up, pays nothing twice.
before=$(prop ddh-renewd.service NRestarts)
systemctl kill -s KILL ddh-renewd.service
wait_for 30 "SIGKILL → restarted" bash -c "[ \"\$(systemctl show -P NRestarts ddh-renewd.service)\" -gt $before ] && [ \"\$(systemctl show -P ActiveState ddh-renewd.service)\" = active ]"
sleep 3
check "after SIGKILL: still each host once" each_once dh-nspawn 3

systemctl stop ddh-renewd.service

# The template: one instance per account/config boots the same way.
mkdir -p /etc/ddh-renewd/acct2
cp /etc/ddh-renewd/access_key_id /etc/ddh-renewd/access_key_secret /etc/ddh-renewd/acct2/
systemctl start ddh-renewd@acct2.service
check "ddh-renewd@acct2.service active (READY)" test "$(prop ddh-renewd@acct2.service ActiveState)" = active
wait_for 20 "ddh-renewd@acct2 /healthz answers on its own port" bash -c 'curl -s http://127.0.0.1:9467/healthz | jq -e ".status"'
check "ddh-renewd@acct2 keeps its database in /var/lib/ddh-renewd-acct2" test -e /var/lib/ddh-renewd-acct2/ddh-renewd.db
check "ddh-renewd@acct2's STATUS names the next window" bash -c 'systemctl show -P StatusText ddh-renewd@acct2.service | grep -q "next window"'
systemctl stop ddh-renewd@acct2.service
check "ddh-renewd@acct2 stopped cleanly" test "$(prop ddh-renewd@acct2.service Result)" = success
check "no cycle paid twice in the whole run" bash -c "curl -sf $emu/ledger | jq -e '[.[] | select(.Source == \"api\") | .DedicatedHostId] | (length == 3) and ((unique | length) == 3)'"

say "# $fails failed"
echo "$fails" > /results/rc
journalctl -u ddh-renewd.service -u ddh-renewd@acct2.service -u ddh-emulator.service --no-pager > /results/journal.txt 2>&1
journalctl -u ddh-renewd.service -o json --no-pager > /results/journal.json 2>&1
