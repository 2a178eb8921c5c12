// Drives Debian's Chromium through the affiliate.js scenarios for tests/browser.rs.
//
//   node tests/browser/scenarios.mjs '{"engine":"http://127.0.0.1:P","code":"...","originA":"...","originB":"..."}'
//
// Each visitor is a fresh browser context (its own cookies). The script only
// observes: it prints one JSON document on stdout and the Rust test asserts,
// against it and against the server. Diagnostics go to stderr.
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2] ?? process.env.BROWSER_CONFIG ?? '{}');
for (const k of ['engine', 'code', 'originA', 'originB']) {
  if (!cfg[k]) throw new Error(`missing config field ${k}`);
}
const CONVERSIONS = `${cfg.engine}/api/v1/affiliate/conversions`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  // launch() gives every run a fresh temporary user-data-dir of its own.
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  timeout: 60_000,
});
// A regular desktop user agent: HeadlessChrome is (rightly) counted as a bot click.
const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${browser.version()} Safari/537.36`;

const out = { browserVersion: browser.version(), console: [], scenarios: {} };

/** A fresh visitor: its own context and page, with everything observed. */
async function visitor(name) {
  const context = await browser.newContext({ userAgent });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const log = { engineRequests: [], requests: [], responses: [], failures: [] };
  page.on('console', (m) => out.console.push({ scenario: name, type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => out.console.push({ scenario: name, type: 'pageerror', text: String(e) }));
  page.on('request', (r) => {
    if (r.url().startsWith(cfg.engine) && !r.url().includes('/r/')) {
      log.engineRequests.push({ method: r.method(), url: r.url() });
    }
    if (r.url() === CONVERSIONS) {
      let body = r.postData();
      try { body = JSON.parse(body); } catch { /* kept as text */ }
      log.requests.push({ method: r.method(), headers: r.headers(), body });
    }
  });
  // The snippet's fetch is no-cors: DevTools sees the status, but the body
  // of an opaque keepalive answer is not kept (and the request is then
  // reported as net::ERR_ABORTED). The Rust side reads the outcome from
  // the server instead.
  page.on('response', (r) => {
    if (r.url() === CONVERSIONS && r.request().method() === 'POST') log.responses.push({ status: r.status() });
  });
  page.on('requestfailed', (r) => {
    if (r.url().startsWith(cfg.engine)) log.failures.push({ url: r.url(), error: r.failure()?.errorText });
  });
  const loaded = () => page.waitForFunction(() => window.introw?.affiliate?.loaded === true);
  const until = async (what, check, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`${name}: timed out waiting for ${what}`);
      await sleep(25);
    }
  };
  const conversions = (n) => until(`${n} conversion answer(s)`, () => log.responses.length >= n);
  const cookies = async (origin) => {
    const all = await context.cookies(origin);
    const pick = (n) => {
      const c = all.find((c) => c.name === n);
      return c ? { value: decodeURIComponent(c.value), path: c.path, sameSite: c.sameSite, secure: c.secure,
        httpOnly: c.httpOnly, expiresInDays: c.expires > 0 ? (c.expires - Date.now() / 1000) / 86400 : null } : null;
    };
    return { aff: pick('_introw_aff'), swarmRef: pick('_introw_swarm_ref'), names: all.map((c) => c.name) };
  };
  /** Follows the affiliate link; returns the URL the browser landed on (irw_id still in it). */
  const click = async () => {
    const resp = await page.goto(`${cfg.engine}/r/${cfg.code}`);
    const landed = resp.url();
    await loaded();
    return landed;
  };
  return { context, page, log, loaded, until, conversions, cookies, click };
}

async function scenario(name, fn) {
  const v = await visitor(name);
  try {
    out.scenarios[name] = { ...(await fn(v)), log: v.log };
  } catch (e) {
    out.scenarios[name] = { error: String(e?.stack || e), log: v.log };
  } finally {
    await v.context.close();
  }
}

// 1 + 2. Follow the link, then track() twice: one recorded, one duplicate.
await scenario('link', async (v) => {
  const landed = await v.click();
  const after = await v.page.evaluate(() => ({ href: location.href, loads: sessionStorage.getItem('loads') }));
  const cookies = await v.cookies(cfg.originA);
  await v.page.evaluate(() => window.introw.affiliate.track({ email: 'first@example.com', properties: { plan: 'pro' } }));
  await v.conversions(1);
  await v.page.evaluate(() => window.introw.affiliate.track({ email: 'first@example.com', properties: { plan: 'pro' } }));
  await v.conversions(2);
  await sleep(300);
  return { landed, urlAfterLoad: after.href, loads: after.loads, cookies };
});

// 3a. Classic embed: onFormSubmitted (and a second event of the same submit).
// A look-alike message from a non-HubSpot frame first: it must be ignored.
await scenario('classic', async (v) => {
  await v.click();
  await v.page.goto(`${cfg.originA}/hubspot`);
  await v.loaded();
  await v.page.evaluate(() => window.addForeignFrame());
  await v.page.waitForFunction(() => window.__hsMessages >= 1); // the foreign frame has posted
  await sleep(700);
  const afterForeignFrame = v.log.requests.length;
  await v.page.evaluate(() => window.hsClassic('classic@example.com'));
  await v.conversions(1);
  await sleep(1000);
  return { afterForeignFrame, cookies: await v.cookies(cfg.originA) };
});

// 3b. Classic embed: onFormSubmit (array of fields) then onFormSubmitted.
await scenario('classicArray', async (v) => {
  await v.click();
  await v.page.goto(`${cfg.originA}/hubspot`);
  await v.loaded();
  await v.page.evaluate(() => window.hsClassicArray('array@example.com'));
  await v.conversions(1);
  await sleep(1000);
  return { cookies: await v.cookies(cfg.originA) };
});

// 3c. Forms v4: the success event (fired twice for one submit).
await scenario('v4', async (v) => {
  await v.click();
  await v.page.goto(`${cfg.originA}/hubspot`);
  await v.loaded();
  await v.page.evaluate(() => window.hsV4('v4@example.com'));
  await v.conversions(1);
  await sleep(1000);
  return { cookies: await v.cookies(cfg.originA) };
});

// 4. The same kind of visit on an origin outside the allowlist.
await scenario('foreign', async (v) => {
  const landed = await v.click();
  const token = new URL(landed).searchParams.get('irw_id');
  await v.page.goto(`${cfg.originB}/landing?irw_id=${encodeURIComponent(token)}&swarm_ref=${cfg.code}`);
  await v.loaded();
  await v.page.evaluate(() => window.introw.affiliate.track({ email: 'foreign@example.com' }));
  await v.conversions(1);
  await sleep(1000);
  return { token, cookies: await v.cookies(cfg.originB) };
});

// 5. No irw_id, no cookie: nothing is sent, whatever the page does.
await scenario('nothing', async (v) => {
  await v.page.goto(`${cfg.originA}/hubspot?utm_source=direct#top`);
  await v.loaded();
  await v.page.evaluate(async () => {
    window.introw.affiliate.track({ email: 'nobody@example.com' });
    window.hsClassic('nobody@example.com');
    window.hsV4('nobody@example.com');
  });
  await sleep(1500);
  return { url: v.page.url(), cookies: await v.cookies(cfg.originA) };
});

// 6. track() through the stub, before the script has loaded.
await scenario('stub', async (v) => {
  await v.click();
  await v.page.goto(`${cfg.originA}/stub`);
  await v.loaded();
  await v.conversions(1);
  await sleep(500);
  const queuedBeforeLoad = await v.page.evaluate(() => window.__queuedBeforeLoad);
  return { queuedBeforeLoad, cookies: await v.cookies(cfg.originA) };
});

// Without fetch, track() falls back to navigator.sendBeacon.
await scenario('beacon', async (v) => {
  await v.click();
  await v.page.evaluate(() => {
    window.fetch = undefined;
    // DevTools does not expose a beacon's Blob body: a spy reads it.
    const send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, blob) => {
      blob.text().then((text) => { window.__beacon = { url, type: blob.type, body: JSON.parse(text) }; });
      return send(url, blob);
    };
    window.introw.affiliate.track({ email: 'beacon@example.com' });
  });
  await v.conversions(1);
  await sleep(500);
  return { beacon: await v.page.evaluate(() => window.__beacon), cookies: await v.cookies(cfg.originA) };
});

await browser.close();
process.stdout.write(JSON.stringify(out) + '\n');
