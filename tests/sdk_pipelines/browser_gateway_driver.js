// Runs inside the test page (tests/sdk_pipelines/test_sdk_pipelines_browser_gateway.py) after
// the official browser SDK's UMD bundle (@customerio/cdp-analytics-browser, pinned in
// package.json) has defined window.AnalyticsNext. The test puts docs/pipelines.md's loading
// snippet where SNIPPET stands, its placeholders filled in (the gateway's host, http, the write
// key), so the page loads the SDK exactly as the docs tell a site to. Then each of `calls`
// ([method, ...args]) is made in order, and each call's messageId is returned.
async ([calls]) => {
  const { AnalyticsBrowser } = window.AnalyticsNext;
  /* SNIPPET */
  const ids = [];
  for (const [method, ...args] of calls) {
    const ctx = await analytics[method](...args);
    ids.push(ctx.event.messageId);
  }
  return ids;
}
