-- The mail throttle of jobs that fail as a whole (ops/job-failure-mail.ts): at most one mail
-- per job, service and error class per FLUXION_NOTIFY_THROTTLE_MINUTES. A one-shot job in a
-- fresh container remembers nothing, so the last mail is kept here (and in a local file for
-- when PostgreSQL is the service that failed).

CREATE TABLE avisos_trabajos (
    clave           text PRIMARY KEY,          -- <job>/<service>/<error class>, e.g. inventario/kafka/SERVICE_UNAVAILABLE
    enviado_en      timestamptz NOT NULL,      -- when the last mail of this key went
    retenidos       integer NOT NULL DEFAULT 0 CHECK (retenidos >= 0),  -- mails held back since
    retenidos_desde timestamptz                -- the first of those
);
