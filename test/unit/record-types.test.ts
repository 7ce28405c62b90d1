/**
 * The TypeScript record types written by hand beside schemas/*.avsc must say what the schemas
 * say: the same fields, each of the JavaScript type avsc reads and writes for it with
 * core/avro/logical-types.ts (decimals, dates and uuids as strings, instants as Date), nullable
 * exactly where the schema has a null branch, enums with the same symbols, nested records
 * checked the same way. The TypeScript compiler reads the types, avsc the schemas; a type
 * moved to another file fails here by name (update RECORD_TYPES).
 */
import { join } from 'node:path';
import type avro from 'avsc';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { createAvroType, loadSharedTypes, loadSubjectSchemas } from '../../core/avro/schemas.ts';
import { PROJECT_ROOT, SCHEMAS_DIR } from '../../core/paths.ts';

/** Schema (a topic's value, or a shared type of schemas/types/) -> the TypeScript types that mirror it. */
const RECORD_TYPES: Array<{ schema: string; file: string; type: string }> = [
  { schema: 'types/InventoryRow', file: 'core/records.ts', type: 'InventoryRow' },
  { schema: 'types/VentaLinea', file: 'core/records.ts', type: 'VentaLinea' },
  { schema: 'pos.inventario.changes', file: 'core/records.ts', type: 'InventoryChange' },
  { schema: 'pos.ventas', file: 'core/records.ts', type: 'Venta' },
  { schema: 'alerts.phantom-zeros', file: 'core/records.ts', type: 'PhantomAlert' },
  { schema: 'pos.inventario.quarantine', file: 'core/records.ts', type: 'QuarantineRecord' },
  { schema: 'ops.etl-runs', file: 'core/etl-run.ts', type: 'EtlRun' },
  { schema: 'pos.inventario.snapshots', file: 'processors/snapshot-diff.ts', type: 'SnapshotChunk' },
  { schema: 'pos.inventario.state', file: 'processors/differ-state-layout.ts', type: 'StateRecord' },
  { schema: 'pos.ventas.raw', file: 'processors/ventas-dedupe.ts', type: 'VentaRaw' },
  { schema: 'pos.ventas.state', file: 'processors/ventas-dedupe.ts', type: 'VentaStateRecord' },
  { schema: 'alerts.phantom-zeros.state', file: 'processors/phantom-records.ts', type: 'PhantomStateRecord' },
];

const subjects = new Map(loadSubjectSchemas().map((s) => [s.topic, s.schema]));
const shared = loadSharedTypes(join(SCHEMAS_DIR, 'types'));
function avroTypeOf(name: string): avro.Type {
  const schema = name.startsWith('types/') ? [...shared.values()].find((s) => s.name === name.slice('types/'.length)) : subjects.get(name);
  if (!schema) throw new Error(`no schema ${name} in schemas/`);
  return createAvroType(schema, name);
}

const program = ts.createProgram([...new Set(RECORD_TYPES.map((r) => join(PROJECT_ROOT, r.file)))], {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  allowImportingTsExtensions: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2023,
  types: ['node'],
});
const checker = program.getTypeChecker();

function declaredType(file: string, name: string): { type: ts.Type; node: ts.Node } {
  const source = program.getSourceFile(join(PROJECT_ROOT, file));
  if (!source) throw new Error(`${file} not found`);
  let found: ts.Node | undefined;
  source.forEachChild((n) => {
    if ((ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) && n.name.text === name) found = n;
  });
  if (!found) throw new Error(`${file} declares no type ${name}: update RECORD_TYPES in test/unit/record-types.test.ts`);
  return { type: checker.getTypeAtLocation(found), node: found };
}

const LOGICAL_AS: Record<string, 'string' | 'Date'> = { decimal: 'string', date: 'string', uuid: 'string', 'timestamp-millis': 'Date' };
const PRIMITIVE_AS: Record<string, string> = {
  string: 'string',
  boolean: 'boolean',
  int: 'number',
  long: 'number',
  float: 'number',
  double: 'number',
  bytes: 'Buffer',
};

/** Where `ts` differs from what avsc gives for `avro` (empty: they agree). */
function differences(avroType: avro.Type, tsType: ts.Type, at: string, node: ts.Node): string[] {
  const typeName = avroType.typeName;
  const shown = checker.typeToString(tsType);
  const branches = tsType.isUnion() ? tsType.types : [tsType];
  const nonNull = branches.filter((b) => !(b.flags & ts.TypeFlags.Null));
  const nullable = nonNull.length < branches.length;
  if (typeName.startsWith('union')) {
    const avroBranches: avro.Type[] = (avroType as avro.types.UnwrappedUnionType).types;
    const avroNonNull = avroBranches.filter((b) => b.typeName !== 'null');
    if (avroNonNull.length !== 1) return [`${at}: only unions of null and one type are checked (${typeName})`];
    if (!nullable) return [`${at}: the schema allows null, ${shown} does not`];
    const rest = nonNull.length === 1 ? nonNull[0]! : checker.getNonNullableType(tsType);
    return differences(avroNonNull[0]!, rest, at, node);
  }
  if (nullable) return [`${at}: ${shown} allows null, the schema does not`];
  if (typeName.startsWith('logical:')) {
    const want = LOGICAL_AS[typeName.slice('logical:'.length)];
    return shown === want ? [] : [`${at}: avsc gives ${want ?? typeName} for ${typeName}, the type says ${shown}`];
  }
  if (PRIMITIVE_AS[typeName])
    return shown === PRIMITIVE_AS[typeName] ? [] : [`${at}: avsc gives ${PRIMITIVE_AS[typeName]} for ${typeName}, the type says ${shown}`];
  if (typeName === 'enum') {
    const symbols = [...(avroType as avro.types.EnumType).symbols].sort();
    const literals = branches.map((b) => (b.isStringLiteral() ? b.value : `<${checker.typeToString(b)}>`)).sort();
    return JSON.stringify(symbols) === JSON.stringify(literals)
      ? []
      : [`${at}: enum ${symbols.join('|')}, the type says ${literals.join('|')}`];
  }
  if (typeName === 'array') {
    if (!checker.isArrayType(tsType)) return [`${at}: the schema has an array, the type says ${shown}`];
    return differences(
      (avroType as avro.types.ArrayType).itemsType,
      checker.getTypeArguments(tsType as ts.TypeReference)[0]!,
      `${at}[]`,
      node,
    );
  }
  if (typeName === 'map') {
    const values = checker.getIndexInfoOfType(tsType, ts.IndexKind.String);
    if (!values) return [`${at}: the schema has a map, the type says ${shown}`];
    return differences((avroType as avro.types.MapType).valuesType, values.type, `${at}{}`, node);
  }
  if (typeName === 'record') return recordDifferences(avroType as avro.types.RecordType, tsType, at, node);
  return [`${at}: Avro type ${typeName} is not checked here`];
}

function recordDifferences(record: avro.types.RecordType, tsType: ts.Type, at: string, node: ts.Node): string[] {
  const out: string[] = [];
  const props = new Map(checker.getPropertiesOfType(tsType).map((p) => [p.name, p]));
  const fields = record.fields.map((f) => f.name);
  for (const name of props.keys()) if (!fields.includes(name)) out.push(`${at}.${name}: not in the schema`);
  for (const field of record.fields) {
    const prop = props.get(field.name);
    if (!prop) {
      out.push(`${at}.${field.name}: missing from the type`);
      continue;
    }
    if (prop.flags & ts.SymbolFlags.Optional) out.push(`${at}.${field.name}: optional in the type, always present in what avsc reads`);
    out.push(...differences(field.type, checker.getTypeOfSymbolAtLocation(prop, node), `${at}.${field.name}`, node));
  }
  return out;
}

describe('hand-written record types against schemas/*.avsc', () => {
  it('covers every schema', () => {
    const covered = new Set(RECORD_TYPES.map((r) => r.schema));
    expect([...subjects.keys()].filter((t) => !covered.has(t))).toEqual([]);
  });

  it.each(RECORD_TYPES)('$file $type matches schemas/$schema', ({ schema, file, type }) => {
    const { type: tsType, node } = declaredType(file, type);
    expect(recordDifferences(avroTypeOf(schema) as avro.types.RecordType, tsType, type, node)).toEqual([]);
  });

  it('notices a field missing, a field too many, a wrong nullability, a wrong enum and a wrong JavaScript type', () => {
    const { type: tsType, node } = declaredType('core/records.ts', 'QuarantineRecord');
    const schema = subjects.get('pos.inventario.quarantine')!;
    const fields = schema.fields as Array<{ name: string; type: unknown }>;
    const altered = {
      ...schema,
      fields: [
        ...fields.filter((f) => !['reason', 'note', 'status', 'taken_at'].includes(f.name)),
        { name: 'taken_at', type: { type: 'int', logicalType: 'date' } },
        { name: 'note', type: 'string' },
        { name: 'status', type: { type: 'enum', name: 'QuarantineStatus', symbols: ['QUARANTINED', 'RELEASED'] } },
        { name: 'extra', type: 'long' },
      ],
    };
    expect(recordDifferences(createAvroType(altered) as avro.types.RecordType, tsType, 'QuarantineRecord', node)).toEqual([
      'QuarantineRecord.reason: not in the schema',
      'QuarantineRecord.taken_at: avsc gives string for logical:date, the type says Date',
      'QuarantineRecord.note: string | null allows null, the schema does not',
      'QuarantineRecord.status: enum QUARANTINED|RELEASED, the type says QUARANTINED|RELEASED|RELEASE_REQUESTED|STALE|SUPERSEDED',
      'QuarantineRecord.extra: missing from the type',
    ]);
  });
});
