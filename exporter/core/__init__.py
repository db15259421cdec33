"""The pure core: diff, statuses, levels, sync plans and guards, settings, documents. No I/O."""
