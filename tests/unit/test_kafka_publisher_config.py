"""The relay's publisher speaks librdkafka: the same security settings, in its names
(kernel/kafka.py ``librdkafka_security``)."""

from __future__ import annotations

from kernel import kafka as K
from kernel.settings import KafkaSecurity


def test_security_settings_map_to_librdkafka_names_and_unset_ones_are_left_out() -> None:
    """Every field of ``KafkaSecurity`` has its librdkafka property; ``None`` fields are not
    passed (librdkafka's defaults stay), and the default is plaintext."""
    full = KafkaSecurity(security_protocol="SASL_SSL", ssl_cafile="/ca.pem",
                         ssl_certfile="/c.pem", ssl_keyfile="/k.pem",
                         sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="u",
                         sasl_plain_password="secret")
    assert K.librdkafka_security(full) == {
        "security.protocol": "SASL_SSL", "ssl.ca.location": "/ca.pem",
        "ssl.certificate.location": "/c.pem", "ssl.key.location": "/k.pem",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "secret"}
    assert K.librdkafka_security(None) == {"security.protocol": "PLAINTEXT"}


def test_librdkafka_takes_a_sasl_publisher_config() -> None:
    """A publisher with SASL/PLAIN settings is built (librdkafka refuses a property it does not
    know or a value it cannot use when the client is created, not later)."""
    sec = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                        sasl_plain_username="u", sasl_plain_password="p")
    publisher = K.publisher("127.0.0.1:9", sec)
    publisher.close(timeout=0)
