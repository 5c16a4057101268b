"""Unit tests of app.py against the native test host (sdk/python): no component is built.

    PYTHONPATH=../../sdk/python python3 -m unittest test_app     # or: cargo xtask test
"""

import os
import unittest

from halo_testing import InvalidAnswer, TestHost, presence_input

HERE = os.path.dirname(os.path.abspath(__file__))
NOON = 1_796_212_800_000  # 2026-12-02 12:00 UTC
NIGHT = NOON + 11 * 3_600_000  # 23:00 UTC


def load(**config):
    host = TestHost(config=config)
    return host, host.load("app", path=HERE)


class Lunch(unittest.TestCase):
    def test_one_state_labelled_from_the_config(self):
        _, plugin = load(label="Lunch break")
        (state,) = plugin.states()
        self.assertEqual((state.id, state.labels[0].text, state.availability), ("at-lunch", "Lunch break", 12500))

    def test_at_lunch_during_the_lunch_hour_only(self):
        _, plugin = load()
        self.assertEqual(plugin.derive(presence_input("alice", NOON)).custom, "at-lunch")
        self.assertIsNone(plugin.derive(presence_input("alice", NIGHT)))

    def test_the_utc_offset_moves_the_hour(self):
        _, plugin = load(utc_offset_hours="-11")
        self.assertEqual(plugin.derive(presence_input("alice", NIGHT)).custom, "at-lunch")

    def test_a_manual_state_or_no_device_is_left_alone(self):
        _, plugin = load()
        types = __import__("wit_world.imports.types", fromlist=["ManualState"])
        manual = types.ManualState(availability=9500, activity=None, custom=None, until_ms=None)
        self.assertIsNone(plugin.derive(presence_input("alice", NOON, manual=manual)))
        self.assertIsNone(plugin.derive(presence_input("alice", NOON, endpoints=[])))

    def test_a_bad_config_is_logged_not_raised(self):
        host, plugin = load(utc_offset_hours="not a number")
        self.assertIsNone(plugin.derive(presence_input("alice", NOON)))
        self.assertEqual(host.logs[0][0], "error")
        self.assertIn("derive failed", host.logs[0][1])

    def test_ticks_every_minute(self):
        _, plugin = load()
        self.assertEqual(plugin.tick_seconds(), 60)


class HostRules(unittest.TestCase):
    """The test host refuses what the server refuses, so these fail when a plugin misbehaves."""

    def test_an_out_of_range_answer_is_invalid(self):
        _, plugin = load()
        plugin.world.derive = lambda _input: __import__("wit_world.imports.types", fromlist=["x"]).Published(
            availability=18500, activity=None, custom=None
        )
        with self.assertRaises(InvalidAnswer):
            plugin.derive(presence_input("alice", NOON))


if __name__ == "__main__":
    unittest.main()
