#!/usr/bin/env bash
# Usage: loadtest/scripts/pinned-drain.sh ENGINE_BIN... (from the repository
# root, after `cargo build --release --bin clickledger && cargo build
# --release -p clickledger-loadtest`).
#
# Postbacks with their money, end to end: each ENGINE_BIN on core 0 and the
# load generator on core 1, alternated ROUNDS times (default 3), each round on
# a fresh data directory with funded campaigns. One closed-loop postback run
# (64 connections, 10 % repeats, 5 s, verified), then the counters are polled
# until every recorded postback has its payout created. Prints per round:
#   intake     postbacks/s acknowledged during the run
#   at_end     payouts created / postbacks recorded when the run stopped
#   drain_s    seconds after the run until the payouts caught up
#   sustained  recorded / (run + drain): the rate at which postbacks are both
#              recorded and paid, which is what a day of traffic gets
set -u
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
LT=target/release/clickledger-loadtest
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
counter() { curl -s localhost:8080/metrics | awk -v m="$1" 'index($0, m) == 1 {print $2}'; }
created() { counter 'clickledger_payouts_total{event="created"}'; }
recorded() { counter 'clickledger_postbacks_total{outcome="recorded",reason="none"}'; }
for _ in $(seq "$ROUNDS"); do for bin in "$@"; do
  d=/tmp/pinned-drain; rm -rf $d; mkdir -p $d
  CLICKLEDGER_LOG_LEVEL=warn taskset -c 0 "$bin" serve --listen 127.0.0.1:8080 --data-dir $d/data > $d/server.log 2>&1 &
  sp=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/healthz && break; sleep 0.1; done
  taskset -c 1 $LT setup --target http://127.0.0.1:8080 --campaigns 4 --affiliates 4 \
    --fund-cents 1000000000000 --out $d/target.json > $d/setup.log 2>&1
  t0=$(date +%s.%N)
  taskset -c 1 $LT run --target-file $d/target.json --scenario postback --closed --connections 64 \
    --duration 5s --warmup 0s --duplicates 0.1 --quiet --json $d/run.json > $d/run.log 2>&1
  t1=$(date +%s.%N); at_end="$(created)/$(recorded)"
  for _ in $(seq 600); do [ "$(created)" = "$(recorded)" ] && break; sleep 0.2; done
  t2=$(date +%s.%N); n=$(recorded)
  verdict=$(grep -o 'verification: [A-Z]*' $d/run.log)
  python3 -c "print(f'$bin intake={$(jq .iterationsPerSec $d/run.json):.0f}/s at_end=$at_end drain_s={$t2-$t1:.1f} sustained={$n/($t2-$t0):.0f}/s $verdict')"
  kill $sp; wait $sp 2>/dev/null
done; done
