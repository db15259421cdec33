"""The running process: ``serve``'s wiring, the scheduler, the watcher, the lease keeper,
mail and logs (docs/design.md, "The process")."""
