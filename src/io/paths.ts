/**
 * @module io/paths
 * Where the package's shipped files are: the repository root (from the compiled file's location)
 * and the default backbone under models/.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (dist/src/io → ../../..). */
export const packageRoot = (): string => fileURLToPath(new URL("../../../", import.meta.url));

/** The shipped default backbone (made by `safl pretrain`, see docs/pretraining.md). */
export const defaultBackboneDir = (): string => join(packageRoot(), "models", "vit-micro-mnist-0-4");
