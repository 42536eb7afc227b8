/**
 * @module data/fashion-mnist
 * Fashion-MNIST (Zalando): 60,000 train and 10,000 test 28x28 grayscale images of 10 clothing
 * classes, read from the four IDX files of its release. The files are not bundled (30 MB); they come
 * from the Debian package `dataset-fashion-mnist`, which installs them gzipped under
 * /usr/share/datasets/fashion-mnist/, or from any directory the user points at.
 */

import { ErrorCode, SaflError } from "../errors.js";
import type { DatasetSplits } from "./dataset.js";
import { IDX_FILE_NAMES, type IdxFileSet, loadIdxSplits, locateIdxFiles } from "./idx.js";

/** Class names in label order (label k is `FASHION_MNIST_CLASS_NAMES[k]`). */
export const FASHION_MNIST_CLASS_NAMES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

const CLASSES = Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

/**
 * Directories searched when no data directory is given. The first is where Debian's
 * `dataset-fashion-mnist` (bookworm, 0.0~git20200523.55506a9-1) installs the .gz files; the rest
 * cover local installs and other packagings' naming.
 */
export function fashionMnistSearchPaths(): string[] {
  return [
    "/usr/share/datasets/fashion-mnist",
    "/usr/local/share/datasets/fashion-mnist",
    "/usr/share/dataset-fashion-mnist",
    "/usr/local/share/dataset-fashion-mnist",
    "/usr/share/fashion-mnist",
  ];
}

const HOW_TO_GET =
  "install them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download them from the Fashion-MNIST release (https://github.com/zalandoresearch/fashion-mnist) into a directory and pass it with `--data-dir <dir>`";

function notFound(searched: { dir: string; missing: string[] }[]): SaflError {
  const names = Object.values(IDX_FILE_NAMES).join(", ");
  const where = searched
    .map(({ dir, missing }) => (missing.length === Object.keys(IDX_FILE_NAMES).length ? dir : `${dir} (missing ${missing.join(", ")})`))
    .join("; ");
  return new SaflError(
    ErrorCode.Io,
    `Fashion-MNIST files not found: searched ${where}; expected ${names} (each may end in .gz); ${HOW_TO_GET}`,
  );
}

/**
 * Loads Fashion-MNIST as 1x28x28 images in [0, 1] with classes 0..9 and their names. With
 * `dataDir`, only that directory is used; otherwise {@link fashionMnistSearchPaths} are tried in
 * order and the first holding all four files wins.
 *
 * @throws SaflError(Io) listing the directories searched, the file names and how to get them when
 *   the files are not found; SaflError(Io) naming the file when one is malformed.
 */
export async function loadFashionMnist(dataDir?: string): Promise<DatasetSplits> {
  const dirs = dataDir === undefined ? fashionMnistSearchPaths() : [dataDir];
  const searched: { dir: string; missing: string[] }[] = [];
  let files: IdxFileSet | undefined;
  for (const dir of dirs) {
    const found = await locateIdxFiles(dir);
    if (found.files !== undefined) {
      files = found.files;
      break;
    }
    searched.push({ dir, missing: found.missing });
  }
  if (files === undefined) throw notFound(searched);
  return loadIdxSplits(files, { name: "fashion-mnist", classes: CLASSES, classNames: FASHION_MNIST_CLASS_NAMES });
}
