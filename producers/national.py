"""A national simulation: the 34 provinces (after the 2025 merger), each a simulated province
with its own one-stop-shop system, their actions merged in time order."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from producers.simulator import SimConfig, generate

PROVINCES = (
    "Thành phố Hà Nội", "Thành phố Huế", "Tỉnh Lai Châu", "Tỉnh Điện Biên", "Tỉnh Sơn La",
    "Tỉnh Lạng Sơn", "Tỉnh Quảng Ninh", "Tỉnh Thanh Hóa", "Tỉnh Nghệ An", "Tỉnh Hà Tĩnh",
    "Tỉnh Cao Bằng", "Tỉnh Tuyên Quang", "Tỉnh Lào Cai", "Tỉnh Thái Nguyên", "Tỉnh Phú Thọ",
    "Tỉnh Bắc Ninh", "Tỉnh Hưng Yên", "Thành phố Hải Phòng", "Tỉnh Ninh Bình",
    "Tỉnh Quảng Trị", "Thành phố Đà Nẵng", "Tỉnh Quảng Ngãi", "Tỉnh Gia Lai",
    "Tỉnh Khánh Hòa", "Tỉnh Lâm Đồng", "Tỉnh Đắk Lắk", "Thành phố Hồ Chí Minh",
    "Tỉnh Đồng Nai", "Tỉnh Tây Ninh", "Thành phố Cần Thơ", "Tỉnh Vĩnh Long",
    "Tỉnh Đồng Tháp", "Tỉnh Cà Mau", "Tỉnh An Giang",
)


def province_configs(base: SimConfig, provinces: int) -> list[SimConfig]:
    """One configuration per province: its own ids (P01…), source system and seed."""
    if not 1 <= provinces <= len(PROVINCES):
        raise ValueError(f"provinces must be between 1 and {len(PROVINCES)}, got {provinces}.")
    return [replace(base, province_id=f"P{i + 1:02d}", province_name=PROVINCES[i],
                    source=f"p{i + 1:02d}-igate", seed=base.seed * 1000 + i + 1,
                    code_block=i)
            for i in range(provinces)]


def generate_national(base: SimConfig, provinces: int) -> Iterator[dict[str, Any]]:
    """Every province's actions, merged by business time (their clocks share one offset)."""
    streams = [generate(cfg) for cfg in province_configs(base, provinces)]
    return heapq.merge(*streams, key=lambda a: a["occurred_at"])


def write_national(base: SimConfig, provinces: int, path: str | Path) -> int:
    """Write the merged national actions to ``path`` as NDJSON; returns how many."""
    count = 0
    with open(path, "wb") as out:
        buf: list[bytes] = []
        for action in generate_national(base, provinces):
            buf.append(orjson.dumps(action))
            count += 1
            if len(buf) >= 8192:
                out.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            out.write(b"\n".join(buf) + b"\n")
    return count
