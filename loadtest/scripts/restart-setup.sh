#!/bin/bash
# Creates advertiser, campaign, affiliate and approval through the API of a
# server at $B; writes ${WORK:-/tmp/cl-bench}/world.env
set -e
B=${B:-http://127.0.0.1:18080}
ADMIN=$CLICKLEDGER_ADMIN_KEY
KEY=$(curl -s -X POST $B/api/v1/admin/advertisers -H "Authorization: Bearer $ADMIN" -d '{"name":"Acme Shop"}' | jq -r .apiKey)
C=$(curl -s -X POST $B/api/v1/campaigns -H "x-api-key: $KEY" -d '{"name": "Big", "landingUrl": "https://shop.example.com/", "compensationModel": "REV_SHARE", "payoutPercentage": 20}')
CID=$(echo "$C" | jq -r .id); TEST=$(echo "$C" | jq -r .testTrackingCode)
curl -s -X POST $B/api/v1/postback -H "Authorization: Bearer $KEY" -d "{\"swarm_ref\":\"$TEST\",\"externalId\":\"test-1\",\"eventType\":\"PURCHASE\",\"revenueCents\":100}" >/dev/null
curl -s -X POST $B/api/v1/campaigns/$CID/activate -H "x-api-key: $KEY" | jq -r .status
A=$(curl -s -X POST $B/api/v1/admin/affiliates -H "Authorization: Bearer $ADMIN" -d '{"name":"Jane"}')
AFF=$(echo "$A" | jq -r .id)
CODE=$(curl -s -X POST $B/api/v1/campaigns/$CID/affiliates -H "x-api-key: $KEY" -d "{\"affiliateId\":\"$AFF\"}" | jq -r .trackingCode)
printf 'KEY=%s\nCID=%s\nCODE=%s\n' "$KEY" "$CID" "$CODE" > ${WORK:-/tmp/cl-bench}/world.env
cat > ${WORK:-/tmp/cl-bench}/target.json <<J
{"base":"$B","advertiserKey":"$KEY","campaigns":[{"id":"$CID","compensationModel":"REV_SHARE","payoutBp":2000,"codes":["$CODE"]}]}
J
cat ${WORK:-/tmp/cl-bench}/world.env
