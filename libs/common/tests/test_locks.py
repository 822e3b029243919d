"""Keyed locks: one key's holders take turns, other keys go on, idle keys are forgotten."""

from __future__ import annotations

import asyncio

from kanaal.common.locks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_other_keys_go_on() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("call-1"):
            order.append("first in")
            first_in.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with locks.hold("call-1"):
            order.append("second in")

    async def other() -> None:
        await first_in.wait()
        async with locks.hold("call-2"):
            order.append("other in")
        release.set()

    await asyncio.gather(first(), second(), other())
    assert order == ["first in", "other in", "first out", "second in"]
    assert len(locks) == 0
