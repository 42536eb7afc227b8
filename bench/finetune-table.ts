/**
 * Centralized fine-tuning figures for docs/finetuning.md: runs `safl finetune` on the default
 * backbone's target task for every mode and seed and prints a markdown table (mean ± std of test
 * accuracy over seeds, the untrained-head baseline, trained and adapter parameters, seconds).
 *
 *   node dist/bench/finetune-table.js [--epochs 1] [--seeds 0,1,2] [--modes head,lora,ffa-lora,adalora,full] [--lr x]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { epochs: { type: "string" }, seeds: { type: "string" }, modes: { type: "string" }, threads: { type: "string" }, lr: { type: "string" } } });
const epochs = values.epochs ?? "1";
const seeds = (values.seeds ?? "0,1,2").split(",");
const modes = (values.modes ?? "head,lora,ffa-lora,adalora,full").split(",");
const root = fileURLToPath(new URL("../../", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "safl-fttable-"));

interface Summary {
  untrainedHeadAccuracy: number;
  testAccuracy: number;
  trainedParameters: number;
  adapterParameters?: number;
  seconds: number;
}
const stats = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { m, sd };
};
const pct = (xs: number[]) => {
  const { m, sd } = stats(xs.map((x) => 100 * x));
  return `${m.toFixed(2)} ± ${sd.toFixed(2)}`;
};

console.log(`| mode | untrained head acc % | test acc % (${epochs} epoch${epochs === "1" ? "" : "s"}) | trained params | adapter params saved | seconds |`);
console.log("|---|---|---|---|---|---|");
try {
  for (const mode of modes) {
    const runs: Summary[] = [];
    for (const seed of seeds) {
      const args = ["bin/safl.js", "finetune", "--classes", "5-9", "--adapter", mode, "--epochs", epochs, "--seed", seed, "--threads", values.threads ?? "2", "--out", join(tmp, `${mode}-${seed}`), "--json", ...(values.lr ? ["--lr", values.lr] : [])];
      const r = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`safl ${args.slice(1).join(" ")} failed:\n${r.stderr}`);
      runs.push(JSON.parse(r.stdout.trim().split("\n").pop()!) as Summary);
    }
    const adapterParams = runs[0]!.adapterParameters;
    console.log(
      `| ${mode} | ${pct(runs.map((r) => r.untrainedHeadAccuracy))} | ${pct(runs.map((r) => r.testAccuracy))} | ${runs[0]!.trainedParameters.toLocaleString("en")} | ${adapterParams === undefined ? "-" : adapterParams.toLocaleString("en")} | ${stats(runs.map((r) => r.seconds)).m.toFixed(1)} |`,
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
