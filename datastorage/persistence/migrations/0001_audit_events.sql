-- Audit events: append-only, partitioned by month on the UTC date of event_timestamp.
CREATE TABLE audit_events (
    event_id              uuid         NOT NULL,
    event_date            date         NOT NULL,
    event_timestamp       timestamptz  NOT NULL,
    event_version         varchar(20)  NOT NULL,
    event_type            varchar(100) NOT NULL,
    event_category        varchar(50)  NOT NULL,
    event_action          varchar(50)  NOT NULL,
    event_outcome         varchar(20)  NOT NULL
        CONSTRAINT audit_events_outcome_check CHECK (event_outcome IN ('success', 'failure', 'pending')),
    actor_type            varchar(50)  NOT NULL,
    actor_id              varchar(255) NOT NULL,
    actor_ip              inet,
    resource_type         varchar(100) NOT NULL,
    resource_id           varchar(255) NOT NULL,
    resource_name         varchar(255),
    correlation_id        varchar(255) NOT NULL,
    parent_event_id       uuid,
    namespace             varchar(253),
    cluster_name          varchar(255),
    severity              varchar(20),
    duration_ms           bigint       CONSTRAINT audit_events_duration_check CHECK (duration_ms >= 0),
    error_code            varchar(50),
    error_message         text,
    retention_days        integer      NOT NULL DEFAULT 2555
        CONSTRAINT audit_events_retention_check CHECK (retention_days BETWEEN 1 AND 2555),
    is_sensitive          boolean      NOT NULL DEFAULT false,
    event_data            jsonb        NOT NULL,
    trace_id              varchar(64),
    span_id               varchar(32),
    chain_seq             bigint       NOT NULL,
    event_hash            varchar(64)  NOT NULL,
    previous_event_hash   varchar(64)  NOT NULL DEFAULT '',
    hash_algorithm        varchar(20)  NOT NULL,
    legal_hold            boolean      NOT NULL DEFAULT false,
    legal_hold_reason     text,
    legal_hold_placed_by  varchar(255),
    legal_hold_placed_at  timestamptz,
    ingested_at           timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_date)
) PARTITION BY RANGE (event_date);

-- Every index serves a query of the read path (see docs/architecture.md).
CREATE INDEX audit_events_time_idx        ON audit_events (event_timestamp DESC, event_id DESC);
CREATE INDEX audit_events_chain_idx       ON audit_events (correlation_id, chain_seq);
CREATE INDEX audit_events_type_idx        ON audit_events (event_type, event_timestamp DESC);
CREATE INDEX audit_events_resource_idx    ON audit_events (resource_type, resource_id, event_timestamp DESC);
CREATE INDEX audit_events_actor_idx       ON audit_events (actor_id, event_timestamp DESC);
CREATE INDEX audit_events_outcome_idx     ON audit_events (event_outcome, event_timestamp DESC);
CREATE INDEX audit_events_data_idx        ON audit_events USING gin (event_data jsonb_path_ops);

-- Head of each correlation's hash chain, advanced in the same transaction as the insert.
CREATE TABLE audit_chain_heads (
    correlation_id  varchar(255) PRIMARY KEY,
    last_seq        bigint       NOT NULL DEFAULT 0,
    last_hash       varchar(64)  NOT NULL DEFAULT '',
    updated_at      timestamptz  NOT NULL DEFAULT now()
);

-- Legal holds cover a correlation: its events, existing and future, cannot be deleted.
CREATE TABLE audit_legal_holds (
    hold_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id  varchar(255) NOT NULL,
    reason          text         NOT NULL,
    placed_by       varchar(255) NOT NULL,
    placed_at       timestamptz  NOT NULL DEFAULT now(),
    released_by     varchar(255),
    released_at     timestamptz,
    release_reason  text
);
CREATE UNIQUE INDEX audit_legal_holds_active_idx
    ON audit_legal_holds (correlation_id) WHERE released_at IS NULL;

-- Rows are immutable: only the legal-hold and retention columns may change, and a held row
-- (by its own flag or by an active hold on its correlation) cannot be deleted.
CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mutable CONSTANT text[] := ARRAY['legal_hold', 'legal_hold_reason', 'legal_hold_placed_by',
                                     'legal_hold_placed_at', 'retention_days'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.legal_hold OR EXISTS (
            SELECT 1 FROM audit_legal_holds h
            WHERE h.correlation_id = OLD.correlation_id AND h.released_at IS NULL
        ) THEN
            RAISE EXCEPTION 'audit event % is under legal hold and cannot be deleted', OLD.event_id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF (to_jsonb(NEW) - mutable) IS DISTINCT FROM (to_jsonb(OLD) - mutable) THEN
        RAISE EXCEPTION 'audit events are immutable: only legal-hold and retention columns may change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_events_immutable
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
