/**
 * `muster agent instances`: the agent's instance records, with what only the running agent knows
 * (connections, tasks) when it answers (control.ts), else said to be unknown.
 */
import { join } from 'node:path';
import { sendControlRequest, type LiveInstance } from '../agent/control.js';
import { readInstanceRecords } from '../agent/instances.js';
import { instanceKeyFingerprint } from '../protocol/handshake.js';

/** The agent polls its control dir every second. */
const LIVE_TIMEOUT_MS = 3000;

export interface InstanceRow {
  product: string;
  key: string;
  versions: string[];
  current: string | null;
  lastSeen: string;
  dir: string;
  boundTo: string | null;
  taskUser: string | null;
  /** What the instance is keyed by: the coordinator's instance id, or its source address. */
  keyedBy: 'id' | 'address';
  instanceId: string | null;
  /** The source address of its last connection (null: none since the agent kept it). */
  lastAddress: string | null;
  lastConnected: string | null;
  /** Null when the agent did not answer (not running): then nothing is live. */
  connections: number | null;
  tasks: { running: number; ended: number } | null;
}

export async function instanceRows(dataDir: string): Promise<InstanceRow[]> {
  const records = await readInstanceRecords(join(dataDir, 'instances'));
  // Reading the records needs less than asking the agent (writing to its control dir): without
  // that right the list is still shown, with what is live unknown.
  const answer = await sendControlRequest(dataDir, { action: 'list-instances' }, LIVE_TIMEOUT_MS, {
    withdraw: true,
  }).catch(() => undefined);
  const live = new Map<string, LiveInstance>((answer?.instances ?? []).map((i) => [i.key, i]));
  const running = answer?.instances !== undefined;
  return records.map((r) => {
    const now = live.get(r.key);
    return {
      product: r.product,
      key: r.key,
      versions: r.versions.map((v) => v.versionId),
      current: r.current,
      lastSeen: r.lastSeen,
      dir: r.dirName,
      boundTo: r.publicKey === null ? null : instanceKeyFingerprint(r.publicKey),
      taskUser: r.taskUser?.name ?? null,
      keyedBy: r.instanceId === null ? 'address' : 'id',
      instanceId: r.instanceId,
      lastAddress: r.lastAddress ?? r.sourceIp,
      lastConnected: r.lastConnected,
      connections: running ? (now?.connections ?? 0) : null,
      tasks: running ? { running: now?.running ?? 0, ended: now?.ended ?? 0 } : null,
    };
  });
}

export function formatInstances(rows: InstanceRow[]): string {
  if (rows.length === 0) return 'No instances yet: none has connected to this agent.\n';
  const notRunning = rows[0]?.connections === null;
  let text = '';
  for (const row of rows) {
    const keyedBy =
      row.keyedBy === 'id'
        ? `instance id ${row.instanceId ?? '?'}`
        : `source address ${row.lastAddress ?? '?'} (the coordinator sends no instance id)`;
    const tasks =
      row.tasks === null
        ? 'unknown (the agent is not running)'
        : `${row.tasks.running} running, ${row.tasks.ended} ended awaiting collection`;
    const connections =
      row.connections === null ? 'unknown (the agent is not running)' : `${row.connections}`;
    text +=
      `${row.key}\n` +
      `  product        ${row.product}\n` +
      `  keyed by       ${keyedBy}\n` +
      `  last address   ${row.lastAddress ?? 'unknown (connected before the agent kept it)'}\n` +
      `  last connected ${row.lastConnected ?? 'unknown'}\n` +
      `  last seen      ${row.lastSeen}\n` +
      `  connections    ${connections}\n` +
      `  tasks          ${tasks}\n` +
      `  bound to       ${row.boundTo ?? 'no key (keyed by address, or not claimed since binding)'}\n` +
      `  versions       ${row.versions.length} (current ${row.current?.slice(0, 12) ?? 'none'})\n` +
      `  dir            ${row.dir}\n` +
      `  task user      ${row.taskUser ?? 'none (tasks run as the agent)'}\n`;
  }
  if (notRunning) {
    text +=
      '\nThe agent did not answer (is it running with this --data, and may you write its control dir?): connections and tasks are unknown.\n';
  }
  return text;
}
