#!/usr/bin/env bash
# The alerting rules and the Grafana dashboard under contrib/, checked with Prometheus's own tool:
# - promtool check rules, and promtool test rules (ddh-renewd.rules.test.yml);
# - every alert has at least one test in which it fires;
# - the dashboard is well-formed JSON with unique panel ids inside Grafana's 24-column grid, and
#   every query in it (panels and template variables) parses as PromQL: each is written as a
#   recording rule into a scratch rules file and given to promtool check rules.
# That each metric these files name is one the daemon exports is asserted by tests/engine.rs on
# a scrape after the 15-day simulation.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { echo "promtool not found (Debian: apt-get install prometheus)" >&2; exit 1; }
rules=contrib/prometheus/ddh-renewd.rules.yml
tests=contrib/prometheus/ddh-renewd.rules.test.yml
dash=contrib/grafana/ddh-renewd.json

promtool check rules "$rules"
promtool test rules "$tests"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

python3 - "$rules" "$tests" "$dash" "$scratch/dashboard.rules.yml" <<'EOF'
import json, re, sys
rules, tests, dash, out = sys.argv[1:]
fail = []

alerts = re.findall(r"^\s*- alert:\s*(\S+)\s*$", open(rules).read(), re.M)
text = open(tests).read()
# A test that expects the alert: "alertname: X" followed by a non-empty exp_alerts list.
firing = set(re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*\n\s*- exp_labels", text))
for a in alerts:
    if a not in firing:
        fail.append(f"alert {a} has no test in which it fires")
print(f"alerts: {len(alerts)}, each with a firing test: {len(alerts) - len([f for f in fail if f.startswith('alert ')])}")

d = json.load(open(dash))
for key in ("uid", "title", "schemaVersion", "panels", "templating"):
    if key not in d:
        fail.append(f"dashboard: no {key}")
ids = [p.get("id") for p in d.get("panels", [])]
if len(ids) != len(set(ids)) or None in ids:
    fail.append(f"dashboard: panel ids not unique: {ids}")
exprs = []
for p in d.get("panels", []):
    g = p.get("gridPos", {})
    if not all(k in g for k in "xywh") or g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
        fail.append(f"dashboard: panel {p.get('id')} has a bad gridPos {g}")
    if p.get("type") == "row":
        continue
    if not p.get("title") or not p.get("targets"):
        fail.append(f"dashboard: panel {p.get('id')} has no title or no targets")
    for t in p.get("targets", []):
        if not t.get("expr") or "datasource" not in t:
            fail.append(f"dashboard: panel {p.get('id')} target {t.get('refId')} has no expr or datasource")
        else:
            exprs.append((f"panel {p['id']} {t['refId']}", t["expr"]))
for v in d.get("templating", {}).get("list", []):
    q = v.get("query", {})
    q = q.get("query", "") if isinstance(q, dict) else q
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
    if not m:
        fail.append(f"dashboard: variable {v.get('name')} query {q!r} is not label_values(selector, label)")
    else:
        exprs.append((f"variable {v['name']}", m.group(1)))

def concrete(e):
    # Grafana's variables, as Grafana would fill them in.
    e = e.replace("$__rate_interval", "5m").replace("$__range", "1d")
    return re.sub(r"\$\{?(job|instance)\}?", ".*", e)

with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (where, e) in enumerate(exprs):
        f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(concrete(e))}\n")
print(f"dashboard: {len(d.get('panels', []))} panels, {len(exprs)} queries")
if fail:
    print("\n".join(fail), file=sys.stderr)
    sys.exit(1)
EOF
echo "dashboard queries, as PromQL:"
promtool check rules "$scratch/dashboard.rules.yml"
