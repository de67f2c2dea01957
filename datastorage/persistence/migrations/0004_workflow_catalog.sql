-- Workflow catalog: one row per (workflow_name, version). Content and labels never change after
-- the insert (a change is a new version); status and its reason/actor columns do.
CREATE TABLE remediation_workflows (
    -- UUIDv7 assigned by the service before the insert, like audit event ids.
    workflow_id                uuid          PRIMARY KEY,
    workflow_name              varchar(255)  NOT NULL,
    version                    varchar(50)   NOT NULL,
    name                       varchar(255)  NOT NULL,
    description                text          NOT NULL,
    owner                      varchar(255),
    maintainer                 varchar(255),
    content                    text          NOT NULL,
    -- Lowercase hex SHA-256 of content; the service computes or checks it before the insert.
    content_hash               char(64)      NOT NULL
        CONSTRAINT remediation_workflows_content_hash_check CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    parameters                 jsonb,
    execution_engine           varchar(50)   NOT NULL,
    container_image            varchar(512),
    container_digest           varchar(100),
    labels                     jsonb         NOT NULL
        CONSTRAINT remediation_workflows_labels_check CHECK (jsonb_typeof(labels) = 'object'),
    custom_labels              jsonb         NOT NULL DEFAULT '{}'
        CONSTRAINT remediation_workflows_custom_labels_check
            CHECK (jsonb_typeof(custom_labels) = 'object'),
    detected_labels            jsonb         NOT NULL DEFAULT '{}'
        CONSTRAINT remediation_workflows_detected_labels_check
            CHECK (jsonb_typeof(detected_labels) = 'object'),
    status                     varchar(20)   NOT NULL DEFAULT 'active'
        CONSTRAINT remediation_workflows_status_check
            CHECK (status IN ('active', 'disabled', 'deprecated', 'archived')),
    -- Describe the current disabled state only: cleared when the workflow leaves it.
    disabled_at                timestamptz,
    disabled_by                varchar(255),
    disabled_reason            text,
    is_latest_version          boolean       NOT NULL DEFAULT false,
    previous_version           varchar(50),
    deprecation_notice         text,
    version_notes              text,
    change_summary             text,
    approved_by                varchar(255),
    approved_at                timestamptz,
    expected_success_rate      double precision
        CONSTRAINT remediation_workflows_expected_rate_check
            CHECK (expected_success_rate BETWEEN 0 AND 1),
    expected_duration_seconds  integer
        CONSTRAINT remediation_workflows_expected_duration_check
            CHECK (expected_duration_seconds >= 0),
    -- Execution statistics of the legacy wire format; nothing in this service writes them yet.
    actual_success_rate        double precision
        CONSTRAINT remediation_workflows_actual_rate_check
            CHECK (actual_success_rate BETWEEN 0 AND 1),
    total_executions           integer       NOT NULL DEFAULT 0
        CONSTRAINT remediation_workflows_total_executions_check CHECK (total_executions >= 0),
    successful_executions      integer       NOT NULL DEFAULT 0
        CONSTRAINT remediation_workflows_successful_executions_check
            CHECK (successful_executions >= 0),
    created_at                 timestamptz   NOT NULL DEFAULT now(),
    created_by                 varchar(255),
    updated_at                 timestamptz   NOT NULL DEFAULT now(),
    updated_by                 varchar(255),
    -- A duplicate (name, version) is the 409 of POST /api/v1/workflows; its index also serves
    -- the lookups by workflow_name (versions of one name, the list filter).
    CONSTRAINT remediation_workflows_name_version_key UNIQUE (workflow_name, version)
);

-- At most one latest version per name, whatever the service does: concurrent creates of new
-- versions serialise on a per-name lock, and this index is the guarantee if that ever breaks.
CREATE UNIQUE INDEX remediation_workflows_latest_idx
    ON remediation_workflows (workflow_name) WHERE is_latest_version;

-- The list order (created_at DESC, workflow_id) and its keyset cursor; with no filter a page is a
-- walk of this index.
CREATE INDEX remediation_workflows_created_idx
    ON remediation_workflows (created_at DESC, workflow_id);

-- The status filter of the list, in list order.
CREATE INDEX remediation_workflows_status_idx
    ON remediation_workflows (status, created_at DESC, workflow_id);

-- The label filters of the list (signal_type, component, priority, environment) are one
-- containment test `labels @> {...}`; jsonb_path_ops serves exactly that operator, compactly.
CREATE INDEX remediation_workflows_labels_idx
    ON remediation_workflows USING gin (labels jsonb_path_ops);

-- Label search only ever considers latest versions and always fixes signal_type (it has no
-- wildcard): this small partial index finds one signal type's candidates, and scanning it whole
-- loads every latest version for the in-memory search index.
CREATE INDEX remediation_workflows_search_idx
    ON remediation_workflows ((labels ->> 'signal_type'), status) WHERE is_latest_version;
