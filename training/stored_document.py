"""The one base of the JSON documents a model's folder and the registry keep.

metadata.json, registry.json and the reference profile are artifact formats: read by
every worker of the service and by the CLI, and written by training code that may be
newer than the reader. So each known field is checked strictly (no silent coercion of a
string into a number) and any other key is kept as it is (a newer writer's additions
still load). Documents are frozen: what was read is what is used.

This module imports pydantic only, so the schemas built on it load without numpy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StoredDocument(BaseModel):
    """A stored JSON document: known fields strict, unknown ones kept, frozen."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
