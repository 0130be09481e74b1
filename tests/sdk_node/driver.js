#!/usr/bin/env node
// Drives the official customerio-node TrackClient the way a D2C shop's Node backend does,
// against any Track API host: trackguard's gateway in tests/sdk_node/test_sdk_node.py.
//
//   TG_URL=https://127.0.0.1:8443 TG_SITE_ID=... TG_API_KEY=... \
//   NODE_EXTRA_CA_CERTS=ca.pem node driver.js
//
// (or `node driver.js URL SITE_ID API_KEY`). TG_NOW_MS stands for Date.now() so that a test
// can assert exact timestamps; without it the real clock is used.
//
// The host is changed the way the SDK documents it: the `url` option ("a custom host") is the
// Track API v1 root, `https://HOST:PORT/api/v1`; the SDK derives the v2 root from it.
// Retries are off so that every answer the host gives is the one reported.
//
// Prints one JSON line per call: {"step", "call", "ok", "response"} or
// {"step", "call", "ok": false, "error": {"name", "message", "statusCode", "body"}}, and exits
// 1 when any call failed.

'use strict';

const { TrackClient, RegionUS } = require('customerio-node');

const [argUrl, argSite, argKey] = process.argv.slice(2);
const base = (argUrl || process.env.TG_URL || '').replace(/\/+$/, '');
const siteId = argSite || process.env.TG_SITE_ID;
const apiKey = argKey || process.env.TG_API_KEY;
if (!base || !siteId || !apiKey) {
  console.error('usage: node driver.js URL SITE_ID API_KEY (or TG_URL, TG_SITE_ID, TG_API_KEY)');
  process.exit(2);
}

const nowMs = process.env.TG_NOW_MS ? Number(process.env.TG_NOW_MS) : Date.now();
const now = Math.floor(nowMs / 1000); // what the shop writes where it converts to seconds

const cio = new TrackClient(siteId, apiKey, {
  region: RegionUS, // left as most apps have it: `url` overrides the region's host
  url: `${base}/api/v1`,
  retry: { maxRetries: 0 },
});

const steps = [
  // Sign-ups: the account service identifies with email and created_at in seconds...
  ['identify', () => cio.identify('cus_1', { email: 'ana@example.com', first_name: 'Ana', created_at: now })],
  // ...and the newsletter service passes Date.now() straight through (milliseconds).
  ['identify', () => cio.identify('cus_2', { email: 'ben@example.com', created_at: nowMs })],
  // A guest browses and fills a cart before logging in.
  ['trackAnonymous', () => cio.trackAnonymous('anon-7', {
    name: 'product_viewed',
    data: { product_id: 'P-1', price: 19.9, currency: 'USD' },
  })],
  ['trackAnonymous', () => cio.trackAnonymous('anon-7', {
    name: 'added_to_cart',
    data: { cart_id: 'C-7', product_id: 'P-1', quantity: 1, price: 19.9, currency: 'USD' },
  })],
  ['identify', () => cio.identify('cus_3', { email: 'cy@example.com', created_at: now, anonymous_id: 'anon-7' })],
  // A known shopper: cart, order (the checkout passes Date.now() as the timestamp), page view.
  ['track', () => cio.track('cus_1', {
    name: 'added_to_cart',
    data: { cart_id: 'C-1', product_id: 'P-2', quantity: 2, price: 24.5, currency: 'USD' },
    timestamp: now,
  })],
  ['track', () => cio.track('cus_1', {
    name: 'order_completed',
    data: { order_id: 'ORD-1001', total: 49, currency: 'USD', item_count: 2 },
    timestamp: nowMs,
  })],
  ['trackPageView', () => cio.trackPageView('cus_1', 'https://shop.example.com/orders/ORD-1001')],
  // The mobile app registers push tokens; one is uninstalled.
  ['addDevice', () => cio.addDevice('cus_1', 'apns-tok-1', 'ios', {
    last_used: now,
    app_version: '3.1.0',
    push_enabled: 'true',
  })],
  ['addDevice', () => cio.addDevice('cus_1', 'fcm-tok-2', 'android')],
  ['deleteDevice', () => cio.deleteDevice('cus_1', 'fcm-tok-2')],
  // Support: a GDPR suppression request, lifted later; a duplicate account merged; a deletion.
  ['suppress', () => cio.suppress('cus_2')],
  ['unsuppress', () => cio.unsuppress('cus_2')],
  ['identify', () => cio.identify('cus_4', { email: 'ana.work@example.com', first_name: 'Ana', created_at: now })],
  ['mergeCustomers', () => cio.mergeCustomers('id', 'cus_1', 'id', 'cus_4')],
  ['identify', () => cio.identify('cus_5', { email: 'eve@example.com', created_at: now })],
  ['destroy', () => cio.destroy('cus_5')],
  // Referral invite: an anonymous event with no anonymous id and a recipient.
  ['trackAnonymous', () => cio.trackAnonymous('', {
    name: 'referral_invited',
    data: { recipient: 'friend@example.com', referrer: 'cus_1' },
  })],
  // The nightly import uses the v2 API.
  ['batch', () => cio.batch([
    { type: 'person', action: 'identify', identifiers: { id: 'cus_6' }, attributes: { email: 'fay@example.com', created_at: now } },
    { type: 'person', action: 'event', identifiers: { id: 'cus_6' }, name: 'product_viewed', timestamp: now, attributes: { product_id: 'P-3' } },
  ])],
  ['entity', () => cio.entity({
    type: 'person', action: 'identify', identifiers: { id: 'cus_7' }, attributes: { email: 'gus@example.com', created_at: now },
  })],
  // Everything else the TrackClient exposes.
  ['getAccountRegion', () => cio.getAccountRegion()],
  ['addCustomersToSegment', () => cio.addCustomersToSegment(7, ['cus_1', 'cus_3'])],
  ['removeCustomersFromSegment', () => cio.removeCustomersFromSegment(7, ['cus_3'], 'id')],
  ['submitForm', () => cio.submitForm('newsletter', { email: 'hal@example.com', first_name: 'Hal' })],
  ['reportMetric', () => cio.reportMetric({ delivery_id: 'dlv-1', metric: 'opened', timestamp: now })],
  ['trackPush', () => cio.trackPush({ delivery_id: 'dlv-2', event: 'opened', device_id: 'apns-tok-1', timestamp: now })],
  ['unsubscribe', () => cio.unsubscribe('dlv-3')],
];

async function main() {
  let failed = 0;
  for (const [index, [call, run]] of steps.entries()) {
    const line = { step: index, call };
    try {
      line.ok = true;
      line.response = await run();
    } catch (error) {
      failed += 1;
      line.ok = false;
      line.error = {
        name: error.name,
        message: error.message,
        statusCode: error.statusCode,
        body: error.body,
        cause: error.cause ? String(error.cause) : undefined,
      };
    }
    process.stdout.write(JSON.stringify(line) + '\n');
  }
  process.exitCode = failed ? 1 : 0;
}

main();
