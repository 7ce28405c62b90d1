-- Current inventory and its type-2 history, both built from pos.inventario.changes.

CREATE TABLE inventario_actual (
    ubicacion_id  text NOT NULL,
    deposito      text NOT NULL,
    producto_id   text NOT NULL,
    cantidad      numeric(18,3) NOT NULL,
    costo         numeric(18,4),
    precio        numeric(18,4),
    activo        boolean NOT NULL,
    snapshot_id   uuid NOT NULL,
    taken_at      timestamptz NOT NULL,
    actualizado_en timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ubicacion_id, deposito, producto_id)
) WITH (fillfactor = 90);  -- leaves room for HOT updates: about 5% of rows change every 30 minutes
COMMENT ON TABLE inventario_actual IS 'One row per product and deposito: the last applied snapshot''s value';

-- One row per change: [valid_from, valid_to) is when the row was the store's truth.
-- valid_to IS NULL = still current. A product that vanished (op d) has its interval closed
-- and no open row. Partitioned by month of valid_from; rows of a month without its
-- partition land in the default one until inventario_historico_asegurar_mes() moves them.
CREATE TABLE inventario_historico (
    ubicacion_id  text NOT NULL,
    deposito      text NOT NULL,
    producto_id   text NOT NULL,
    cantidad      numeric(18,3) NOT NULL,
    costo         numeric(18,4),
    precio        numeric(18,4),
    activo        boolean NOT NULL,
    op            char(1) NOT NULL CHECK (op IN ('c', 'u')),
    snapshot_id   uuid NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    PRIMARY KEY (ubicacion_id, deposito, producto_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
) PARTITION BY RANGE (valid_from);

CREATE TABLE inventario_historico_default PARTITION OF inventario_historico DEFAULT;

-- "inventory of store X at time T": one range scan per store
CREATE INDEX inventario_historico_al ON inventario_historico (ubicacion_id, valid_from) INCLUDE (valid_to);
-- the sink closes open intervals by key
CREATE INDEX inventario_historico_abiertos ON inventario_historico (ubicacion_id, deposito, producto_id) WHERE valid_to IS NULL;

-- Creates the month's partition of inventario_historico (UTC months) if missing, first
-- moving any rows of that month out of the default partition. Returns the partition name.
CREATE FUNCTION inventario_historico_asegurar_mes(p_ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    desde  timestamptz := date_trunc('month', p_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hasta  timestamptz := (date_trunc('month', p_ts AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    nombre text := 'inventario_historico_' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(nombre) IS NOT NULL THEN
        RETURN nombre;
    END IF;
    CREATE TEMP TABLE inventario_historico_mover ON COMMIT DROP AS
        SELECT * FROM inventario_historico_default WHERE valid_from >= desde AND valid_from < hasta;
    DELETE FROM inventario_historico_default WHERE valid_from >= desde AND valid_from < hasta;
    EXECUTE format('CREATE TABLE %I PARTITION OF inventario_historico FOR VALUES FROM (%L) TO (%L)', nombre, desde, hasta);
    INSERT INTO inventario_historico SELECT * FROM inventario_historico_mover;
    DROP TABLE inventario_historico_mover;
    RETURN nombre;
END
$$;

-- The inventory a store had at instant p_ts (rows valid at p_ts).
CREATE FUNCTION inventario_al(p_ts timestamptz, p_ubicacion text)
RETURNS TABLE (
    ubicacion_id text, deposito text, producto_id text,
    cantidad numeric(18,3), costo numeric(18,4), precio numeric(18,4), activo boolean,
    snapshot_id uuid, valid_from timestamptz, valid_to timestamptz
)
LANGUAGE sql STABLE AS $$
    SELECT h.ubicacion_id, h.deposito, h.producto_id, h.cantidad, h.costo, h.precio, h.activo,
           h.snapshot_id, h.valid_from, h.valid_to
    FROM inventario_historico h
    WHERE h.ubicacion_id = p_ubicacion
      AND h.valid_from <= p_ts
      AND (h.valid_to IS NULL OR h.valid_to > p_ts)
$$;
