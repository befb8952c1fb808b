"""The bytes of a ``motcua.events`` message, built from a facts cache row without decoding the
stored facts (engine/relay.py ``event_value``)."""

from __future__ import annotations

import orjson

from engine.relay import event_value, partition_for

# 10**15 µs after the epoch is 10**9 s: 2001-09-09T01:46:40 UTC.
ROW = (7, "dossier", "Received", "D1", "2026-10-05T08:00:00+07:00", 10**15 + 1, None,
       b'["H15.15",1,null]')


def test_a_first_event_is_its_row_with_the_stored_facts_spliced_in_and_no_prev() -> None:
    """The value is the row's fields by name, ``follows`` (0 unless given), the recording time
    as an ISO instant to the microsecond, ``prev`` null and ``facts`` the stored JSON as it is.
    """
    assert event_value(ROW) == (
        b'{"pos":7,"follows":0,"kind":"dossier","type":"Received","sid":"D1",'
        b'"at":"2026-10-05T08:00:00+07:00","recorded_at":"2001-09-09T01:46:40.000001+00:00",'
        b'"prev":null,"facts":["H15.15",1,null]}')


def test_a_later_event_carries_both_facts_and_a_whole_second_has_no_fraction() -> None:
    """With both prev and facts stored, both come out as the JSON they were; a recording time
    on a whole second is written without microseconds (as ``datetime.isoformat`` does);
    ``follows`` is the position given."""
    row = (8, "dossier", "Completed", "D1", "2026-10-06T09:00:00+07:00", 10**15,
           b'{"s":"received"}', b'{"s":"done","n":[1,2]}')
    assert orjson.loads(event_value(row, 5)) == {
        "pos": 8, "follows": 5, "kind": "dossier", "type": "Completed", "sid": "D1",
        "at": "2026-10-06T09:00:00+07:00", "recorded_at": "2001-09-09T01:46:40+00:00",
        "prev": {"s": "received"}, "facts": {"s": "done", "n": [1, 2]}}


def test_a_subjects_partition_is_kafkas_murmur2_rule() -> None:
    """Kafka's murmur2 partitions (as the Java client and kafka-python place keyed records),
    asked for several times (the answers are remembered) and with several partition counts."""
    # murmur2(b"") is 275646681 (Kafka's own test vector); 275646681 % 3 = 0, % 4 = 1.
    assert partition_for(b"", 3) == 0
    assert partition_for(b"", 4) == 1
    # murmur2(b"foobar") is -790332482 (the same vector set); its positive part 1357151166.
    assert partition_for(b"foobar", 4) == 2
    assert partition_for(b"foobar", 5) == 1
