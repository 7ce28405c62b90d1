/**
 * A realistic product catalogue for one POS, deterministic from a seed: departments, groups
 * and subgroups (some missing), weighed goods with 3 decimals, products without a barcode
 * or with several, inactive products, PROCURA supplies, and accented descriptions.
 *
 * A product is a pure function of (seed, index): `Catalog.at(i)` draws it from its own
 * sequence (prng.ts mixIndex), so a catalogue of any size costs no memory and a page of it costs
 * only its rows.
 */
import { hashSeed, mixIndex, SeededRng, type Rng } from './prng.ts';

export interface Clasificacion {
  codigo: string;
  nombre: string;
}

export interface Producto {
  producto_id: string;
  descripcion: string;
  departamento: Clasificacion;
  grupo: Clasificacion | null;
  subgrupo: Clasificacion | null;
  unidad: 'UND' | 'KG';
  /** Unit cost and price in ten-thousandths (scale 4). */
  costo: bigint;
  precio: bigint;
  activo: boolean;
  /** Codes of the product; BARRA ones are barcodes (Stellar MA_CODIGOS). */
  codigos: Array<{ codigo: string; tipo: 'BARRA' | 'INTERNO' }>;
}

export const PROCURA = '000017';

const DEPARTAMENTOS: Array<{ codigo: string; nombre: string; grupos: Array<[string, string[]]>; pesado: number }> = [
  {
    codigo: '000001',
    nombre: 'CHARCUTERÍA',
    pesado: 0.8,
    grupos: [
      ['JAMONES', ['JAMÓN COCIDO', 'JAMÓN SERRANO']],
      ['QUESOS', ['QUESO BLANCO', 'QUESO AMARILLO']],
    ],
  },
  {
    codigo: '000002',
    nombre: 'FRUTAS Y VERDURAS',
    pesado: 0.9,
    grupos: [
      ['FRUTAS', ['CÍTRICOS', 'TROPICALES']],
      ['VERDURAS', ['HOJAS', 'RAÍCES']],
    ],
  },
  {
    codigo: '000003',
    nombre: 'VÍVERES',
    pesado: 0.05,
    grupos: [
      ['HARINAS', ['HARINA DE MAÍZ', 'HARINA DE TRIGO']],
      ['GRANOS', ['CARAOTAS', 'ARROZ']],
      ['AZÚCAR Y CAFÉ', ['AZÚCAR', 'CAFÉ']],
    ],
  },
  {
    codigo: '000004',
    nombre: 'CARNICERÍA',
    pesado: 0.95,
    grupos: [
      ['RES', ['CORTES', 'MOLIDA']],
      ['POLLO', ['ENTERO', 'PIEZAS']],
    ],
  },
  {
    codigo: '000005',
    nombre: 'BEBIDAS',
    pesado: 0,
    grupos: [
      ['REFRESCOS', ['COLAS', 'SABORES']],
      ['JUGOS', ['NÉCTARES', 'NATURALES']],
    ],
  },
  {
    codigo: '000006',
    nombre: 'LIMPIEZA',
    pesado: 0,
    grupos: [
      ['DETERGENTES', ['POLVO', 'LÍQUIDO']],
      ['PAPEL', ['HIGIÉNICO', 'SERVILLETAS']],
    ],
  },
  {
    codigo: '000007',
    nombre: 'PANADERÍA',
    pesado: 0.3,
    grupos: [
      ['PANES', ['CANILLA', 'SOBADO']],
      ['DULCES', ['TORTAS', 'GALLETAS']],
    ],
  },
  { codigo: PROCURA, nombre: 'PROCURA', pesado: 0, grupos: [['INSUMOS', ['BOLSAS', 'ETIQUETAS']]] },
];

const NOMBRES = [
  'PAN',
  'AREPA',
  'PIÑA',
  'AZÚCAR',
  'CAFÉ',
  'LECHE',
  'MANTEQUILLA',
  'ACEITE',
  'ATÚN',
  'SARDINA',
  'PASTA',
  'SALSA',
  'MAYONESA',
  'JABÓN',
  'CHAMPÚ',
  'CEBOLLA',
  'TOMATE',
  'PLÁTANO',
  'NARANJA',
  'LIMÓN',
  'POLLO',
  'CARNE',
  'QUESO',
  'JAMÓN',
  'GALLETA',
  'REFRESCO',
  'JUGO',
  'AGUA',
  'DETERGENTE',
  'CLORO',
];
const MARCAS = ['LA GRANJA', 'DOÑA ROSA', 'EL TIGRE', 'SANTA ANA', 'MAVESA', 'POLAR', 'ÑAPA', 'SOL', 'PRIMOR', 'MONTAÑA'];
const PRESENTACIONES = ['1KG', '500G', '250G', '1L', '2L', '355ML', '12UND', '6UND', '900G', '400G'];

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function money(rng: Rng, minCents: number, maxCents: number): bigint {
  return BigInt(rng.int(minCents, maxCents)) * 100n; // whole cents, scale 4
}

/** Every department code a catalogue can draw (the simulator's receipts run per department). */
export const DEPARTAMENTO_CODIGOS: readonly string[] = DEPARTAMENTOS.map((d) => d.codigo);

const MERCANCIA = DEPARTAMENTOS.filter((d) => d.codigo !== PROCURA);
const PROCURA_DEP = DEPARTAMENTOS.find((d) => d.codigo === PROCURA)!;

/** Product `i` (0-based; code i + 1) drawn from its own sequence `rng`. */
function drawProducto(rng: Rng, i: number): Producto {
  // PROCURA is rare: about 1% of products.
  const dep = rng.chance(0.01) ? PROCURA_DEP : rng.pick(MERCANCIA);
  const gIndex = rng.int(0, dep.grupos.length - 1);
  const [gName, subs] = dep.grupos[gIndex]!;
  const grupo = rng.chance(0.03) ? null : { codigo: `${dep.codigo.slice(-2)}${pad(gIndex + 1, 2)}`, nombre: gName };
  const sIndex = rng.int(0, subs.length - 1);
  const subgrupo = grupo === null || rng.chance(0.04) ? null : { codigo: `${grupo.codigo}${pad(sIndex + 1, 2)}`, nombre: subs[sIndex]! };
  const unidad: 'UND' | 'KG' = rng.chance(dep.pesado) ? 'KG' : 'UND';
  const costo = money(rng, 20, 4_000);
  const precio = ((costo * BigInt(rng.int(110, 160))) / 100n / 100n) * 100n; // margin, rounded to cents
  const codigos: Producto['codigos'] = [];
  const barras = rng.chance(0.05) ? 0 : rng.chance(0.03) ? 2 : 1; // some without barcode, some with two
  for (let b = 0; b < barras; b++) codigos.push({ codigo: `759${pad(rng.int(0, 999_999_999), 9)}${rng.int(0, 9)}`, tipo: 'BARRA' });
  codigos.push({ codigo: `INT${pad(i + 1, 6)}`, tipo: 'INTERNO' });
  return {
    producto_id: pad(i + 1, 6),
    descripcion: `${rng.pick(NOMBRES)} ${rng.pick(MARCAS)} ${unidad === 'KG' ? 'KG' : rng.pick(PRESENTACIONES)}`,
    departamento: { codigo: dep.codigo, nombre: dep.nombre },
    grupo,
    subgrupo,
    unidad,
    costo,
    precio: precio > 0n ? precio : costo,
    activo: !rng.chance(0.02),
    codigos,
  };
}

/** `size` products with codes 000001, 000002, ... (a CEDI and a store can share codes), none kept in memory. */
export class Catalog implements Iterable<Producto> {
  readonly size: number;
  private readonly seedHash: number;
  /** Restarted for each product: drawing is synchronous, so one instance serves every row. */
  private readonly rng = new SeededRng();
  /** Descriptions changed at the POS (StoreSimulation.renombrar): the only product data kept in memory. */
  private readonly renamed = new Map<number, string>();

  constructor(seed: number | string, size: number) {
    if (!Number.isInteger(size) || size < 0) throw new Error(`a catalogue has a whole number of products, got ${size}`);
    this.size = size;
    this.seedHash = hashSeed(`catalog:${seed}`);
  }

  /** Product at 0-based `index` (code index + 1). */
  at(index: number): Producto {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new RangeError(`no product at index ${index} of ${this.size}`);
    const p = drawProducto(this.rng.reset(mixIndex(this.seedHash, index)), index);
    const descripcion = this.renamed.get(index);
    if (descripcion !== undefined) p.descripcion = descripcion;
    return p;
  }

  /** From now on, the product at `index` is described as `descripcion`. */
  rename(index: number, descripcion: string): void {
    this.at(index);
    this.renamed.set(index, descripcion);
  }

  /** The code of the product at `index`, without drawing it. */
  codeAt(index: number): string {
    return pad(index + 1, 6);
  }

  /** The 0-based index of a product code, or undefined when the catalogue has no such product. */
  indexOf(productoId: string): number | undefined {
    if (!/^\d{6,}$/.test(productoId)) return undefined;
    const index = Number(productoId) - 1;
    return index >= 0 && index < this.size && pad(index + 1, 6) === productoId ? index : undefined;
  }

  *[Symbol.iterator](): Iterator<Producto> {
    for (let i = 0; i < this.size; i++) yield this.at(i);
  }
}

/** The lowest BARRA code, as the Stellar query picks it; null when the product has none. */
export function codigoBarras(p: Producto): string | null {
  const barras = p.codigos
    .filter((c) => c.tipo === 'BARRA')
    .map((c) => c.codigo)
    .sort();
  return barras[0] ?? null;
}
