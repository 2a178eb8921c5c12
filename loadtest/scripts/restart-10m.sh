#!/bin/bash
# The whole 10M-key restart measurement (BENCHMARKS.md, "Restart and memory"):
# setup through the API, seed_keys, then restart-kill9.sh. Needs ~5 GB under /tmp.
# Build first: cargo build --release --bin clickledger -p clickledger-loadtest && cargo build --release -p clickledger-benches --bins
set -x; mkdir -p ${WORK:-/tmp/cl-bench}
cd "$(dirname "$0")/../.."
export CLICKLEDGER_ADMIN_KEY=bench-admin-key-0123456789abcdef
rm -rf /tmp/cl-10m; mkdir -p /tmp/cl-10m
target/release/clickledger serve --data-dir /tmp/cl-10m --listen 127.0.0.1:18080 > ${WORK:-/tmp/cl-bench}/setup-server.log 2>&1 &
P=$!; until curl -sf -o /dev/null http://127.0.0.1:18080/healthz; do sleep 0.1; done
bash loadtest/scripts/restart-setup.sh
kill $P; wait $P
source ${WORK:-/tmp/cl-bench}/world.env
time target/release/seed_keys --data-dir /tmp/cl-10m --code $CODE --keys 10000000
du -sh /tmp/cl-10m
bash loadtest/scripts/restart-kill9.sh target/release/clickledger /tmp/cl-10m final-qr
kill $(cat ${WORK:-/tmp/cl-bench}/final-qr/pid)
