-- Operational tables: alerts, extraction runs, and the sink's Kafka offsets.

CREATE TABLE alertas (
    alert_id       uuid PRIMARY KEY,
    ubicacion_id   text NOT NULL,
    deposito       text NOT NULL,
    producto_id    text NOT NULL,
    regla          text NOT NULL CHECK (regla IN ('SELLING_AT_ZERO', 'FLIP_FLOP', 'UNEXPLAINED_DROP')),
    confianza      double precision NOT NULL CHECK (confianza >= 0 AND confianza <= 1),
    estado         text NOT NULL CHECK (estado IN ('OPEN', 'RESOLVED')),
    resumen        text NOT NULL,
    evidencia      jsonb NOT NULL,
    abierta_en     timestamptz NOT NULL,
    actualizada_en timestamptz NOT NULL
);
-- one open alert per product at a time
CREATE UNIQUE INDEX alertas_una_abierta ON alertas (ubicacion_id, deposito, producto_id) WHERE estado = 'OPEN';

CREATE TABLE etl_runs (
    run_id         uuid NOT NULL,
    ubicacion_id   text NOT NULL,
    job            text NOT NULL CHECK (job IN ('INVENTARIO', 'VENTAS', 'VENTAS_RECOVERY')),
    status         text NOT NULL CHECK (status IN ('OK', 'FAILED')),
    rows           bigint NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    snapshot_id    uuid,
    fecha          date,
    error_class    text,
    error_message  text,
    PRIMARY KEY (run_id, ubicacion_id)
);
CREATE INDEX etl_runs_ubicacion ON etl_runs (ubicacion_id, job, finished_at DESC);

-- The sink's consumer position, committed in the same transaction as the rows it wrote,
-- so a crash at any instant neither loses nor repeats a row.
CREATE TABLE sink_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL,
    actualizado_en  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
