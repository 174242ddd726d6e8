/**
 * The functions' one way to change the catalogue: absorb events, re-evaluate
 * alerts, and queue the alert messages in the catalogue's outbox, all in one
 * conditional write; then publish the outbox and remove what was published.
 * An alert is announced once per incident (the open set lives in the
 * catalogue, changed only by compare-and-swap), and never lost: a crash
 * between the write and the publish leaves the messages in the outbox for the
 * next run. A consumer may see a message twice; it carries a stable id.
 *
 * Several instances commit to the one catalogue, and each sees the others'
 * queued messages in what it reads; if every instance published the whole
 * outbox, one committed while another instance's publish was in flight would
 * go out twice. So an instance publishes the messages its own writes queued,
 * and others' only once they have waited OUTBOX_CLAIM_MS (their instance
 * failed to publish or died).
 */
import { alertMessage, diffAlerts, evaluateAlerts } from '../../core/alerts/evaluate.ts';
import { admitRaisedAlerts } from '../../core/alerts/malformed.ts';
import type { AlertMessage } from '../../core/alerts/types.ts';
import { applyCatalogueEvents } from '../../core/catalogue/apply.ts';
import { CatalogueBatcher, readCatalogue, type CatalogueUpdate } from '../../core/catalogue/store.ts';
import type { Catalogue, CatalogueEvent, OpenAlert } from '../../core/catalogue/types.ts';
import type { Runtime } from './runtime.ts';

/**
 * How long a queued message is left to the instance whose write queued it;
 * after that, any run publishes it. Far longer than a commit and a publish
 * take, short next to the watchdog's schedule.
 */
export const OUTBOX_CLAIM_MS = 60_000;

/** Identity of an outbox message: an incident's open or resolved announcement at one time. */
function messageKey(m: AlertMessage): string {
  return `${m.id}\u0000${m.status}\u0000${m.time}`;
}

/**
 * Apply `events`, then bring the open alerts in line with what is true at
 * `now`, queueing a message for every alert opened or resolved. A continuing
 * incident keeps its opening time and takes its current summary and details
 * (what `gcwal status` shows and a resolution repeats), unannounced. Pure and
 * idempotent: applied again to its own result it returns that result (the
 * catalogue store may run it twice when an answer was lost). `raised` are
 * incidents a function saw itself (a malformed event), opened unless open
 * (or, for malformed events, too many are open: see admitRaisedAlerts).
 */
export function absorb(
  catalogue: Catalogue,
  events: readonly CatalogueEvent[],
  now: Date,
  rt: Pick<Runtime, 'config'>,
  repository?: RepositoryCluster,
  raised: readonly OpenAlert[] = [],
): Catalogue {
  let applied = applyCatalogueEvents(catalogue, events, now);
  // gcwal.json is written once and never changes, so taking the cluster from
  // it is as idempotent as the join; without it, alerts raised before the
  // first good segment would name no cluster.
  if (repository && applied.systemIdentifier === undefined)
    applied = { ...applied, systemIdentifier: repository.systemIdentifier, walSegmentSize: applied.walSegmentSize ?? repository.walSegmentSize };
  const evaluated = evaluateAlerts(applied, now, rt.config.thresholds);
  // A raised incident that is open already continues: announced once, whoever raises it again.
  const current = [...evaluated, ...admitRaisedAlerts(applied.alerts, raised).filter((a) => !evaluated.some((e) => e.id === a.id))];
  const diff = diffAlerts(applied.alerts, current, now);
  if (diff.opened.length === 0 && diff.resolved.length === 0) {
    return JSON.stringify(diff.next) === JSON.stringify(applied.alerts) ? applied : { ...applied, alerts: diff.next };
  }
  const cluster = applied.systemIdentifier;
  const messages = [
    ...diff.opened.map((a) => alertMessage(a, 'open', cluster, rt.config.repo, now)),
    ...diff.resolved.map((a) => alertMessage(a, 'resolved', cluster, rt.config.repo, now)),
  ];
  return { ...applied, alerts: diff.next, outbox: [...(applied.outbox ?? []), ...messages] };
}

/** The repository's cluster as gcwal.json records it. */
export interface RepositoryCluster {
  systemIdentifier: string;
  walSegmentSize: number;
}

/**
 * The catalogue and its outbox, one per process: batches catalogue writes and
 * serialises outbox flushes.
 */
export class CatalogueOutbox {
  private batcher: Promise<CatalogueBatcher> | undefined;
  private flushing: Promise<number> | undefined;
  private flushAgain = false;
  /** keys of messages this instance's writes queued and it has not yet published */
  private readonly mine = new Set<string>();

  constructor(private readonly rt: Runtime) {}

  private getBatcher(): Promise<CatalogueBatcher> {
    this.batcher ??= this.rt.catalogueStorage().then((storage) => new CatalogueBatcher(storage, { now: () => this.rt.now() }));
    return this.batcher;
  }

  /** Commit `events` (may be empty: alerts are re-evaluated at now) and publish what it announces. */
  record(events: readonly CatalogueEvent[], cluster?: RepositoryCluster): Promise<CatalogueUpdate> {
    return this.commit(events, cluster, []);
  }

  /** Open `alert` unless it is open already (then nothing is announced), and publish what that announces. */
  raise(alert: OpenAlert): Promise<CatalogueUpdate> {
    return this.commit([], undefined, [alert]);
  }

  private async commit(events: readonly CatalogueEvent[], cluster: RepositoryCluster | undefined, raised: readonly OpenAlert[]): Promise<CatalogueUpdate> {
    const batcher = await this.getBatcher();
    const update = await batcher.submit((c) => absorb(c, events, this.rt.now(), this.rt, cluster, raised));
    const before = new Set((update.previous.outbox ?? []).map(messageKey));
    for (const m of update.catalogue.outbox ?? []) if (!before.has(messageKey(m))) this.mine.add(messageKey(m));
    await this.flushOutbox(update.catalogue);
    return update;
  }

  /**
   * Publish the outbox messages this instance queued, and those any instance
   * queued more than OUTBOX_CLAIM_MS ago (by the runtime's clock), and remove
   * the published ones. Calls made while a flush runs share it plus one
   * follow-up, so a message is not published twice by one process. Throws
   * (after removing what did get published) when Pub/Sub refuses one; the
   * rest stay queued.
   */
  flushOutbox(seen?: Catalogue): Promise<number> {
    if (seen && (seen.outbox ?? []).length === 0 && !this.flushing) return Promise.resolve(0);
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    const run = async (): Promise<number> => {
      let total = 0;
      do {
        this.flushAgain = false;
        total += await this.flushOnce();
      } while (this.flushAgain);
      return total;
    };
    this.flushing = run().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushOnce(): Promise<number> {
    const batcher = await this.getBatcher();
    const storage = await this.rt.catalogueStorage();
    const claimed = [...this.mine];
    const { catalogue } = await readCatalogue(storage, { now: () => this.rt.now() });
    // What another run published (after the claim ran out) is no longer ours to publish.
    const queued = new Set((catalogue.outbox ?? []).map(messageKey));
    for (const key of claimed) if (!queued.has(key)) this.mine.delete(key);
    const now = this.rt.now().getTime();
    // A time that does not parse cannot be waited out: treat it as abandoned.
    const abandoned = (m: AlertMessage) => !(now - Date.parse(m.time) < OUTBOX_CLAIM_MS);
    const outbox = (catalogue.outbox ?? []).filter((m) => this.mine.has(messageKey(m)) || abandoned(m));
    if (outbox.length === 0) return 0;
    const published = new Set<string>();
    let failure: unknown;
    for (const message of outbox) {
      try {
        await this.rt.publisher.publishJson(this.rt.config.alertsTopic, message, {
          id: message.id,
          status: message.status,
          kind: message.kind,
          severity: message.severity,
        });
        published.add(messageKey(message));
        this.mine.delete(messageKey(message));
        this.rt.log.log(
          message.status === 'open' ? (message.severity === 'INFO' ? 'INFO' : message.severity === 'WARNING' ? 'WARNING' : 'ERROR') : 'INFO',
          `alert ${message.status}: ${message.summary}`,
          { alert: message },
        );
      } catch (err) {
        failure = err;
        break;
      }
    }
    if (published.size > 0) {
      await batcher.submit((c) => {
        const rest = (c.outbox ?? []).filter((m) => !published.has(messageKey(m)));
        if (rest.length === (c.outbox ?? []).length) return c;
        const next = { ...c };
        if (rest.length === 0) delete next.outbox;
        else next.outbox = rest;
        return next;
      });
    }
    if (failure !== undefined) throw failure;
    return published.size;
  }
}
