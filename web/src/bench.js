// bench.html: runs the measurement in a worker and writes one JSON object into #result.
const q = new URLSearchParams(location.search);
const args = {
  net: q.get('net') || 'seed',
  batch: Number(q.get('batch') || 10),
  images: Number(q.get('images') || 2000),
  warmup: Number(q.get('warmup') || 200),
  infer_batch: Number(q.get('infer_batch') || 1000),
  infer_images: Number(q.get('infer_images') || 5000),
  // 'simd128' or 'relaxed-simd' to choose the wasm build; by default the page's choice.
  wasm: q.get('wasm') || '',
};
const w = new Worker('./bench-worker.js', { type: 'module' });
w.onmessage = (m) => {
  document.getElementById('result').textContent = JSON.stringify(m.data);
  document.body.dataset.done = '1';
};
w.onerror = (e) => {
  document.getElementById('result').textContent = JSON.stringify({ error: e.message });
  document.body.dataset.done = '1';
};
w.postMessage(args);
