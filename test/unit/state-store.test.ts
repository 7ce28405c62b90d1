import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkpointProblem,
  memoryStateStore,
  openStateStore,
  wipeStateStore,
  type OpenStateStoreOptions,
  type StateStore,
} from '../../processors/runtime/state-store.ts';

const roots: string[] = [];
const opened: StateStore[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function root(): string {
  const r = mkdtempSync(join(tmpdir(), 'state-store-test-'));
  roots.push(r);
  return r;
}

const bounds = (low: string, high: string) => ({ 'x.state': { low, high } });
const options = (r: string, extra: Partial<OpenStateStoreOptions> = {}): OpenStateStoreOptions => ({
  root: r,
  name: 'differ-g',
  partition: 2,
  topics: ['x.state'],
  layout: 'test-1',
  bounds: bounds('0', '100'),
  ...extra,
});

function openStore(o: OpenStateStoreOptions) {
  const result = openStateStore(o);
  opened.push(result.store);
  return result;
}

async function close(s: StateStore): Promise<void> {
  opened.splice(opened.indexOf(s), 1);
  await s.close();
}

describe('state store (lmdb): checkpoint and pending writes', () => {
  it('keeps flushed rows and the checkpoint across a reopen; a new store starts wiped with no checkpoint', async () => {
    const r = root();
    const first = openStore(options(r));
    expect(first.wiped).toMatch(/no checkpoint/);
    expect(first.store.checkpoint).toEqual({});
    first.store.put('T1/01/A', 'a');
    first.store.put('T1/01/B', 'b');
    expect(first.store.get('T1/01/A')).toBe('a');
    first.store.flush({ 'x.state': '42' });
    await close(first.store);

    const again = openStore(options(r));
    expect(again.wiped).toBeNull();
    expect(again.store.checkpoint).toEqual({ 'x.state': '42' });
    expect(again.store.get('T1/01/B')).toBe('b');
  });

  it('an aborted transaction (discard) leaves nothing, on disk or in reads', async () => {
    const r = root();
    const { store } = openStore(options(r));
    store.put('T1/01/A', 'a');
    store.flush({ 'x.state': '1' });
    store.put('T1/01/A', 'changed');
    store.delete('T1/01/A');
    store.put('T1/01/Z', 'z');
    store.discard();
    expect(store.get('T1/01/A')).toBe('a');
    expect(store.get('T1/01/Z')).toBeUndefined();
    await close(store);
    expect(openStore(options(r)).store.get('T1/01/Z')).toBeUndefined();
  });

  it('entries(prefix) merges pending puts and deletes in key order and stays inside the prefix', () => {
    const { store } = openStore(options(root()));
    for (const k of ['T1/01/B', 'T1/01/D', 'T10/01/A', 'T1', 'T2/01/A']) store.put(k, k);
    store.flush({ 'x.state': '1' });
    store.put('T1/01/A', 'new-a');
    store.put('T1/01/C', 'new-c');
    store.put('T1/01/D', 'new-d');
    store.delete('T1/01/B');
    expect([...store.entries('T1/')]).toEqual([
      ['T1/01/A', 'new-a'],
      ['T1/01/C', 'new-c'],
      ['T1/01/D', 'new-d'],
    ]);
    // The empty prefix is every data key, the checkpoint (a meta key) left out.
    expect([...store.entries('')].map(([k]) => k)).toEqual(['T1', 'T1/01/A', 'T1/01/C', 'T1/01/D', 'T10/01/A', 'T2/01/A']);
  });

  it('a rebuild interrupted before its checkpoint (flushed without one) is wiped on the next open', async () => {
    const r = root();
    const { store } = openStore(options(r));
    store.put('T1/01/A', 'a');
    store.flush();
    await close(store);
    const again = openStore(options(r));
    expect(again.wiped).toMatch(/no checkpoint/);
    expect(again.store.get('T1/01/A')).toBeUndefined();
  });

  it.each([
    ['below the changelog start', { bounds: bounds('50', '100') }, /below the changelog's first offset 50/],
    ['past the changelog end (topic recreated)', { bounds: bounds('0', '10') }, /past the changelog's end 10/],
    ['for other state topics', { topics: ['y.state'], bounds: { 'y.state': { low: '0', high: '100' } } }, /other state topics/],
    ['written in another layout', { layout: 'test-2' }, /layout "test-1", the processor now writes "test-2"/],
    ['older than the tombstone horizon', { now: () => Date.now() + 21 * 3600_000 }, /older than 1200 min/],
  ])('a checkpoint %s is not trusted: the store is wiped', async (_why, extra, message) => {
    const r = root();
    const { store } = openStore(options(r));
    store.put('T1/01/A', 'a');
    store.flush({ 'x.state': '20' });
    await close(store);
    const again = openStore(options(r, extra));
    expect(again.wiped).toMatch(message);
    expect(again.store.get('T1/01/A')).toBeUndefined();
    expect(again.store.checkpoint).toEqual({});
  });

  it('checkpointProblem accepts a checkpoint inside the changelog, at its end included', () => {
    const stored = { topics: ['x.state'], layout: 'l', offsets: { 'x.state': '100' }, at: 1_000 };
    expect(checkpointProblem(stored, { topics: ['x.state'], layout: 'l', bounds: bounds('0', '100') }, 2_000)).toBeNull();
    expect(checkpointProblem(stored, { topics: ['x.state'], layout: 'l', bounds: {} }, 2_000)).toMatch(/no offset for x.state/);
  });
});

describe('state store under kill -9', () => {
  it('a killed process leaves only what it flushed, and its lock is taken over', async () => {
    const r = root();
    const script = `
      import { openStateStore } from ${JSON.stringify(new URL('../../processors/runtime/state-store.ts', import.meta.url).pathname)};
      const { store } = openStateStore({
        root: ${JSON.stringify(r)}, name: 'differ-g', partition: 2, topics: ['x.state'], layout: 'test-1',
        bounds: { 'x.state': { low: '0', high: '100' } },
      });
      store.put('T1/01/A', 'committed');
      store.flush({ 'x.state': '7' });
      store.put('T1/01/A', 'in-flight');
      store.put('T1/01/B', 'in-flight');
      process.kill(process.pid, 'SIGKILL');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, s) => resolve(s)));
    expect(signal).toBe('SIGKILL');
    expect(existsSync(join(r, 'differ-g', '2', 'owner.lock'))).toBe(true);

    const after = openStore(options(r));
    expect(after.wiped).toBeNull();
    expect(after.store.path).toBe(join(r, 'differ-g', '2'));
    expect(after.store.checkpoint).toEqual({ 'x.state': '7' });
    expect(after.store.get('T1/01/A')).toBe('committed');
    expect(after.store.get('T1/01/B')).toBeUndefined();
  });

  it('a directory held by a live process is not shared: the new owner rebuilds in a private one, removed on close', async () => {
    const r = root();
    const holder = openStore(options(r));
    holder.store.put('T1/01/A', 'a');
    holder.store.flush({ 'x.state': '5' });
    await close(holder.store);
    // Another live process holding the lock: this test's parent (a live pid on this host).
    execFileSync('sh', ['-c', `printf '%s %s' "$(hostname)" ${process.ppid} > ${join(r, 'differ-g', '2', 'owner.lock')}`]);
    const second = openStore(options(r));
    expect(second.wiped).toMatch(/held by another live process/);
    expect(second.store.path).toMatch(new RegExp(`/differ-g/2\\.${process.pid}\\.\\d+$`));
    expect(second.store.get('T1/01/A')).toBeUndefined();
    await close(second.store);
    expect(existsSync(second.store.path)).toBe(false);
    expect(() => wipeStateStore(r, 'differ-g', 2)).toThrow(/in use by process/);
  });

  it('a second store of the same partition in one process gets its own directory; the first keeps its rows', async () => {
    const r = root();
    const first = openStore(options(r));
    first.store.put('T1/01/A', 'a');
    first.store.flush({ 'x.state': '5' });
    const second = openStore(options(r));
    expect(second.wiped).toMatch(/held by another live process or store/);
    expect(second.store.path).not.toBe(first.store.path);
    second.store.put('T1/01/A', 'other');
    second.store.flush({ 'x.state': '6' });
    expect(first.store.get('T1/01/A')).toBe('a');
    await close(first.store);
    const third = openStore(options(r));
    expect(third.wiped).toBeNull();
    expect(third.store.get('T1/01/A')).toBe('a');
  });

  it('wipeStateStore removes a stopped store: the next open rebuilds it', async () => {
    const r = root();
    const { store } = openStore(options(r));
    store.put('T1/01/A', 'a');
    store.flush({ 'x.state': '5' });
    await close(store);
    wipeStateStore(r, 'differ-g', 2);
    const again = openStore(options(r));
    expect(again.wiped).toMatch(/no checkpoint/);
    expect(again.store.get('T1/01/A')).toBeUndefined();
  });
});

describe('memory state store (no FLUXION_STATE_DIR)', () => {
  it('has the same pending/flush/discard contract and no checkpoint', () => {
    const store = memoryStateStore(0);
    store.put('T1/01/B', 'b');
    store.flush({ 'x.state': '9' });
    store.put('T1/01/A', 'a');
    store.delete('T1/01/B');
    expect([...store.entries('T1/')]).toEqual([['T1/01/A', 'a']]);
    store.discard();
    expect([...store.entries('T1/')]).toEqual([['T1/01/B', 'b']]);
    expect(store.checkpoint).toEqual({});
  });
});
