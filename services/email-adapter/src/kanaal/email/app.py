"""The email adapter's shell: for now only its broker connection and operations endpoints."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings


class EmailSettings(ServiceSettings):
    email_port: int = Field(SERVICE_PORTS["email"], description="email adapter HTTP port")


def create_app(settings: EmailSettings) -> FastAPI:
    return ChannelAdapter("email", settings).app()
