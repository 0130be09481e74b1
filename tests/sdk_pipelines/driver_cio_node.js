#!/usr/bin/env node
// Drives customerio-node's PipelinesClient (pinned in package.json) against any Pipelines API
// host: trackguard's emulator in tests/sdk_pipelines/test_sdk_pipelines_cio_node.py.
//
//   node driver_cio_node.js URL WRITE_KEY
//
// The host is changed the way the SDK documents it (`url`: the root including `/v1`). A strict
// client (`strictMode: true`, which sends `X-Strict-Mode: 1`) makes every call type on its own
// endpoint and one batch, then one call Customer.io would drop; a permissive client makes that
// call again; a strict client with a wrong key makes one call. Retries are off, so every
// answer is the one reported. Prints one JSON line per step: {"step", "ok", "response"} or
// {"step", "ok": false, "error": {"name", "statusCode", "message"}}.

'use strict';

const { PipelinesClient } = require('customerio-node');

const [base, writeKey] = process.argv.slice(2);
if (!base || !writeKey) {
  console.error('usage: node driver_cio_node.js URL WRITE_KEY');
  process.exit(2);
}

const options = { url: `${base}/v1`, retry: { maxRetries: 0 } };
const strict = new PipelinesClient(writeKey, { ...options, strictMode: true });
const loose = new PipelinesClient(writeKey, options);
const wrong = new PipelinesClient('not-the-key', { ...options, strictMode: true });
const at = '2024-06-01T12:00:00.000Z';
const late = { userId: 'cn-1', event: 'Late', timestamp: 'yesterday', messageId: 'cn-late-1' };

const steps = [
  ['identify', () => strict.identify({
    userId: 'cn-1', traits: { email: 'cara@example.com' }, timestamp: at, messageId: 'cn-identify-1',
  })],
  ['track', () => strict.track({
    userId: 'cn-1', event: 'Order Completed', properties: { order_id: 'C-1', total: 49.9 },
    timestamp: at, messageId: 'cn-track-1',
  })],
  ['page', () => strict.page({
    userId: 'cn-1', name: 'Pricing', properties: { url: 'https://shop.example.com/pricing' },
    timestamp: at, messageId: 'cn-page-1',
  })],
  ['screen', () => strict.screen({
    userId: 'cn-1', name: 'Home', timestamp: at, messageId: 'cn-screen-1',
  })],
  ['group', () => strict.group({
    userId: 'cn-1', groupId: 'acme', traits: { objectTypeId: '1', name: 'Acme' },
    timestamp: at, messageId: 'cn-group-1',
  })],
  ['alias', () => strict.alias({
    userId: 'cn-1', previousId: 'cn-old', timestamp: at, messageId: 'cn-alias-1',
  })],
  ['batch', () => strict.batch([
    { type: 'track', userId: 42, event: 'Numeric Id', timestamp: at, messageId: 'cn-batch-1' },
    { type: 'identify', userId: 'cn-2', timestamp: at, messageId: 'cn-batch-2' },
  ])],
  ['strict bad timestamp', () => strict.track(late)],
  ['permissive bad timestamp', () => loose.track(late)],
  ['strict wrong key', () => wrong.identify({ userId: 'cn-3', timestamp: at, messageId: 'cn-wrong-1' })],
];

(async () => {
  for (const [step, run] of steps) {
    try {
      const response = await run();
      process.stdout.write(JSON.stringify({ step, ok: true, response }) + '\n');
    } catch (err) {
      const error = { name: err.name, statusCode: err.statusCode, message: err.message };
      process.stdout.write(JSON.stringify({ step, ok: false, error }) + '\n');
    }
  }
})();
