"""A tiny plugin for the test host's own tests: counts derive calls in kv."""

from typing import Optional

import wit_world
from componentize_py_types import Err
from wit_world.imports import kv, log
from wit_world.imports.types import Label, Level, PresenceInput, Published, StateDef


class WitWorld(wit_world.WitWorld):
    def states(self) -> list[StateDef]:
        return [StateDef(id="counted", labels=[Label(lang="en", text="Counted")], availability=3500, colour="#00aa00")]

    def derive(self, input: PresenceInput) -> Optional[Published]:
        try:
            n = int((kv.get("n") or b"0").decode()) + 1
            kv.set("n", str(n).encode())
        except Err as e:
            log.log(Level.WARN, f"kv: {type(e.value).__name__}")
        if input.user == "raise":
            raise ValueError("boom")
        return None

    def tick_seconds(self) -> int:
        return 3
