/** A store list of `n` KLK stores on one local port, one deposito each (large generated scenarios). */
import { writeFileSync } from 'node:fs';

/** Writes the list to `file`; returns the store ids and each one's API key variable. */
export function writeKlkStoreList(
  file: string,
  n: number,
  port: number,
  idPrefix: string,
  header: string,
): Array<{ id: string; apiKeyEnv: string }> {
  const stores: Array<{ id: string; apiKeyEnv: string }> = [];
  const lines = [`# ${header}`, 'ubicaciones:'];
  for (let i = 1; i <= n; i++) {
    const id = `${idPrefix}${String(i).padStart(4, '0')}`;
    const apiKeyEnv = `KLK_API_KEY_${id.toUpperCase()}`;
    stores.push({ id, apiKeyEnv });
    lines.push(
      `  - id: ${id}`,
      `    nombre: "Tienda ${i}"`,
      '    tipo: tienda',
      '    activa: true',
      '    pos: klk',
      '    depositos: ["01"]',
      '    klk:',
      '      base_url:',
      `        local: http://127.0.0.1:${port}/${id}`,
      `        production: https://klk-${id}.example.invalid`,
      `      api_key_env: ${apiKeyEnv}`,
    );
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return stores;
}
