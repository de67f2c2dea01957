-- Plan audit_append's statements for the arrays of each call, never once for all calls.
--
-- PL/pgSQL caches a generic plan per connection after a few calls. Planned while
-- audit_chain_heads was small (a new deployment), that plan seq-scans it, and a pooled
-- connection keeps the plan while the table grows: measured, every flush read the whole table
-- (4,559 scans, 17.7M rows read in a 12 s benchmark). Custom plans cost a few dozen
-- microseconds per flush and always probe the primary key.
ALTER FUNCTION audit_append(
    audit_event_row[], varchar[], bigint[], varchar[], bigint[], varchar[], uuid[]
) SET plan_cache_mode = force_custom_plan;
