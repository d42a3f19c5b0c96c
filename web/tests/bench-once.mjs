// Opens web/dist/bench.html in headless chromium and prints its JSON:
//   node web/tests/bench-once.mjs 'net=seed&batch=10&images=2000'
import { chromium } from 'playwright-core';
import { serve } from '../serve.mjs';
const server = await serve(0);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const page = await browser.newPage();
await page.goto(`http://127.0.0.1:${server.address().port}/bench.html?${process.argv[2] || 'net=seed&batch=10&images=2000'}`);
await page.waitForSelector('body[data-done="1"]', { timeout: 600000 });
console.log(await page.locator('#result').textContent());
await browser.close();
server.close();
