"""kafka-python's record loop, without its per-record overhead.

A kafka-python 3.0 consumer turns each fetched record into a ``ConsumerRecord`` in pure Python
(``Fetcher.PartitionRecords._unpack_records``): per record a ``DefaultRecord`` object, seven
varint decodes as function calls, half a dozen property reads of the batch, two deserializer
calls, and a header size summed through a generator. Measured on the bundled broker with the
peer benchmark's backlog (134,745 actions), the polling thread spent 6.3–8.6 µs of CPU a record
in it, about a tenth of ``motcua up``'s engine thread, and as much again in each of the two
consumers of ``motcua.events`` (projection, alerting).

``install`` replaces that method with the library's own body (3.0.12) whose loop over the
records of a data batch of message format 2 reads them straight from the batch's bytes
(``_records``): the one- and two-byte varints (nearly all of them) inline, the slices taken
from ``bytes`` once, one ``ConsumerRecord`` per record with the same fields the library gives
(``checksum`` None, sizes -1 when absent, the header size as the library counts it). Everything
else stays the library's: CRC checks of the batch, decompression, transactional markers and
aborted batches, control batches, message formats 0 and 1, and consumers with deserializers
(motcua's have none). Corrupt records raise the library's ``CorruptRecordError``. Same records,
about half the CPU (3.3–4.2 µs a record; docs/decisions.md, "kafka-python's record loop is
motcua's own").
``tests/unit/test_kafka_fetch.py`` checks the records against the library's loop, batch by
batch, and fails when an upgrade changes the method this copies. On a kafka-python release it
was not checked against, the library's own loop is kept (``kernel.kafka_fixes.VERIFIED``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kafka.errors as Errors
from kafka.consumer.fetcher import ConsumerRecord, Fetcher, IsolationLevel
from kafka.record.util import decode_varint

from kernel.kafka_fixes import verified

# The library's own method, kept for the tests that compare and that say when an upgrade
# changed it.
LIBRARY_UNPACK = Fetcher.PartitionRecords._unpack_records


def _records(self: Any, tp: Any, batch: Any) -> Iterator[ConsumerRecord]:
    """The records of one data batch of format 2 (decompressed first), as the library's loop
    yields them, and its counters (records and bytes read, the next fetch offset) kept the
    same way, record by record."""
    batch._maybe_uncompress()
    data = bytes(batch._buffer)
    pos = batch._pos
    header = batch._header_data
    base, first_ts, max_ts, count = header[0], header[7], header[8], header[12]
    ts_type = 1 if header[5] & 0x08 else 0  # LOG_APPEND_TIME: every record has the max
    topic, partition, epoch = tp.topic, tp.partition, self.leader_epoch
    dv = decode_varint  # zigzag varints; the inline parts below are its one- and two-byte cases
    record = ConsumerRecord
    try:
        for _ in range(count):
            # Length => Varint (the library counts it as the record's size in bytes read)
            b = data[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                v = (b & 0x7f) | (data[pos + 1] << 7)
                length = (v >> 1) ^ -(v & 1)
                pos += 2
            else:
                length, pos = dv(data, pos)
            start = pos
            # Attributes => Int8 (read as a varint, as the library does; unused)
            if data[pos] < 0x80:
                pos += 1
            else:
                _, pos = dv(data, pos)
            # TimestampDelta => Varlong
            b = data[pos]
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                ts_delta, pos = dv(data, pos)
            # OffsetDelta => Varint
            b = data[pos]
            if b < 0x80:
                delta = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                v = (b & 0x7f) | (data[pos + 1] << 7)
                delta = (v >> 1) ^ -(v & 1)
                pos += 2
            else:
                delta, pos = dv(data, pos)
            # Key => Bytes (a negative length: null)
            b = data[pos]
            if b < 0x80:
                key_len = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                key_len, pos = dv(data, pos)
            key = None
            if key_len >= 0:
                key = data[pos:pos + key_len]
                pos += key_len
            # Value => Bytes
            b = data[pos]
            if b < 0x80:
                value_len = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                v = (b & 0x7f) | (data[pos + 1] << 7)
                value_len = (v >> 1) ^ -(v & 1)
                pos += 2
            else:
                value_len, pos = dv(data, pos)
            value = None
            if value_len >= 0:
                value = data[pos:pos + value_len]
                pos += value_len
            # Headers => [HeaderKey HeaderValue]
            headers: list[tuple[str, bytes | None]] = []
            header_size = -1
            if data[pos] == 0:
                pos += 1
            else:
                n, pos = dv(data, pos)
                if n < 0:
                    raise Errors.CorruptRecordError(
                        f"Found invalid number of record headers {n}")
                header_size = 0
                while n:
                    h_key_len, pos = dv(data, pos)
                    if h_key_len < 0:
                        raise Errors.CorruptRecordError(
                            f"Invalid negative header key size {h_key_len}")
                    h_key = data[pos:pos + h_key_len].decode("utf-8")
                    pos += h_key_len
                    h_value_len, pos = dv(data, pos)
                    h_value = None
                    if h_value_len >= 0:
                        h_value = data[pos:pos + h_value_len]
                        pos += h_value_len
                        header_size += h_value_len
                    header_size += h_key_len
                    headers.append((h_key, h_value))
                    n -= 1
            if pos - start != length:
                raise Errors.CorruptRecordError(
                    f"Invalid record size: expected to read {length} bytes in record payload, "
                    f"but instead read {pos - start}")
            offset = base + delta
            self.records_read += 1
            self.bytes_read += length
            self.next_fetch_offset = offset + 1
            yield record(topic, partition, epoch, offset,
                         max_ts if ts_type else first_ts + ts_delta, ts_type, key, value,
                         headers, None, key_len if key is not None else -1,
                         value_len if value is not None else -1, header_size)
    except (ValueError, IndexError) as err:
        raise Errors.CorruptRecordError(f"Found invalid record structure: {err!r}") from None
    if pos != len(data):
        raise Errors.CorruptRecordError(
            f"{len(data) - pos} unconsumed bytes after all records consumed")


def _unpack_records(self: Any, tp: Any, records: Any, key_deserializer: Any,
                    value_deserializer: Any) -> Iterator[ConsumerRecord]:
    """``Fetcher.PartitionRecords._unpack_records`` (kafka-python 3.0.12's body), the records
    of a data batch of format 2 read by ``_records``; the library's own method with a
    deserializer."""
    if key_deserializer is not None or value_deserializer is not None:
        yield from LIBRARY_UNPACK(self, tp, records, key_deserializer, value_deserializer)
        return
    try:
        batch = records.next_batch()
        last_batch = None
        while batch is not None:
            last_batch = batch
            if self.check_crcs and not batch.validate_crc():
                raise Errors.CorruptRecordError(
                    f"Record batch for partition {self.topic_partition} at offset "
                    f"{batch.base_offset} failed crc check")
            if batch.magic == 2:
                self.leader_epoch = batch.leader_epoch
                if (self.isolation_level == IsolationLevel.READ_COMMITTED
                        and batch.has_producer_id()):
                    self._consume_aborted_transactions_up_to(batch.last_offset)
                    producer_id = batch.producer_id
                    if self._contains_abort_marker(batch):
                        self.aborted_producer_ids.discard(producer_id)
                    elif self._is_batch_aborted(batch):
                        self.next_fetch_offset = batch.next_offset
                        batch = records.next_batch()
                        continue
                if batch.is_control_batch:  # not returned to the consumer
                    self.next_fetch_offset = batch.next_offset
                    batch = records.next_batch()
                    continue
                yield from _records(self, tp, batch)
            else:
                yield from _older_format(self, tp, batch)
            batch = records.next_batch()
        # Format 2 keeps a batch's last offset even when compaction removed its record.
        if last_batch and last_batch.magic == 2:
            self.next_fetch_offset = last_batch.next_offset
        self.drain()
    except StopIteration:  # (a generator must not let one out: kafka-python issue 545)
        raise RuntimeError("StopIteration raised unpacking messageset") from None


def _older_format(self: Any, tp: Any, batch: Any) -> Iterator[ConsumerRecord]:
    """A batch of message format 0 or 1, as the library reads it."""
    for record in batch:
        if self.check_crcs and not record.validate_crc():
            raise Errors.CorruptRecordError(
                f"Record for partition {self.topic_partition} at offset {record.offset} "
                "failed crc check")
        key_size = len(record.key) if record.key is not None else -1
        value_size = len(record.value) if record.value is not None else -1
        headers = record.headers
        header_size = sum(len(k.encode("utf-8")) + (len(v) if v is not None else 0)
                          for k, v in headers) if headers else -1
        self.records_read += 1
        self.bytes_read += record.size_in_bytes
        self.next_fetch_offset = record.offset + 1
        yield ConsumerRecord(tp.topic, tp.partition, self.leader_epoch, record.offset,
                             record.timestamp, record.timestamp_type, record.key, record.value,
                             headers, record.checksum, key_size, value_size, header_size)


def install() -> None:
    """Make kafka-python's consumers read records with ``_records`` (idempotent; only on a
    release in ``kernel.kafka_fixes.VERIFIED``)."""
    if verified("record loop"):
        Fetcher.PartitionRecords._unpack_records = _unpack_records


@contextmanager
def library_loop() -> Iterator[None]:
    """kafka-python's own record loop for the consumers of this process, inside the block (the
    tests that compare the two loops, the peer benchmark's loop on the library as shipped)."""
    saved = Fetcher.PartitionRecords._unpack_records
    Fetcher.PartitionRecords._unpack_records = LIBRARY_UNPACK
    try:
        yield
    finally:
        Fetcher.PartitionRecords._unpack_records = saved
