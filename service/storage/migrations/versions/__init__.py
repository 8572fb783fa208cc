"""Migration scripts, applied in revision order by service.storage.engine.upgrade."""
