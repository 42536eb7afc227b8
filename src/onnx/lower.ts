/**
 * @module onnx/lower
 * Lowers an IR graph (the values to compute, by name) to an ONNX ModelProto using only standard
 * opsets, so the same model runs in onnxruntime-node and onnxruntime-web. Symbolic batch dimensions
 * are bound to a concrete size here (a compiled model is specialised to one batch size; the runtime
 * caches one session per size). Value names are assigned in topological order, and constants are
 * de-duplicated, so the same graph always lowers to the same bytes.
 */
import { ErrorCode, SaflError, argError } from "../errors.js";
import { type Node, type Value, topoSort } from "../graph/node.js";
import { Op, type OpAttrs, type TensorData } from "../graph/ops.js";
import { type DType, type Shape, dimEq, resolveShape } from "../graph/shape.js";
import type { HostTensor } from "../tensor.js";
import {
  type AttributeProto,
  AttributeType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  TensorDataType,
  type ValueInfoProto,
} from "./proto.js";

/** Opset and IR version we emit (opset 20: LayerNormalization-17, Gelu-20, Reduce* with axes inputs). */
export const OPSET = 20;
export const IR_VERSION = 9;

export const onnxDType: Record<DType, TensorDataType> = {
  float32: TensorDataType.FLOAT,
  float64: TensorDataType.DOUBLE,
  int64: TensorDataType.INT64,
  bool: TensorDataType.BOOL,
};

export interface LowerOptions {
  /** Concrete batch size; required when the graph has batch dimensions. */
  batch?: number;
  /**
   * Inputs to bake into the model as initializers (e.g. frozen base weights), by input name. The
   * runtime can then pre-pack them once instead of reading them as feeds on every run.
   */
  initializers?: ReadonlyMap<string, HostTensor>;
  /** Graph name stored in the model. */
  name?: string;
}

export interface IoSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface Lowered {
  model: ModelProto;
  inputs: IoSpec[];
  outputs: IoSpec[];
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

const attrInt = (name: string, i: number): AttributeProto => ({ name, type: AttributeType.INT, i });
const attrFloat = (name: string, f: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f });
const attrInts = (name: string, ints: number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints });
const attrString = (name: string, s: string): AttributeProto => ({ name, type: AttributeType.STRING, s });

/** Lowers the named outputs to a ModelProto. */
export function lower(outputs: Readonly<Record<string, Value>>, opts: LowerOptions = {}): Lowered {
  const outNames = Object.keys(outputs);
  if (outNames.length === 0) throw argError("lower: no outputs requested");
  const order = topoSort(Object.values(outputs));
  const batch = opts.batch;
  const shapeOf = (v: Value): number[] => {
    try {
      return resolveShape(v.shape, batch);
    } catch {
      throw argError(`lower: the graph has batch dimensions (e.g. ${v.node.op} output) but no batch size was given`);
    }
  };

  const names = new Map<string, string>(); // value key -> onnx name
  const keyOf = (v: Value): string => `${v.node.id}:${v.index}`;
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const inputs: ValueInfoProto[] = [];
  const inputSpecs: IoSpec[] = [];
  const constCache = new Map<string, string>();
  const usedInputNames = new Set<string>();
  let counter = 0;

  // Consumers per value: also tells which outputs of multi-output nodes are used (unused optional
  // outputs are left unnamed).
  const consumers = new Map<string, number>();
  for (const n of order) for (const v of n.inputs) consumers.set(keyOf(v), (consumers.get(keyOf(v)) ?? 0) + 1);
  for (const v of Object.values(outputs)) consumers.set(keyOf(v), (consumers.get(keyOf(v)) ?? 0) + 1);

  // Peephole: Add(Gemm(a, b), y) where the Gemm has no C, beta 1, no other consumer, and y already has
  // the full [M, N] result shape becomes Gemm(a, b, C = y): the product accumulates into y instead of
  // paying a separate pass over both tensors (frequent in backward graphs, where cotangents sum).
  const foldableGemm = (v: Value): boolean =>
    v.node.op === Op.Gemm && v.node.inputs.length === 2 && (v.node.attrs as OpAttrs[Op.Gemm]).beta === 1 && consumers.get(keyOf(v)) === 1;
  const deferred = new Set<number>(); // Gemm nodes emitted later, at their Add
  const addFold = new Map<number, { gemm: Node<Op.Gemm>; other: Value }>();
  for (const n of order) {
    if (n.op !== Op.Add) continue;
    const [a, b] = n.inputs as [Value, Value];
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      if (foldableGemm(x) && !deferred.has(x.node.id) && x.dtype === y.dtype && y.shape.length === 2 && shapeEqDims(x.shape, y.shape) && shapeEqDims(n.outputs[0]!.shape, x.shape)) {
        deferred.add(x.node.id);
        addFold.set(n.id, { gemm: x.node as Node<Op.Gemm>, other: y });
        break;
      }
    }
  }

  const addInitializer = (dtype: DType, dims: number[], data: TensorData, hint: string): string => {
    const small = data.length <= 64;
    const cacheKey = small ? `${dtype}|${dims.join(",")}|${Array.from(data as ArrayLike<number | bigint>).join(",")}` : "";
    if (small && constCache.has(cacheKey)) return constCache.get(cacheKey)!;
    const name = `${hint}${counter++}`;
    initializers.push({ name, dataType: onnxDType[dtype], dims, rawData: bytesOf(data) });
    if (small) constCache.set(cacheKey, name);
    return name;
  };
  const int64Const = (values: readonly number[]): string =>
    addInitializer("int64", [values.length], BigInt64Array.from(values, (x) => BigInt(x)), "k");

  const emit = (node: Node, opType: string, ins: string[], attributes: AttributeProto[] = []): void => {
    const outs = node.outputs.map((v, i) => {
      if (i > 0 && !consumers.has(keyOf(v))) return "";
      const name = `t${counter++}`;
      names.set(keyOf(v), name);
      return name;
    });
    while (outs.length > 1 && outs[outs.length - 1] === "") outs.pop();
    attributes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    nodes.push({ inputs: ins, outputs: outs, name: `${opType}_${nodes.length}`, opType, attributes });
  };

  for (const node of order) {
    if (deferred.has(node.id)) continue;
    const fold = addFold.get(node.id);
    if (fold) {
      const [ga, gb] = fold.gemm.inputs.map((v) => names.get(keyOf(v))!);
      emit(node, "Gemm", [ga!, gb!, names.get(keyOf(fold.other))!], gemmAttributes(fold.gemm.attrs));
      continue;
    }
    const ins = node.inputs.map((v) => {
      const n = names.get(keyOf(v));
      if (n === undefined) throw new Error(`lower: input of ${node.op} was not lowered`);
      return n;
    });
    const lowerNode = loweringRules[node.op] as LowerRule<Op>;
    lowerNode(node as Node<Op>, ins, {
      emit: (opType, inputsNames, attrs) => emit(node, opType, inputsNames, attrs),
      int64Const,
      shapeOf,
      declareInput: (name, v) => {
        if (usedInputNames.has(name)) throw argError(`lower: two different graph inputs are named "${name}"`);
        usedInputNames.add(name);
        const fixed = opts.initializers?.get(name);
        if (fixed) {
          const expected = shapeOf(v);
          if (fixed.dtype !== v.dtype || fixed.shape.length !== expected.length || fixed.shape.some((d, i) => d !== expected[i])) {
            throw new SaflError(
              ErrorCode.Shape,
              `lower: initializer "${name}" is ${fixed.dtype}[${fixed.shape.join(",")}], the input expects ${v.dtype}[${expected.join(",")}]`,
            );
          }
          initializers.push({ name, dataType: onnxDType[fixed.dtype], dims: [...fixed.shape], rawData: bytesOf(fixed.data) });
        } else {
          const shape = shapeOf(v);
          inputs.push({ name, elemType: onnxDType[v.dtype], shape: shape.map((d) => ({ value: d })) });
          inputSpecs.push({ name, dtype: v.dtype, shape });
        }
        names.set(keyOf(v), name);
      },
      declareConstant: (v, data) => {
        names.set(keyOf(v), addInitializer(v.dtype, shapeOf(v), data, "c"));
      },
    });
  }

  // Graph outputs: an Identity gives each requested value its public name.
  const outInfos: ValueInfoProto[] = [];
  const outputSpecs: IoSpec[] = [];
  for (const name of outNames) {
    if (usedInputNames.has(name)) throw argError(`lower: output name "${name}" is also an input name`);
    const v = outputs[name]!;
    nodes.push({ inputs: [names.get(keyOf(v))!], outputs: [name], name: `out_${name}`, opType: "Identity", attributes: [] });
    const shape = shapeOf(v);
    outInfos.push({ name, elemType: onnxDType[v.dtype], shape: shape.map((d) => ({ value: d })) });
    outputSpecs.push({ name, dtype: v.dtype, shape });
  }

  const model: ModelProto = {
    irVersion: IR_VERSION,
    producerName: "sa-fedlora",
    graph: { name: opts.name ?? "safl", nodes, initializers, inputs, outputs: outInfos },
    opsetImports: [{ domain: "", version: OPSET }],
  };
  return { model, inputs: inputSpecs, outputs: outputSpecs };
}

/** Gemm's attributes, leaving out the ONNX defaults. */
function gemmAttributes({ transA, transB, alpha, beta }: OpAttrs[Op.Gemm]): AttributeProto[] {
  const attrs: AttributeProto[] = [];
  if (transA) attrs.push(attrInt("transA", 1));
  if (transB) attrs.push(attrInt("transB", 1));
  if (alpha !== 1) attrs.push(attrFloat("alpha", alpha));
  if (beta !== 1) attrs.push(attrFloat("beta", beta));
  return attrs;
}

function shapeEqDims(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i]!));
}

interface LowerContext {
  emit(opType: string, inputs: string[], attrs?: AttributeProto[]): void;
  int64Const(values: readonly number[]): string;
  shapeOf(v: Value): number[];
  declareInput(name: string, v: Value): void;
  declareConstant(v: Value, data: TensorData): void;
}

type LowerRule<K extends Op> = (node: Node<K>, ins: string[], cx: LowerContext) => void;

const same =
  (opType: string): LowerRule<Op> =>
  (_node, ins, cx) =>
    cx.emit(opType, ins);

const reduce =
  (opType: string): LowerRule<Op.ReduceSum | Op.ReduceMean | Op.ReduceMax> =>
  (node, ins, cx) => {
    const { axes, keepdims } = node.attrs as OpAttrs[Op.ReduceSum];
    if (axes.length === 0) {
      cx.emit("Identity", ins);
      return;
    }
    cx.emit(opType, [ins[0]!, cx.int64Const(axes)], [attrInt("keepdims", keepdims ? 1 : 0)]);
  };

/** One lowering per op. */
const loweringRules: { [K in Op]: LowerRule<K> } = {
  [Op.Input]: (node, _ins, cx) => cx.declareInput(node.attrs.name, node.outputs[0]!),
  [Op.Constant]: (node, _ins, cx) => cx.declareConstant(node.outputs[0]!, node.attrs.data),
  [Op.Identity]: same("Identity"),
  [Op.Neg]: same("Neg"),
  [Op.Abs]: same("Abs"),
  [Op.Sign]: same("Sign"),
  [Op.Exp]: same("Exp"),
  [Op.Log]: same("Log"),
  [Op.Sqrt]: same("Sqrt"),
  [Op.Tanh]: same("Tanh"),
  [Op.Erf]: same("Erf"),
  [Op.Gelu]: (_node, ins, cx) => cx.emit("Gelu", ins, [attrString("approximate", "none")]),
  [Op.Cast]: (node, ins, cx) => cx.emit("Cast", ins, [attrInt("to", onnxDType[node.attrs.to])]),
  [Op.Add]: same("Add"),
  [Op.Sub]: same("Sub"),
  [Op.Mul]: same("Mul"),
  [Op.Div]: same("Div"),
  [Op.Pow]: same("Pow"),
  [Op.Equal]: same("Equal"),
  [Op.Greater]: same("Greater"),
  [Op.Where]: same("Where"),
  [Op.MatMul]: same("MatMul"),
  [Op.Gemm]: (node, ins, cx) => cx.emit("Gemm", ins, gemmAttributes(node.attrs)),
  [Op.ReduceSum]: reduce("ReduceSum"),
  [Op.ReduceMean]: reduce("ReduceMean"),
  [Op.ReduceMax]: reduce("ReduceMax"),
  [Op.Softmax]: (node, ins, cx) => cx.emit("Softmax", ins, [attrInt("axis", node.attrs.axis)]),
  [Op.LogSoftmax]: (node, ins, cx) => cx.emit("LogSoftmax", ins, [attrInt("axis", node.attrs.axis)]),
  [Op.LayerNormalization]: (node, ins, cx) =>
    cx.emit("LayerNormalization", ins, [attrInt("axis", node.attrs.axis), attrFloat("epsilon", node.attrs.epsilon)]),
  [Op.Reshape]: (node, ins, cx) => cx.emit("Reshape", [ins[0]!, cx.int64Const(cx.shapeOf(node.outputs[0]!))]),
  [Op.Transpose]: (node, ins, cx) => cx.emit("Transpose", ins, [attrInts("perm", [...node.attrs.perm])]),
  [Op.Concat]: (node, ins, cx) => cx.emit("Concat", ins, [attrInt("axis", node.attrs.axis)]),
  [Op.Split]: (node, ins, cx) => cx.emit("Split", [ins[0]!, cx.int64Const(node.attrs.sizes)], [attrInt("axis", node.attrs.axis)]),
  [Op.Slice]: (node, ins, cx) => {
    const { starts, ends, axes, steps } = node.attrs;
    cx.emit("Slice", [ins[0]!, cx.int64Const(starts), cx.int64Const(ends), cx.int64Const(axes), cx.int64Const(steps)]);
  },
  [Op.Pad]: (node, ins, cx) => cx.emit("Pad", [ins[0]!, cx.int64Const(node.attrs.pads)], [attrString("mode", "constant")]),
  [Op.Gather]: (node, ins, cx) => cx.emit("Gather", ins, [attrInt("axis", node.attrs.axis)]),
  [Op.ScatterElements]: (node, ins, cx) =>
    cx.emit("ScatterElements", ins, [attrInt("axis", node.attrs.axis), attrString("reduction", node.attrs.reduction)]),
  [Op.Expand]: (node, ins, cx) => cx.emit("Expand", [ins[0]!, cx.int64Const(cx.shapeOf(node.outputs[0]!))]),
};
