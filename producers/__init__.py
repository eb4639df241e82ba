"""Producers: what web servers use to publish events to datamin."""
