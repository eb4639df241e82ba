"""The detector library: one set of validating detectors for free text, URL paths and query values,
file paths and kept fields. Decode first (:func:`decode`), then detect and replace
(:func:`scrub_decoded`); :func:`scrub` does both. Each module's docstring says what it catches and
what it deliberately keeps; README.md's privacy section sums them up.

Pure: no Kafka, no files. Only ``processors`` and stages above it import this.
"""

from processors.detect.decode import decode
from processors.detect.numbers import set_default_region
from processors.detect.scrub import PLACEHOLDER, RULES, scrub_decoded

__all__ = ["PLACEHOLDER", "RULES", "decode", "scrub", "scrub_decoded", "set_default_region"]


def scrub(text: str) -> str:
    """``text`` decoded and with every detector's finds replaced by ``[rule]`` placeholders."""
    return scrub_decoded(decode(text))
