#!/usr/bin/env bash
# A/B of W2 (1,000 connections, channels of 10, open-loop updates) between two presenced binaries,
# run alternately with the server pinned to core 0 and the generator to core 1, default settings
# (pinned to one core, the server starts one I/O thread), as bench/suite.py runs it.
#   bench/ab_w2.sh OLD_BINARY NEW_BINARY [RATE...]     (updates/s; default 10000 20000)
set -u
old=$1 new=$2
shift 2
rates=("$@")
[ ${#rates[@]} -eq 0 ] && rates=(10000 20000)
gen=$(dirname "$0")/../build/release/bench/presenced-bench
for rate in "${rates[@]}"; do
  for round in 1 2 3; do
    for name in old new; do
      bin=$old
      [ "$name" = new ] && bin=$new
      d=$(mktemp -d)
      taskset -c 0 "$bin" --listen 127.0.0.1:0 --data-dir "$d" >"$d/out" 2>"$d/err" &
      pid=$!
      for _ in $(seq 200); do grep -q listening "$d/out" 2>/dev/null && break; sleep 0.05; done
      port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$d/out" | head -1)
      res=$(taskset -c 1 "$gen" --mode churn --target presenced --port "$port" \
        --secret "$(cat "$d/jwt-secret")" --conns 1000 --channel-size 10 --rate "$rate" \
        --duration 3 --warmup 1 --prefix "r$round$name" 2>/dev/null | tail -1)
      echo "rate=$rate round=$round bin=$name $res"
      kill "$pid"
      wait "$pid" 2>/dev/null
      rm -rf "$d"
    done
  done
done
