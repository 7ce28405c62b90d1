/**
 * How the snapshot differ stores a row (processors/snapshot-diff.ts): one packed string per
 * row, its content fingerprint and key, and the comparisons the diff makes without parsing.
 */
import { hash } from 'node:crypto';
import type { InventoryChange, InventoryRow } from '../core/records.ts';

/** `packRow`'s output: JSON of [positive, ...content fields, actualizado_en ms]. */
export type PackedRow = string;

/** One change event of pos.inventario.changes. */
export type Change = InventoryChange;

export const rowKey = (deposito: string, productoId: string): string => `${deposito}/${productoId}`;

/** Between fields: a control character no POS text holds; null gets its own marker. */
const SEP = '\u001f';
const NUL = '\u0000';
const text = (v: string | null) => (v === null ? NUL : v);

/**
 * What identifies a row's content: every field of InventoryRow in schema order but
 * `actualizado_en`, which the POS touches without changing anything we store (a change event
 * must mean a changed row). Written in each state record; computed only for changed rows.
 * test/unit/snapshot-diff.test.ts checks that every schema field but actualizado_en counts.
 */
export function rowFingerprint(row: InventoryRow): string {
  const canonical =
    row.deposito +
    SEP +
    row.producto_id +
    SEP +
    text(row.codigo_barras) +
    SEP +
    row.descripcion +
    SEP +
    text(row.departamento_codigo) +
    SEP +
    text(row.departamento_nombre) +
    SEP +
    text(row.grupo_codigo) +
    SEP +
    text(row.grupo_nombre) +
    SEP +
    text(row.subgrupo_codigo) +
    SEP +
    text(row.subgrupo_nombre) +
    SEP +
    row.unidad +
    SEP +
    row.cantidad +
    SEP +
    text(row.costo) +
    SEP +
    text(row.precio) +
    SEP +
    (row.activo ? '1' : '0');
  return hash('sha1', canonical, 'base64url');
}

const isPositive = (cantidad: string) => !cantidad.startsWith('-') && /[1-9]/.test(cantidad);

/**
 * One row as one flat string. JSON (native, unambiguous whatever a text holds, so no field
 * can run into the next) of an array: first whether the stock is positive (the quarantine
 * rule reads it for every row of a store without unpacking), then every content field in
 * schema order, then actualizado_en last so that `sameContent` can leave it out.
 * test/unit/snapshot-diff.test.ts checks that every schema field round-trips.
 */
export function packRow(row: InventoryRow): PackedRow {
  return JSON.stringify([
    isPositive(row.cantidad) ? 1 : 0,
    row.deposito,
    row.producto_id,
    row.codigo_barras,
    row.descripcion,
    row.departamento_codigo,
    row.departamento_nombre,
    row.grupo_codigo,
    row.grupo_nombre,
    row.subgrupo_codigo,
    row.subgrupo_nombre,
    row.unidad,
    row.cantidad,
    row.costo,
    row.precio,
    row.activo ? 1 : 0,
    row.actualizado_en ? row.actualizado_en.getTime() : null,
  ]);
}

type Packed = [
  number,
  string,
  string,
  string | null,
  string,
  string | null,
  string | null,
  string | null,
  string | null,
  string | null,
  string | null,
  string,
  string,
  string | null,
  string | null,
  number,
  number | null,
];

export function unpackRow(packed: PackedRow): InventoryRow {
  const a = JSON.parse(packed) as Packed;
  return {
    deposito: a[1],
    producto_id: a[2],
    codigo_barras: a[3],
    descripcion: a[4],
    departamento_codigo: a[5],
    departamento_nombre: a[6],
    grupo_codigo: a[7],
    grupo_nombre: a[8],
    subgrupo_codigo: a[9],
    subgrupo_nombre: a[10],
    unidad: a[11],
    cantidad: a[12],
    costo: a[13],
    precio: a[14],
    activo: a[15] === 1,
    actualizado_en: a[16] === null ? null : new Date(a[16]),
  };
}

/**
 * Same content but for actualizado_en: everything before the last comma (actualizado_en is a
 * number or null, so the last comma is always the one before it).
 */
export function sameContent(a: PackedRow, b: PackedRow): boolean {
  return a === b || a.slice(0, a.lastIndexOf(',')) === b.slice(0, b.lastIndexOf(','));
}

/** The packed row's stock was above zero (the first array element, without parsing). */
export const wasPositive = (packed: PackedRow): boolean => packed.charCodeAt(1) === 49; /* '1' */
