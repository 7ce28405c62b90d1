/**
 * isConnectionError decides between "wait for PostgreSQL" and "this batch is bad": a miss
 * crashes the sink during a restart (it did, with the pg message below), a false hit makes
 * it retry bad data for ever.
 */
import { describe, expect, it } from 'vitest';
import { isConnectionError } from '../../core/postgres.ts';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('isConnectionError', () => {
  it.each([
    ['a refused connection', withCode('ECONNREFUSED')],
    ['the server shutting down (57P01)', withCode('57P01', 'terminating connection due to administrator command')],
    ['a connection failure class 08', withCode('08006')],
    ['pg after its socket broke', new Error('Client has encountered a connection error and is not queryable')],
    ['pg after the server closed', new Error('Connection terminated unexpectedly')],
    ['a pool that cannot connect in time', new Error('timeout exceeded when trying to connect')],
  ])('waits on %s', (_, err) => expect(isConnectionError(err)).toBe(true));

  it.each([
    ['a unique violation', withCode('23505', 'duplicate key value violates unique constraint')],
    ['a NUL byte in text', withCode('22021', 'invalid byte sequence for encoding "UTF8": 0x00')],
    ['a missing table', withCode('42P01', 'relation "ventas" does not exist')],
    ['anything else', new Error('boom')],
  ])('does not wait on %s', (_, err) => expect(isConnectionError(err)).toBe(false));
});
