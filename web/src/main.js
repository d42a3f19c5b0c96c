// The page: panels wired to seqnet. The spec's shape table comes from seqnet's summary in
// this thread (instant as you type); data, network and training live in the worker.
import { loadSeqnet } from './seqnet.js';
import uPlot from './vendor/uPlot.esm.js';

const $ = (id) => document.getElementById(id);
// seqnet's bindings, once loaded (seqnet.js picks the relaxed-SIMD or the simd128 build).
let wasm = null;
const errorBox = $('error');

function showError(message) {
  errorBox.textContent = `error: ${message}`;
  errorBox.hidden = false;
}
function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = '';
}
// Anything that escapes is shown, never lost.
window.addEventListener('error', (e) => showError(e.message));
window.addEventListener('unhandledrejection', (e) => showError(e.reason && e.reason.message ? e.reason.message : String(e.reason)));

// ---- worker: request/answer by id, events for progress -------------------------------
let worker;
let nextId = 1;
const pending = new Map();
function startWorker() {
  worker = new Worker('./worker.js', { type: 'module' });
  worker.onmessage = (m) => {
    const d = m.data;
    if (d.id) {
      const p = pending.get(d.id);
      pending.delete(d.id);
      if (d.ok) p.resolve(d.result);
      else {
        if (d.panic) restartWorker();
        p.reject(new Error(d.error));
      }
    } else onEvent(d);
  };
  worker.onerror = (e) => showError(`the worker failed: ${e.message}`);
}
function restartWorker() {
  worker.terminate();
  for (const p of pending.values()) p.reject(new Error('the worker was restarted after a panic'));
  pending.clear();
  running = false;
  setButtons();
  startWorker();
  modelLoaded = false;
  setButtons();
  loadData();
}
function call(cmd, args, transfer) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, cmd, args }, transfer || []);
  });
}
startWorker();

// ---- network panel --------------------------------------------------------------------
const spec = $('spec');
const shapes = $('shapes');
let presets = [];
let specOk = false;

function fmtShape(s) { return s.join('×'); }
function group(n) { return n.toLocaleString('en-US'); }

function renderSummary() {
  let s;
  try {
    s = JSON.parse(wasm.summarize(spec.value, $('input-shape').value));
  } catch (e) {
    specOk = false;
    shapes.classList.add('stale');
    showError(e.message);
    setButtons();
    return;
  }
  specOk = true;
  clearError();
  shapes.classList.remove('stale');
  const rows = [['#', 'layer', 'output', 'params', 'shape arithmetic']];
  rows.push(['', 'input', fmtShape(s.input_shape), '', '']);
  for (const r of s.layers) rows.push([String(r.index), r.layer, fmtShape(r.output_shape), group(r.params), r.arithmetic]);
  shapes.replaceChildren(...rows.map((r, i) => {
    const tr = document.createElement('tr');
    for (const c of r) {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      td.textContent = c;
      tr.append(td);
    }
    return tr;
  }));
  $('totals').textContent = `${group(s.total_params)} parameters, ${group(s.macs_per_image)} multiply-adds per image`;
  setButtons();
}

let typing;
spec.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(renderSummary, 120); });
$('input-shape').addEventListener('input', renderSummary);
$('preset').addEventListener('change', () => {
  const p = presets.find((x) => x.name === $('preset').value);
  if (!p) return;
  spec.value = p.spec.split(' -> ').join('\n-> ');
  $('input-shape').value = p.input.join('x');
  $('optimizer').value = p.recipe.optimizer;
  $('lr').value = Number(p.recipe.lr.toPrecision(6));
  $('batch').value = p.recipe.batch_size;
  renderSummary();
});

// ---- train panel ----------------------------------------------------------------------
let running = false;
let paused = false;
let dataReady = null; // a promise: the worker has the chosen data
let modelLoaded = false;
let plot;
const curve = { x: [], loss: [], acc: [] };
let stepsDone = 0;

function setButtons() {
  $('train').disabled = !specOk || (running && !paused);
  $('train').textContent = running && paused ? 'Restart' : 'Train';
  $('pause').disabled = !running;
  $('pause').textContent = paused ? 'Resume' : 'Pause';
  $('download').disabled = !modelLoaded;
}

function makePlot() {
  const el = $('curves');
  el.replaceChildren();
  const width = Math.max(260, el.clientWidth || 400);
  plot = new uPlot({
    width, height: 200,
    scales: { x: { time: false }, acc: { range: [0, 1] } },
    series: [
      { label: 'epoch' },
      { label: 'loss', stroke: '#c33', width: 1.5, spanGaps: true },
      { label: 'test accuracy', stroke: '#27c', width: 2, scale: 'acc', points: { show: true, size: 6 }, spanGaps: true },
    ],
    axes: [{ label: 'epoch' }, { label: 'loss' }, { side: 1, scale: 'acc', label: 'accuracy', grid: { show: false } }],
  }, [[], [], []], el);
}
window.addEventListener('resize', () => { if (plot) plot.setSize({ width: Math.max(260, $('curves').clientWidth), height: 200 }); });

function loadData() {
  if ($('data-source').value !== 'embedded') {
    dataReady = Promise.reject(new Error('open the four IDX files again'));
  } else {
    dataReady = call('use_embedded').then((d) => {
      $('data-info').textContent = `${d.dataset}: ${group(d.train)} training and ${group(d.test)} test images, ${fmtShape(d.shape)}`;
      return d;
    });
  }
  dataReady.catch((e) => showError(e.message));
  return dataReady;
}

$('data-source').addEventListener('change', () => {
  const files = $('data-source').value === 'files';
  $('drop').hidden = !files;
  $('data-info').textContent = '';
  if (!files) loadData();
  else { dataReady = Promise.reject(new Error('open the four IDX files first')); dataReady.catch(() => {}); }
});

// The four files are told apart by their names, as MNIST's and Fashion-MNIST's are called.
async function openIdx(fileList) {
  const files = [...fileList];
  const pick = (test, kind) => files.find((f) => {
    const n = f.name.toLowerCase();
    return n.includes(kind) && (test ? /t10k|test/.test(n) : !/t10k|test/.test(n));
  });
  const want = { trainImages: pick(false, 'images'), trainLabels: pick(false, 'labels'), testImages: pick(true, 'images'), testLabels: pick(true, 'labels') };
  const missing = Object.entries(want).filter(([, f]) => !f).map(([k]) => k);
  if (missing.length) {
    showError(`open all four IDX files at once: train-images, train-labels, t10k-images and t10k-labels (.gz or not); missing: ${missing.join(', ')}`);
    return;
  }
  const args = {};
  const transfer = [];
  for (const [k, f] of Object.entries(want)) {
    const bytes = new Uint8Array(await f.arrayBuffer());
    args[k] = { name: f.name, bytes };
    transfer.push(bytes.buffer);
  }
  clearError();
  dataReady = call('use_idx', args, transfer).then((d) => {
    $('data-info').textContent = `${d.dataset}: ${group(d.train)} training and ${group(d.test)} test images, ${fmtShape(d.shape)}`;
    return d;
  });
  dataReady.catch((e) => showError(e.message));
}
$('idx-files').addEventListener('change', (e) => openIdx(e.target.files));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); openIdx(e.dataTransfer.files); });

function num(id) { return Number($(id).value); }

async function startTraining() {
  clearError();
  try {
    await dataReady;
    const built = await call('build', {
      spec: spec.value, optimizer: $('optimizer').value, lr: num('lr'), batch: Math.floor(num('batch')),
      epochs: Math.floor(num('epochs')), seed: Math.floor(num('seed')), limit: window.seqnetLimit || 0,
    });
    $('recipe').textContent = `recipe: ${built.recipe}`;
    modelLoaded = true;
    running = true; paused = false;
    curve.x = []; curve.loss = []; curve.acc = [];
    stepsDone = 0;
    makePlot();
    $('accuracy').textContent = '–';
    setButtons();
    await call('train', { actIndex: num('act-index') || 0 });
  } catch (e) {
    running = false;
    setButtons();
    showError(e.message);
  }
}
$('train').addEventListener('click', startTraining);
$('pause').addEventListener('click', async () => {
  paused = !paused;
  setButtons();
  await call(paused ? 'pause' : 'resume');
});

function onEvent(d) {
  if (d.event === 'progress') {
    const p = d.progress;
    if (!p.losses) return;
    for (const l of p.losses) {
      stepsDone += 1;
      curve.x.push(stepsDone / p.steps);
      curve.loss.push(l);
      curve.acc.push(null);
    }
    $('progress').value = (p.epoch + p.step / p.steps) / p.epochs;
    $('status').textContent = `epoch ${p.epoch + (p.step === 0 ? 0 : 1)} of ${p.epochs}, step ${p.step || p.steps} of ${p.steps}`;
    plot.setData([curve.x, curve.loss, curve.acc]);
  } else if (d.event === 'epoch') {
    curve.x.push(d.epoch.epoch);
    curve.loss.push(null);
    curve.acc.push(d.evaluation.accuracy);
    plot.setData([curve.x, curve.loss, curve.acc]);
    $('accuracy').textContent = `${(100 * d.evaluation.accuracy).toFixed(2)}%`;
    $('status').textContent = `epoch ${d.epoch.epoch}: train loss ${d.epoch.train_loss.toFixed(4)}, test accuracy ${(100 * d.evaluation.accuracy).toFixed(2)}% (weights ${d.hash})`;
    renderConfusion(d.evaluation);
    renderFilters(d.filters);
    renderActivations(d.activations);
    window.seqnetLastHash = d.hash;
  } else if (d.event === 'live') {
    renderFilters(d.filters);
    renderActivations(d.activations);
  } else if (d.event === 'done') {
    running = false; paused = false;
    window.seqnetLastHash = d.hash;
    window.seqnetDone = (window.seqnetDone || 0) + 1;
    setButtons();
    predictDrawing();
  } else if (d.event === 'failed') {
    running = false; paused = false;
    setButtons();
    showError(d.error);
    if (d.panic) restartWorker();
  }
}

// ---- pictures -------------------------------------------------------------------------
// A grey image from values: min..max to black..white (or fixed 0..1 for pixels).
function greyCanvas(values, w, h, lo, hi) {
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(w, h);
  let mn = lo, mx = hi;
  if (mn === undefined) { mn = Infinity; mx = -Infinity; for (const v of values) { if (v < mn) mn = v; if (v > mx) mx = v; } }
  const span = mx - mn || 1;
  for (let i = 0; i < w * h; i++) {
    const g = Math.round(255 * (values[i] - mn) / span);
    img.data.set([g, g, g, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  return c;
}
function figure(canvas, caption) {
  const f = document.createElement('figure');
  f.append(canvas);
  if (caption !== undefined) {
    const cap = document.createElement('figcaption');
    cap.textContent = caption;
    f.append(cap);
  }
  return f;
}

function renderConfusion(ev) {
  const t = $('confusion');
  const n = ev.confusion.length;
  const head = document.createElement('tr');
  head.append(...['', ...ev.confusion[0].map((_, j) => String(j))].map((x) => { const th = document.createElement('th'); th.textContent = x; return th; }));
  const rows = ev.confusion.map((row, i) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th'); th.textContent = String(i); tr.append(th);
    for (let j = 0; j < row.length; j++) {
      const td = document.createElement('td');
      td.textContent = row[j] ? String(row[j]) : '·';
      if (i === j) td.className = 'diag';
      tr.append(td);
    }
    return tr;
  });
  t.replaceChildren(head, ...rows);
  void n;
  const [, h, w] = ev.shape;
  $('mistakes').replaceChildren(...ev.mistakes.map((m) => figure(
    greyCanvas(m.pixels || [], w, h, 0, 255),
    `${m.label}→${m.predicted} ${(100 * m.confidence).toFixed(0)}%`)));
}

function renderFilters(f) {
  if (!f) { $('filters-title').textContent = "First layer's filters (the first layer is not a convolution)"; $('filters').replaceChildren(); return; }
  const [o, i, kh, kw] = f.shape;
  $('filters-title').textContent = `First layer's filters: ${f.layer}, weight ${o}×${i}×${kh}×${kw}`;
  const per = i * kh * kw;
  const figs = [];
  for (let k = 0; k < Math.min(o, 64); k++) figs.push(figure(greyCanvas(f.values.slice(k * per, k * per + kh * kw), kw, kh)));
  $('filters').replaceChildren(...figs);
}

function renderActivations(a) {
  const box = $('activations');
  const blocks = a.layers.map((l) => {
    const div = document.createElement('div');
    div.className = 'act-layer';
    const title = document.createElement('div');
    title.className = 'act-title';
    title.textContent = `${l.layer}: ${fmtShape(l.shape)}`;
    const thumbs = document.createElement('div');
    thumbs.className = 'thumbs';
    if (l.shape.length === 3) {
      const [c, h, w] = l.shape;
      for (let k = 0; k < Math.min(c, 24); k++) thumbs.append(figure(greyCanvas(l.values.slice(k * h * w, (k + 1) * h * w), w, h)));
    } else {
      const n = l.values.length;
      const w = Math.min(n, 50);
      thumbs.append(figure(greyCanvas(l.values, w, Math.ceil(n / w))));
    }
    div.append(title, thumbs);
    return div;
  });
  const cap = document.createElement('p');
  cap.className = 'hint';
  cap.textContent = `test image ${a.index}, label ${a.label}`;
  box.replaceChildren(cap, ...blocks);
}

$('act-index').addEventListener('change', async () => {
  if (!modelLoaded) return;
  try { renderActivations(await call('activations', { index: num('act-index') || 0 })); } catch (e) { showError(e.message); }
});

// ---- draw panel -----------------------------------------------------------------------
const canvas = $('draw');
const ctx = canvas.getContext('2d', { willReadFrequently: true });
function clearCanvas() {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  $('prediction').textContent = '–';
  $('top3').replaceChildren();
}
clearCanvas();
ctx.lineCap = 'round';
ctx.lineJoin = 'round';
let drawing = false;
let last = null;
function pos(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}
canvas.addEventListener('pointerdown', (e) => { drawing = true; last = pos(e); canvas.setPointerCapture(e.pointerId); stroke(last); });
canvas.addEventListener('pointermove', (e) => { if (drawing) stroke(pos(e)); });
canvas.addEventListener('pointerup', () => { drawing = false; predictDrawing(); });
function stroke(p) {
  ctx.strokeStyle = '#000';
  ctx.lineWidth = 20;
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0] + 0.01, p[1]);
  ctx.stroke();
  last = p;
}
$('clear').addEventListener('click', clearCanvas);

let predicting = false;
let predictAgain = false;
async function predictDrawing() {
  if (!modelLoaded) return;
  if (predicting) { predictAgain = true; return; }
  predicting = true;
  try {
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const blank = img.data.every((v, i) => i % 4 === 3 || v === 255);
    if (blank) return;
    const r = await call('predict', { rgba: img.data, w: canvas.width, h: canvas.height });
    const order = r.probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
    $('prediction').textContent = String(order[0][1]);
    $('top3').replaceChildren(...order.slice(0, 3).map(([p, i]) => { const li = document.createElement('li'); li.textContent = `${i}: ${(100 * p).toFixed(1)}%`; return li; }));
    const [, h, w] = r.shape;
    const f = $('fitted').getContext('2d');
    $('fitted').width = w; $('fitted').height = h;
    f.drawImage(greyCanvas(r.fitted, w, h, 0, 1), 0, 0);
  } catch (e) {
    showError(e.message);
  } finally {
    predicting = false;
    if (predictAgain) { predictAgain = false; predictDrawing(); }
  }
}

// ---- model files ----------------------------------------------------------------------
$('download').addEventListener('click', async () => {
  try {
    const bytes = await call('model_bytes');
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url; a.download = 'seqnet-model.safetensors';
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { showError(e.message); }
});
$('model-file').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (!f) return;
  e.target.value = '';
  try {
    await dataReady;
    const bytes = new Uint8Array(await f.arrayBuffer());
    const m = await call('open_model', { name: f.name, bytes }, [bytes.buffer]);
    clearError();
    modelLoaded = true;
    running = false;
    setButtons();
    $('model-info').textContent = `${f.name}: input ${m.input.join('×')}`;
    spec.value = m.spec.split(' -> ').join('\n-> ');
    $('input-shape').value = m.input.join('x');
    renderSummary();
    if (m.misfit) { showError(`${f.name}: ${m.misfit}`); return; }
    for (const w of m.warnings) $('model-info').textContent += ` (warning: ${w})`;
    renderFilters(await call('filters'));
    renderActivations(await call('activations', { index: num('act-index') || 0 }));
    const ev = await call('evaluate');
    $('accuracy').textContent = `${(100 * ev.accuracy).toFixed(2)}%`;
    renderConfusion(ev);
    predictDrawing();
  } catch (err) {
    showError(err.message);
  }
});

// For the browser tests: the same requests the panels make.
window.seqnet = { call, restartWorker };
window.seqnetTestImages = (start, count) => JSON.parse(wasm.sample_test_images(start, count));

// ---- start ----------------------------------------------------------------------------
(async () => {
  wasm = await loadSeqnet();
  document.body.dataset.wasm = wasm.build;
  presets = JSON.parse(wasm.presets());
  const sel = $('preset');
  for (const p of presets) {
    const o = document.createElement('option');
    o.value = p.name; o.textContent = p.name;
    sel.append(o);
  }
  sel.value = 'seed';
  sel.dispatchEvent(new Event('change'));
  makePlot();
  await loadData();
  $('status').textContent = 'ready';
  document.body.dataset.ready = '1';
})().catch((e) => showError(e.message));
