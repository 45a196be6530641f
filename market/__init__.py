"""Domain of tickstream: ticks, their validation and wire format. No AWS imports live here."""
