"""Records: the one record service (tenant, data scope, permission, audit, events, optimistic locking) and the list-query rules it shares with the generated pages."""
