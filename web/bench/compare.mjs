// Speed of seqnet's wasm build beside ConvNetJS, TensorFlow.js (wasm and cpu backends)
// and native `seqnet bench --threads 1`, on the seed network, in the same headless
// Chromium. Build the page first (web/build.sh) and a release seqnet (cargo build
// --release), then:
//   cd web/bench && npm ci && node compare.mjs [--batch 10] [--images 2000]
// Environment: SEQNET_BIN (default target/release/seqnet), CHROMIUM (/usr/bin/chromium).
// Training uses random pixels and labels for the other libraries (their speed does not
// depend on the values) and the embedded sample for seqnet; every engine trains the same
// network: Conv2d(1, 20, 5), ReLU, MaxPool2d(2), Linear(2880, 100), ReLU, Linear(100, 10),
// plain SGD, cross-entropy.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dist = join(here, '..', 'dist');
const nm = join(here, 'node_modules');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const batch = arg('batch', 10);
const images = arg('images', 2000);
const inferBatch = arg('infer-batch', 1000);
const inferImages = arg('infer-images', 5000);
const seqnetBin = process.env.SEQNET_BIN || join(here, '..', '..', 'target', 'release', 'seqnet');

const common = `
function randomData(n) {
  const x = new Float32Array(n * 784);
  for (let i = 0; i < x.length; i++) x[i] = Math.random();
  const y = Array.from({ length: n }, () => Math.floor(Math.random() * 10));
  return { x, y };
}
function done(obj) { document.getElementById('result').textContent = JSON.stringify(obj); document.body.dataset.done = '1'; }
window.onerror = (m) => done({ error: String(m) });
`;

const convnetPage = `<!doctype html><meta charset="utf-8"><pre id="result">running</pre>
<script src="/nm/convnetjs/build/convnet.js"></script>
<script>${common}
const q = new URLSearchParams(location.search);
const batch = +q.get('batch'), images = +q.get('images'), inferImages = +q.get('infer_images');
const net = new convnetjs.Net();
net.makeLayers([
  { type: 'input', out_sx: 28, out_sy: 28, out_depth: 1 },
  { type: 'conv', sx: 5, filters: 20, stride: 1, pad: 0, activation: 'relu' },
  { type: 'pool', sx: 2, stride: 2 },
  { type: 'fc', num_neurons: 100, activation: 'relu' },
  { type: 'softmax', num_classes: 10 },
]);
const trainer = new convnetjs.SGDTrainer(net, { method: 'sgd', learning_rate: 0.03, momentum: 0, batch_size: batch, l2_decay: 0 });
const d = randomData(Math.max(images, 1000));
const vols = [];
for (let i = 0; i < d.y.length; i++) { const v = new convnetjs.Vol(28, 28, 1, 0); v.w.set(d.x.subarray(i * 784, (i + 1) * 784)); vols.push(v); }
for (let i = 0; i < 100; i++) trainer.train(vols[i], d.y[i]);
let t0 = performance.now();
for (let i = 0; i < images; i++) trainer.train(vols[i % vols.length], d.y[i % vols.length]);
const trainS = (performance.now() - t0) / 1000;
t0 = performance.now();
for (let i = 0; i < inferImages; i++) net.forward(vols[i % vols.length], false);
const inferS = (performance.now() - t0) / 1000;
done({ engine: 'convnetjs', batch_size: batch, train_img_per_s: images / trainS, infer_img_per_s: inferImages / inferS, infer_batch: 1 });
</script>`;

const tfjsPage = `<!doctype html><meta charset="utf-8"><pre id="result">running</pre>
<script src="/nm/@tensorflow/tfjs/dist/tf.min.js"></script>
<script src="/nm/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js"></script>
<script>${common}
(async () => {
  const q = new URLSearchParams(location.search);
  const backend = q.get('backend'), batch = +q.get('batch'), images = +q.get('images');
  const inferBatch = +q.get('infer_batch'), inferImages = +q.get('infer_images');
  const budget = 30;
  tf.wasm.setWasmPaths('/nm/@tensorflow/tfjs-backend-wasm/dist/');
  await tf.setBackend(backend);
  await tf.ready();
  const model = tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 20, kernelSize: 5, activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 100, activation: 'relu' }),
    tf.layers.dense({ units: 10 }),
  ] });
  model.compile({ optimizer: tf.train.sgd(0.03), loss: (y, p) => tf.losses.softmaxCrossEntropy(y, p) });
  const d = randomData(Math.max(images, inferBatch));
  const out = { engine: 'tfjs-' + backend, backend: tf.getBackend(), batch_size: batch, infer_batch: inferBatch };
  try {
    const xs = tf.tensor4d(d.x.subarray(0, batch * 784), [batch, 28, 28, 1]);
    const ys = tf.oneHot(tf.tensor1d(d.y.slice(0, batch), 'int32'), 10);
    await model.trainOnBatch(xs, ys);
    let done = 0; const t0 = performance.now();
    while (done < images && (performance.now() - t0) / 1000 < budget) { await model.trainOnBatch(xs, ys); done += batch; }
    const s = (performance.now() - t0) / 1000;
    out.train_img_per_s = done / s;
    out.train_images = done;
    if (done < images) out.train_note = 'stopped after ' + budget + ' s with ' + done + ' of ' + images + ' images';
  } catch (e) { out.train_error = String(e.message || e); }
  const xi = tf.tensor4d(d.x.subarray(0, inferBatch * 784), [inferBatch, 28, 28, 1]);
  (await model.predict(xi).data());
  let doneI = 0; const t1 = performance.now();
  while (doneI < inferImages) { const p = model.predict(xi); await p.data(); p.dispose(); doneI += inferBatch; }
  out.infer_img_per_s = doneI / ((performance.now() - t1) / 1000);
  done(out);
})().catch((e) => done({ error: String(e.message || e) }));
</script>`;

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };
const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/compare/convnetjs.html') return res.writeHead(200, { 'Content-Type': 'text/html' }).end(convnetPage);
  if (url.pathname === '/compare/tfjs.html') return res.writeHead(200, { 'Content-Type': 'text/html' }).end(tfjsPage);
  const [base, rel] = url.pathname.startsWith('/nm/') ? [nm, url.pathname.slice(4)] : [dist, url.pathname.slice(1) || 'index.html'];
  const file = normalize(join(base, decodeURIComponent(rel)));
  if (!file.startsWith(base)) return res.writeHead(403).end();
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'Content-Type': types[extname(file)] || 'application/octet-stream' }).end(body);
  } catch { res.writeHead(404).end(); }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function run(path, timeout = 300000) {
  const page = await browser.newPage();
  await page.goto(origin + path, { waitUntil: 'commit' });
  await page.waitForSelector('body[data-done="1"]', { timeout });
  const r = JSON.parse(await page.locator('#result').textContent());
  await page.close();
  return r;
}

const q = `batch=${batch}&images=${images}&infer_batch=${inferBatch}`;
const rows = [];
// seqnet's two wasm builds (web/build.sh): the plain simd128 one, and the relaxed-SIMD one
// (fused multiply-adds) that the page loads where the browser has relaxed SIMD.
for (const path of [
  `/bench.html?net=seed&wasm=simd128&${q}&infer_images=${inferImages}`,
  `/bench.html?net=seed&wasm=relaxed-simd&${q}&infer_images=${inferImages}`,
  // --seqnet-only: seqnet's rows alone (a quicker A/B of seqnet's own builds).
  ...(process.argv.includes('--seqnet-only') ? [] : [
    `/compare/convnetjs.html?${q}&infer_images=${Math.min(inferImages, 2000)}`,
    `/compare/tfjs.html?backend=wasm&${q}&infer_images=${inferImages}`,
    `/compare/tfjs.html?backend=cpu&${q}&infer_images=${inferBatch * 2}`,
  ]),
]) {
  const r = await run(path);
  if (r.engine === 'seqnet-wasm') r.engine = `seqnet-wasm (${r.wasm_build})`;
  rows.push(r);
  console.error(JSON.stringify(rows[rows.length - 1]));
}
if (existsSync(seqnetBin)) {
  const out = execFileSync(seqnetBin, ['bench', '--net', 'seed', '--dataset', 'mnist-5k', '--batch-size', String(batch),
    '--images', String(images), '--threads', '1', '--infer-batch', String(inferBatch), '--json'], { encoding: 'utf8' });
  rows.push({ engine: 'seqnet native (--threads 1)', ...JSON.parse(out.trim().split('\n').pop()) });
} else rows.push({ engine: 'seqnet native', error: `no ${seqnetBin}: cargo build --release` });

console.log(`Chromium ${browser.version()}; seed network, mini-batch ${batch}, ${images} training images, inference at batch ${inferBatch}`);
const fmt = (v) => (typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : '–');
console.log('| engine | train img/s | infer img/s | note |\n|---|---:|---:|---|');
for (const r of rows) console.log(`| ${r.engine || '?'} | ${fmt(r.train_img_per_s)} | ${fmt(r.infer_img_per_s)} | ${[r.train_error, r.train_note, r.error].filter(Boolean).join('; ')} |`);
const native = rows.find((r) => (r.engine || '').startsWith('seqnet native') && r.train_img_per_s);
const tfWasm = rows.find((r) => r.engine === 'tfjs-wasm' && r.infer_img_per_s);
for (const r of rows.filter((r) => (r.engine || '').startsWith('seqnet-wasm') && r.train_img_per_s)) {
  const parts = [];
  if (native) parts.push(`training ${(100 * r.train_img_per_s / native.train_img_per_s).toFixed(1)} % of native`);
  if (tfWasm) parts.push(`inference ${(r.infer_img_per_s / tfWasm.infer_img_per_s).toFixed(2)}x TF.js wasm`);
  console.log(`${r.engine}: ${parts.join(', ')}`);
}
console.log(JSON.stringify(rows));
await browser.close();
server.close();
