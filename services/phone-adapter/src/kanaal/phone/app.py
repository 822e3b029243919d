"""The phone adapter's shell: for now only its broker connection and operations endpoints."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings


class PhoneSettings(ServiceSettings):
    phone_port: int = Field(SERVICE_PORTS["phone"], description="phone adapter HTTP port")


def create_app(settings: PhoneSettings) -> FastAPI:
    return ChannelAdapter("phone", settings).app()
