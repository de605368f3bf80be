"""Kafka over TLS and SASL, Redis over TLS, through settings; secrets never in a repr or a log line."""

from __future__ import annotations

import faust
import pytest

from streams.app import broker_credentials
from streams.contract.settings import ConfigError, load_settings

SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "warden", "KAFKA_SASL_PASSWORD": "kafka-s3cret",
        "REDIS_URL": "rediss://:redis-s3cret@redis.internal:6380/0"}


def test_plaintext_by_default() -> None:
    settings = load_settings({})
    assert settings.kafka_client_config() == {} and broker_credentials(settings) is None


def test_sasl_over_tls_reaches_every_client_and_no_secret_reaches_a_repr() -> None:
    settings = load_settings(SASL)
    assert settings.kafka_client_config() == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                                              "sasl.username": "warden", "sasl.password": "kafka-s3cret"}
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.ssl_context is not None
    assert "s3cret" not in repr(settings)
    assert settings.redis_location == "rediss://:***@redis.internal:6380/0"


def test_tls_alone_and_mutual_tls_files() -> None:
    settings = load_settings({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/etc/ssl/ca.pem",
                              "KAFKA_SSL_CERTIFICATE_LOCATION": "/etc/ssl/me.pem", "KAFKA_SSL_KEY_LOCATION": "/k"})
    assert settings.kafka_client_config() == {"security.protocol": "SSL", "ssl.ca.location": "/etc/ssl/ca.pem",
                                              "ssl.certificate.location": "/etc/ssl/me.pem", "ssl.key.location": "/k"}


@pytest.mark.parametrize(("env", "named"), [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
])
def test_an_incomplete_security_setting_is_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_the_table_cache_bound_is_a_number_of_at_least_a_thousand() -> None:
    assert load_settings({}).table_cache_entries == 100_000
    assert load_settings({"WARDEN_TABLE_CACHE_ENTRIES": "5000"}).table_cache_entries == 5_000
    for raw in ("many", "10"):
        with pytest.raises(ConfigError, match="WARDEN_TABLE_CACHE_ENTRIES"):
            load_settings({"WARDEN_TABLE_CACHE_ENTRIES": raw})
