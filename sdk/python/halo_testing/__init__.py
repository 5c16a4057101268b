"""A native test host for Halo plugins written in Python (componentize-py), like the Rust
SDK's `TestHost`: it runs a plugin module's exports in this Python, against fake host imports
(config, log, kv) with the server's rules, without building a component.

    from halo_testing import TestHost, presence_input

    host = TestHost(config={"label": "Lunch break"})
    plugin = host.load("app", path="examples/python-presence")   # imports app.py
    assert plugin.states()[0].labels[0].text == "Lunch break"
    assert plugin.derive(presence_input("alice", now_ms=...)) is None
    assert host.logs == []

`load` puts the `wit_world` bindings of the plugin's WIT version on the import path (the ones
componentize-py 0.25.1 generates for 0.1.3, shipped here: the newest world holds every older
version's interfaces unchanged and adds the `calendar` import, so it serves plugins of
0.1.0-0.1.3 alike; with 0.1.3 pass `event=` to `derive`), then
imports the module and instantiates its `WitWorld`. Each call goes through this host (one
host is active at a time) and is checked as the server checks it: states (ids, labels,
band, colour, at most 50), published states (availability below 18000, a known activity),
tick seconds (0 or at least 10, as the server rounds up). An exception escaping the plugin is
a `PluginTrap` (the server would count a trap); an answer the server would refuse is an
`InvalidAnswer`.

Pure Python (3.11+), no dependencies.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["TestHost", "PluginTrap", "InvalidAnswer", "presence_input", "ACTIVITIES", "MAX_STATES"]

_BINDINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bindings")
# One set of bindings, the newest: older worlds differ from it only by the imports they lack,
# which are hidden from their plugins (the minor version that added each).
_VERSIONS = {f"halo:plugin@0.1.{minor}": minor for minor in range(4)}
_ADDED = {"calendar": 3}

#: Activity tokens a published state may carry.
ACTIVITIES = ("in-a-meeting", "in-a-call", "in-a-conference", "off-work", "out-of-office")
#: States one plugin may add (the server's default `max_states`).
MAX_STATES = 50
_TOKEN = re.compile(r"^[a-z0-9-]{1,64}$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_KEY_MAX, _VALUE_MAX = 256, 64 * 1024


class PluginTrap(Exception):
    """The plugin raised: on the server this is a trap (the instance is discarded and the
    trap counts against the plugin's budget)."""


class InvalidAnswer(Exception):
    """The plugin answered something the server refuses (counted as an error there)."""


_active: Optional["TestHost"] = None


def _host() -> "TestHost":
    if _active is None:
        raise RuntimeError("no TestHost is active: call the plugin through TestHost.load()")
    return _active


def _bindings(api: str):
    """Imports the `wit_world` bindings of `api`, replacing others, and wires their import
    functions to the active host."""
    minor = _VERSIONS.get(api)
    if minor is None:
        raise ValueError(f"unknown api {api!r}; this test host knows {sorted(_VERSIONS)}")
    path = os.path.join(_BINDINGS, "v0_1_3")
    # A fresh import per load, so that the imports hidden from one version are not left
    # hidden (or visible) for the next.
    for name in [n for n in sys.modules if n == "wit_world" or n.startswith("wit_world.")]:
        del sys.modules[name]
    sys.modules.pop("componentize_py_types", None)
    sys.path[:] = [p for p in sys.path if not p.startswith(_BINDINGS)]
    sys.path.insert(0, path)
    for name, added in _ADDED.items():
        if minor < added:
            sys.modules[f"wit_world.imports.{name}"] = None  # importing it raises ModuleNotFoundError
    imports = importlib.import_module("wit_world.imports")
    for name in ("config", "log", "kv", "types"):
        importlib.import_module(f"wit_world.imports.{name}")
    types = imports.types
    from componentize_py_types import Err  # noqa: E402  (the bindings' own module)

    imports.config.get = lambda key: _host().config.get(key)
    imports.config.all = lambda: sorted(_host().config.items())
    imports.log.log = lambda level, message: _host()._log(level, message)
    kv = imports.kv

    def checked():
        h = _host()
        if not h.kv_granted:
            raise Err(kv.KvError_AccessDenied())
        return h

    def kv_get(key):
        return checked().kv.get(key)

    def kv_set(key, value):
        h = checked()
        if len(key.encode()) > _KEY_MAX or len(value) > _VALUE_MAX:
            raise Err(kv.KvError_TooLarge())
        used = sum(len(k.encode()) + len(v) for k, v in h.kv.items() if k != key)
        if used + len(key.encode()) + len(value) > h.kv_quota:
            raise Err(kv.KvError_QuotaExceeded())
        h.kv[key] = bytes(value)

    def kv_delete(key):
        checked().kv.pop(key, None)

    kv.get, kv.set, kv.delete = kv_get, kv_set, kv_delete
    try:  # 0.1.3: the current calendar event of the user being derived
        calendar = importlib.import_module("wit_world.imports.calendar")
        calendar.current = lambda: _host()._event
    except ModuleNotFoundError:
        pass
    return types


def presence_input(user: str = "alice", now_ms: int = 1_796_200_200_000, **fields: Any):
    """A presence input for one active device at `now_ms` (built-in state: Available 3500).
    Override any field by name (`manual=`, `endpoints=`, `calendar=`, `phone=`, `builtin=`).
    Needs bindings loaded: call after `TestHost.load`."""
    types = sys.modules["wit_world.imports.types"]
    values = dict(
        user=user,
        manual=None,
        endpoints=[types.Endpoint(id=1, state=types.MachineState.ACTIVE, since_ms=now_ms)],
        calendar=None,
        phone=None,
        now_ms=now_ms,
        builtin=types.Published(availability=3500, activity=None, custom=None),
    )
    values.update(fields)
    return types.PresenceInput(**values)


@dataclass
class TestHost:
    """An in-memory host: `config` (key → value, as the admin set it, defaults included),
    `kv_granted` (the admin granted `kv`), `kv` (its contents) and the captured `logs`."""

    __test__ = False  # not a pytest test class

    config: dict[str, str] = field(default_factory=dict)
    kv_granted: bool = False
    kv_quota: int = 1 << 20
    kv: dict[str, bytes] = field(default_factory=dict)
    logs: list[tuple[str, str]] = field(default_factory=list)
    max_states: int = MAX_STATES
    _event: Any = None

    def _log(self, level, message: str) -> None:
        self.logs.append((getattr(level, "name", str(level)).lower(), message))

    def load(self, module: str, path: Optional[str] = None, api: str = "halo:plugin@0.1.0") -> "LoadedPlugin":
        """Imports `module` (from `path` if given) with the bindings of `api` and returns its
        `WitWorld`, called through this host."""
        global _active
        _active = self
        _bindings(api)
        if path is not None:
            path = os.path.abspath(path)
            if path not in sys.path:
                sys.path.insert(1, path)
        sys.modules.pop(module, None)
        mod = importlib.import_module(module)
        cls = getattr(mod, "WitWorld", None)
        if cls is None:
            raise InvalidAnswer(f"{module} has no class WitWorld (componentize-py needs that name)")
        return LoadedPlugin(self, cls())


class LoadedPlugin:
    """A plugin's `WitWorld`, called the way the server calls it, with its answers checked."""

    def __init__(self, host: TestHost, world: Any):
        self.host, self.world = host, world

    def _call(self, name: str, *args):
        global _active
        _active = self.host
        try:
            return getattr(self.world, name)(*args)
        except (InvalidAnswer, PluginTrap):
            raise
        except Exception as e:  # an uncaught exception traps the component
            raise PluginTrap(f"{name} raised {e!r}") from e

    def states(self):
        """`states()`, checked like the server: ids, an `en` label, a band below 18000, a
        `#rrggbb` colour, at most `max_states`, no duplicate ids."""
        states = self._call("states")
        if len(states) > self.host.max_states:
            raise InvalidAnswer(f"{len(states)} states; the limit is {self.host.max_states}")
        seen = set()
        for s in states:
            if not _TOKEN.match(s.id):
                raise InvalidAnswer(f"state id {s.id!r}: a-z, 0-9 and -, at most 64")
            if s.id in seen:
                raise InvalidAnswer(f"state id {s.id!r} twice")
            seen.add(s.id)
            if not any(label.lang == "en" and label.text for label in s.labels):
                raise InvalidAnswer(f"state {s.id!r} has no en label")
            if not 0 <= s.availability < 18000:
                raise InvalidAnswer(f"state {s.id!r}: availability {s.availability} (below 18000)")
            if not _COLOUR.match(s.colour):
                raise InvalidAnswer(f"state {s.id!r}: colour {s.colour!r} is not #rrggbb")
        return states

    def derive(self, input, event=None):
        """`derive(input)`, checked: `None` keeps the built-in state; a published state needs an
        availability below 18000 (a plugin never takes presence away; Offline only for a user
        the built-in rules show Offline already) and a known activity.
        With `api="halo:plugin@0.1.3"`, `event` (a `wit_world.imports.calendar.Event`) is what
        `calendar.current()` answers during the call, as the host does for the user's current
        calendar event (pass `input.calendar` too, as the host would)."""
        self.host._event = event
        try:
            p = self._call("derive", input)
        finally:
            self.host._event = None
        if p is None:
            return None
        offline_already = input.builtin.availability >= 18000
        if not (0 <= p.availability < 18000 or (offline_already and p.availability <= 18500)):
            raise InvalidAnswer(f"availability {p.availability} is Offline; a plugin never takes presence away")
        if p.activity is not None and p.activity not in ACTIVITIES:
            raise InvalidAnswer(f"unknown activity {p.activity!r}")
        if p.custom is not None and not _TOKEN.match(p.custom):
            raise InvalidAnswer(f"custom state id {p.custom!r}")
        return p

    def tick_seconds(self) -> int:
        """`tick_seconds()`: 0 for none; the server ticks at most every 10 s (a smaller value
        is rounded up), so this answers what the server will use."""
        s = self._call("tick_seconds")
        if not 0 <= s < 1 << 32:
            raise InvalidAnswer(f"tick_seconds {s} is not a u32")
        return 0 if s == 0 else max(s, 10)
