"""Tests of the test host itself: the server's kv rules, traps, tick rounding."""

import os
import unittest

from halo_testing import PluginTrap, TestHost, presence_input

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kv_plugin")


class Rules(unittest.TestCase):
    def test_kv_is_denied_until_granted(self):
        host = TestHost()
        plugin = host.load("kv_app", path=PLUGIN)
        plugin.derive(presence_input("alice"))
        self.assertEqual(host.logs, [("warn", "kv: KvError_AccessDenied")])
        self.assertEqual(host.kv, {})

    def test_kv_works_once_granted_within_its_quota(self):
        host = TestHost(kv_granted=True)
        plugin = host.load("kv_app", path=PLUGIN)
        plugin.derive(presence_input("alice"))
        plugin.derive(presence_input("alice"))
        self.assertEqual(host.kv, {"n": b"2"})
        full = TestHost(kv_granted=True, kv_quota=1)
        plugin = full.load("kv_app", path=PLUGIN)
        plugin.derive(presence_input("alice"))
        self.assertEqual(full.logs, [("warn", "kv: KvError_QuotaExceeded")])

    def test_an_exception_is_a_trap(self):
        plugin = TestHost().load("kv_app", path=PLUGIN)
        with self.assertRaises(PluginTrap):
            plugin.derive(presence_input("raise"))

    def test_ticks_are_at_least_ten_seconds(self):
        self.assertEqual(TestHost().load("kv_app", path=PLUGIN).tick_seconds(), 10)

    def test_states_are_checked(self):
        (state,) = TestHost().load("kv_app", path=PLUGIN).states()
        self.assertEqual(state.id, "counted")


if __name__ == "__main__":
    unittest.main()


class Calendar(unittest.TestCase):
    """halo:plugin@0.1.3: the calendar import answers the event given to `derive`."""

    def test_the_event_title_reaches_the_plugin_during_derive_only(self):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cal_plugin")
        plugin = TestHost().load("cal_app", path=path, api="halo:plugin@0.1.3")
        from wit_world.imports.calendar import Event, current

        meeting = presence_input("alice", calendar="in-a-meeting")
        focus = Event(activity="in-a-meeting", title="Focus time", end_ms=None)
        self.assertEqual(plugin.derive(meeting, event=focus).custom, "focusing")
        other = Event(activity="in-a-meeting", title="1:1", end_ms=None)
        self.assertIsNone(plugin.derive(meeting, event=other))
        self.assertIsNone(current(), "no event outside derive")
        self.assertEqual(plugin.tick_seconds(), 0)

    def test_versions_switch_cleanly(self):
        TestHost().load("kv_app", path=PLUGIN)
        with self.assertRaises(ModuleNotFoundError):
            __import__("wit_world.imports.calendar")
