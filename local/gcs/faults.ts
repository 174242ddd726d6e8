/**
 * Fault injection: decides, per request, whether to fail it and how. Kinds
 * that only make sense for some requests (resetting an upload body needs an
 * upload, resetting a download needs a download) are drawn only from the
 * kinds that apply to the request at hand; a request to which none applies
 * is left alone. With a seed the sequence of decisions is reproducible.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What can be done to a request: a status, a connection reset in an upload or a download, a byte flipped in an upload, its answer lost, a delay. */
export type FaultKind = '429' | '503' | 'reset-upload' | 'reset-download' | 'corrupt-upload' | 'lose-answer' | 'slow';

/** See GcsEmulatorOptions / GcsEmulator.setFaults in server.ts. */
export interface FaultPlan {
  /** 0..1: probability a matching request is faulted */
  rate: number;
  kinds: FaultKind[];
  /** delay for `slow` (default 2000 ms) */
  slowMs?: number;
  /** deterministic sequence when given */
  seed?: number;
  /** the next `count` matching requests get this status, then `rate` applies */
  burst?: { status: 429 | 503; count: number };
  /** every request, faulted or not, is handled this much later, as by a distant endpoint */
  latencyMs?: number;
  /**
   * Which requests may be faulted: method and request target (path and
   * query as sent); default all. A kind instead of `true` injects exactly
   * that fault into the request when it applies, whatever `rate` says.
   */
  match?: (method: string, path: string) => boolean | FaultKind;
}

/** What to do to one request. */
export type Fault =
  | { kind: 'status'; status: 429 | 503 }
  | { kind: 'reset-upload' }
  | { kind: 'reset-download' }
  | { kind: 'corrupt-upload' }
  | { kind: 'lose-answer' }
  | { kind: 'slow'; ms: number };

/** What a request is, as far as faults care. */
export interface FaultTarget {
  method: string;
  /** path and query as the client sent them */
  path: string;
  /** the request carries object bytes (multipart/media upload or resumable chunk) */
  uploadsBody: boolean;
  /** the request downloads object bytes */
  downloads: boolean;
}

/** mulberry32: a small, good-enough PRNG so a seed gives a repeatable plan. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A plan being applied: keeps the burst counter and the random sequence. */
export class FaultInjector {
  private readonly plan: FaultPlan;
  private readonly random: () => number;
  private burstLeft: number;

  constructor(plan: FaultPlan) {
    if (!(plan.rate >= 0 && plan.rate <= 1)) throw new RangeError(`fault rate ${plan.rate} is not between 0 and 1`);
    this.plan = plan;
    this.random = plan.seed === undefined ? Math.random : mulberry32(plan.seed);
    this.burstLeft = plan.burst?.count ?? 0;
  }

  /** How long every request waits before it is handled (FaultPlan.latencyMs); 0 for none. */
  get latencyMs(): number {
    return this.plan.latencyMs ?? 0;
  }

  /** The fault for this request, or undefined to handle it normally. */
  decide(target: FaultTarget): Fault | undefined {
    const verdict = this.plan.match ? this.plan.match(target.method, target.path) : true;
    if (verdict === false) return undefined;
    const applies = (kind: FaultKind) =>
      ((kind !== 'reset-upload' && kind !== 'corrupt-upload' && kind !== 'lose-answer') || target.uploadsBody) &&
      (kind !== 'reset-download' || target.downloads);
    if (verdict !== true) return applies(verdict) ? this.fault(verdict) : undefined;
    if (this.burstLeft > 0 && this.plan.burst) {
      this.burstLeft--;
      return { kind: 'status', status: this.plan.burst.status };
    }
    if (this.plan.rate <= 0 || this.plan.kinds.length === 0) return undefined;
    if (this.random() >= this.plan.rate) return undefined;
    const applicable = this.plan.kinds.filter(applies);
    if (applicable.length === 0) return undefined;
    return this.fault(applicable[Math.floor(this.random() * applicable.length)]!);
  }

  private fault(kind: FaultKind): Fault {
    switch (kind) {
      case '429':
        return { kind: 'status', status: 429 };
      case '503':
        return { kind: 'status', status: 503 };
      case 'slow':
        return { kind: 'slow', ms: this.plan.slowMs ?? 2000 };
      default:
        return { kind };
    }
  }
}

/**
 * Damage `req`'s body in transit (a `corrupt-upload` fault): the byte in the
 * middle of what the client sends (by Content-Length) arrives flipped, so a
 * multipart body keeps its framing and a resumable chunk its length, and
 * only a checksum can tell. The parser pushes body bytes through
 * `req.push`, which is wrapped here before the handler reads any.
 */
export function corruptInTransit(req: IncomingMessage): void {
  const length = Number(req.headers['content-length'] ?? NaN);
  let at = Number.isFinite(length) && length > 0 ? Math.floor(length / 2) : 0;
  const push = req.push.bind(req);
  req.push = (chunk: unknown, encoding?: BufferEncoding) => {
    if (at >= 0 && Buffer.isBuffer(chunk)) {
      if (at < chunk.length) {
        const copy = Buffer.from(chunk);
        copy[at] = copy[at]! ^ 0xff;
        at = -1;
        return push(copy, encoding);
      }
      at -= chunk.length;
    }
    return push(chunk, encoding);
  };
}

/**
 * Lose the answer to `req` (a `lose-answer` fault): the upload is carried
 * out in full, then the connection drops where the answer would go out, as
 * when a response is lost on its way back. The client cannot tell whether
 * its object was created.
 */
export function loseAnswer(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  res.writeHead = (() => {
    socket.destroy();
    return res;
  }) as ServerResponse['writeHead'];
  res.write = (() => true) as ServerResponse['write'];
  res.end = (() => res) as ServerResponse['end'];
}
