import fc from 'fast-check';
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';

// kafkajs's DefaultPartitioner is the Java client's (murmur2, sign bit masked): ours must
// place every store exactly where a Java producer keyed by ubicacion_id would.
const javaCompatible = Partitioners.DefaultPartitioner();

function kafkajsPartition(key: string, count: number): number {
  const partitionMetadata = Array.from({ length: count }, (_, i) => ({
    partitionId: i,
    leader: 1,
    replicas: [1],
    isr: [1],
    partitionErrorCode: 0,
  }));
  return javaCompatible({ topic: 't', partitionMetadata, message: { key, value: null } });
}

describe('placement by ubicacion', () => {
  it("matches the Java-compatible partitioner for the chain's store ids", () => {
    for (const id of ['tienda_01', 'tienda_12', 'cedi_frio', 'cedi_seco', 'cedi_verde', 'tienda_13']) {
      for (const count of [1, 3, 6, 12]) expect(partitionForUbicacion(id, count)).toBe(kafkajsPartition(id, count));
    }
  });

  it('matches it for any key and partition count (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 0, maxLength: 40 }), fc.integer({ min: 1, max: 500 }), (key, count) => {
        expect(partitionForUbicacion(key, count)).toBe(kafkajsPartition(key, count));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a partition count below 1', () => {
    expect(() => partitionForUbicacion('tienda_01', 0)).toThrow(/partition count must be >= 1/);
  });
});
