"""A Halo presence plugin in Python: "At lunch" for signed-in users between 12:00 and 13:00
(in the UTC offset given by the `utc_offset_hours` config), unless they set a state by hand.

Built with componentize-py against wit/v0.1.0; `halo plugin pack` adds manifest.json.
"""

from typing import Optional

import wit_world
from wit_world.imports import config, log
from wit_world.imports.types import Label, Level, PresenceInput, Published, StateDef

LUNCH = "at-lunch"


class WitWorld(wit_world.WitWorld):
    def states(self) -> list[StateDef]:
        label = config.get("label") or "At lunch"
        return [StateDef(id=LUNCH, labels=[Label(lang="en", text=label)], availability=12500, colour="#ff8c00")]

    def derive(self, input: PresenceInput) -> Optional[Published]:
        try:
            if input.manual is not None or not input.endpoints:
                return None
            offset = int(config.get("utc_offset_hours") or "0")
            minutes = (input.now_ms // 60000 + offset * 60) % (24 * 60)
            start = int(config.get("start_minute") or str(12 * 60))
            end = int(config.get("end_minute") or str(13 * 60))
            if start <= minutes < end:
                return Published(availability=12500, activity=None, custom=LUNCH)
            return None
        except Exception as e:  # report, never trap: the host would count it
            log.log(Level.ERROR, f"derive failed: {e!r}")
            return None

    def tick_seconds(self) -> int:
        return 60
