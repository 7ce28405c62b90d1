-- Locations and the product catalogue.
-- ubicaciones mirrors config/ubicaciones.yaml (synced by `fluxion migrate`); productos is kept
-- current from inventory change events by the sink (it replaces the old 6-hourly cache refresh).

CREATE TABLE ubicaciones (
    ubicacion_id  text PRIMARY KEY,
    nombre        text NOT NULL,
    tipo          text NOT NULL CHECK (tipo IN ('tienda', 'cedi')),
    pos           text NOT NULL CHECK (pos IN ('klk', 'stellar')),
    activa        boolean NOT NULL,
    depositos     text[] NOT NULL,
    actualizado_en timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ubicaciones IS 'The chain''s locations; source of truth is config/ubicaciones.yaml';

CREATE TABLE productos (
    producto_id          text PRIMARY KEY,
    descripcion          text NOT NULL,
    codigo_barras        text,
    departamento_codigo  text,
    departamento_nombre  text,
    grupo_codigo         text,
    grupo_nombre         text,
    subgrupo_codigo      text,
    subgrupo_nombre      text,
    unidad               text NOT NULL,
    -- taken_at of the snapshot that last described the product: an older event never overwrites a newer one
    visto_en             timestamptz NOT NULL,
    ubicacion_id         text NOT NULL,
    actualizado_en       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN productos.producto_id IS 'The POS product code (KLK codigo_producto, Stellar c_Codigo), with leading zeros';
CREATE INDEX productos_departamento ON productos (departamento_codigo, grupo_codigo, subgrupo_codigo);
CREATE INDEX productos_codigo_barras ON productos (codigo_barras) WHERE codigo_barras IS NOT NULL;
