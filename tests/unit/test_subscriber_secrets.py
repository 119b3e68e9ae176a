"""The pure halves of subscriber privacy and public requests: contact encryption and the blind index,
signed link tokens, the secret key setting, client keys behind proxies, and where webhooks may point."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.client_address import client_key, request_host
from domain.subscriber import InvalidWebhookUrl
from infra.contacts import Contact, blind_index, decrypt, encrypt, new_key
from infra.settings import MissingSecretKey, Settings, secret_key_bytes
from infra.tokens import ExpiredToken, InvalidToken, confirm_token, sign, verify
from infra.webhook_targets import check_target, forbidden
from tests.support.builders import T0

SECRET = b"x" * 40
SUBSCRIBER = UUID("01890a5d-ac96-774b-bcce-b302099a9001")


# Contacts


def test_a_contact_round_trips_and_never_shows_in_the_ciphertext() -> None:
    key = new_key()
    contact = Contact(
        url="https://hooks.example.com/x", secret="whsec_abc", previous_secret="whsec_old", previous_valid_until=T0
    )
    sealed = encrypt(key, contact)

    assert sealed.startswith("v1:")
    assert "hooks.example.com" not in sealed and "whsec" not in sealed
    assert decrypt(key, sealed) == contact
    assert encrypt(key, contact) != sealed  # fresh nonce: the log cannot be searched for a known contact


def test_a_contact_does_not_open_under_another_key() -> None:
    sealed = encrypt(new_key(), Contact(email="ann@example.com"))
    with pytest.raises(ValueError):
        decrypt(new_key(), sealed)


def test_the_blind_index_depends_on_the_secret_channel_and_value() -> None:
    index = blind_index(SECRET, "email", "ann@example.com")
    assert index == blind_index(SECRET, "email", "ann@example.com")
    assert index != blind_index(b"y" * 40, "email", "ann@example.com")
    assert index != blind_index(SECRET, "webhook", "ann@example.com")
    assert index != blind_index(SECRET, "email", "bob@example.com")
    assert b"ann" not in index


# Tokens


def test_tokens_verify_for_their_purpose_only() -> None:
    unsubscribe = sign(SECRET, "unsubscribe", SUBSCRIBER, None)
    assert verify(SECRET, "unsubscribe", unsubscribe, now=T0 + timedelta(days=3650)) == SUBSCRIBER
    assert sign(SECRET, "unsubscribe", SUBSCRIBER, None) == unsubscribe  # a retried mail is byte-identical
    with pytest.raises(InvalidToken):
        verify(SECRET, "confirm", unsubscribe, now=T0)
    with pytest.raises(InvalidToken):
        verify(b"y" * 40, "unsubscribe", unsubscribe, now=T0)


def test_a_confirmation_token_expires_after_seven_days() -> None:
    token = confirm_token(SECRET, SUBSCRIBER, T0)
    assert verify(SECRET, "confirm", token, now=T0 + timedelta(days=7)) == SUBSCRIBER
    with pytest.raises(ExpiredToken):
        verify(SECRET, "confirm", token, now=T0 + timedelta(days=7, seconds=1))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", sign(SECRET, "manage", SUBSCRIBER, None)[:-2]])
def test_malformed_or_tampered_tokens_are_invalid(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(SECRET, "manage", token, now=T0)


# The secret key


def test_the_secret_key_is_required_with_database_url() -> None:
    with pytest.raises(MissingSecretKey, match="BEACON_SECRET_KEY is required"):
        Settings.from_env({"DATABASE_URL": "postgresql://x/y"})
    with pytest.raises(MissingSecretKey, match="at least 32"):
        Settings.from_env({"BEACON_SECRET_KEY": "short"})
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x/y", "BEACON_SECRET_KEY": "k" * 32})
    assert secret_key_bytes(settings) == b"k" * 32


def test_the_embedded_default_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings.from_env({"BEACON_DATA_DIR": str(tmp_path)})
    first = secret_key_bytes(settings)
    assert len(first) >= 32
    assert secret_key_bytes(settings) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]


# Client keys


def scope(peer: str, **headers: str) -> dict[str, Any]:
    return {
        "client": (peer, 1234),
        "headers": [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()],
    }


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("request_scope", "key"),
    [
        (scope("203.0.113.7"), "203.0.113.7"),
        (scope("203.0.113.7", x_forwarded_for="198.51.100.1"), "203.0.113.7"),  # not a trusted peer: ignored
        (scope("10.0.0.2", x_forwarded_for="198.51.100.1"), "198.51.100.1"),
        (scope("10.0.0.2", x_forwarded_for="6.6.6.6, 198.51.100.1, 10.0.0.9"), "198.51.100.1"),
        (scope("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64"),
        (scope("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64"),
        (scope("::ffff:203.0.113.7"), "203.0.113.7"),
        (scope("fd00::1", x_forwarded_for="[2001:db8:9:9::5]:443"), "2001:db8:9:9::/64"),
    ],
)
def test_client_keys(request_scope: dict[str, Any], key: str) -> None:
    assert client_key(request_scope, PROXIES) == key


def test_request_host_believes_x_forwarded_host_only_from_trusted_proxies() -> None:
    assert request_host(scope("203.0.113.7", host="Status.Example.COM.:8443"), PROXIES) == "status.example.com"
    assert request_host(scope("203.0.113.7", host="a.test", x_forwarded_host="evil.test"), PROXIES) == "a.test"
    assert request_host(scope("10.1.1.1", host="a.test", x_forwarded_host="b.test:443, c.test"), PROXIES) == "b.test"


# Webhook targets


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.1.1", True),
        ("172.16.0.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("100.100.100.200", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", True),
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
    ],
)
def test_forbidden_addresses(address: str, refused: bool) -> None:
    assert forbidden(ipaddress.ip_address(address)) is refused


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://127.0.0.1/hook", "forbidden_address"),
        ("https://[::1]:8443/hook", "forbidden_address"),
        ("https://localhost/hook", "forbidden_address"),
        ("https://169.254.169.254/latest/meta-data", "forbidden_address"),
        ("http://93.184.216.34/hook", "invalid_value"),
        ("https://name.invalid/hook", "unresolvable"),
    ],
)
def test_webhook_targets_are_refused(url: str, code: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as raised:
        asyncio.run(check_target(url, allow_private=False))
    assert raised.value.code == code


def test_private_targets_are_allowed_when_the_operator_says_so() -> None:
    addresses = asyncio.run(check_target("http://127.0.0.1:9000/hook", allow_private=True))
    assert addresses == [ipaddress.ip_address("127.0.0.1")]
    assert asyncio.run(check_target("https://93.184.216.34/hook", allow_private=False))
