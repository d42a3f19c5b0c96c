// The training worker: owns the seqnet Session (data, network, run) so that training
// never blocks the page. Requests are {id, cmd, args}; answers {id, ok, result|error}.
// Training runs in slices of a few mini-batches; between slices the worker yields, so
// pause, draw and inspect requests are answered while a run goes on.
import { loadSeqnet } from './seqnet.js';

let wasm = null; // the bindings (seqnet.js picks the build)

let session = null;
let running = false; // a run is going (paused or not)
let paused = false;
let lastPanic = '';

// console_error_panic_hook writes the panic message with console.error just before the
// wasm traps; keep it so the page can show it instead of "unreachable".
const consoleError = console.error.bind(console);
console.error = (...args) => {
  lastPanic = args.map(String).join(' ');
  consoleError(...args);
};

function describe(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    const msg = lastPanic || e.message;
    return { panic: true, message: `seqnet panicked (a bug; please report it): ${msg}` };
  }
  return { panic: false, message: e && e.message ? e.message : String(e) };
}

function fail(id, e) {
  const d = describe(e);
  postMessage({ id, ok: false, error: d.message, panic: d.panic });
  if (d.panic) {
    // The wasm instance is not usable after a trap: the page starts a new worker.
    running = false;
    session = null;
  }
}

const ready = loadSeqnet().then((m) => { wasm = m; session = new m.Session(); });

const commands = {
  async use_embedded() { return JSON.parse(session.use_embedded()); },
  async use_idx(a) {
    return JSON.parse(session.use_idx(
      a.trainImages.bytes, a.trainImages.name, a.trainLabels.bytes, a.trainLabels.name,
      a.testImages.bytes, a.testImages.name, a.testLabels.bytes, a.testLabels.name));
  },
  async build(a) {
    const out = JSON.parse(session.build(a.spec, a.optimizer, a.lr, a.batch, a.epochs, BigInt(a.seed), a.limit || 0));
    return out;
  },
  async open_model(a) { return JSON.parse(session.open_model(a.name, a.bytes)); },
  async evaluate() { return JSON.parse(session.evaluate(12)); },
  async filters() { return JSON.parse(session.filters()); },
  async activations(a) { return JSON.parse(session.activations(a.index)); },
  async predict(a) { return JSON.parse(session.predict_drawing(a.rgba, a.w, a.h)); },
  async logits(a) { return JSON.parse(session.logits(a.values)); },
  async model_bytes() { return session.model_bytes(); },
  async hash() { return session.weights_hash(); },
  async panic() { wasm.debug_panic(); },
  async pause() { paused = true; return true; },
  async resume() { paused = false; if (running) loop(); return true; },
  async train(a) { running = true; paused = false; actIndex = a.actIndex || 0; loop(); return true; },
};

let actIndex = 0;
let slices = 0;
let looping = false;

// Runs slices until the run ends or is paused. Each slice aims at ~60 ms of work.
async function loop() {
  if (looping) return;
  looping = true;
  let stepsPerSlice = 1;
  try {
    while (running && !paused) {
      const t0 = performance.now();
      const r = JSON.parse(session.run_steps(stepsPerSlice));
      const dt = performance.now() - t0;
      if (r.losses && r.losses.length) {
        stepsPerSlice = Math.max(1, Math.min(64, Math.round(stepsPerSlice * 60 / Math.max(dt, 1))));
      }
      postMessage({ event: 'progress', progress: r, ms: dt });
      if (r.epoch_end) {
        const ev = JSON.parse(session.evaluate(12));
        const filters = JSON.parse(session.filters());
        const acts = JSON.parse(session.activations(actIndex));
        postMessage({ event: 'epoch', epoch: r.epoch_end, evaluation: ev, filters, activations: acts, hash: session.weights_hash() });
      } else if (r.losses && r.losses.length && ++slices % 4 === 0) {
        // Live pictures while the epoch runs, not every slice (they cost a forward pass).
        postMessage({ event: 'live', filters: JSON.parse(session.filters()), activations: JSON.parse(session.activations(actIndex)) });
      }
      if (r.done) {
        running = false;
        postMessage({ event: 'done', hash: session.weights_hash() });
        break;
      }
      // Yield: lets queued requests (pause, draw, inspect) run between slices.
      await new Promise((res) => setTimeout(res, 0));
    }
  } catch (e) {
    running = false;
    const d = describe(e);
    postMessage({ event: 'failed', error: d.message, panic: d.panic });
    if (d.panic) session = null;
  } finally {
    looping = false;
  }
}

onmessage = async (msg) => {
  const { id, cmd, args } = msg.data;
  try {
    await ready;
    if (!session) throw new Error('the worker stopped after an error; reload the page');
    const fn = commands[cmd];
    if (!fn) throw new Error(`unknown command ${cmd}`);
    const result = await fn(args || {});
    if (result instanceof Uint8Array) postMessage({ id, ok: true, result }, [result.buffer]);
    else postMessage({ id, ok: true, result });
  } catch (e) {
    fail(id, e);
  }
};
