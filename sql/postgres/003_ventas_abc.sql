-- Deduplicated sales lines and the ABC classification computed from them.

CREATE TABLE ventas (
    ubicacion_id     text NOT NULL,
    numero_factura   text NOT NULL,
    linea            integer NOT NULL,
    fecha            date NOT NULL,
    fecha_hora       timestamptz NOT NULL,
    producto_id      text NOT NULL,
    cantidad         numeric(18,3) NOT NULL,
    precio_unitario  numeric(18,4) NOT NULL,
    descuento        numeric(18,4) NOT NULL,
    total            numeric(18,4) NOT NULL,
    caja             text,
    anulada          boolean NOT NULL,
    fingerprint      text NOT NULL,
    first_seen_at    timestamptz NOT NULL,
    extracted_at     timestamptz NOT NULL,
    version          integer NOT NULL DEFAULT 1,
    PRIMARY KEY (ubicacion_id, numero_factura, linea)
);
CREATE INDEX ventas_fecha ON ventas (fecha, ubicacion_id);
CREATE INDEX ventas_producto ON ventas (ubicacion_id, producto_id, fecha_hora);

-- alcance = 'cadena' (chain-wide) or a ubicacion_id. Replaced as a whole by each recalculation.
CREATE TABLE productos_abc_cache (
    alcance               text NOT NULL,
    producto_id           text NOT NULL,
    clase                 char(1) NOT NULL CHECK (clase IN ('A', 'B', 'C')),
    valor_ventas          numeric(20,4) NOT NULL,
    porcentaje_acumulado  numeric(9,6),
    ranking               integer NOT NULL,
    ventana_desde         date NOT NULL,
    ventana_hasta         date NOT NULL,
    calculado_en          timestamptz NOT NULL,
    PRIMARY KEY (alcance, producto_id)
);
COMMENT ON COLUMN productos_abc_cache.alcance IS '''cadena'' for the chain-wide class, otherwise the ubicacion_id';
