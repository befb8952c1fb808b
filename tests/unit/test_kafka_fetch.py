"""kafka-python's record loop, replaced (``kernel/kafka_fetch.py``): the same records as the
library's own loop, batch by batch, and the same errors.

Each case builds record batches with kafka-python's own builder (message format 2 unless said,
offsets from 0) and reads them through ``Fetcher.PartitionRecords`` twice: once with the
library's ``_unpack_records`` and once with motcua's. The records (every field of
``ConsumerRecord``), the counters the fetcher keeps (records and bytes read, the next fetch
offset) and any error must agree. A check of the real broker's fetches is in
``tests/integration/test_kafka_fetch_broker.py``.
"""

from __future__ import annotations

import inspect
import struct
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.errors import CorruptRecordError
from kafka.record import MemoryRecords, MemoryRecordsBuilder
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from kernel import kafka as K  # noqa: F401 - installs the loop, as every motcua process does
from kernel.kafka_fetch import LIBRARY_UNPACK, _unpack_records, library_loop

TP = TopicPartition("motcua.events", 3)
HEADERS = [("spool", b"1234"), ("tên-khóa", None), ("empty", b""), ("big", b"x" * 300)]


def _value(i: int) -> bytes | None:
    """Values of every varint length: none, empty, 1-byte, 2-byte and 3-byte lengths."""
    sizes = [0, 1, 63, 64, 200, 8191, 8192, 20_000]
    if i % 11 == 5:
        return None
    return bytes([65 + i % 26]) * sizes[i % len(sizes)]


def _batch(first: int, n: int, *, compression: int = 0, magic: int = 2, headers: bool = True,
           keys: bool = True, ts_step: int = 1, skip_every: int = 0) -> bytes:
    b = MemoryRecordsBuilder(magic, compression, batch_size=1 << 30, offset=first)
    for i in range(n):
        if skip_every and i and i % skip_every == 0:
            b.skip(100)  # compacted away: offset deltas of two bytes
        key = None if not keys or i % 3 == 0 else f"dossier-{i}".encode()
        hdrs = HEADERS[: i % (len(HEADERS) + 1)] if headers and magic == 2 else []
        assert b.append(1_700_000_000_000 + i * ts_step, key, _value(i), hdrs) is not None
    b.close()
    return bytes(b.buffer())


def _with_crc(buf: bytearray, start: int = 0) -> bytes:
    """The batch at ``start`` with its CRC computed again (after a change to it)."""
    crc = calc_crc32c(memoryview(buf)[start + DefaultRecordBatch.ATTRIBUTES_OFFSET:
                                      start + _batch_end(buf, start)])
    struct.pack_into(">I", buf, start + DefaultRecordBatch.CRC_OFFSET, crc)
    return bytes(buf)


def _batch_end(buf: bytes | bytearray, start: int) -> int:
    length: int = struct.unpack_from(">i", buf, start + 8)[0]
    return 12 + length


def _read(buf: bytes, *, fetch_offset: int = 0, takes: tuple[int | None, ...] = (None,),
          **kw: Any) -> list[Any]:
    """What a fetcher's partition records give, take after take: the records and counters,
    or the error's type."""
    out: list[Any] = []
    part = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(buf), **kw)
    for n in takes:
        try:
            out.append(part.take(n))
        except CorruptRecordError as e:
            out.append(type(e))
        out.append((part.records_read, part.bytes_read, part.next_fetch_offset))
    return out


def _same(buf: bytes, **kw: Any) -> list[Any]:
    ours = _read(buf, **kw)
    with library_loop():
        assert ours == _read(buf, **kw)
    return ours


def test_every_field_of_every_record_is_the_librarys() -> None:
    buf = _batch(0, 120) + _batch(120, 80, ts_step=3_600_000) + _batch(200, 40, keys=False)
    records, counters = _same(buf)
    assert [r.offset for r in records] == list(range(240))
    assert counters == (240, counters[1], 240)
    assert {len(r.headers) for r in records} == set(range(len(HEADERS) + 1))
    assert any(r.value is None for r in records) and any(r.value == b"" for r in records)
    assert max(len(r.value or b"") for r in records) == 20_000
    assert any(r.key is None for r in records) and any(r.key for r in records)


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_give_the_librarys_records(codec: int) -> None:
    from kafka import codec as codecs
    available = {1: codecs.has_gzip, 2: codecs.has_snappy, 3: codecs.has_lz4,
                 4: codecs.has_zstd}[codec]()
    if not available:  # the library could not read it either: both must fail alike
        return
    records, _ = _same(_batch(0, 60, compression=codec) + _batch(60, 30))
    assert len(records) == 90


def test_a_fetch_from_the_middle_of_a_batch_and_takes_of_a_few() -> None:
    buf = _batch(0, 50) + _batch(50, 50)
    out = _same(buf, fetch_offset=37, takes=(5, 1, 40, None))
    assert [r.offset for r in out[0]] == [37, 38, 39, 40, 41]
    assert [r.offset for r in out[4]] == list(range(43, 83))
    assert out[-1][2] == 100


def test_compacted_offsets_and_the_next_fetch_offset_after_the_batch() -> None:
    buf = _batch(0, 30, skip_every=7)
    records, counters = _same(buf)
    assert [r.offset for r in records][:9] == [0, 1, 2, 3, 4, 5, 6, 107, 108]
    assert counters[2] == records[-1].offset + 1


def test_log_append_time_gives_every_record_the_batchs_time() -> None:
    buf = bytearray(_batch(0, 20, ts_step=1000))
    (attrs,) = struct.unpack_from(">h", buf, DefaultRecordBatch.ATTRIBUTES_OFFSET)
    struct.pack_into(">h", buf, DefaultRecordBatch.ATTRIBUTES_OFFSET, attrs | 0x08)
    records, _ = _same(_with_crc(buf))
    assert {r.timestamp_type for r in records} == {1}
    assert len({r.timestamp for r in records}) == 1


def test_older_message_formats_and_deserializers_are_the_librarys_own() -> None:
    records, _ = _same(_batch(0, 25, magic=1))
    assert len(records) == 25

    class Upper:
        def deserialize(self, topic: str, headers: Any, data: bytes | None) -> Any:
            return data.upper() if data else data

    records, _ = _same(_batch(0, 25), value_deserializer=Upper())
    assert records[3].value == b"D" * 64


def test_corrupt_records_fail_as_in_the_library() -> None:
    """A take returns the records read before the damage; the error comes with the next."""
    good = _batch(0, 10)
    first = DefaultRecordBatch.HEADER_STRUCT.size
    # The first record's length one byte longer: its payload no longer adds up.
    buf = bytearray(good)
    buf[first] += 2  # zigzag: +1
    assert _same(_with_crc(buf))[0] is CorruptRecordError
    # A batch that says it holds more records than it does: ten, then the error.
    buf = bytearray(good)
    struct.pack_into(">i", buf, first - 4, 11)
    out = _same(_with_crc(buf), takes=(None, None))
    assert len(out[0]) == 10 and out[2] is CorruptRecordError
    # One record fewer than the batch holds: nine, then the bytes left over.
    buf = bytearray(good)
    struct.pack_into(">i", buf, first - 4, 9)
    out = _same(_with_crc(buf), takes=(None, None))
    assert len(out[0]) == 9 and out[2] is CorruptRecordError
    # A damaged batch fails its CRC check, or is read when checks are off (as the library).
    buf = bytearray(good)
    buf[-1] ^= 0xFF
    assert _same(bytes(buf))[0] is CorruptRecordError
    assert len(_same(bytes(buf), check_crcs=False)[0]) == 10


def test_the_copied_method_is_still_the_librarys() -> None:
    """The loop repeats kafka-python 3.0.12's ``_unpack_records`` and reads records as its
    ``DefaultRecordBatch._read_msg`` does: when an upgrade changes either, this fails and the
    copy is looked at again."""
    src = inspect.getsource(LIBRARY_UNPACK)
    for line in ("if batch.is_control_batch:", "self._is_batch_aborted(batch)",
                 "for record in batch:", "self.next_fetch_offset = last_batch.next_offset",
                 "tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp,"):
        assert line in src
    read = inspect.getsource(DefaultRecordBatch._read_msg)
    for line in ("_, pos = decode_varint(buffer, pos)  # attrs can be skipped for now",
                 "if self.timestamp_type == self.LOG_APPEND_TIME:",
                 "headers.append((h_key, h_value))"):
        assert line in read
    assert ConsumerRecord._fields == (
        "topic", "partition", "leader_epoch", "offset", "timestamp", "timestamp_type", "key",
        "value", "headers", "checksum", "serialized_key_size", "serialized_value_size",
        "serialized_header_size")
    assert Fetcher.PartitionRecords._unpack_records is _unpack_records  # installed
    with library_loop():
        assert Fetcher.PartitionRecords._unpack_records is LIBRARY_UNPACK
    assert Fetcher.PartitionRecords._unpack_records is _unpack_records  # and back


def test_an_unchecked_kafka_python_keeps_the_librarys_own_methods(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """On a release the copies were not checked against, both stay the library's (a copy of an
    older body could break every client), with one warning each on standard error."""
    import kafka
    from kafka.net.inet import KafkaNetSocket

    from kernel import kafka_fetch
    from kernel.kafka_fixes import LIBRARY_CONNECT, close_failed_connects

    monkeypatch.setattr(kafka, "__version__", "3.9.0")
    monkeypatch.setattr(KafkaNetSocket, "connect", LIBRARY_CONNECT)
    with caplog.at_level("WARNING", logger="motcua.kafka"), library_loop():
        kafka_fetch.install()
        close_failed_connects()
        assert Fetcher.PartitionRecords._unpack_records is LIBRARY_UNPACK
        assert KafkaNetSocket.connect is LIBRARY_CONNECT
    assert [r.getMessage() for r in caplog.records] == [
        f"kafka-python 3.9.0 is not one motcua's copies were checked against (3.0.12): its own "
        f"{what} is kept." for what in ("record loop", "connect")]
    monkeypatch.undo()
    kafka_fetch.install()  # the checked release: installed again
    assert Fetcher.PartitionRecords._unpack_records is _unpack_records
