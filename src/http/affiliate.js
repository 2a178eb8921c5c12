/*! Clickledger affiliate.js: attribution cookie, track() and HubSpot forms.
 * Install in <head>:
 *   <script async src="https://ENGINE/affiliate.js" data-publishable-key="pk_aff_org_..."></script>
 * To call track() before the async script has loaded, put this stub first;
 * queued calls are replayed on load:
 *   <script>window.introw=window.introw||{affiliate:{q:[],track:function(o){this.q.push(o)}}};</script>
 * It never throws and never writes to the console. */
(() => {
  try {
    const w = window, d = document, loc = w.location;
    const AFF = '_introw_aff', REF = '_introw_swarm_ref', TYPE = 'text/plain;charset=UTF-8';
    const ns = (w.introw = w.introw || {});
    const api = (ns.affiliate = ns.affiliate || {});
    if (api.loaded) return; // included twice: the first copy does the work
    api.loaded = true;

    // Our own <script>: the engine's origin comes from its src, the key from its data attribute.
    let me = d.currentScript;
    if (!me || !me.src) {
      const all = d.getElementsByTagName('script');
      for (let i = all.length - 1; i >= 0; i--) {
        if (/\/affiliate\.js([?#]|$)/.test(all[i].src || '')) { me = all[i]; break; }
      }
    }
    let engine = '', orgKey;
    try { engine = new URL(me.src).origin; } catch (e) {}
    try { orgKey = me.getAttribute('data-publishable-key') || undefined; } catch (e) {}

    const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch (e) { return s; } };
    const getCookie = (name) => {
      for (const part of d.cookie.split(';')) {
        const i = part.indexOf('=');
        if (i > 0 && part.slice(0, i).trim() === name) return dec(part.slice(i + 1).trim());
      }
      return '';
    };
    const setCookie = (name, value) => {
      d.cookie = name + '=' + encodeURIComponent(value) + '; Max-Age=7776000; Path=/; SameSite=Lax' +
        (loc.protocol === 'https:' ? '; Secure' : '');
    };

    // On load: keep the click (last click wins), then drop irw_id from the
    // address bar, leaving every other parameter and the fragment untouched.
    try {
      const parts = loc.search.slice(1).split('&').filter(Boolean);
      const kept = [];
      let id = '', ref = '';
      for (const p of parts) {
        const i = p.indexOf('=');
        const k = dec(i < 0 ? p : p.slice(0, i)), v = i < 0 ? '' : dec(p.slice(i + 1));
        if (k === 'irw_id') { id = id || v; continue; }
        if (k === 'swarm_ref' && !ref) ref = v;
        kept.push(p);
      }
      if (id) {
        setCookie(AFF, id);
        if (ref) setCookie(REF, ref);
      }
      if (kept.length !== parts.length && w.history && history.replaceState) {
        history.replaceState(history.state, '', loc.pathname + (kept.length ? '?' + kept.join('&') : '') + loc.hash);
      }
    } catch (e) {}

    // A CORS simple request (text/plain, no custom header): no preflight.
    // no-cors because the answer is never read: an origin outside the
    // allowlist gets no Access-Control-Allow-Origin, and a cors-mode fetch
    // would make the browser print a CORS error in the page's console.
    const send = (body) => {
      const url = engine + '/api/v1/affiliate/conversions';
      if (typeof w.fetch === 'function') {
        w.fetch(url, {
          method: 'POST', keepalive: true, mode: 'no-cors', credentials: 'omit',
          headers: { 'Content-Type': TYPE }, body,
        }).catch(() => {});
      } else if (w.navigator && navigator.sendBeacon) {
        navigator.sendBeacon(url, new Blob([body], { type: TYPE }));
      }
    };

    const track = (o) => {
      try {
        o = o || {};
        const clickId = getCookie(AFF);
        if (!clickId || !engine) return;
        const props = o.properties;
        send(JSON.stringify({
          clickId,
          email: o.email == null || o.email === '' ? undefined : String(o.email),
          properties: props && typeof props === 'object' && !Array.isArray(props) ? props : undefined,
          publishableKey: typeof o.publishableKey === 'string' && o.publishableKey ? o.publishableKey : orgKey,
        }));
      } catch (e) {}
    };

    // Replace the stub and replay what it queued.
    const queued = Array.isArray(api.q) ? api.q : [];
    api.q = [];
    api.track = track;
    for (const o of queued) track(o);

    // HubSpot: one conversion per submit, whichever events arrive. An event
    // within 3 s of another for the same form (or of one whose form is unknown) is the same submit.
    const last = {};
    let lastAny = 0;
    const hubspot = (formId, emailOf) => {
      const now = Date.now(), k = formId ? 'f' + formId : '';
      const recent = (t) => t !== undefined && now - t < 3000;
      if (k ? recent(last[k]) || recent(last['']) : recent(lastAny)) return;
      last[k] = lastAny = now;
      Promise.resolve().then(emailOf).then((email) => email, () => undefined)
        .then((email) => track({ email: typeof email === 'string' ? email : undefined }));
    };
    const HS = /^https:\/\/([a-z0-9-]+\.)*(hubspot\.com|hsforms\.com|hsforms\.net|hs-sites\.com|hubspot\.net|hubspotpagebuilder\.com)$/i;

    // Classic embed: the form runs in the page and posts to its own window.
    w.addEventListener('message', (e) => {
      try {
        const m = e.data;
        if (!m || typeof m !== 'object' || m.type !== 'hsFormCallback') return;
        if (e.source !== w && !HS.test(e.origin || '')) return;
        if (m.eventName === 'onFormSubmitted') {
          hubspot(m.id, () => m.data && m.data.submissionValues && m.data.submissionValues.email);
        } else if (m.eventName === 'onFormSubmit') {
          hubspot(m.id, () => {
            const f = Array.isArray(m.data) && m.data.find((x) => x && x.name === 'email');
            return f ? f.value : undefined;
          });
        }
      } catch (err) {}
    });

    // Forms v4.
    w.addEventListener('hs-form-event:on-submission:success', (e) => {
      try {
        const det = e.detail || {};
        hubspot(det.formId || det.instanceId, () => w.HubSpotFormsV4.getFormFromEvent(e).getFormFieldValues().then((vals) => {
          const f = (vals || []).find((x) => x && typeof x.name === 'string' && (x.name === 'email' || /\/email$/.test(x.name)));
          return f ? f.value : undefined;
        }));
      } catch (err) {}
    });
  } catch (e) {}
})();
