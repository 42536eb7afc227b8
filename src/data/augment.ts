/**
 * @module data/augment
 * Training-time augmentation for small image tasks: a random horizontal flip and a random integer
 * shift of up to ±s pixels on each axis. `safl pretrain --augment flip,shift:2` uses it for the study
 * backbone (docs/pretraining.md), so the 128-wide preset sees more than its 30,000 source images.
 * Shifted-in pixels take the top-left pixel of their channel, which
 * is the background on MNIST-like data whether or not the pixels are normalized.
 */
import { ErrorCode, SaflError } from "../errors.js";
import type { Rng } from "../util/rng.js";
import type { Batch } from "./dataset.js";

export interface Augmentation {
  /** Mirror left-right with probability 1/2. */
  readonly flip: boolean;
  /** Largest shift in pixels on each axis (0 = none); each axis draws uniformly from [-shift, shift]. */
  readonly shift: number;
}

export const NO_AUGMENTATION: Augmentation = { flip: false, shift: 0 };

/** Parses "flip", "shift:2", "flip,shift:2" or "none"; names the part it cannot read. */
export function parseAugmentation(spec: string): Augmentation {
  let flip = false;
  let shift = 0;
  const trimmed = spec.trim();
  if (trimmed === "" || trimmed === "none") return NO_AUGMENTATION;
  for (const part of trimmed.split(",").map((p) => p.trim())) {
    if (part === "flip") flip = true;
    else if (/^shift:\d+$/.test(part)) {
      shift = Number(part.slice("shift:".length));
      if (shift < 1 || shift > 8) throw new SaflError(ErrorCode.InvalidArgument, `augmentation "${part}": the shift must be 1 to 8 pixels`);
    } else throw new SaflError(ErrorCode.InvalidArgument, `unknown augmentation "${part}" in "${spec}"; expected a comma list of flip and shift:<pixels>, or none`);
  }
  return { flip, shift };
}

export function describeAugmentation(a: Augmentation): string {
  const parts = [...(a.flip ? ["flip"] : []), ...(a.shift > 0 ? [`shift:${a.shift}`] : [])];
  return parts.length ? parts.join(",") : "none";
}

/**
 * A fresh batch with each image flipped and shifted at random (channel-major images of
 * `channels × height × width`). Draws 3 numbers from `rng` per image, whatever the augmentation,
 * so a run's stream of random numbers does not depend on which augmentations are on.
 */
export function augmentBatch(batch: Batch, shape: { channels: number; height: number; width: number }, a: Augmentation, rng: Rng): Batch {
  const { channels, height: h, width: w } = shape;
  const size = channels * h * w;
  if (batch.pixels.length !== batch.size * size) {
    throw new SaflError(ErrorCode.InvalidArgument, `batch of ${batch.size} images has ${batch.pixels.length} pixels; expected ${batch.size * size} for ${channels}×${h}×${w} images`);
  }
  const out = new Float32Array(batch.pixels.length);
  for (let n = 0; n < batch.size; n++) {
    const flip = rng.next() < 0.5 && a.flip;
    const dy = rng.int(2 * a.shift + 1) - a.shift;
    const dx = rng.int(2 * a.shift + 1) - a.shift;
    const base = n * size;
    for (let c = 0; c < channels; c++) {
      const plane = base + c * h * w;
      const fill = batch.pixels[plane]!;
      for (let y = 0; y < h; y++) {
        const sy = y - dy;
        for (let x = 0; x < w; x++) {
          // Flip, then shift: output (y, x) is the flipped image at (y - dy, x - dx).
          const sx = flip ? w - 1 - (x - dx) : x - dx;
          out[plane + y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? batch.pixels[plane + sy * w + sx]! : fill;
        }
      }
    }
  }
  return { pixels: out, labels: batch.labels, size: batch.size };
}
