-- An operator dismisses a phantom-zero alert with a note (`fluxion alertas descartar`):
-- estado DESCARTADA, who, when and why. The sink never moves a dismissed alert back to OPEN
-- nor to RESOLVED (sinks/sink-batch.ts mergeAlerta; sinks/postgres-writer.ts writeAlertas):
-- the detector's later records of that alert_id are the same evidence. When the stock comes
-- back, the detector's RESOLVED is kept as resuelta_en on the dismissed row.
-- A dismissed row is not OPEN, so alertas_una_abierta leaves the product's OPEN slot free for
-- the alert of a new episode (a new alert_id).

ALTER TABLE alertas DROP CONSTRAINT alertas_estado_check;
ALTER TABLE alertas ADD CONSTRAINT alertas_estado_check CHECK (estado IN ('OPEN', 'RESOLVED', 'DESCARTADA'));

ALTER TABLE alertas
    ADD COLUMN resuelta_en    timestamptz,   -- when the detector resolved it (stock back, rule no longer holds)
    ADD COLUMN nota           text,          -- the operator's reason for dismissing it
    ADD COLUMN descartada_por text,          -- who dismissed it (--por, FLUXION_OPERATOR or the OS user)
    ADD COLUMN descartada_en  timestamptz;   -- when

UPDATE alertas SET resuelta_en = actualizada_en WHERE estado = 'RESOLVED';

ALTER TABLE alertas ADD CONSTRAINT alertas_descartada_con_nota CHECK (
    (estado = 'DESCARTADA') = (descartada_en IS NOT NULL)
    AND (estado <> 'DESCARTADA' OR (btrim(nota) <> '' AND btrim(descartada_por) <> ''))
);

-- `fluxion alertas listar`: a store's alerts by estado, most confident first.
CREATE INDEX alertas_ubicacion_estado ON alertas (ubicacion_id, estado, confianza DESC);
