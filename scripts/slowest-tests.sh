#!/usr/bin/env bash
# The test files that took longest in a CI run, from .ci/run's
# .tmp/ci/tap-times.log (each TAP line after the second it arrived).
# A file's time is from the line before its first test line (when it could
# have started, at most; ava runs two files at once) to its last line.
# Usage: scripts/slowest-tests.sh [tap-times.log] [count]
set -euo pipefail
log=${1:-.tmp/ci/tap-times.log}
count=${2:-15}
awk '
  $2 == "ok" || ($2 == "not" && $3 == "ok") {
    line = $0
    sub(/^[0-9.]+ (not )?ok [0-9]+ - /, "", line)
    n = split(line, part, " › ")
    file = part[1]
    for (i = 2; i < n; i++) file = file " › " part[i]
    if (!(file in first)) { first[file] = prev == "" ? $1 : prev; tests[file] = 0 }
    last[file] = $1; tests[file]++
    prev = $1
  }
  END { for (f in first) printf "%7.1f s %4d tests  %s\n", last[f] - first[f], tests[f], f }
' "$log" | sort -rn | head -n "$count"
