// Verifies captured webhook requests with the standardwebhooks package from
// npm: an implementation of the specification that is not ours.
// Usage: node verify.mjs FILE, FILE holding [{secret, headers, body}, ...].
// Prints one line per request, "ok" or "bad: <why>"; exits 1 if any is bad.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const requests = JSON.parse(readFileSync(process.argv[2], "utf8"));
let bad = 0;
for (const { secret, headers, body } of requests) {
  try {
    new Webhook(secret).verify(body, headers);
    console.log("ok");
  } catch (e) {
    bad += 1;
    console.log(`bad: ${e.message}`);
  }
}
process.exit(bad ? 1 : 0);
