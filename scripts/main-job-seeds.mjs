// Runs named variants of the main job (`safl simulate` on its defaults) for several seeds, one run at a
// time, and prints accuracy (mean of the last 5 evaluations) and total traffic per run and per variant,
// the traffic also as a share of the first variant's: the measurements of docs/algorithm.md,
// "SA-FedLoRA on the main job with the new defaults", reproducible with one command.
//
//   node scripts/main-job-seeds.mjs --out runs/seeds --seeds 0,1 fedlora sa-new-base sa-delta-svd
//   node scripts/main-job-seeds.mjs --list
//
// A run whose summary.json exists is not run again, so an interrupted invocation can be repeated.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

// Each variant is a list of --set overrides on the main job's defaults. Explicit where a default may
// change, so a variant keeps meaning the same run.
const SA_DELTA = ["strategy.name=sa-fedlora", "strategy.initiating.handoff=delta-svd"];
const VARIANTS = {
  // The main job as `npx safl simulate` runs it, whatever the defaults are.
  "sa-fedlora": [],
  fedlora: ["strategy.name=fedlora"],
  fedadalora: ["strategy.name=fedadalora"],
  "sa-new-base": ["strategy.name=sa-fedlora", "strategy.initiating.handoff=new-base", "strategy.initiating.rounds=2", "strategy.adapter.initRank=8"],
  // The defaults before issue 14's budget change: 2 initiating rounds, r₀ 8.
  "sa-delta-svd": [...SA_DELTA, "strategy.initiating.rounds=2", "strategy.adapter.initRank=8"],
  "sa-delta-svd-send": [...SA_DELTA, "strategy.initiating.rounds=2", "strategy.adapter.initRank=8", "strategy.initiating.nonTarget=send"],
  "sa-delta-init1": [...SA_DELTA, "strategy.initiating.rounds=1", "strategy.adapter.initRank=8"],
  "sa-delta-init1-r6": [...SA_DELTA, "strategy.initiating.rounds=1", "strategy.adapter.initRank=6"],
  "sa-delta-init1-r4": [...SA_DELTA, "strategy.initiating.rounds=1", "strategy.adapter.initRank=4"],
  "sa-delta-r4-t1": [...SA_DELTA, "strategy.initiating.rounds=2", "strategy.adapter.initRank=4", "strategy.adapter.targetRank=1"],
  // No initiating stage: annealing straight from the pre-trained backbone (study v2's cheapest point).
  "sa-no-init": ["strategy.name=sa-fedlora", "strategy.initiating.rounds=0", "strategy.adapter.initRank=6"],
};

function parseArgs(argv) {
  const opts = { out: "runs/main-job-seeds", seeds: [0, 1], variants: [], list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") opts.out = argv[++i];
    else if (a === "--seeds") opts.seeds = argv[++i].split(",").map(Number);
    else if (a === "--list") opts.list = true;
    else opts.variants.push(a);
  }
  return opts;
}

/** Mean of the last 5 server-side evaluations, final accuracy and totals of a finished run. */
function read(dir) {
  const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));
  const acc = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.testAccuracy !== undefined).map((r) => r.testAccuracy);
  const last = acc.slice(-5);
  return { last5: last.reduce((a, b) => a + b, 0) / last.length, final: summary.finalAccuracy, params: summary.total.params, bytes: summary.total.bytes };
}

const opts = parseArgs(process.argv.slice(2));
if (opts.list || opts.variants.length === 0) {
  for (const [name, sets] of Object.entries(VARIANTS)) console.log(`${name}\t${sets.map((s) => `--set ${s}`).join(" ")}`);
  process.exit(0);
}
for (const v of opts.variants) if (!VARIANTS[v]) throw new Error(`unknown variant "${v}"; --list shows them`);

const rows = [];
for (const v of opts.variants) {
  for (const seed of opts.seeds) {
    const dir = join(opts.out, `${v}-s${seed}`);
    if (!existsSync(join(dir, "summary.json"))) {
      const args = [join(root, "bin", "safl.js"), "simulate", "--out", dir, "--force", "--set", `seed=${seed}`, ...VARIANTS[v].flatMap((s) => ["--set", s])];
      console.error(`node ${args.join(" ")}`);
      const r = spawnSync(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
      if (r.status !== 0) throw new Error(`${v} seed ${seed} failed with status ${r.status}`);
    }
    rows.push({ variant: v, seed, ...read(dir) });
  }
}

const pct = (x) => (100 * x).toFixed(2);
console.log("variant\tseed\tlast-5 %\tfinal %\tparams\tbytes");
for (const r of rows) console.log(`${r.variant}\t${r.seed}\t${pct(r.last5)}\t${pct(r.final)}\t${r.params}\t${r.bytes}`);
console.log(`\nvariant\tmean last-5 %\tmean params\tmean bytes\tparams / ${opts.variants[0]}'s`);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const byVariant = opts.variants.map((v) => {
  const rs = rows.filter((r) => r.variant === v);
  return { v, last5: mean(rs.map((r) => r.last5)), params: mean(rs.map((r) => r.params)), bytes: mean(rs.map((r) => r.bytes)) };
});
for (const m of byVariant) console.log(`${m.v}\t${pct(m.last5)}\t${Math.round(m.params)}\t${Math.round(m.bytes)}\t${pct(m.params / byVariant[0].params)}%`);
