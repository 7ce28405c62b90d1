/**
 * Options with their defaults declared once: a component exports a constant of its defaults
 * and reads `withDefaults(DEFAULTS, given)`, never `given.x ?? 500` at the place of use.
 */

/** `given` over `defaults`, where an option given as undefined keeps its default. */
export function withDefaults<D extends object, G extends Partial<D>>(defaults: D, given: G): D & G {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) out[k] = v;
  return out as D & G;
}
