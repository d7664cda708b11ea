"""``newtlab.validate`` in topology.json: the checks a lab must pass, as the user writes them.

Each test says where it runs (``nodes``, a ``device_type`` or a ``platform``),
what runs (exactly one of ``ping``, ``exec`` or ``ssh``) and what must hold
(``expect``; a ping's ``loss``). Strings are Jinja2 templates rendered per
node at plan time (``plan.validation``). Unknown fields are errors here: these
are newtlab's own settings, and a misspelt ``expect`` must not pass silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from .names import SAFE_NAME_HINT, is_safe_name

DeviceType = Literal["switch", "router", "host"]
KINDS = ("ping", "exec", "ssh")
CONDITIONS = ("equals", "contains", "count")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PingSpec(_Strict):
    """Ping ``to`` (an address, or ``NODE`` / ``NODE:IFACE`` of the lab, whose address is
    taken from the topology) ``count`` times; at most ``loss`` percent may be lost.
    ``source``: an address or interface to ping from (``ping -I``)."""

    to: str = Field(min_length=1)
    count: int = Field(default=3, ge=1, le=1000)
    loss: float = Field(default=0, ge=0, le=100, allow_inf_nan=False)
    source: str = ""


class ExpectSpec(_Strict):
    """What a command's run must show.

    ``exit``: the exit status wanted (a number, a list of them, or null for any;
    default 0); ``match`` / ``no_match``: regexes its output must / must not
    contain (a line); ``query``: a JMESPath expression over its output read as
    JSON, whose result must ``equals`` a value, ``contains`` one, or have
    ``count`` items — or, with none of those, be true (not null, false, 0 or
    empty).
    """

    exit: int | list[int] | None = 0
    match: str = ""
    no_match: str = ""
    query: str = ""
    equals: JsonValue = None
    contains: JsonValue = None
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ExpectSpec:
        given = [c for c in CONDITIONS if c in self.model_fields_set]
        if given and not self.query:
            raise ValueError(f'"{given[0]}" tests the result of a "query": add one')
        if len(given) > 1:
            raise ValueError(f'give one of "equals", "contains" or "count" (got {given})')
        return self  # the regexes and the query are checked once rendered, per node


class WaitSpec(_Strict):
    """Try again every ``interval`` seconds until the test holds, for up to ``timeout``."""

    timeout: float = Field(gt=0, le=86400, allow_inf_nan=False)
    interval: float = Field(default=2, gt=0, le=3600, allow_inf_nan=False)


class ValidateTest(_Strict):
    """One named test of ``newtlab.validate``; see the module's docstring."""

    name: str
    description: str = ""
    nodes: list[str] | None = None
    device_type: DeviceType | None = None
    platform: str | None = None
    ping: PingSpec | None = None
    exec: list[str] | None = Field(default=None, min_length=1)
    ssh: str | None = Field(default=None, min_length=1)
    expect: ExpectSpec | None = None
    wait: WaitSpec | None = None
    timeout: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)
    fail: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_safe_name(value):
            raise ValueError(f"test name {value!r} is not allowed: {SAFE_NAME_HINT}")
        return value

    @field_validator("ping", mode="before")
    @classmethod
    def _ping_shorthand(cls, value: object) -> object:
        return {"to": value} if isinstance(value, str) else value  # "ping": "r2:eth1"

    @model_validator(mode="after")
    def _one_of_each(self) -> ValidateTest:
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError('a test runs exactly one of "ping", "exec" (an argv) or "ssh"')
        where = [w for w in ("nodes", "device_type", "platform") if getattr(self, w) is not None]
        if len(where) != 1:
            raise ValueError(
                'say where the test runs with one of "nodes" (names), "device_type" or "platform"'
            )
        if self.nodes is not None and not self.nodes:
            raise ValueError('"nodes" names no node')
        if self.ping is not None and self.expect is not None:
            raise ValueError('a ping test says what must hold with "loss", not "expect"')
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)
