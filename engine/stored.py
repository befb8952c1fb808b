"""New domain events as the event store's rows, on the ingest hot path (``Batch.collect``)."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from engine.store import OrjsonTranscoder


def plain(mapper: Any) -> bool:
    """The mapper stores events as ``stored_event`` does (no compression, no cipher)."""
    return (isinstance(mapper.transcoder, OrjsonTranscoder) and mapper.compressor is None
            and mapper.cipher is None)


_CLASS_INFO: dict[type, tuple[str, int]] = {}


def _class_info(cls: type[Any]) -> tuple[str, int]:
    info = _CLASS_INFO.get(cls)
    if info is None:
        info = _CLASS_INFO[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
    return info


def stored_event(event: Any) -> StoredEvent:
    """What the library's ``Mapper.to_stored_event`` makes of a new event with the motcua
    transcoder and neither compression nor cipher, byte for byte (the same state dict, in
    the same order, encoded by the same orjson call), with its per-class look-ups done once."""
    topic, class_version = _class_info(type(event))
    state = dict(vars(event))
    originator_id = state.pop("originator_id")
    originator_version = state.pop("originator_version")
    if class_version > 1:
        state["class_version"] = class_version
    return StoredEvent(originator_id, originator_version, topic, orjson.dumps(state))
