/**
 * The local web console and the local-only endpoints it reads, served by the local runtime on the same origin as
 * the REST API:
 *   GET /console                              the console (plain HTML, CSS and JS from local/console/, no network)
 *   GET /openapi.json                         the OpenAPI document of the REST API
 *   GET /console/api/state-machines           every state machine of the runtime, with execution counts
 *   GET /console/api/executions               executions of all (or ?stateMachine=) state machines, newest first
 *   GET /console/api/executions/{sm}/{name}   one execution: its states and event history, key material redacted
 *   GET /console/api/batches                  bulk-issuance tasks, newest first
 *   GET /console/api/suppliers                the configured suppliers
 * Batches are started, CAs listed, the inventory searched and certificates revoked through the REST API itself.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { taskView } from '../lambdas/core/bulk/service';
import type { BatchTask, TaskStatus, TaskStore } from '../lambdas/core/ports';
import type { RawHandler } from './http-server';
import { redactKeyMaterial } from './redact';
import type {
  ExecutionEvent,
  ExecutionRecord,
  ExecutionStatus,
  StateMachineRunner,
} from './runtime/state-machine-runner';

export interface ConsoleSources {
  /** every state machine runner of the runtime (read at each request: runners added later show up) */
  runners: () => readonly StateMachineRunner[];
  tasks: Pick<TaskStore, 'listByStatus'>;
  suppliers: () => Promise<string[]>;
  openApi: () => unknown;
}

// local/console from local/*.ts and from the bundle in dist/ alike
const ASSETS_DIR = join(__dirname, '..', 'local', 'console');
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
};
/** in the order a task goes through them */
const TASK_STATUSES: TaskStatus[] = ['pending', 'in_progress', 'complete', 'failed'];
const STATUSES: ExecutionStatus[] = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];
/** events of one execution returned at most (a 1,000-chunk batch has ~6,000) */
const MAX_EVENTS = 20_000;

/** One state execution as the Step Functions console's table view lists it. */
export interface StateRow {
  name: string;
  type?: string;
  mapIndex?: number;
  status: 'Running' | 'Succeeded' | 'Failed' | 'Caught' | 'Aborted';
  enteredAt: string;
  exitedAt?: string;
  durationMs?: number;
  /** ms from the execution's start */
  startedAfterMs: number;
  retries: number;
  error?: string;
  cause?: unknown;
  input?: unknown;
  output?: unknown;
}

export interface ExecutionSummary {
  stateMachineName: string;
  name: string;
  executionArn: string;
  status: ExecutionStatus;
  startDate: string;
  stopDate?: string;
  durationMs?: number;
  error?: string;
}

export interface ExecutionDetail extends ExecutionSummary {
  stateMachineArn: string;
  input: unknown;
  output?: unknown;
  cause?: unknown;
  states: StateRow[];
  events: (ExecutionEvent & { startedAfterMs: number })[];
  truncated: boolean;
}

function summary(stateMachineName: string, r: ExecutionRecord): ExecutionSummary {
  return {
    stateMachineName,
    name: r.name,
    executionArn: r.executionArn,
    status: r.status,
    startDate: r.startDate.toISOString(),
    ...(r.stopDate
      ? { stopDate: r.stopDate.toISOString(), durationMs: r.stopDate.getTime() - r.startDate.getTime() }
      : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}

/**
 * The states of an execution in the order they were entered, each with its outcome, retries, input and output —
 * what the Step Functions console's table view shows — derived from the event history.
 */
export function stateRows(record: ExecutionRecord): StateRow[] {
  const start = record.startDate.getTime();
  const rows: StateRow[] = [];
  // the last execution of each state (per Map iteration); the engine logs a retried failure as StateFailed,
  // StateRetried, then StateExited or StateFailed again without a second StateEntered
  const last = new Map<string, StateRow>();
  const keyOf = (e: ExecutionEvent) => `${e.mapIndex ?? ''}/${e.parentStateName ?? ''}/${e.stateName}`;
  for (const e of record.events) {
    if (!e.stateName || !e.type.startsWith('State')) continue;
    const key = keyOf(e);
    const at = Date.parse(e.timestamp);
    const row = last.get(key);
    switch (e.type) {
      case 'StateEntered': {
        if (row && row.status === 'Running') break; // entered again while retrying: the same state execution
        const entered: StateRow = {
          name: e.stateName,
          ...(e.stateType ? { type: e.stateType } : {}),
          ...(e.mapIndex !== undefined ? { mapIndex: e.mapIndex } : {}),
          status: 'Running',
          enteredAt: e.timestamp,
          startedAfterMs: at - start,
          retries: 0,
          input: e.input,
        };
        rows.push(entered);
        last.set(key, entered);
        break;
      }
      case 'StateRetried':
        if (!row) break;
        row.retries += 1;
        row.status = 'Running';
        delete row.exitedAt;
        delete row.durationMs;
        delete row.error;
        delete row.cause;
        break;
      case 'StateExited':
      case 'StateFailed':
      case 'StateCaught':
        if (!row) break;
        // a caught failure is logged StateFailed, StateCaught, then StateExited (with the catcher's output)
        if (e.type === 'StateExited' && row.status === 'Caught') {
          if (e.output !== undefined) row.output = e.output;
          break;
        }
        row.status = e.type === 'StateExited' ? 'Succeeded' : e.type === 'StateFailed' ? 'Failed' : 'Caught';
        row.exitedAt = e.timestamp;
        row.durationMs = at - Date.parse(row.enteredAt);
        if (e.output !== undefined) row.output = e.output;
        if (e.error !== undefined) row.error = e.error;
        if (e.cause !== undefined) row.cause = e.cause;
        break;
    }
  }
  // a state still running when its execution ended was stopped with it (the other iterations of a Map that failed)
  if (record.status !== 'RUNNING') for (const row of rows) if (row.status === 'Running') row.status = 'Aborted';
  return rows;
}

export function executionDetail(stateMachineName: string, record: ExecutionRecord): ExecutionDetail {
  const start = record.startDate.getTime();
  const events = record.events.slice(0, MAX_EVENTS);
  const detail: ExecutionDetail = {
    ...summary(stateMachineName, record),
    stateMachineArn: record.stateMachineArn,
    input: record.input,
    ...(record.output !== undefined ? { output: record.output } : {}),
    ...(record.cause !== undefined ? { cause: record.cause } : {}),
    states: stateRows({ ...record, events }),
    events: events.map((e) => ({ ...e, startedAfterMs: Date.parse(e.timestamp) - start })),
    truncated: record.events.length > events.length,
  };
  return redactKeyMaterial(detail) as ExecutionDetail;
}

function sendJson(res: ServerResponse, status: number, body: unknown): true {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
  return true;
}

const notFound = (res: ServerResponse, message: string) => sendJson(res, 404, { code: 'NOT_FOUND', message });

export function createConsoleHandler(sources: ConsoleSources): RawHandler {
  // read once: the console is three small files
  const assets = new Map(
    Object.entries(ASSETS).map(([file, type]) => [file, { type, body: readFileSync(join(ASSETS_DIR, file)) }]),
  );
  const runnerNamed = (name: string) => sources.runners().find((r) => r.stateMachineName === name);

  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const mine = path === '/openapi.json' || path === '/console' || path.startsWith('/console/');
    if (!mine) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, {
        code: 'METHOD_NOT_ALLOWED',
        message: `${req.method} ${path}: the console is read-only`,
      });
    }
    if (path === '/openapi.json') return sendJson(res, 200, sources.openApi());
    if (path === '/console' || path === '/console/') {
      const index = assets.get('index.html')!;
      res.writeHead(200, {
        'content-type': index.type,
        'content-length': index.body.length,
        'cache-control': 'no-cache',
      });
      res.end(index.body);
      return true;
    }
    if (!path.startsWith('/console/api/')) {
      const asset = assets.get(path.slice('/console/'.length));
      if (!asset) return notFound(res, `no console file ${path}`);
      res.writeHead(200, {
        'content-type': asset.type,
        'content-length': asset.body.length,
        'cache-control': 'no-cache',
      });
      res.end(asset.body);
      return true;
    }

    const parts = path.slice('/console/api/'.length).split('/').map(decodeURIComponent);
    const query = url.searchParams;
    switch (parts[0]) {
      case 'state-machines':
        if (parts.length !== 1) break;
        return sendJson(
          res,
          200,
          sources.runners().map((r) => {
            const executions = r.list();
            return {
              name: r.stateMachineName,
              arn: r.stateMachineArn,
              executions: executions.length,
              running: executions.filter((e) => e.status === 'RUNNING').length,
            };
          }),
        );
      case 'executions': {
        if (parts.length === 1) {
          const sm = query.get('stateMachine');
          const status = query.get('status') as ExecutionStatus | null;
          if (status !== null && !STATUSES.includes(status)) {
            return sendJson(res, 400, { code: 'INVALID_REQUEST', message: `status: one of ${STATUSES.join(', ')}` });
          }
          const runners = sm ? [runnerNamed(sm)].filter((r) => r !== undefined) : sources.runners();
          if (sm && runners.length === 0) return notFound(res, `no state machine ${sm}`);
          const limit = Math.min(Math.max(Number(query.get('limit') ?? 200) || 200, 1), 1000);
          const list = runners
            .flatMap((r) => r.list(status ? { status } : {}).map((e) => summary(r.stateMachineName, e)))
            .sort((a, b) => b.startDate.localeCompare(a.startDate))
            .slice(0, limit);
          return sendJson(res, 200, { executions: list });
        }
        if (parts.length !== 3) break;
        const runner = runnerNamed(parts[1]!);
        const record = runner?.describe(parts[2]!);
        if (!runner || !record) return notFound(res, `no execution ${parts[2]} of ${parts[1]}`);
        return sendJson(res, 200, executionDetail(runner.stateMachineName, record));
      }
      case 'batches': {
        if (parts.length !== 1) break;
        // one query per status: a task whose status changes between two of them is listed twice; keep the later
        const byId = new Map<string, BatchTask>();
        for (const task of await sources.tasks.listByStatus(TASK_STATUSES)) {
          const seen = byId.get(task.taskId);
          if (!seen || TASK_STATUSES.indexOf(task.status) > TASK_STATUSES.indexOf(seen.status))
            byId.set(task.taskId, task);
        }
        const tasks = [...byId.values()].sort(
          (a, b) => b.createdAt.localeCompare(a.createdAt) || b.taskId.localeCompare(a.taskId),
        );
        const limit = Math.min(Math.max(Number(query.get('limit') ?? 100) || 100, 1), 1000);
        return sendJson(res, 200, { batches: tasks.slice(0, limit).map(taskView) });
      }
      case 'suppliers':
        if (parts.length !== 1) break;
        return sendJson(res, 200, { suppliers: await sources.suppliers() });
    }
    return notFound(res, `no console endpoint ${path}`);
  };
}
