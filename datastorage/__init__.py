"""DataStorage: the system of record for audit events and the remediation workflow catalog."""
