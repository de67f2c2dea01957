-- Notification audit: one row per delivery attempt reported by the Notification Controller.
-- notification_id is the client's idempotency key: a second write of it is a conflict (409).
CREATE TABLE notification_audit (
    id                bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    remediation_id    varchar(255)  NOT NULL,
    notification_id   varchar(255)  NOT NULL
        CONSTRAINT notification_audit_notification_id_key UNIQUE,
    recipient         varchar(500)  NOT NULL,
    -- The union of the legacy API's and the legacy database's values, so old rows and old
    -- clients both fit.
    channel           varchar(50)   NOT NULL
        CONSTRAINT notification_audit_channel_check CHECK (channel IN (
            'email', 'slack', 'pagerduty', 'teams', 'webhook', 'console', 'file', 'log')),
    message_summary   varchar(1000) NOT NULL,
    status            varchar(50)   NOT NULL
        CONSTRAINT notification_audit_status_check CHECK (status IN (
            'sent', 'failed', 'pending', 'acknowledged', 'escalated')),
    sent_at           timestamptz   NOT NULL,
    delivery_status   varchar(255),
    error_message     text,
    escalation_level  integer       NOT NULL DEFAULT 0
        CONSTRAINT notification_audit_escalation_check CHECK (escalation_level >= 0),
    created_at        timestamptz   NOT NULL DEFAULT now(),
    updated_at        timestamptz   NOT NULL DEFAULT now()
);

-- Serves "every notification of one remediation".
CREATE INDEX notification_audit_remediation_idx ON notification_audit (remediation_id);
