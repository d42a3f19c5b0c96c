// Browser tests of the page in web/dist, with playwright-core driving Debian's chromium
// (headless, on 127.0.0.1 only). Run by .ci/run after web/build.sh:
//   node web/tests/browser.mjs
// Environment: SEQNET_BIN (the seqnet binary for the CLI comparisons; default
// target/debug/seqnet, or target/release/seqnet if that is the one there), CHROMIUM
// (default /usr/bin/chromium). Screenshots go to web/tests/out/.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../serve.mjs';

const web = fileURLToPath(new URL('..', import.meta.url));
const repo = join(web, '..');
const out = join(web, 'tests', 'out');
mkdirSync(out, { recursive: true });
const tmp = mkdtempSync(join(tmpdir(), 'seqnet-web-'));
const seqnetBin = process.env.SEQNET_BIN || [
  join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', 'seqnet'),
  join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'release', 'seqnet'),
].find(existsSync);

const SEED_WRONG = 'Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(800, 100) -> ReLU() -> Linear(100, 10)';
const SEED = SEED_WRONG.replace('Linear(800, 100)', 'Linear(2880, 100)');

let failures = 0;
const results = [];
async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures += 1;
    results.push(`FAIL ${name}: ${e.stack || e}`);
  }
  console.log(results[results.length - 1]);
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

// A safetensors file's F32 tensors, by name.
function readSafetensors(buf) {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    tensors[name] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  }
  return { tensors, metadata: header.__metadata__ || {} };
}
function writeSafetensors(path, name, shape, values) {
  const data = Buffer.from(new Float32Array(values).buffer);
  let json = JSON.stringify({ [name]: { dtype: 'F32', shape, data_offsets: [0, data.length] } });
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), data]));
}

const server = await serve(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
console.log(`chromium ${browser.version()}, page ${origin}`);
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
// Every request the page makes, to check that none leaves the origin; any that tries is
// also stopped here, so that a leak cannot reach the network during the test.
const requests = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  requests.push(url);
  if (url.startsWith(origin + '/')) route.continue();
  else route.abort();
});
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));

await page.goto(`${origin}/`);
await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
const byId = (id) => page.locator(`[data-testid="${id}"]`);
const errorText = async () => ((await byId('error').isVisible()) ? byId('error').textContent() : '');

async function setSpec(text) {
  await byId('spec').fill(text);
  await page.waitForTimeout(400);
}

// Screenshots, looked at: no sideways scrolling, every panel on screen and not empty.
async function checkLayout(name, width, height) {
  await page.setViewportSize({ width, height });
  await page.waitForTimeout(300);
  const path = join(out, `${name}.png`);
  const png = await page.screenshot({ path, fullPage: true });
  const layout = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
    panels: [...document.querySelectorAll('.panel')].map((p) => {
      const r = p.getBoundingClientRect();
      return { id: p.id, left: r.left, right: r.right, width: r.width, height: r.height, visible: getComputedStyle(p).visibility === 'visible' };
    }),
  }));
  assert(layout.scroll <= layout.inner, `${name}: the page scrolls sideways (${layout.scroll} px wide in a ${layout.inner} px window)`);
  assert(layout.panels.length === 4, `${name}: ${layout.panels.length} panels`);
  for (const p of layout.panels) {
    assert(p.visible && p.width > 200 && p.height > 100 && p.left >= 0 && p.right <= layout.inner + 0.5,
      `${name}: panel ${p.id} is not fully on screen: ${JSON.stringify(p)}`);
  }
  // The picture itself: decoded in the page, it must not be blank (many distinct colours,
  // and ink in both halves on the desktop's two columns).
  const stats = await page.evaluate(async (dataUrl) => {
    const img = new Image();
    img.src = dataUrl;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    let leftInk = 0, rightInk = 0;
    for (let i = 0; i < d.length; i += 4 * 7) {
      colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      if (d[i] + d[i + 1] + d[i + 2] < 200) {
        if ((i / 4) % c.width < c.width / 2) leftInk += 1; else rightInk += 1;
      }
    }
    return { w: c.width, h: c.height, colours: colours.size, leftInk, rightInk };
  }, `data:image/png;base64,${png.toString('base64')}`);
  assert(stats.w === width, `${name}: screenshot is ${stats.w} px wide, not ${width}`);
  assert(stats.colours > 50 && stats.leftInk > 100 && stats.rightInk > 100, `${name}: the screenshot looks blank: ${JSON.stringify(stats)}`);
  await page.setViewportSize({ width: 1280, height: 800 });
  return stats;
}

await test('the page loads the relaxed-SIMD wasm where the browser has relaxed SIMD', async () => {
  // The same 49-byte module as web/src/seqnet.js (f32x4.relaxed_madd).
  const relaxed = await page.evaluate(() => WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 28, 1, 26, 0, 67, 0, 0, 0, 0, 253, 19, 67, 0, 0, 0, 0, 253, 19, 67, 0, 0, 0, 0, 253, 19, 253, 133, 2, 11])));
  const build = await page.evaluate(() => document.body.dataset.wasm);
  console.log(`     relaxed SIMD: ${relaxed}; wasm build loaded: ${build}`);
  assert(build === (relaxed ? 'relaxed-simd' : 'simd128'), `loaded ${build}, relaxed SIMD ${relaxed}`);
});

await test('the seed network with Linear(800, 100) shows the error naming 2880', async () => {
  await setSpec(SEED_WRONG);
  const text = await errorText();
  assert(text.includes('2880'), `error box: ${JSON.stringify(text)}`);
  assert(text.startsWith('error: layer 4 Linear(in_features=800'), `error box: ${JSON.stringify(text)}`);
  // The CLI's message, word for word.
  if (seqnetBin) {
    let cli = '';
    try { execFileSync(seqnetBin, ['summary', SEED_WRONG], { stdio: 'pipe' }); } catch (e) { cli = String(e.stderr || e).trim(); }
    assert(cli === text.trim(), `CLI says ${JSON.stringify(cli)}, the page ${JSON.stringify(text)}`);
  }
  assert(await byId('train').isDisabled(), 'Train is enabled with a broken spec');
});

await test('a syntax error shows the caret under the column', async () => {
  await setSpec('Conv2d(1, 20, 5 -> ReLU()');
  const text = await errorText();
  assert(text.includes('line 1, column 17') && /\n\s*\^/.test(text), `error box: ${JSON.stringify(text)}`);
});

await test('the corrected spec shows the shape table', async () => {
  await setSpec(SEED);
  assert(!(await byId('error').isVisible()), 'the error stays after the fix');
  const table = await byId('shapes').textContent();
  for (const want of ['20×24×24', '20×12×12', '2880', '(28 + 2·0 − 5)/1 + 1 = 24', '20 · 12 · 12 = 2880']) {
    assert(table.includes(want), `the table lacks ${want}: ${table}`);
  }
  assert((await page.locator('#totals').textContent()).includes('289,630 parameters'), 'totals');
});

await test('print(model) and nn.Sequential(...) code give the same table', async () => {
  await setSpec(SEED);
  const arrows = await byId('shapes').textContent();
  await setSpec(`Sequential(
  (0): Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Linear(in_features=2880, out_features=100, bias=True)
  (5): ReLU()
  (6): Linear(in_features=100, out_features=10, bias=True)
)`);
  assert(await byId('shapes').textContent() === arrows, 'print(model) differs');
  await setSpec(`model = nn.Sequential(
    nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(2880, 100), nn.ReLU(), nn.Linear(100, 10),
)`);
  const code = await errorText();
  assert(code === '' && await byId('shapes').textContent() === arrows, `nn.Sequential code: ${code}`);
  await setSpec(SEED);
});

await test('layout at 1280×800 and at phone width (390×844)', async () => {
  await checkLayout('desktop-1280x800', 1280, 800);
  await checkLayout('phone-390x844', 390, 844);
});

await test('one epoch on the embedded sample reaches at least 90% in the page, with the page responsive', async () => {
  await setSpec(SEED);
  await page.fill('#epochs', '1');
  await page.fill('#seed', '1');
  const t0 = Date.now();
  const before = await page.evaluate(() => window.seqnetDone || 0);
  await byId('train').click();
  // While training runs the page answers: typing updates the table at once.
  await page.waitForFunction(() => /step \d+ of/.test(document.getElementById('status').textContent), null, { timeout: 30000 });
  const tTyped = Date.now();
  await setSpec(SEED.replace('Linear(2880, 100)', 'Linear(2880, 64)').replace('Linear(100, 10)', 'Linear(64, 10)'));
  const totals = await page.locator('#totals').textContent();
  assert(totals.includes('185,554 parameters'), `the table did not follow the spec: ${totals}`);
  assert(Date.now() - tTyped < 3000, 'the page did not answer while training');
  await setSpec(SEED);
  await page.waitForFunction((b) => (window.seqnetDone || 0) > b, before, { timeout: 240000 });
  const acc = await byId('accuracy').textContent();
  const pct = parseFloat(acc);
  console.log(`     one epoch: ${acc} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert(pct >= 90, `accuracy ${acc}`);
  assert((await page.locator('#confusion td').count()) === 100, 'confusion matrix');
  assert((await page.locator('#mistakes canvas').count()) > 0, 'mistakes');
  assert((await page.locator('#filters canvas').count()) === 20, 'filters');
  assert((await page.locator('.act-title').allTextContents()).some((t) => t.includes('20×24×24')), 'activations titled with shapes');
});

await test('drawing a test digit with mouse strokes predicts that digit', async () => {
  const digits = await page.evaluate(() => window.seqnetTestImages(0, 40));
  // A digit the network gets right with confidence, so that the test is about drawing.
  let chosen = null;
  for (let i = 0; i < digits.images.length && !chosen; i++) {
    const logits = await page.evaluate((v) => window.seqnet.call('logits', { values: v }), digits.images[i].map((p) => p / 255));
    const best = logits.indexOf(Math.max(...logits));
    const sorted = [...logits].sort((a, b) => b - a);
    if (best === digits.labels[i] && sorted[0] - sorted[1] > 4 && digits.labels[i] !== 1) chosen = { pixels: digits.images[i], label: digits.labels[i], i };
  }
  assert(chosen, 'no confidently classified test digit among the first 40');
  await page.click('#clear');
  const canvas = byId('draw');
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  const s = box.width / 28;
  for (let y = 0; y < 28; y++) {
    let x = 0;
    while (x < 28) {
      if (chosen.pixels[y * 28 + x] < 100) { x++; continue; }
      const x0 = x;
      while (x < 28 && chosen.pixels[y * 28 + x] >= 100) x++;
      await page.mouse.move(box.x + (x0 + 0.5) * s, box.y + (y + 0.5) * s);
      await page.mouse.down();
      await page.mouse.move(box.x + (x - 0.5) * s, box.y + (y + 0.5) * s, { steps: 2 });
      await page.mouse.up();
    }
  }
  await page.waitForTimeout(500);
  await page.waitForFunction(() => document.getElementById('prediction').textContent !== '–');
  await page.waitForTimeout(300);
  const predicted = await byId('prediction').textContent();
  await page.screenshot({ path: join(out, 'draw.png'), clip: await page.locator('#draw-panel').boundingBox() });
  assert(predicted === String(chosen.label), `drew test digit ${chosen.i} (a ${chosen.label}); the page predicts ${predicted}`);
  assert((await page.locator('#top3 li').count()) === 3, 'top-3');
  // The README's picture: a trained network, its pictures and a drawn digit.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(out, 'readme.png'), fullPage: true });
});

let downloaded;
let cliModelPath;
await test('the downloaded model gives the same logits in seqnet predict', async () => {
  assert(seqnetBin, 'no seqnet binary: build it (cargo build) or set SEQNET_BIN');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  downloaded = join(tmp, 'page.safetensors');
  await download.saveAs(downloaded);
  const digits = await page.evaluate(() => window.seqnetTestImages(100, 8));
  const values = digits.images.flat().map((p) => p / 255);
  writeSafetensors(join(tmp, 'x.safetensors'), 'input', [8, 1, 28, 28], values);
  execFileSync(seqnetBin, ['predict', '--model', downloaded, '--input', join(tmp, 'x.safetensors'), '--output', join(tmp, 'y.safetensors')], { stdio: 'pipe' });
  const cli = readSafetensors(readFileSync(join(tmp, 'y.safetensors'))).tensors.logits;
  let worst = 0;
  for (let i = 0; i < 8; i++) {
    const page10 = await page.evaluate((v) => window.seqnet.call('logits', { values: v }), values.slice(i * 784, (i + 1) * 784));
    for (let j = 0; j < 10; j++) worst = Math.max(worst, Math.abs(page10[j] - cli[i * 10 + j]) / Math.max(1, Math.abs(cli[i * 10 + j])));
  }
  console.log(`     largest logit difference, page vs seqnet predict: ${worst.toExponential(2)} (relative)`);
  assert(worst <= 1e-4, `logits differ by ${worst}`);
  const meta = readSafetensors(readFileSync(downloaded)).metadata;
  assert(meta['seqnet.input'] === '1x28x28' && meta['seqnet.spec'].startsWith('Conv2d(1, 20'), JSON.stringify(meta));
});

await test('a malformed model file shows an error', async () => {
  await page.setInputFiles('#model-file', { name: 'broken.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a safetensors file at all') });
  await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 10000 });
  const text = await errorText();
  assert(text.startsWith('error: reading broken.safetensors: broken.safetensors:'), JSON.stringify(text));
  if (seqnetBin) {
    const bad = join(tmp, 'broken.safetensors');
    writeFileSync(bad, 'this is not a safetensors file at all');
    let cli = '';
    try { execFileSync(seqnetBin, ['summary', '--model', bad], { stdio: 'pipe' }); } catch (e) { cli = String(e.stderr || e).trim(); }
    const tail = (s) => s.slice(s.lastIndexOf('broken.safetensors:'));
    assert(tail(cli) === tail(text.trim()), `CLI: ${cli}\npage: ${text}`);
  }
});

await test('IDX .gz files open in the page, and a wrong one is refused with the message naming it', async () => {
  try {
    await page.selectOption('#data-source', 'files');
    const junk = Buffer.from([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2]);
    await page.setInputFiles('#idx-files', [
      { name: 'train-images-idx3-ubyte.gz', mimeType: 'application/gzip', buffer: junk },
      { name: 'train-labels-idx1-ubyte.gz', mimeType: 'application/gzip', buffer: junk },
      { name: 't10k-images-idx3-ubyte.gz', mimeType: 'application/gzip', buffer: junk },
      { name: 't10k-labels-idx1-ubyte.gz', mimeType: 'application/gzip', buffer: junk },
    ]);
    await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 10000 });
    const text = await errorText();
    assert(text.startsWith('error: train-images-idx3-ubyte.gz: '), text);
    // Real IDX .gz files load (the embedded sample's own pair, given as both parts).
    const images = readFileSync(join(repo, 'assets/mnist-5k/images-idx3-ubyte.gz'));
    const labels = readFileSync(join(repo, 'assets/mnist-5k/labels-idx1-ubyte.gz'));
    await page.setInputFiles('#idx-files', [
      { name: 'train-images-idx3-ubyte.gz', mimeType: 'application/gzip', buffer: images },
      { name: 'train-labels-idx1-ubyte.gz', mimeType: 'application/gzip', buffer: labels },
      { name: 't10k-images-idx3-ubyte.gz', mimeType: 'application/gzip', buffer: images },
      { name: 't10k-labels-idx1-ubyte.gz', mimeType: 'application/gzip', buffer: labels },
    ]);
    await page.waitForFunction(() => document.getElementById('data-info').textContent.startsWith('files opened'), null, { timeout: 20000 });
    const info = await page.locator('#data-info').textContent();
    assert(info.includes('5,000 training and 5,000 test images, 1×28×28'), info);
    assert(await errorText() === '', await errorText());
  } finally {
    await page.selectOption('#data-source', 'embedded');
    await page.waitForFunction(() => document.getElementById('data-info').textContent.startsWith('mnist-5k'));
  }
});

await test('a run in the page is bitwise repeatable, and agrees with seqnet train', async () => {
  assert(seqnetBin, 'no seqnet binary');
  await setSpec(SEED);
  await page.evaluate(() => { window.seqnetLimit = 320; });
  await page.fill('#epochs', '1'); await page.fill('#seed', '7');
  await page.fill('#lr', '0.03'); await page.fill('#batch', '32'); await page.selectOption('#optimizer', 'sgd');
  const hashes = [];
  for (let run = 0; run < 2; run++) {
    const before = await page.evaluate(() => window.seqnetDone || 0);
    await byId('train').click();
    await page.waitForFunction((b) => (window.seqnetDone || 0) > b, before, { timeout: 120000 });
    hashes.push(await page.evaluate(() => window.seqnetLastHash));
  }
  assert(hashes[0] === hashes[1], `two runs, two weights: ${hashes}`);
  const bytes = await page.evaluate(async () => Array.from(await window.seqnet.call('model_bytes')));
  const pageModel = readSafetensors(Buffer.from(bytes)).tensors;
  const cliPath = join(tmp, 'cli.safetensors');
  execFileSync(seqnetBin, ['train', '--dataset', 'mnist-5k', '--spec', SEED, '--epochs', '1', '--limit', '320',
    '--batch-size', '32', '--lr', '0.03', '--optimizer', 'sgd', '--seed', '7', '--threads', '1', '--quiet',
    '--out', join(tmp, 'run'), '--save', cliPath], { stdio: 'pipe', cwd: tmp });
  const cliModel = readSafetensors(readFileSync(cliPath)).tensors;
  cliModelPath = cliPath;
  let worst = 0;
  for (const [name, b] of Object.entries(cliModel)) {
    const a = pageModel[name];
    assert(a && a.length === b.length, `tensor ${name}`);
    const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  }
  console.log(`     weights after 10 steps, page vs seqnet train: largest difference ${worst.toExponential(2)} of each tensor's largest value; page hash ${hashes[0]}`);
  assert(worst <= 1e-4, `weights differ by ${worst} (relative to each tensor's largest value)`);
  await page.evaluate(() => { window.seqnetLimit = 0; });
});

await test('a model file from the CLI opens in the page', async () => {
  assert(cliModelPath, 'no model from seqnet train (the test before failed)');
  await page.evaluate(() => { document.getElementById('accuracy').textContent = '–'; });
  await page.setInputFiles('#model-file', cliModelPath);
  await page.waitForFunction(() => document.getElementById('accuracy').textContent.endsWith('%'));
  assert((await page.locator('#model-info').textContent()).includes('cli.safetensors: input 1×28×28'), 'model info');
  assert(await errorText() === '', await errorText());
});

await test('a model whose input shape does not match the data is refused with the message', async () => {
  // Flatten() -> Linear(4, 10) for 1×2×2 images, written as seqnet writes models.
  const w = new Float32Array(40).fill(0.1), b = new Float32Array(10);
  const data = Buffer.concat([Buffer.from(w.buffer), Buffer.from(b.buffer)]);
  let json = JSON.stringify({
    __metadata__: { format: 'pt', 'seqnet.spec': 'Flatten() -> Linear(4, 10)', 'seqnet.input': '1x2x2' },
    '1.bias': { dtype: 'F32', shape: [10], data_offsets: [160, 200] },
    '1.weight': { dtype: 'F32', shape: [10, 4], data_offsets: [0, 160] },
  });
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = Buffer.concat([len, Buffer.from(json), data]);
  await page.setInputFiles('#model-file', { name: 'tiny.safetensors', mimeType: 'application/octet-stream', buffer: file });
  await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 10000 });
  const text = await errorText();
  assert(text === 'error: tiny.safetensors: the network takes images shaped 1×2×2 but the data\'s are 1×28×28; rebuild it with --spec, or use data of that shape', text);
  // The page shows the model's network; back to the seed network for the next tests.
  await page.fill('#input-shape', '1x28x28');
  await setSpec(SEED);
});

await test('pause stops the run and resume finishes it', async () => {
  await page.evaluate(() => { window.seqnetLimit = 1600; });
  await page.fill('#batch', '10');
  const before = await page.evaluate(() => window.seqnetDone || 0);
  await byId('train').click();
  await page.waitForFunction(() => /step \d+ of/.test(document.getElementById('status').textContent));
  await byId('pause').click();
  await page.waitForTimeout(300);
  const a = await page.locator('#status').textContent();
  await page.waitForTimeout(700);
  const b = await page.locator('#status').textContent();
  assert(a === b, `training went on while paused: ${a} / ${b}`);
  await byId('pause').click();
  await page.waitForFunction((n) => (window.seqnetDone || 0) > n, before, { timeout: 120000 });
  await page.evaluate(() => { window.seqnetLimit = 0; });
  await page.fill('#batch', '32');
});

await test('a Rust panic in the worker is shown, and the page goes on', async () => {
  const err = await page.evaluate(() => window.seqnet.call('panic').then(() => '', (e) => e.message));
  assert(err.includes('panicked') && err.includes('debug_panic was called'), err);
  // A new worker answers.
  await page.selectOption('#data-source', 'embedded');
  await page.waitForTimeout(500);
  const d = await page.evaluate(() => window.seqnet.call('use_embedded'));
  assert(d.train === 4000, JSON.stringify(d));
});

await test('no request leaves the origin', async () => {
  const away = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('blob:') && !u.startsWith('data:'));
  assert(requests.length > 5, `only ${requests.length} requests seen`);
  assert(away.length === 0, `requests outside ${origin}: ${away.join(', ')}`);
  const csp = await page.evaluate(async () => (await fetch('/')).headers.get('content-security-policy'));
  assert(csp && csp.includes("default-src 'self'") && csp.includes("script-src 'self' 'wasm-unsafe-eval'"), `CSP header: ${csp}`);
});

await checkLayout('desktop-trained-1280x800', 1280, 800).catch(() => {});
const unexpected = consoleErrors.filter((e) => !e.includes('debug_panic') && !e.includes('panicked') && !e.includes('unreachable'));
if (unexpected.length) console.log(`console errors:\n  ${unexpected.join('\n  ')}`);
await browser.close();
server.close();
console.log(`\n${results.length - failures} passed, ${failures} failed; screenshots in ${out}`);
process.exit(failures ? 1 : 0);
