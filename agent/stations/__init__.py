"""Stations that push to the gateway (SL651, HJ212): the listeners and what is known of them.

``server.StationServer`` serves every ``[[listeners]]`` entry from one thread;
``book.StationBook`` turns their reports into readings and health.
"""
