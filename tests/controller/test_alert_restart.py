"""A controller restart in the middle of an episode: the risk engine takes up each point's
colour and blind devices as it left them, so an open alert goes on (no duplicate) and
closes by the rules. Real mosquitto, SQLite and centers; an injected clock."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from edgewatch.broker import Mosquitto
from edgewatch.center import ReferenceCenter
from edgewatch.waiting import wait_until
from tests.controller.test_alerts import PLACES, SECRET, start_rig


def test_an_open_episode_goes_on_across_a_restart_and_closes_normally(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with ExitStack() as stack:
        centers = {
            tier: stack.enter_context(ReferenceCenter(f"{tier}-c", tier, secret=SECRET))
            for tier in PLACES
        }
        with start_rig(tmp_path, mosquitto, centers) as rig:
            rig.reading(450)  # red: alert 1
            rig.wait_actions("city", [(1, "raised")])
            assert rig.move(1, "acknowledged").status_code == 200
            rig.clock.advance(61)  # then the gauge goes quiet: blind spot, alert 2
            rig.wait_actions("district", [(1, "raised"), (1, "acknowledged"), (2, "raised")])
            clock, seq = rig.clock, rig.seq
        with start_rig(tmp_path, mosquitto, centers, clock=clock) as rig:
            rig.seq = seq
            rig.reading(470)  # still red: the same episode, nothing new
            rig.reading(50)  # the gauge is back (blind spot over), below every bound
            rig.wait_actions(
                "district", [(1, "raised"), (1, "acknowledged"), (2, "raised"), (2, "resolved")]
            )
            rig.clock.advance(29)
            rig.reading(50)
            assert rig.alert(1)["open"]
            rig.clock.advance(2)  # the hold time (30 s) has passed: the episode closes
            wait_until(lambda: not rig.alert(1)["open"], timeout_s=5, message="alert 1 closed")
            assert [a["id"] for a in rig.alerts()] == [2, 1]  # no duplicate episode
            trail = rig.alert(1)["trail"]
            assert [t["action"] for t in trail] == ["raised", "acknowledged", "resolved"]
            assert (trail[-1]["by"], trail[-1]["state"]) == ("system", "resolved")
            rig.wait_actions("city", [(1, "raised"), (1, "acknowledged"), (1, "resolved")])
            rig.reading(420)  # a new crossing is a new episode
            rig.wait_actions(
                "city", [(1, "raised"), (1, "acknowledged"), (1, "resolved"), (3, "raised")]
            )
