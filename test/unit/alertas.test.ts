/**
 * `fluxion alertas`: what is decided before PostgreSQL is asked anything (arguments, exit
 * codes, the operator's words) and the per-store table. The database side is
 * test/integration/alertas-lifecycle.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { alertasTable } from '../../cli/alertas.ts';
import { alertasMessages } from '../../cli/alertas-messages.ts';
import { main } from '../../cli/main.ts';
import { checkDescarte, parseDesde, parseEstado, type AlertaListada } from '../../sinks/alertas.ts';

const ID = '2c1f5a7e-9b3d-5e4f-a1b2-c3d4e5f60718';

/** Runs the CLI in-process with no database configured: anything that reaches PostgreSQL fails with exit 2 (config). */
async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { env: { LOG_LEVEL: 'silent', ...env }, out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('fluxion alertas: refused before any I/O, in the operator words', () => {
  it('descartar --help states the exit codes', async () => {
    const r = await run(['alertas', 'descartar', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /Exit codes:\n {2}0 .*DESCARTADA\n {2}1 .*\n {2}2 .*\n {2}3 {2}no alert has that id\n {2}4 {2}the alert is no longer OPEN/,
    );
  });

  it(
    'an empty note, a blank --por, an id that is not a UUID, a bad --estado or --desde: exit 2, Spanish by default, English with ' +
      'FLUXION_LOCALE=en',
    async () => {
      const cases: Array<[string[], RegExp]> = [
        [['descartar', ID, '--nota', '  '], /^fluxion: --nota está vacía: diga por qué se descarta la alerta/],
        [['descartar', ID, '--nota', 'conteo', '--por', ' '], /^fluxion: --por está vacío/],
        [['descartar', 'abc123', '--nota', 'conteo'], /^fluxion: "abc123" no es un id de alerta: copie el UUID completo/],
        [['listar', '--estado', 'cerrada'], /^fluxion: --estado "cerrada" no es OPEN, DESCARTADA, RESOLVED ni todas$/],
        [['listar', '--desde', 'ayer'], /^fluxion: --desde "ayer" no es una fecha/],
      ];
      for (const [args, message] of cases) {
        const r = await run(['alertas', ...args]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.err).toMatch(message);
      }
      const en = await run(['alertas', 'descartar', ID, '--nota', ''], { FLUXION_LOCALE: 'en' });
      expect(en.code).toBe(2);
      expect(en.err).toMatch(/^fluxion: --nota is empty: say why the alert is dismissed/);
    },
  );

  it('PostgreSQL not answering: exit 1, saying so and that nothing changed', async () => {
    const r = await run(['alertas', 'descartar', ID, '--nota', 'conteo'], { DATABASE_URL: 'postgres://fluxion@127.0.0.1:1/fluxion' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^fluxion: PostgreSQL no responde \(DATABASE_URL\): .*ECONNREFUSED.*No se cambió nada/);
  });

  it('a missing --nota is a usage error too (commander), and nothing reaches PostgreSQL', async () => {
    const r = await run(['alertas', 'descartar', ID]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/required option '--nota <texto>' not specified/);
  });
});

describe('arguments', () => {
  it('checkDescarte trims, lower-cases the id, and refuses blanks', () => {
    expect(checkDescarte({ alertId: ` ${ID.toUpperCase()} `, nota: ' conteo 12 ', por: ' ana ' })).toEqual({
      alertId: ID,
      nota: 'conteo 12',
      por: 'ana',
    });
    expect(() => checkDescarte({ alertId: ID, nota: '\t', por: 'ana' })).toThrow(
      expect.objectContaining({ code: 'ALERTA_NOTA', exitCode: 2 }),
    );
  });

  it('parseEstado takes the three estados in any case, and todas', () => {
    expect(parseEstado('open')).toEqual(['OPEN']);
    expect(parseEstado('Descartada')).toEqual(['DESCARTADA']);
    expect(parseEstado('RESOLVED')).toEqual(['RESOLVED']);
    expect(parseEstado('todas')).toEqual([]);
    expect(() => parseEstado('closed')).toThrow(expect.objectContaining({ code: 'ALERTA_ESTADO' }));
  });

  it("parseDesde: a date is that day's midnight in Caracas (UTC-4); an instant is itself", () => {
    expect(parseDesde('2026-11-27').toISOString()).toBe('2026-11-27T04:00:00.000Z');
    expect(parseDesde('2026-11-27T14:00:00Z').toISOString()).toBe('2026-11-27T14:00:00.000Z');
    expect(() => parseDesde('2026-13-45')).toThrow(expect.objectContaining({ code: 'ALERTA_DESDE' }));
  });
});

describe('alertasTable', () => {
  const alerta = (extra: Partial<AlertaListada>): AlertaListada => ({
    alert_id: ID,
    ubicacion_id: 'tienda_01',
    deposito: '01',
    producto_id: '000001',
    descripcion: null,
    regla: 'SELLING_AT_ZERO',
    confianza: 0.5,
    estado: 'OPEN',
    resumen: '',
    abierta_en: new Date('2026-11-27T14:00:00Z'),
    actualizada_en: new Date('2026-11-27T14:00:00Z'),
    resuelta_en: null,
    nota: null,
    descartada_por: null,
    descartada_en: null,
    ...extra,
  });

  it('one block per store, headers in the locale, the dismissal and the resolution in the note column', () => {
    const lines = alertasTable(
      [
        alerta({ confianza: 0.9, descripcion: 'HARINA PAN 1KG' }),
        alerta({
          alert_id: 'x',
          estado: 'DESCARTADA',
          nota: 'conteo 12',
          descartada_por: 'ana',
          descartada_en: new Date('2026-11-27T15:00:00Z'),
          resuelta_en: new Date('2026-11-27T16:30:00Z'),
        }),
        alerta({ ubicacion_id: 'tienda_02' }),
      ],
      alertasMessages('es'),
    );
    expect(lines[0]).toBe('tienda_01: 2 alerta(s)');
    expect(lines[1]).toMatch(/^ {2}alert_id +deposito +producto +descripción +regla +confianza +abierta \(Caracas\) +estado +nota$/);
    expect(lines[2]).toMatch(/HARINA PAN 1KG +SELLING_AT_ZERO +0\.90 +2026-11-27 10:00 +OPEN$/);
    expect(lines[3]).toMatch(/DESCARTADA +ana el 2026-11-27 11:00: conteo 12; stock de vuelta 2026-11-27 12:30$/);
    expect(lines[4]).toBe('');
    expect(lines[5]).toBe('tienda_02: 1 alerta(s)');
    expect(alertasTable([alerta({})], alertasMessages('en'))[1]).toMatch(/product +description +rule +confidence +opened \(Caracas\)/);
  });
});
