/**
 * @module nn/flops
 * Analytic matmul FLOPs of one ViT step, counted exactly as the PyTorch reference
 * (shared/anchors/vit_lora_bench.py, `matmul_flops`) counts them: 2·M·N·K per product, Linear layers,
 * LoRA products (query/key/value counted as one fused adapter, as the reference's model has), QKᵀ and
 * attention·V; elementwise work and the optimizer are not counted. Using the same formula makes
 * GFLOP/s comparable between the two implementations (their ratio equals the ratio of images/s).
 */
import { type VitConfig, vitDims } from "./config.js";

export type StepMode = "lora" | "full" | "eval";

export function stepFlops(config: VitConfig, batch: number, mode: StepMode, loraRank = 8): { forward: number; backward: number } {
  const d = vitDims(config);
  const B = batch;
  const T = d.tokens;
  const D = d.hidden;
  const M = d.mlp;
  const r = mode === "lora" ? loraRank : 0;
  const train = mode !== "eval";
  const full = mode === "full";
  let fwd = 0;
  let bwd = 0;
  const lin = (tokens: number, fin: number, fout: number, wGrad: boolean, xGrad: boolean) => {
    const f = 2 * B * tokens * fin * fout;
    fwd += f;
    if (train) bwd += f * (Number(wGrad) + Number(xGrad));
  };
  const lora = (tokens: number, fin: number, fout: number, xGrad: boolean) => {
    const fa = 2 * B * tokens * fin * r;
    const fb = 2 * B * tokens * r * fout;
    fwd += fa + fb;
    if (train) bwd += fa * (1 + Number(xGrad)) + fb * 2;
  };
  lin(d.patches, d.patchDim, D, full, false);
  for (let i = 0; i < d.layers; i++) {
    const xReq = full || (mode === "lora" && i > 0);
    for (const [fin, fout, name] of [
      [D, 3 * D, "qkv"],
      [D, D, "proj"],
      [D, M, "fc1"],
      [M, D, "fc2"],
    ] as const) {
      const xg = name === "qkv" ? xReq : train;
      lin(T, fin, fout, full, xg);
      if (r > 0) lora(T, fin, fout, xg);
    }
    const f = 2 * B * T * T * D;
    fwd += 2 * f;
    if (train) bwd += 2 * f * 2;
  }
  lin(1, D, d.labels, train, train);
  return { forward: fwd, backward: bwd };
}
