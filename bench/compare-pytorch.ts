/**
 * Same-sitting comparison of `safl bench step` with the PyTorch reference
 * (../shared/anchors/vit_lora_bench.py, Debian python3-torch with OpenBLAS). For each preset and mode
 * the two programs run alternately `--repeats` times; the table reports the median images/s of each,
 * their ratio, and our peak RSS. Prints a markdown table (and JSON lines with --json).
 *
 *   node dist/bench/compare-pytorch.js [--presets small-cifar,tiny-mnist,vit-tiny-224]
 *        [--modes lora,full,eval] [--repeats 3] [--threads 2] [--steps 20] [--warmup 5]
 *        [--anchor ../shared/anchors/vit_lora_bench.py]
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    presets: { type: "string", default: "small-cifar,tiny-mnist,vit-tiny-224" },
    modes: { type: "string", default: "lora,full,eval" },
    repeats: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "20" },
    warmup: { type: "string", default: "5" },
    anchor: { type: "string", default: fileURLToPath(new URL("../../../shared/anchors/vit_lora_bench.py", import.meta.url)) },
    json: { type: "boolean", default: false },
  },
});

const presets: Record<string, string[]> = {
  "tiny-mnist": ["--img", "28", "--channels", "1", "--patch", "4", "--dim", "128", "--depth", "4", "--heads", "4", "--classes", "10", "--batch", "64"],
  "small-cifar": ["--img", "32", "--channels", "3", "--patch", "4", "--dim", "192", "--depth", "6", "--heads", "3", "--classes", "10", "--batch", "64"],
  "vit-tiny-224": ["--img", "224", "--channels", "3", "--patch", "16", "--dim", "192", "--depth", "12", "--heads", "3", "--classes", "100", "--batch", "16"],
};

if (!existsSync(values.anchor!)) {
  console.error(`reference not found at ${values.anchor}; pass --anchor <path to vit_lora_bench.py>`);
  process.exit(2);
}
const safl = fileURLToPath(new URL("../../bin/safl.js", import.meta.url));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const env = { ...process.env, LD_LIBRARY_PATH: "/usr/lib/x86_64-linux-gnu/openblas-openmp" };
delete (env as Record<string, string | undefined>)["OPENBLAS_CORETYPE"];

const rows: string[] = [];
console.log("| preset | mode | ours img/s | PyTorch img/s | ratio | ours GFLOP/s | ours step ms | ours peak RSS MB |");
console.log("|---|---|---|---|---|---|---|---|");
for (const preset of values.presets!.split(",")) {
  for (const mode of values.modes!.split(",")) {
    const ours: number[] = [];
    const ref: number[] = [];
    let last: Record<string, number> = {};
    for (let r = 0; r < Number(values.repeats); r++) {
      const outOurs = execFileSync(
        process.execPath,
        [safl, "bench", "step", "--preset", preset, "--mode", mode, "--threads", values.threads!, "--steps", values.steps!, "--warmup", values.warmup!, "--json"],
        { encoding: "utf8" },
      );
      last = JSON.parse(outOurs.trim().split("\n").pop()!);
      ours.push(last["imgPerSec"]!);
      const outRef = execFileSync(
        "/usr/bin/python3",
        [values.anchor!, ...presets[preset]!, "--mlp-ratio", "4", "--rank", "8", "--mode", mode, "--threads", values.threads!, "--steps", values.steps!, "--warmup", values.warmup!],
        { encoding: "utf8", env },
      );
      const line = outRef.split("\n").find((l) => l.startsWith("RESULT "))!;
      ref.push(JSON.parse(line.slice(7))["img_per_s"]);
    }
    const o = median(ours);
    const p = median(ref);
    const row = `| ${preset} | ${mode} | ${o.toFixed(1)} | ${p.toFixed(1)} | ${(o / p).toFixed(2)}x | ${last["gflops"]!.toFixed(0)} | ${last["stepMsMedian"]!.toFixed(1)} | ${last["peakRssMb"]!.toFixed(0)} |`;
    console.log(row);
    rows.push(row);
    if (values.json) console.log(JSON.stringify({ preset, mode, ours, reference: ref, ratio: o / p }));
  }
}
