#!/usr/bin/env node
// Drives the official Customer.io Data Pipelines Node SDK (@customerio/cdp-analytics-node,
// pinned in package.json) against any Pipelines API host: trackguard's emulator in
// tests/sdk_pipelines/test_sdk_pipelines_node.py.
//
//   node driver.js URL WRITE_KEY
//
// The host is changed the way the SDK documents it (`host`; the SDK posts to `/v1/batch`
// under it). Every call type is made once, with a fixed messageId and timestamp so a test can
// assert exactly what arrives. Prints one JSON line per HTTP request the SDK made
// ({"request": {"url", "status"}}), one per delivery error ({"error": {"code", "message"}}),
// and {"done": true} after closeAndFlush.

'use strict';

const { Analytics } = require('@customerio/cdp-analytics-node');

const [url, writeKey] = process.argv.slice(2);
if (!url || !writeKey) {
  console.error('usage: node driver.js URL WRITE_KEY');
  process.exit(2);
}

const analytics = new Analytics({ writeKey, host: url, flushInterval: 200, maxEventsInBatch: 15 });
const out = (line) => process.stdout.write(JSON.stringify(line) + '\n');
analytics.on('http_request', (req) => out({ request: { url: req.url, method: req.method } }));
analytics.on('error', (err) => out({ error: { code: err.code, message: String(err.reason || err.message) } }));

const at = '2024-06-01T12:00:00.000Z';
const context = { ip: '203.0.113.7', locale: 'en-US' };
analytics.identify({
  userId: 'node-1',
  traits: { email: 'nora@example.com', plan: 'pro' },
  context,
  timestamp: at,
  messageId: 'node-identify-1',
});
analytics.track({
  userId: 'node-1',
  event: 'Order Completed',
  properties: { order_id: 'N-1', total: 49.9 },
  integrations: { All: false, 'Actions Customerio': true },
  timestamp: at,
  messageId: 'node-track-1',
});
analytics.track({
  anonymousId: 'anon-node',
  event: 'Product Viewed',
  properties: { product_id: 'P-9' },
  timestamp: at,
  messageId: 'node-track-anon-1',
});
analytics.page({
  userId: 'node-1',
  category: 'Shop',
  name: 'Pricing',
  properties: { url: 'https://shop.example.com/pricing', path: '/pricing' },
  timestamp: at,
  messageId: 'node-page-1',
});
analytics.screen({
  userId: 'node-1',
  name: 'Home',
  properties: { tab: 'feed' },
  timestamp: at,
  messageId: 'node-screen-1',
});
analytics.group({
  userId: 'node-1',
  groupId: 'acme',
  traits: { objectTypeId: '1', name: 'Acme' },
  timestamp: at,
  messageId: 'node-group-1',
});
analytics.alias({ userId: 'node-1', previousId: 'node-old', timestamp: at, messageId: 'node-alias-1' });

analytics.closeAndFlush({ timeout: 20000 }).then(() => out({ done: true }));
