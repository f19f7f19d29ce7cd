#!/usr/bin/env python3
"""Fails if a function outside tests is longer than LIMIT lines (issue: "no function over ~80
lines outside tests"). Counts from the `fn` line to its closing brace; `#[cfg(test)]` modules
and files under tests/ are not read."""
import os
import re
import sys

LIMIT = int(sys.argv[2]) if len(sys.argv) > 2 else 80
FN = re.compile(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return re.sub(r"//.*", "", line)


def lengths(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if re.match(r"\s*#\[cfg\(test\)\]", lines[i]):
            return
        m = FN.match(lines[i])
        if m:
            depth, started, j = 0, False, i
            while j < len(lines):
                s = strip(lines[j])
                depth += s.count("{") - s.count("}")
                started = started or "{" in s
                if (started and depth == 0) or (not started and s.rstrip().endswith(";")):
                    break
                j += 1
            yield m.group(6), i + 1, j - i + 1
        i += 1


bad = []
for root, _, files in os.walk(sys.argv[1] if len(sys.argv) > 1 else "src"):
    for f in sorted(files):
        if f.endswith(".rs"):
            p = os.path.join(root, f)
            bad += [(n, p, line, name) for name, line, n in lengths(p) if n > LIMIT]
for n, p, line, name in sorted(bad, reverse=True):
    print(f"{p}:{line}: fn {name} is {n} lines (limit {LIMIT}); split it into named steps")
sys.exit(1 if bad else 0)
