/** The chain's business time zone: America/Caracas, UTC-4 all year (no daylight saving). */
export const BUSINESS_TIME_ZONE = 'America/Caracas';
const CARACAS_OFFSET_MS = 4 * 3_600_000;

/** The store-local business date (YYYY-MM-DD) of an instant. */
export function fechaCaracas(instant: Date): string {
  return new Date(instant.getTime() - CARACAS_OFFSET_MS).toISOString().slice(0, 10);
}

/** Yesterday's business date, as of `now` (what `--recovery` re-reads). */
export function ayerCaracas(now: Date): string {
  return fechaCaracas(new Date(now.getTime() - 86_400_000));
}
