'use strict';
// Opens each URL of $LIBCI_BENCH_URLS (JSON: [[label, url], ...]) $LIBCI_BENCH_ROUNDS times in
// chromium (playwright-core at $LIBCI_PLAYWRIGHT, the browser at $LIBCI_CHROMIUM), each time in
// a fresh context (no cache), and prints one JSON line per visit: the paint timings of the
// document (first-paint, first-contentful-paint: ms from the navigation's start, the Paint
// Timing API), its navigation timing (responseStart, domContentLoaded, load: null when the
// document did not finish loading within $LIBCI_BENCH_LOAD_MS) and its size.
const { chromium } = require(process.env.LIBCI_PLAYWRIGHT);

(async () => {
  const urls = JSON.parse(process.env.LIBCI_BENCH_URLS);
  const rounds = Number(process.env.LIBCI_BENCH_ROUNDS || 5);
  const browser = await chromium.launch({
    executablePath: process.env.LIBCI_CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  for (let round = 0; round < rounds; round++) {
    for (const [label, url] of urls) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      // Not until 'load': chromium lays out a 40 MB text/plain document for minutes. The first
      // contentful paint comes as soon as something is on screen; 'load' is waited for up to
      // $LIBCI_BENCH_LOAD_MS and reported as null when it takes longer.
      const answer = await page.goto(url, { waitUntil: 'commit', timeout: 120000 });
      await page.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0,
        null, { timeout: 120000, polling: 20 });
      const loadMs = Number(process.env.LIBCI_BENCH_LOAD_MS || 20000);
      const loaded = await page.waitForLoadState('load', { timeout: loadMs }).then(() => true, () => false);
      const timing = await page.evaluate((loaded) => {
        const paint = Object.fromEntries(performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]));
        const nav = performance.getEntriesByType('navigation')[0];
        return {
          first_paint: paint['first-paint'] ?? null,
          first_contentful_paint: paint['first-contentful-paint'] ?? null,
          response_start: nav.responseStart, dom_content_loaded: loaded ? nav.domContentLoadedEventEnd : null,
          load: loaded ? nav.loadEventEnd : null, transfer_bytes: loaded ? nav.transferSize : null,
          nodes: document.getElementsByTagName('*').length,
        };
      }, loaded);
      console.log(JSON.stringify({ label, round, status: answer.status(), ...timing }));
      await context.close();
    }
  }
  await browser.close();
})().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
