/**
 * bench/avro-encode: the cost of Avro-encoding inventory rows with our logical types, side by
 * side in one process: InventoryRow as the extractor encodes it (three decimals), and the same
 * rows with the decimals declared as plain strings (what the decimals cost, by difference).
 * A micro-benchmark of one hot spot of the extractor's profile, not of the pipeline.
 *
 *   node bench/avro-encode.ts [--rows 100000] [--rounds 7]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../core/paths.ts';
import { createAvroType } from '../core/avro/schemas.ts';
import { median, round } from './lib/stats.ts';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '7' } } });
const rowCount = Number(values.rows);
const rounds = Number(values.rounds);
if (!Number.isInteger(rowCount) || rowCount < 1 || !Number.isInteger(rounds) || rounds < 2) {
  process.stderr.write('usage: node bench/avro-encode.ts [--rows N >= 1] [--rounds N >= 2]\n');
  process.exit(2);
}

const rowSchema = JSON.parse(readFileSync(join(PROJECT_ROOT, 'schemas', 'types', 'InventoryRow.avsc'), 'utf8')) as {
  fields: Array<{ name: string; type: unknown }>;
};
const isDecimal = (t: unknown): boolean =>
  Array.isArray(t) ? t.some(isDecimal) : typeof t === 'object' && t !== null && (t as { logicalType?: string }).logicalType === 'decimal';
const asStrings = {
  ...rowSchema,
  name: 'InventoryRowDecimalsAsStrings',
  fields: rowSchema.fields.map((f) => (isDecimal(f.type) ? { ...f, type: Array.isArray(f.type) ? ['null', 'string'] : 'string' } : f)),
};
const withDecimals = createAvroType(rowSchema, 'InventoryRow.avsc');
const withStrings = createAvroType(asStrings, 'InventoryRow (decimals as strings)');

// Shapes of the simulators' rows: quantities with 3 decimals, prices with 4, some null.
const rows = Array.from({ length: rowCount }, (_, i) => ({
  deposito: '01',
  producto_id: `P${String(i).padStart(6, '0')}`,
  codigo_barras: i % 7 ? `759${String(i).padStart(10, '0')}` : null,
  descripcion: 'HARINA DE MAIZ PRECOCIDA 1KG',
  departamento_codigo: '01',
  departamento_nombre: 'VIVERES',
  grupo_codigo: '0101',
  grupo_nombre: 'HARINAS',
  subgrupo_codigo: null,
  subgrupo_nombre: null,
  unidad: 'UND',
  cantidad: `${(i * 37) % 5000}.${String(i % 1000).padStart(3, '0')}`,
  costo: i % 11 ? `${(i * 13) % 900}.${String(i % 10000).padStart(4, '0')}` : null,
  precio: `${(i * 17) % 1200}.5000`,
  activo: i % 50 !== 0,
  actualizado_en: new Date(1_764_400_000_000 + i),
}));

/** Milliseconds to encode every row once. */
function pass(type: typeof withDecimals): number {
  const t0 = performance.now();
  for (const r of rows) type.toBuffer(r);
  return performance.now() - t0;
}

const times = { decimals: [] as number[], strings: [] as number[] };
for (let k = 0; k < rounds; k++) {
  // Alternate which goes first: the machine is noisy, and the JIT warms on the first round.
  const order = k % 2 ? (['strings', 'decimals'] as const) : (['decimals', 'strings'] as const);
  for (const which of order) times[which].push(pass(which === 'decimals' ? withDecimals : withStrings));
}
const usPerRow = (ms: number[]) => round((median(ms.slice(1)) * 1000) / rowCount, 3);
const d = usPerRow(times.decimals);
const s = usPerRow(times.strings);
process.stdout.write(
  `${JSON.stringify({
    bench: 'avro-encode',
    rows: rowCount,
    rounds,
    node: process.version,
    us_per_row: { inventory_row: d, decimals_as_strings: s, decimals_cost: round(d - s, 3) },
    ratio: round(d / s, 2),
  })}\n`,
);
