/** One valid record per subject, as the components will produce them. */
export function sampleRecords(): Record<string, unknown> {
  const row = {
    deposito: '01',
    producto_id: '000123',
    codigo_barras: '7591234567890',
    descripcion: 'HARINA PAN 1KG (maíz)',
    departamento_codigo: '000003',
    departamento_nombre: 'VIVERES',
    grupo_codigo: '0031',
    grupo_nombre: 'HARINAS',
    subgrupo_codigo: null,
    subgrupo_nombre: null,
    unidad: 'UND',
    cantidad: '124.000',
    costo: '0.8500',
    precio: '1.2000',
    activo: true,
    actualizado_en: new Date('2026-11-27T14:29:41Z'),
  };
  const weighed = { ...row, producto_id: '004455', codigo_barras: null, unidad: 'KG', cantidad: '-3.125', costo: null, precio: null, actualizado_en: null };
  const linea = {
    ubicacion_id: 'tienda_01',
    fecha: '2026-11-27',
    numero_factura: 'F-00012345',
    linea: 1,
    fecha_hora: new Date('2026-11-27T13:14:03Z'),
    producto_id: '000123',
    cantidad: '2.000',
    precio_unitario: '1.2000',
    descuento: '0.0000',
    total: '2.4000',
    caja: '03',
    anulada: false,
  };
  const snapshotId = '6f1c2b7e-5d4a-4c3b-9a8f-0e1d2c3b4a59';
  const takenAt = new Date('2026-11-27T14:30:00Z');
  return {
    'pos.inventario.snapshots': { snapshot_id: snapshotId, ubicacion_id: 'tienda_01', source: 'KLK', taken_at: takenAt, chunk_index: 0, chunk_count: 1, row_count: 2, rows: [row, weighed] },
    'pos.inventario.state': { ubicacion_id: 'tienda_01', row, fingerprint: 'sha1:abc', snapshot_id: snapshotId, taken_at: takenAt },
    'pos.inventario.quarantine': {
      snapshot_id: snapshotId, ubicacion_id: 'tienda_01', source: 'KLK', taken_at: takenAt, status: 'QUARANTINED',
      reason: '812 of 1000 products with stock dropped to 0 or below and 0 vanished (81.2% > 30%)', row_count: 1000, chunk_count: 1,
      partition: 3, first_offset: 1234, updated_at: takenAt, note: null,
    },
    'pos.ventas.state': { ubicacion_id: 'tienda_01', fingerprint: 'sha1:def', first_seen_at: new Date('2026-11-27T14:00:05Z'), last_seen_at: new Date('2026-11-27T15:00:04Z') },
    'alerts.phantom-zeros.state': { ubicacion_id: 'tienda_01', state_json: '{"stock":"0.000"}', open_alert_id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' },
    'pos.inventario.changes': { op: 'u', ubicacion_id: 'tienda_01', deposito: '01', producto_id: '000123', before: { ...row, cantidad: '125.000' }, after: row, snapshot_id: snapshotId, taken_at: takenAt, source: 'KLK' },
    'pos.ventas.raw': { linea, extracted_at: new Date('2026-11-27T14:00:05Z'), run_id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b' },
    'pos.ventas': { op: 'c', linea: { ...linea, cantidad: '-1.000', total: '-1.2000' }, fingerprint: 'sha1:def', first_seen_at: new Date('2026-11-27T14:00:05Z'), extracted_at: new Date('2026-11-27T14:00:05Z') },
    'alerts.phantom-zeros': {
      alert_id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', ubicacion_id: 'tienda_01', deposito: '01', producto_id: '000123',
      rule: 'SELLING_AT_ZERO', confidence: 0.9, status: 'OPEN', summary: 'sold 5 units while recorded at 0',
      evidence: { cantidad: '0.000', vendido_desde: '5.000' }, opened_at: takenAt, updated_at: takenAt,
    },
    'ops.etl-runs': {
      run_id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b', job: 'INVENTARIO', ubicacion_id: 'cedi_frio', status: 'FAILED', rows: 0,
      started_at: takenAt, finished_at: new Date('2026-11-27T14:30:09Z'), snapshot_id: null, fecha: null,
      error_class: 'TIMEOUT', error_message: 'cedi_frio: SQL Server did not answer in 15000 ms',
    },
  };
}
