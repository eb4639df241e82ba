"""Pure transforms of the minimisation processor: plain functions over values.

No Kafka, no DuckDB, no I/O (except :class:`KeyStore`'s key directory). Bad *values* give
``None`` for the caller to count; bad *configuration* arguments raise ``ValueError``.
"""

from datamin.keys import KeyStore, pseudonymise
from processors.transforms.freetext import scrub_text
from processors.transforms.generalise import country_code, primary_language
from processors.transforms.ip import truncate_ip, validate_prefixes
from processors.transforms.urls import referrer_origin, strip_url
from processors.transforms.useragent import UserAgentInfo, parse_user_agent

__all__ = [
    "KeyStore",
    "UserAgentInfo",
    "country_code",
    "parse_user_agent",
    "primary_language",
    "pseudonymise",
    "referrer_origin",
    "scrub_text",
    "strip_url",
    "truncate_ip",
    "validate_prefixes",
]
