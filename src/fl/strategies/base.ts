/**
 * @module fl/strategies/base
 * The frozen backbone an adapter strategy trains on, and which clients already hold it. Version 0
 * is the pre-trained backbone every client starts with; a later version (SA-FedLoRA's initiating
 * stage result) is sent to each client the first time it takes part, and the bytes count. A later
 * version may be sent in part: a client builds it from the pre-trained backbone with the sent
 * tensors replaced (SA-FedLoRA's delta-svd handoff sends only the non-target parameters that way).
 */
import { argError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import { isHeadParam } from "../../peft/model.js";
import { baseTensorName } from "../instruction.js";
import type { RoundFailure } from "../records.js";
import type { WireTensor } from "../wire.js";

export class FrozenBase {
  private readonly holders = new Set<string>();
  /** Clients that were sent this base. */
  downloads = 0;

  /**
   * @param version 0 for the pre-trained backbone, ≥ 1 for a base the run produced
   * @param store backbone weights (head entries, if present, are ignored)
   * @param sent the backbone names a client without this version is sent (default: all of them);
   *   every other name must hold the pre-trained value, which the client already has
   */
  constructor(
    readonly version: number,
    readonly store: ParamStore,
    private readonly sent?: readonly string[],
  ) {
    if (sent && version === 0) throw new Error("FrozenBase: version 0 is never sent");
    for (const n of sent ?? []) if (!store.has(n) || isHeadParam(n)) throw new Error(`FrozenBase: "${n}" is not a backbone parameter of the base`);
  }

  /** Backbone parameter names (everything but the head). */
  get names(): string[] {
    return this.store.names().filter((n) => !isHeadParam(n));
  }

  /** The base tensors to attach for `clientId` (none when it has them). */
  tensorsFor(clientId: string): WireTensor[] {
    if (this.version === 0 || this.holders.has(clientId)) return [];
    this.downloads++;
    return (this.sent ?? this.names).map((n) => ({ name: baseTensorName(n), shape: this.store.shape(n), data: this.store.get(n) }));
  }

  /** Records that `clientId` has the base (after a reply proved it trained on it). */
  received(clientId: string): void {
    if (this.version !== 0) this.holders.add(clientId);
  }

  /**
   * Forgets that `clientId` holds the base: it reported a missing base (a restarted client that
   * lost its cache), so the next message to it carries the base again.
   */
  lost(clientId: string): void {
    this.holders.delete(clientId);
  }

  /** Who holds the base and how often it was sent (for strategy snapshots). */
  state(): { holders: string[]; downloads: number } {
    return { holders: [...this.holders].sort(), downloads: this.downloads };
  }

  setState(s: { holders?: unknown; downloads?: unknown }): void {
    if (!Array.isArray(s.holders) || !s.holders.every((h) => typeof h === "string") || typeof s.downloads !== "number") {
      throw argError(`base version ${this.version}: the snapshot's holder list or download count is malformed`);
    }
    this.holders.clear();
    for (const h of s.holders) this.holders.add(h);
    this.downloads = s.downloads;
  }

  /** Acts on a round's failures: a missing base means the holder no longer has it. */
  clientsFailed(failures: readonly RoundFailure[]): void {
    for (const f of failures) if (f.code === "missing-base") this.lost(f.clientId);
  }
}
