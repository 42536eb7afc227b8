/**
 * @module fl/client
 * The client side of a round: bytes in, bytes out. A client decodes the server's message, checks the
 * instruction, loads the global values into its model (the base by version, the trained tensors and
 * the active SVD triplets from the message), trains locally — with a proximal term when μ > 0 and
 * importance tracking for the SVD form — and encodes a reply with only what the server aggregates:
 * the trained tensors, or — as the adapter kind's payload says — the head, the packed active SVD
 * triplets and their scores. Anything that goes wrong becomes a
 * failure reply, never an exception across the transport.
 *
 * A `ClientEngine` holds what does not belong to any one client: the runtime and the compiled steps
 * per training mode, with one working parameter store each. Virtual clients in a simulation borrow
 * it in turn; their own state (data, stored base) lives in a `ClientContext`.
 */
import type { ImageDataset } from "../data/dataset.js";
import { batches, imageSize } from "../data/dataset.js";
import { argError, ErrorCode, SaflError } from "../errors.js";
import type { VitConfig } from "../nn/config.js";
import { Evaluator, type LabeledBatch } from "../nn/evaluate.js";
import { AdamW, type Optimizer, Sgd } from "../nn/optim.js";
import { ParamStore } from "../nn/params.js";
import { densePayload } from "../peft/kind.js";
import { isHeadParam } from "../peft/model.js";
import { adapterKind } from "../peft/registry.js";
import { Trainer } from "../peft/trainer.js";
import type { Runtime } from "../runtime/runtime.js";
import { Rng } from "../util/rng.js";
import { ClientFailure, type Failure } from "./failure.js";
import { type Instruction, isBaseTensor, paramOfBaseTensor, parseInstruction } from "./instruction.js";
import { buildRoundModel, initAdapterValues, type RoundModel } from "./model-state.js";
import { proximalTerm, setProximalAnchor } from "./proximal.js";
import { decodeMessage, encodeMessage, type PayloadDType, type WireMessage, type WireTensor } from "./wire.js";

/** Where a client keeps frozen bases between rounds (version 0: the pre-trained backbone). */
export interface ClientStorage {
  base(version: number): ReadonlyMap<string, Float32Array> | undefined;
  storeBase(version: number, tensors: ReadonlyMap<string, Float32Array>): void;
}

/** One client's own state: its id, its data and its storage. */
export interface ClientContext {
  readonly clientId: string;
  readonly train: ImageDataset;
  /** Local held-out data for client-side evaluation (the training data is used when absent). */
  readonly test?: ImageDataset;
  readonly storage: ClientStorage;
  /**
   * Called after every local training step (a page shows the step and the loss as they come); a
   * promise it returns is awaited, so a browser can let the page paint between steps.
   */
  readonly onStep?: (step: number, steps: number, loss: number) => void | Promise<void>;
}

/** Seconds a request spent in local training or evaluation (the rest of the handler time is codec and setup). */
export interface HandleResult {
  readonly reply: Uint8Array;
  readonly computeSeconds: number;
}

interface Compiled {
  readonly rm: RoundModel;
  readonly store: ParamStore;
  readonly trainer: Trainer;
  readonly evaluator: Evaluator;
}

const now = (): number => globalThis.performance.now() / 1000;

export class ClientEngine {
  private readonly compiled = new Map<string, Promise<Compiled>>();

  /**
   * @param config the backbone config with the task's head (num_labels)
   * @param dtype payload dtype of replies (the server's choice, mirrored)
   */
  constructor(
    private readonly runtime: Runtime,
    private readonly config: VitConfig,
    private readonly dtype: PayloadDType = "float32",
  ) {}

  /** Handles one request; never throws for anything the request or the data can cause. */
  async handle(ctx: ClientContext, request: Uint8Array): Promise<HandleResult> {
    let round = 0;
    let computeSeconds = 0;
    try {
      const msg = decodeMessage(request);
      round = msg.round;
      if (msg.kind !== "broadcast") throw argError(`expected a broadcast message, got a ${msg.kind}`);
      const instr = parseInstruction(msg.config);
      const base = this.resolveBase(ctx, msg, instr);
      const c = await this.compile(instr);
      this.load(c, msg, instr, base);
      const t1 = now();
      const reply = instr.task === "train" ? await this.train(ctx, c, msg, instr) : await this.evaluate(ctx, c, msg);
      computeSeconds = now() - t1;
      return { reply: encodeMessage(reply, { dtype: this.dtype }), computeSeconds };
    } catch (e) {
      const failure: WireMessage = { kind: "reply", round, clientId: ctx.clientId, tensors: [], packed: [], scores: [], failure: failureOf(e) };
      return { reply: encodeMessage(failure), computeSeconds };
    }
  }

  private resolveBase(ctx: ClientContext, msg: WireMessage, instr: Instruction): ReadonlyMap<string, Float32Array> {
    const sent = msg.tensors.filter((t) => isBaseTensor(t.name));
    if (sent.length > 0) {
      if (instr.baseVersion === 0) throw new ClientFailure("bad-message", "the server sent base tensors for version 0 (the pre-trained backbone cannot be replaced)");
      // A base is the pre-trained backbone with the sent tensors replaced: all of them for a new frozen
      // base, only some for SA-FedLoRA's delta-svd handoff (fl/strategies/base).
      const base = new Map(ctx.storage.base(0) ?? []);
      for (const t of sent) base.set(paramOfBaseTensor(t.name), t.data);
      ctx.storage.storeBase(instr.baseVersion, base);
    }
    const base = ctx.storage.base(instr.baseVersion);
    if (!base) throw new ClientFailure("missing-base", `this client has no base version ${instr.baseVersion} and the message did not carry it`);
    return base;
  }

  private compile(instr: Instruction): Promise<Compiled> {
    const key = JSON.stringify([instr.mode, instr.adapterSpec ?? null, instr.mu > 0 ? instr.mu : 0, instr.batch, instr.optimizer, instr.weightDecay]);
    let c = this.compiled.get(key);
    if (!c) {
      c = this.build(instr);
      this.compiled.set(key, c);
      // A failed compile must not poison the cache for later rounds.
      c.catch(() => this.compiled.delete(key));
    }
    return c;
  }

  private async build(instr: Instruction): Promise<Compiled> {
    const rm = buildRoundModel(this.config, instr.mode, instr.adapterSpec);
    const store = ParamStore.init(rm.model.registry.specs.values(), new Rng(0));
    const optimizer: Optimizer =
      instr.optimizer === "adamw" ? new AdamW({ lr: instr.lr, weightDecay: instr.weightDecay }) : new Sgd({ lr: instr.lr, weightDecay: instr.weightDecay });
    let extraLoss: Parameters<typeof Trainer.create>[3]["extraLoss"];
    if (instr.mu > 0) {
      setProximalAnchor(store, rm.trainable);
      extraLoss = (m) => proximalTerm(m.registry, rm.trainable, instr.mu);
    }
    const trainer = await Trainer.create(this.runtime, rm.model, store, {
      trainable: (n) => rm.trainable.includes(n),
      batch: instr.batch,
      optimizer,
      ...(rm.adapter ? { adapter: rm.adapter } : {}),
      ...(extraLoss ? { extraLoss } : {}),
    });
    return { rm, store, trainer, evaluator: new Evaluator(this.runtime, rm.model, store) };
  }

  /** Puts the global state of the message into the working store. */
  private load(c: Compiled, msg: WireMessage, instr: Instruction, base: ReadonlyMap<string, Float32Array>): void {
    const { rm, store } = c;
    const reg = rm.model.registry;
    initAdapterValues(rm, store, instr.initSeed);
    for (const name of rm.frozenBackbone) {
      const v = base.get(name);
      if (!v) throw new ClientFailure("missing-base", `base version ${instr.baseVersion} has no "${name}"`);
      // Frozen: shared, never written.
      store.set(name, reg.specs.get(name)!.shape, v);
    }
    const payload = rm.adapter ? adapterKind(rm.adapter.kind).payload : densePayload;
    const expected = new Set(rm.dense);
    const got = new Set<string>();
    for (const t of msg.tensors) {
      if (isBaseTensor(t.name)) continue;
      const spec = reg.specs.get(t.name);
      if (!spec || !expected.has(t.name)) throw new ClientFailure("bad-message", `the message carries "${t.name}", which mode "${instr.mode}" does not train`);
      store.set(t.name, spec.shape, t.data);
      got.add(t.name);
    }
    const missing = [...expected].filter((n) => !got.has(n));
    if (missing.length > 0) throw new ClientFailure("bad-message", `the message lacks ${missing.length} trained tensor(s): ${missing.slice(0, 3).join(", ")}`);
    if (rm.adapter) payload.unpack(rm.adapter, store, msg.packed);
    else if (msg.packed.length > 0) throw argError(`mode "${instr.mode}" takes no packed modules, the message carries ${msg.packed.length}`);
    if (instr.mu > 0) setProximalAnchor(store, rm.trainable);
  }

  private async train(ctx: ClientContext, c: Compiled, msg: WireMessage, instr: Instruction): Promise<WireMessage> {
    const { rm, store, trainer } = c;
    const data = ctx.train;
    if (data.count === 0) throw new ClientFailure("no-data", "this client has no training data");
    trainer.reset();
    trainer.optimizer.lr = instr.lr;
    // Set every round: the compiled trainer (and its optimizer) is shared by rounds whose head rates may differ.
    trainer.optimizer.groups = instr.headLr === undefined ? [] : [{ matches: isHeadParam, lr: instr.headLr }];
    const stepsPerEpoch = Math.max(1, Math.floor(data.count / instr.batch));
    const steps = instr.localSteps > 0 ? instr.localSteps : stepsPerEpoch * instr.localEpochs;
    if (steps === 0) throw new ClientFailure("bad-instruction", "the instruction asks for 0 local steps (localEpochs and localSteps are both 0)");
    const sampler = new BatchSampler(data, instr.batch, new Rng(instr.seed));
    let lossSum = 0;
    for (let s = 0; s < steps; s++) {
      const loss = await trainer.train(sampler.next());
      if (!Number.isFinite(loss)) throw new ClientFailure("diverged", `local training diverged at step ${s + 1}: loss is ${loss}`);
      lossSum += loss;
      const paused = ctx.onStep?.(s + 1, steps, loss);
      if (paused) await paused;
    }
    const tensors: WireTensor[] = rm.dense.map((name) => ({ name, shape: store.shape(name), data: store.get(name) }));
    const packed = rm.adapter ? adapterKind(rm.adapter.kind).payload.pack(rm.adapter, store) : [];
    const scores = trainer.hooks?.scores() ?? [];
    return {
      kind: "reply",
      round: msg.round,
      clientId: ctx.clientId,
      sampleCount: data.count,
      metrics: { trainLoss: lossSum / steps, steps },
      tensors,
      packed,
      scores,
    };
  }

  private async evaluate(ctx: ClientContext, c: Compiled, msg: WireMessage): Promise<WireMessage> {
    const data = ctx.test ?? ctx.train;
    if (data.count === 0) throw new ClientFailure("no-data", "this client has no evaluation data");
    const r = await c.evaluator.run(batches(data, 256));
    return {
      kind: "reply",
      round: msg.round,
      clientId: ctx.clientId,
      sampleCount: r.count,
      metrics: { accuracy: r.accuracy, loss: r.loss },
      tensors: [],
      packed: [],
      scores: [],
    };
  }
}

/**
 * The failure a client reports for what went wrong: a ClientFailure's own code; a decoding error
 * (the wire raises Io) is a bad message; any other user-level error from validating what arrived
 * (the instruction, shapes) is a bad instruction; out-of-memory errors say so; anything else is internal.
 */
export function failureOf(e: unknown): Failure {
  if (e instanceof ClientFailure) return { code: e.failureCode, message: e.rawMessage };
  if (e instanceof SaflError) return { code: e.code === ErrorCode.Io ? "bad-message" : e.code === ErrorCode.Runtime ? "internal" : "bad-instruction", message: e.rawMessage };
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof RangeError && /allocation|memory/i.test(message)) return { code: "out-of-memory", message };
  return { code: "internal", message };
}

/**
 * Endless mini-batches of a fixed size from a shuffled order, reshuffled each pass. A client with
 * fewer examples than the batch size wraps around its shuffled data, so every step has the compiled
 * batch size and small clients still train.
 */
export class BatchSampler {
  private order: Int32Array;
  private pos = 0;
  private readonly size: number;

  constructor(
    private readonly data: ImageDataset,
    private readonly batch: number,
    private readonly rng: Rng,
  ) {
    this.order = Int32Array.from({ length: data.count }, (_, i) => i);
    this.rng.shuffle(this.order);
    this.size = imageSize(data);
  }

  next(): LabeledBatch {
    const data = this.data;
    const batch = this.batch;
    const size = this.size;
    const n = data.count;
    if (n >= batch && this.pos + batch > n) {
      this.rng.shuffle(this.order);
      this.pos = 0;
    }
    const pixels = new Float32Array(batch * size);
    const labels = new BigInt64Array(batch);
    for (let j = 0; j < batch; j++) {
      const i = this.order[(this.pos + j) % n]!;
      pixels.set(data.images.subarray(i * size, (i + 1) * size), j * size);
      labels[j] = BigInt(data.labels[i]!);
    }
    this.pos = n >= batch ? this.pos + batch : (this.pos + batch) % n;
    return { pixels, labels, size: batch };
  }
}
