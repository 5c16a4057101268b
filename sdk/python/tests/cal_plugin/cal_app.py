"""A 0.1.3 plugin for the test host's own tests: "Focusing" when the event title says focus."""

from typing import Optional

import wit_world
from wit_world.imports import calendar
from wit_world.imports.types import Label, PresenceInput, Published, StateDef


class WitWorld(wit_world.WitWorld):
    def states(self) -> list[StateDef]:
        return [StateDef(id="focusing", labels=[Label(lang="en", text="Focusing")], availability=6500, colour="#8e44ad")]

    def derive(self, input: PresenceInput) -> Optional[Published]:
        event = calendar.current() if input.calendar else None
        if event is not None and event.title and "focus" in event.title.lower():
            return Published(availability=6500, activity=None, custom="focusing")
        return None

    def tick_seconds(self) -> int:
        return 0
