-- Every committed change to the catalog notifies the replicas, whose in-memory search indexes
-- then reload. A statement-level trigger, so a change made by any path (the service, a bulk
-- import, an operator's SQL) is heard, once per statement, and only when it commits.
CREATE FUNCTION workflow_catalog_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('datastorage_workflow_catalog', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER remediation_workflows_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON remediation_workflows
    FOR EACH STATEMENT EXECUTE FUNCTION workflow_catalog_notify();
