-- inventario_historico_asegurar_mes for any history table of the same shape, so that
-- `fluxion replay historico` can build a partitioned shadow table with the sink's own
-- statements before swapping it in. Partitions are named <table>_YYYY_MM and the default
-- partition <table>_default; the replay's swap renames them with their table.

CREATE FUNCTION inventario_historico_asegurar_mes(p_ts timestamptz, p_tabla text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    desde   timestamptz := date_trunc('month', p_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hasta   timestamptz := (date_trunc('month', p_ts AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    nombre  text := p_tabla || '_' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY_MM');
    defecto text := p_tabla || '_default';
BEGIN
    IF to_regclass(nombre) IS NOT NULL THEN
        RETURN nombre;
    END IF;
    -- Rows of the month that landed in the default partition move into the new one.
    EXECUTE format('CREATE TEMP TABLE inventario_historico_mover ON COMMIT DROP AS SELECT * FROM %I WHERE valid_from >= %L AND valid_from < %L', defecto, desde, hasta);
    EXECUTE format('DELETE FROM %I WHERE valid_from >= %L AND valid_from < %L', defecto, desde, hasta);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', nombre, p_tabla, desde, hasta);
    EXECUTE format('INSERT INTO %I SELECT * FROM inventario_historico_mover', p_tabla);
    DROP TABLE inventario_historico_mover;
    RETURN nombre;
END
$$;

CREATE OR REPLACE FUNCTION inventario_historico_asegurar_mes(p_ts timestamptz) RETURNS text
LANGUAGE sql AS $$
    SELECT inventario_historico_asegurar_mes(p_ts, 'inventario_historico')
$$;
