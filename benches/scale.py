#!/usr/bin/env python3
"""Whole-process scale benchmark: a 1,000,000-host inventory through the release binary.

Measures, with public tools only (/proc, a NOTIFY_SOCKET datagram socket, the binary's own CLI):
  * `hosts import` of a 1M-row CSV: wall time and peak RSS;
  * `plan --json` and `hosts list --json` to /dev/null: wall time and peak RSS;
  * `run`: start to READY=1, RSS after the catch-up pass, CPU per idle minute.
Prints figures; asserts nothing (goals are read by a person, not by CI).

Usage: python3 benches/scale.py [--hosts N] [--idle SECONDS] [--bin PATH]
"""
import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_csv(path, n, now):
    """n hosts: 75% AutoRenewal, 15% Normal, 10% NotRenewal; 2% PostPaid; expiries spread over
    three years from 12 days ahead, so no host is due today (the pass sends nothing) and
    reminders and non-renewal notices fall due for some of the unmanaged ones."""
    start = now + timedelta(days=12)
    regions = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1"]
    with open(path, "w") as f:
        f.write("dedicated_host_id,region_id,expired_time,charge_type,renewal_status,duration,period_unit\n")
        for i in range(n):
            e = start + timedelta(minutes=(i * 1577) % (3 * 365 * 24 * 60))
            e = e.replace(minute=0, second=0, microsecond=0, hour=16)
            r = i % 20
            status = "AutoRenewal" if r < 15 else ("Normal" if r < 18 else "NotRenewal")
            charge = "PostPaid" if i % 50 == 7 else "PrePaid"
            policy = f"{status},1,Month" if charge == "PrePaid" else ",,"
            f.write(f"dh-scale{i:08d},{regions[i % 4]},{e:%Y-%m-%dT%H:%MZ},{charge},{policy}\n")


def measured(argv, env, stdout=subprocess.DEVNULL):
    """Runs argv to completion; returns (wall seconds, peak RSS MiB of that child)."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv[1:])} failed with {status}")
    return wall, ru.ru_maxrss / 1024


def proc_cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1000 / hz


def proc_cpu_ns(pid):
    """On-CPU time of the process's live threads, in ns (/proc/PID/task/*/schedstat), and their
    ids: exact where /proc/PID/stat counts in 10 ms clock ticks."""
    total, tids = 0, set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
            tids.add(tid)
        except OSError:
            pass
    return total, tids


def proc_rss_mib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon(binary, cfg, env, idle, d):
    sock_path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.05)
    env = dict(env, NOTIFY_SOCKET=sock_path)
    log = open(os.path.join(d, "run.log"), "w")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--config", cfg, "run"], env=env, stderr=log, stdout=log)
    try:
        ready = None
        passed = None
        deadline = t0 + 600
        while time.monotonic() < deadline and passed is None:
            if p.poll() is not None:
                sys.exit(f"run exited with {p.returncode}; see {log.name}")
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                continue
            for line in msg.splitlines():
                if line == "READY=1" and ready is None:
                    ready = time.monotonic() - t0
                if line.startswith("STATUS=last window"):
                    passed = time.monotonic() - t0
        if ready is None or passed is None:
            sys.exit("no READY or no pass within 600 s")
        time.sleep(2)
        c0, n0 = proc_cpu_ms(p.pid), proc_cpu_ns(p.pid)
        time.sleep(idle)
        c1, n1 = proc_cpu_ms(p.pid), proc_cpu_ns(p.pid)
        rss = proc_rss_mib(p.pid)
        hwm = proc_rss_mib(p.pid, "VmHWM")
        ticks = (c1 - c0) * 60 / idle
        # Exact when no thread ended meanwhile (an ended thread's time leaves schedstat).
        exact = (n1[0] - n0[0]) / 1e6 * 60 / idle if n0[1] <= n1[1] else None
        return ready, passed, (exact, ticks), rss, hwm
    finally:
        p.terminate()
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        sock.close()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1_000_000)
    ap.add_argument("--idle", type=int, default=60, help="seconds of idle to sample CPU over")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "ddh-renewd"))
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "ddh-renewd"], cwd=ROOT, check=True)
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="ddh-scale-") as d:
        csv = os.path.join(d, "hosts.csv")
        write_csv(csv, a.hosts, now)
        # The file's own write-back is not the import's cost.
        os.sync()
        cfg = os.path.join(d, "scale.toml")
        with open(cfg, "w") as f:
            f.write(f'[database]\npath = "{d}/scale.db"\n[metrics]\nlisten = "127.0.0.1:{free_port()}"\n'
                    '[ecs]\nendpoint = "http://127.0.0.1:1"\n'
                    'regions = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1"]\n'
                    # No cloud answers here: the daemon's sync would only retry; the pass is
                    # what is measured.
                    '[sync]\nenabled = false\n')
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_LOG": "warn",
               "ALIBABA_CLOUD_ACCESS_KEY_ID": "scale", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "scale"}
        b = a.bin
        n = f"{a.hosts:,}"
        print(f"scale benchmark: {n} hosts, release binary {b}")
        w, m = measured([b, "--config", cfg, "hosts", "import", csv], env)
        print(f"  hosts import       {w:7.2f} s   peak RSS {m:7.1f} MiB   (goal: <= 15 s)")
        w, m = measured([b, "--config", cfg, "plan", "--json"], env)
        print(f"  plan --json        {w:7.2f} s   peak RSS {m:7.1f} MiB   (goal: <= 3 s, <= 64 MiB)")
        w, m = measured([b, "--config", cfg, "hosts", "list", "--json"], env)
        print(f"  hosts list --json  {w:7.2f} s   peak RSS {m:7.1f} MiB   (goal: <= 3 s, <= 64 MiB)")
        w, m = measured([b, "--config", cfg, "audit", "policies", "--json"], env)
        print(f"  audit policies --json{w:7.2f} s   peak RSS {m:7.1f} MiB")
        ready, passed, cpu, rss, hwm = daemon(b, cfg, env, a.idle, d)
        print(f"  run: READY after {ready * 1000:7.1f} ms (goal: <= 200 ms); catch-up pass done after {passed:.2f} s")
        exact, ticks = cpu
        shown = f"{exact:.1f}" if exact is not None else "n/a (a thread ended)"
        print(f"  run: after the pass RSS {rss:.1f} MiB (peak {hwm:.1f} MiB; goal: <= 64 MiB)")
        print(f"  run: CPU per idle minute {shown} ms from schedstat, {ticks:.1f} ms in 10 ms "
              f"clock ticks (goal: <= 20 ms; sampled over {a.idle} s)")


if __name__ == "__main__":
    main()
