// The bench's worker: seqnet's Bench (the work of `seqnet bench`), timed here.
import { loadSeqnet } from './seqnet.js';

onmessage = async (m) => {
  const a = m.data;
  try {
    const wasm = await loadSeqnet(a.wasm);
    const b = new wasm.Bench(a.net, 1n);
    b.train(a.warmup, a.batch);
    let t0 = performance.now();
    const loss = b.train(a.images, a.batch);
    const trainS = (performance.now() - t0) / 1000;
    b.infer(a.infer_batch, a.infer_batch);
    t0 = performance.now();
    b.infer(a.infer_images, a.infer_batch);
    const inferS = (performance.now() - t0) / 1000;
    postMessage({
      engine: 'seqnet-wasm', net: a.net, batch_size: a.batch, threads: 1,
      train_images: a.images, infer_images: a.infer_images, infer_batch: a.infer_batch,
      train_img_per_s: a.images / trainS, infer_img_per_s: a.infer_images / inferS,
      final_loss: loss, wasm_build: wasm.build, simd: WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11])),
    });
  } catch (e) {
    postMessage({ error: e.message || String(e) });
  }
};
