/**
 * @module data/load
 * One entry point from a dataset name (as typed on the command line) to a train/test pair: the
 * built-in names, or a directory whose layout says which loader applies. Keeping the dispatch here
 * means the CLI and tests never need to know the individual loaders.
 */

import { basename, join, resolve } from "node:path";
import { argError, type SaflError } from "../errors.js";
import { loadCifar10, findCifarDir } from "./cifar.js";
import type { DatasetSplits } from "./dataset.js";
import { loadFashionMnist } from "./fashion-mnist.js";
import { IDX_FILE_NAMES, loadIdxSplits, locateIdxFiles } from "./idx.js";
import { loadMnist } from "./mnist.js";
import { loadTensorDir } from "./tensor-file.js";
import { pathKind } from "./files.js";

/** The datasets known by name. */
export const DATASET_NAMES = ["mnist", "fashion-mnist", "cifar10"] as const;

/** One of {@link DATASET_NAMES}. */
export type DatasetName = (typeof DATASET_NAMES)[number];

const LAYOUTS =
  "a directory holding train.safetensors and test.safetensors (pixel_values [N,C,H,W], labels [N]); " +
  `a directory holding the IDX files ${Object.values(IDX_FILE_NAMES).join(", ")} (each may end in .gz); ` +
  "or a directory holding CIFAR-10 binary batches data_batch_1..5.bin and test_batch.bin";

function unknown(name: string, why: string): SaflError {
  return argError(`dataset ${JSON.stringify(name)}: ${why}; expected one of ${DATASET_NAMES.join(", ")}, or ${LAYOUTS}`);
}

/**
 * Loads a dataset by name or path.
 *
 * - "mnist": the embedded digits (no data directory).
 * - "fashion-mnist": the IDX files in `opts.dataDir`, or the Debian package's location.
 * - "cifar10": the binary batches in `opts.dataDir` (required).
 * - anything else is a directory: train.safetensors/test.safetensors, the four IDX files (named
 *   after the directory), or CIFAR-10 batches, checked in that order.
 *
 * @throws SaflError(InvalidArgument) for an unknown name or a directory of no known layout (listing
 *   the accepted names and layouts), for "cifar10" without `dataDir`, and for `dataDir` given where
 *   it has no meaning; otherwise whatever the chosen loader throws.
 */
export async function loadDataset(name: string, opts: { dataDir?: string } = {}): Promise<DatasetSplits> {
  const { dataDir } = opts;
  switch (name) {
    case "mnist":
      if (dataDir !== undefined) {
        throw argError(
          `dataset "mnist" is built in and takes no data directory (got ${dataDir}); to load MNIST IDX files from a directory, pass the directory itself as the dataset`,
        );
      }
      return loadMnist();
    case "fashion-mnist":
      return loadFashionMnist(dataDir);
    case "cifar10":
      if (dataDir === undefined) {
        throw argError(
          `dataset "cifar10" needs a data directory (--data-dir <dir>) holding the CIFAR-10 binary version: data_batch_1..5.bin and test_batch.bin, from cifar-10-binary.tar.gz at https://www.cs.toronto.edu/~kriz/cifar.html`,
        );
      }
      return loadCifar10(dataDir);
  }
  if (dataDir !== undefined) {
    throw argError(`dataset ${JSON.stringify(name)} is a path, so a data directory (${dataDir}) has no meaning; pass one or the other`);
  }
  const kind = await pathKind(name);
  if (kind === "missing") throw unknown(name, "not a known name and no such directory");
  if (kind === "file") throw unknown(name, "is a file, not a directory");
  if ((await pathKind(join(name, "train.safetensors"))) === "file" || (await pathKind(join(name, "test.safetensors"))) === "file") {
    return loadTensorDir(name);
  }
  const idx = await locateIdxFiles(name);
  if (idx.files !== undefined) return loadIdxSplits(idx.files, { name: basename(resolve(name)) });
  if (idx.missing.length < Object.keys(IDX_FILE_NAMES).length) {
    throw unknown(name, `has some IDX files but not ${idx.missing.join(", ")}`);
  }
  if ((await findCifarDir(name)) !== undefined) return loadCifar10(name);
  throw unknown(name, "the directory matches no known layout");
}
