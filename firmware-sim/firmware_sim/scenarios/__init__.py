"""Packaged scenarios (TOML), found by ``firmware_sim.scenario.packaged_scenarios``."""
