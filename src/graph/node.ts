/**
 * @module graph/node
 * Immutable graph nodes and the values they produce. A graph is simply the set of nodes reachable
 * from its outputs (as in tinygrad's UOp DAG): there is no mutable graph object to keep in sync.
 * `apply` is the one place nodes are made; it runs shape/dtype inference so every value knows its
 * dtype and shape and every mistake is reported where it is made.
 */
import type { Op, OpAttrs } from "./ops.js";
import type { DType, Shape } from "./shape.js";
import { inferOutputs } from "./infer.js";

let nextId = 0;

/** One operator application. */
export class Node<K extends Op = Op> {
  readonly id: number;
  readonly outputs: readonly Value[];

  constructor(
    readonly op: K,
    readonly inputs: readonly Value[],
    readonly attrs: OpAttrs[K],
    outs: readonly { dtype: DType; shape: Shape }[],
  ) {
    this.id = nextId++;
    this.outputs = outs.map((o, i) => new Value(this, i, o.dtype, o.shape));
    Object.freeze(this);
  }
}

/** One output of a node: what ops consume. */
export class Value {
  constructor(
    readonly node: Node,
    readonly index: number,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {
    Object.freeze(this);
  }

  get rank(): number {
    return this.shape.length;
  }
}

/** Creates a node (after inferring and checking its output types) and returns its outputs. */
export function applyMulti<K extends Op>(op: K, inputs: readonly Value[], attrs: OpAttrs[K]): readonly Value[] {
  const outs = inferOutputs(op, inputs, attrs);
  return new Node(op, inputs, attrs, outs).outputs;
}

/** Creates a single-output node and returns its value. */
export function apply<K extends Op>(op: K, inputs: readonly Value[], attrs: OpAttrs[K]): Value {
  return applyMulti(op, inputs, attrs)[0]!;
}

/**
 * Nodes reachable from `outputs`, inputs before users, in a deterministic order (iterative DFS,
 * children in input order), so lowering the same graph twice gives the same bytes.
 */
export function topoSort(outputs: readonly Value[]): Node[] {
  const order: Node[] = [];
  const state = new Map<number, 1 | 2>(); // 1 = on stack, 2 = done
  const stack: { node: Node; next: number }[] = [];
  for (const out of outputs) {
    if (state.get(out.node.id) === 2) continue;
    stack.push({ node: out.node, next: 0 });
    state.set(out.node.id, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.node.inputs.length) {
        const child = top.node.inputs[top.next++]!.node;
        if (!state.has(child.id)) {
          state.set(child.id, 1);
          stack.push({ node: child, next: 0 });
        }
      } else {
        stack.pop();
        state.set(top.node.id, 2);
        order.push(top.node);
      }
    }
  }
  return order;
}
