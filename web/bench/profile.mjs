// Where seqnet's wasm training time goes: a Chromium CPU profile (CDP Profiler, 200 µs
// sampling) of Bench.train on the seed network, mini-batch 10, 1,500 images after 200 of
// warm-up, run on a page's main thread (simpler to profile than the bench's worker);
// prints the img/s (lower than the bench's: the profiler costs time) and the 15
// functions with the most self time. Build the page first (web/build.sh), then:
//   cd web/bench && npm ci && node profile.mjs [relaxed-simd|simd128]
import { chromium } from 'playwright-core';
import { serve } from '../serve.mjs';
const which = process.argv[2] || 'relaxed-simd';
const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage();
await page.route(origin + '/prof.html', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><p>prof</p>' }));
await page.goto(origin + '/prof.html');
await page.evaluate(async (which) => {
  const { loadSeqnet } = await import('/seqnet.js');
  window.w = await loadSeqnet(which);
  window.b = new window.w.Bench('seed', 1n);
  window.b.train(200, 10);
}, which);
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const t = await page.evaluate(() => { const t0 = performance.now(); window.b.train(1500, 10); return performance.now() - t0; });
const { profile } = await cdp.send('Profiler.stop');
const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const dt = profile.timeDeltas; let total = 0;
profile.samples.forEach((id, i) => { const n = byId.get(id); const k = n.callFrame.functionName || '(anon)'; self.set(k, (self.get(k) || 0) + dt[i]); total += dt[i]; });
console.log(which, 'train 1500 img/s', (1500 / t * 1000).toFixed(0));
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log((100 * v / total).toFixed(1).padStart(5), '%', k.slice(0, 110));
await browser.close(); server.close();
