-- ABC classification of products by sales value (DESIGN.md section 5): productos_abc_recalcular()
-- fills productos_abc_cache (created by 003_ventas_abc.sql) per store and chain-wide, in SQL,
-- replacing the whole cache atomically. Called by `fluxion abc recalc`, the scheduler's 04:00
-- job and the sink's debounced trigger (sinks/abc-recalc.ts).
--
-- What the classes mean, precisely:
--   window         the business dates (ventas.fecha, America/Caracas) from
--                  ventana_desde = ventana_hasta - (p_window_days - 1) to
--                  ventana_hasta = the business date of p_as_of, both included: the default
--                  90 days are the as-of day (its sales so far) and the 89 before it.
--   sales value    sum of ventas.total of the lines in the window that are not anulada. It is
--                  net of returns (negative lines), then floored at 0 per alcance: a product
--                  whose returns outweigh its sales sold nothing, and a negative value would
--                  push the cumulative share of the others above 100%. Chain-wide, the net
--                  is taken over all stores before flooring (a return in one store offsets a
--                  sale in another, as it does in the chain's books).
--   order          value descending, then producto_id ascending in byte order (COLLATE "C",
--                  whatever the database's locale): the same data always gives the same
--                  ranking, ties included.
--   classes        with "before" = the summed value of the products ranked above it and
--                  "total" = the alcance's summed value: A when before < 80% of total,
--                  B when before < 95%, C otherwise. So the product that reaches or crosses
--                  80% is still A (the first product is always A, even alone at 100%), and
--                  the one that reaches or crosses 95% is still B. Products with value 0
--                  (no sales in the window, only voided lines, returns >= sales) are C.
--   products       per store: those in the store's inventario_actual (any deposito, any
--                  quantity) plus those with a line at the store in the window (voided
--                  ones too), so a product the store carries but did not sell is C, and a
--                  product the store never carried does not clutter its list. Chain-wide:
--                  every product known anywhere: productos, any store's inventario_actual,
--                  or a line in the window. A store appears as an alcance when it has
--                  inventory or a line in the window.
-- Comparisons are made on exact numerics (before * 100 < total * 80), never on the rounded
-- porcentaje_acumulado.

COMMENT ON COLUMN productos_abc_cache.valor_ventas IS 'Net sales value (sum of ventas.total, voided lines excluded) in the window, floored at 0';
COMMENT ON COLUMN productos_abc_cache.porcentaje_acumulado IS 'Share of the alcance''s value of this product and those ranked above it, in percent (0-100, 6 decimals); NULL when the product has no sales value';
COMMENT ON COLUMN productos_abc_cache.ranking IS '1-based position in the alcance: value descending, then producto_id ascending (byte order)';
COMMENT ON COLUMN productos_abc_cache.ventana_desde IS 'First business date (ventas.fecha) of the window, included';
COMMENT ON COLUMN productos_abc_cache.ventana_hasta IS 'Last business date (ventas.fecha) of the window, included: the America/Caracas date of the as-of instant';
COMMENT ON COLUMN productos_abc_cache.calculado_en IS 'When the recalculation that wrote the row ran (its transaction''s start)';

-- Replaces productos_abc_cache with the classification as of p_as_of over p_window_days
-- business days, and returns a summary: one row per alcance ('cadena' first) and class, with
-- the products and the summed value of that class (classes without products included).
--
-- Why DELETE + INSERT in the caller's one transaction (readers never see a half-written cache):
--   under MVCC every reader's statement (and a REPEATABLE READ reader's whole transaction)
--   sees the snapshot it started with: all the old rows until this transaction commits, then
--   all the new ones; the deleted-but-not-yet-reinserted state is never visible to anyone.
--   Readers are never blocked either: plain SELECTs take ACCESS SHARE, which conflicts with
--   none of the locks taken here.
-- Why not the alternatives:
--   TRUNCATE + INSERT takes ACCESS EXCLUSIVE (every reader waits for the whole recalculation)
--   and is not MVCC-safe (a REPEATABLE READ reader whose snapshot predates it sees an empty
--   table). Building a new table and renaming it into place also needs ACCESS EXCLUSIVE, and
--   breaks grants, comments and anything that refers to the table by OID.
--   The cost of DELETE + INSERT is one dead tuple per row per recalculation, which autovacuum
--   reclaims; the cache holds at most (stores + 1) x products rows.
-- Why LOCK ... IN EXCLUSIVE MODE: it serialises recalculations (the debounced sink trigger,
--   the 04:00 job and an operator may overlap) while still letting readers in. Without it, a
--   second recalculation's DELETE would not see the first one's new rows (its snapshot
--   predates their commit), and its INSERT would then fail on the primary key. Each statement
--   of this (volatile) function takes a fresh snapshot, so the DELETE after the lock sees what
--   the previous recalculation committed. Callers run it in READ COMMITTED (the default);
--   under REPEATABLE READ an overlapping recalculation fails with SQLSTATE 40001 instead.
CREATE FUNCTION productos_abc_recalcular(p_as_of timestamptz DEFAULT now(), p_window_days integer DEFAULT 90)
RETURNS TABLE (
    alcance text, clase char(1), productos bigint, valor_ventas numeric,
    ventana_desde date, ventana_hasta date, calculado_en timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_hasta date;
    v_desde date;
BEGIN
    -- 3660 days (ten years) is far beyond any useful window; a bigger number is a typo.
    IF p_as_of IS NULL OR p_window_days IS NULL OR p_window_days < 1 OR p_window_days > 3660 THEN
        RAISE EXCEPTION 'productos_abc_recalcular: p_as_of must be given and p_window_days must be 1 to 3660, got % and %', p_as_of, p_window_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_hasta := (p_as_of AT TIME ZONE 'America/Caracas')::date;
    v_desde := v_hasta - (p_window_days - 1);

    LOCK TABLE productos_abc_cache IN EXCLUSIVE MODE;

    -- 'cadena' names the chain-wide rows; a store with that id would mix with them.
    IF EXISTS (SELECT 1 FROM ventas v WHERE v.ubicacion_id = 'cadena')
       OR EXISTS (SELECT 1 FROM inventario_actual i WHERE i.ubicacion_id = 'cadena') THEN
        RAISE EXCEPTION 'productos_abc_recalcular: a ubicacion_id is ''cadena'', the alcance reserved for chain-wide rows'
            USING ERRCODE = 'data_exception';
    END IF;

    DELETE FROM productos_abc_cache;

    INSERT INTO productos_abc_cache
        (alcance, producto_id, clase, valor_ventas, porcentaje_acumulado, ranking, ventana_desde, ventana_hasta, calculado_en)
    WITH netas AS (
        -- Net per store and product. Voided lines count 0 but still make the product known
        -- to the store (it was scanned there).
        SELECT v.ubicacion_id, v.producto_id, sum(CASE WHEN v.anulada THEN 0 ELSE v.total END) AS neto
        FROM ventas v
        WHERE v.fecha BETWEEN v_desde AND v_hasta
        GROUP BY v.ubicacion_id, v.producto_id
    ),
    conocidos AS (
        SELECT i.ubicacion_id AS alcance, i.producto_id FROM inventario_actual i
        UNION SELECT n.ubicacion_id, n.producto_id FROM netas n
        UNION SELECT 'cadena', p.producto_id FROM productos p
        UNION SELECT 'cadena', i.producto_id FROM inventario_actual i
        UNION SELECT 'cadena', n.producto_id FROM netas n
    ),
    netos AS (
        SELECT n.ubicacion_id AS alcance, n.producto_id, n.neto FROM netas n
        UNION ALL
        SELECT 'cadena', n.producto_id, sum(n.neto) FROM netas n GROUP BY n.producto_id
    ),
    valores AS (
        SELECT k.alcance, k.producto_id, greatest(coalesce(s.neto, 0), 0) AS valor
        FROM conocidos k
        LEFT JOIN netos s ON s.alcance = k.alcance AND s.producto_id = k.producto_id
    ),
    acumulados AS (
        SELECT x.alcance, x.producto_id, x.valor,
               sum(x.valor) OVER orden AS acumulado,
               sum(x.valor) OVER (PARTITION BY x.alcance) AS total,
               row_number() OVER orden AS ranking
        FROM valores x
        -- ROWS, not the default RANGE: each product's running sum includes exactly the
        -- products ranked above it and itself (the order is total, so there are no peers).
        WINDOW orden AS (PARTITION BY x.alcance ORDER BY x.valor DESC, x.producto_id COLLATE "C" ASC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    SELECT a.alcance, a.producto_id,
           CASE WHEN a.valor = 0 THEN 'C'
                WHEN (a.acumulado - a.valor) * 100 < a.total * 80 THEN 'A'
                WHEN (a.acumulado - a.valor) * 100 < a.total * 95 THEN 'B'
                ELSE 'C' END,
           a.valor,
           CASE WHEN a.valor = 0 THEN NULL ELSE round(a.acumulado * 100 / a.total, 6) END,
           a.ranking, v_desde, v_hasta, now()
    FROM acumulados a;

    RETURN QUERY
    WITH alcances AS (
        SELECT DISTINCT c.alcance FROM productos_abc_cache c
        UNION SELECT 'cadena'
    ),
    clases (clase) AS (VALUES ('A'::char(1)), ('B'::char(1)), ('C'::char(1)))
    SELECT a.alcance, k.clase, count(c.producto_id), round(coalesce(sum(c.valor_ventas), 0), 4),
           v_desde, v_hasta, now()
    FROM alcances a
    CROSS JOIN clases k
    LEFT JOIN productos_abc_cache c ON c.alcance = a.alcance AND c.clase = k.clase
    GROUP BY a.alcance, k.clase
    ORDER BY a.alcance <> 'cadena', a.alcance COLLATE "C", k.clase;
END
$$;
COMMENT ON FUNCTION productos_abc_recalcular(timestamptz, integer) IS 'Replaces productos_abc_cache atomically with the A/B/C classes as of p_as_of over p_window_days business days; returns products and value per alcance and class';
