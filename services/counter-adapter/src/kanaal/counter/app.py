"""The counter adapter's shell: for now only its broker connection and operations endpoints."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings


class CounterSettings(ServiceSettings):
    counter_port: int = Field(SERVICE_PORTS["counter"], description="counter adapter HTTP port")


def create_app(settings: CounterSettings) -> FastAPI:
    return ChannelAdapter("counter", settings).app()
