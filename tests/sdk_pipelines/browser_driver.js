// Runs inside the test page (tests/sdk_pipelines/test_sdk_pipelines_browser.py), after the
// official browser SDK's UMD bundle (@customerio/cdp-analytics-browser, pinned in
// package.json) has defined window.AnalyticsNext. Loads the SDK the way a site does, with
// `cdnSettings` (what the settings CDN would serve, so nothing is fetched) pointing the
// "Customer.io Data Pipelines" integration at the emulator, makes every call type once and
// returns each call's messageId. With `batching` the SDK's batching strategy is used.
async ([writeKey, apiHost, batching]) => {
  const { AnalyticsBrowser } = window.AnalyticsNext;
  const integration = { apiKey: writeKey, apiHost, protocol: 'http' };
  if (batching) {
    integration.deliveryStrategy = { strategy: 'batching', config: { size: 6, timeout: 60000 } };
  }
  const [analytics] = await AnalyticsBrowser.load({
    writeKey,
    cdnSettings: { integrations: { 'Customer.io Data Pipelines': integration } },
  });
  const calls = [
    () => analytics.identify('web-1', { email: 'wen@example.com', plan: 'pro' }),
    () => analytics.track('Order Completed', { order_id: 'W-1', total: 49.9 }),
    () => analytics.page('Shop', 'Pricing', { path: '/pricing' }),
    () => analytics.screen('Home', { tab: 'feed' }),
    () => analytics.group('acme', { objectTypeId: '1', name: 'Acme' }),
    () => analytics.alias('web-1', 'web-old'),
  ];
  const ids = [];
  for (const call of calls) {
    const ctx = await call();
    ids.push(ctx.event.messageId);
  }
  return ids;
}
