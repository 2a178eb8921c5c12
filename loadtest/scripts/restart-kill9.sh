#!/bin/bash
# usage: restart.sh BIN DATA_DIR LABEL
# Starts BIN on DATA_DIR, loads it with postbacks, kill -9s it under load,
# restarts it and times healthz, a duplicate of a seeded key, a new key and
# the bloom rebuild (from the server's log). Prints one result line.
BIN=$1; DIR=$2; LABEL=$3
OUT=${WORK:-/tmp/cl-bench}/$LABEL; mkdir -p $OUT
source ${WORK:-/tmp/cl-bench}/world.env
B=http://127.0.0.1:18080
LT=${LT:-target/release/clickledger-loadtest}
now() { date +%s.%N; }
rss() { grep -E "^(VmRSS|VmHWM)" /proc/$1/status | awk '{printf "%s=%s ", $1, $2}'; }
post() { curl -s -o $OUT/$2.json -w "%{http_code}" -X POST $B/api/v1/postback -H "Authorization: Bearer $KEY" \
  -d "{\"swarm_ref\":\"$CODE\",\"externalId\":\"$1\",\"eventType\":\"PURCHASE\",\"revenueCents\":1000}"; }
wait_health() { until curl -sf -o /dev/null $B/healthz; do sleep 0.005; done; }

$BIN serve --data-dir $DIR --listen 127.0.0.1:18080 > $OUT/run1.log 2>&1 &
PID=$!
wait_health
echo "idle-before-actor: $(rss $PID)" > $OUT/rss.txt
T=$(now); s=$(post seed-000000007 warm); echo "first postback on cold start (spawns actor): $s $(echo "$(now) - $T" | bc) s" >> $OUT/rss.txt
sleep ${SETTLE:-2}
echo "after-first-postback (+${SETTLE:-2}s): $(rss $PID)" >> $OUT/rss.txt
# Postback load (20% repeats), kill -9 in the middle of it.
$LT run --target-file ${WORK:-/tmp/cl-bench}/target.json --scenario postback --rate ${RATE:-1000} --duplicates 0.2 --duration 20s --warmup 0s > $OUT/load.txt 2>&1 &
LTPID=$!
sleep ${LOAD_SECS:-8}
echo "under-load: $(rss $PID)" >> $OUT/rss.txt
kill -9 $PID; T0=$(now)
wait $PID 2>/dev/null
$BIN serve --data-dir $DIR --listen 127.0.0.1:18080 > $OUT/run2.log 2>&1 &
PID=$!
kill $LTPID 2>/dev/null; wait $LTPID 2>/dev/null
wait_health; T1=$(now)
s1=$(post seed-000000042 dup); T2=$(now)
s2=$(post "new-$LABEL-$RANDOM" new); T3=$(now)
echo "restart: healthz $(echo "$T1 - $T0" | bc) s; duplicate($s1) $(echo "$T2 - $T0" | bc) s; new($s2) $(echo "$T3 - $T0" | bc) s" | tee $OUT/result.txt
cat $OUT/dup.json; echo
echo "after-restart-first-postbacks: $(rss $PID)" >> $OUT/rss.txt
# Wait for the rebuild's log line (after the change) or give it 5 s (before).
for i in $(seq 600); do grep -q "bloom filter rebuilt" $OUT/run2.log && break; sleep 0.1; done
T4=$(now); echo "rebuilt-seen-at $(echo "$T4 - $T0" | bc) s" >> $OUT/result.txt
grep "bloom filter rebuilt" $OUT/run2.log >> $OUT/result.txt
sleep 2
echo "idle-after-rebuild: $(rss $PID)" >> $OUT/rss.txt
echo "$PID" > $OUT/pid
cat $OUT/rss.txt $OUT/result.txt
