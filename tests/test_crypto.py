"""The shared hybrid encryption: RSA-chunked headers and AES bodies."""

from __future__ import annotations

import base64
import json
import math

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from obshell_contract.crypto import (
    AesKeys,
    aes_decrypt,
    aes_encrypt,
    decrypt_header,
    encrypt_header,
    expiry,
    generate_private_key,
    load_public_key,
    max_chunk,
    public_key_b64,
    rsa_decrypt_chunked,
    rsa_encrypt_chunked,
)
from obshell_contract.errors import DecryptionError

FIELDS = {
    "Auth": "root-Pässword#1",
    "Ts": "1796311530",
    "Uri": "/api/v1/task/dag/11000000000000000001?show_details=true",
    "Keys": "b+xgptazh845eFkeq00MZuWCVX2ySILPGHfwZYz5nM8=",
}


@pytest.fixture(scope="module", params=[512, 1024], ids=["512-bit", "1024-bit"])
def key(request: pytest.FixtureRequest) -> rsa.RSAPrivateKey:
    return generate_private_key(request.param)


def _independent_chunks(key: rsa.RSAPublicKey, plaintext: bytes, size: int) -> str:
    # Encrypt chunk by chunk with cryptography alone, as another client would.
    chunks = [plaintext[i : i + size] for i in range(0, len(plaintext), size)]
    blocks = b"".join(key.encrypt(chunk, padding.PKCS1v15()) for chunk in chunks)
    return base64.b64encode(blocks).decode()


# -- RSA ------------------------------------------------------------------------------


def test_header_round_trip(key: rsa.RSAPrivateKey) -> None:
    value = encrypt_header(key.public_key(), FIELDS)

    assert decrypt_header(key, value) == FIELDS


@pytest.mark.parametrize("size", ["sdk-53", "max"])
def test_foreign_chunking_is_accepted(key: rsa.RSAPrivateKey, size: str) -> None:
    chunk = 53 if size == "sdk-53" else key.key_size // 8 - 11
    plaintext = json.dumps(FIELDS).encode()
    value = _independent_chunks(key.public_key(), plaintext, chunk)

    assert len(base64.b64decode(value)) == math.ceil(len(plaintext) / chunk) * (
        key.key_size // 8
    )
    assert decrypt_header(key, value) == FIELDS


def test_encrypt_header_uses_the_largest_chunk_by_default(
    key: rsa.RSAPrivateKey,
) -> None:
    plaintext = json.dumps(FIELDS, separators=(",", ":"), ensure_ascii=False).encode()
    value = encrypt_header(key.public_key(), FIELDS)

    blocks = len(base64.b64decode(value)) // (key.key_size // 8)
    assert blocks == math.ceil(len(plaintext) / max_chunk(key))


@pytest.mark.parametrize("chunk_size", [1, 53])
def test_small_chunks_round_trip(key: rsa.RSAPrivateKey, chunk_size: int) -> None:
    plaintext = b'{"Auth":"x"}'
    value = rsa_encrypt_chunked(key.public_key(), plaintext, chunk_size)

    blocks = len(base64.b64decode(value)) // (key.key_size // 8)
    assert blocks == math.ceil(len(plaintext) / chunk_size)
    assert rsa_decrypt_chunked(key, value) == plaintext


@pytest.mark.parametrize("excess", [1, 50])
def test_chunk_sizes_above_the_maximum_are_refused(
    key: rsa.RSAPrivateKey, excess: int
) -> None:
    with pytest.raises(ValueError, match="chunk_size must be between 1 and"):
        rsa_encrypt_chunked(key.public_key(), b"x", max_chunk(key) + excess)


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_empty_or_negative_chunk_sizes_are_refused(
    key: rsa.RSAPrivateKey, chunk_size: int
) -> None:
    with pytest.raises(ValueError, match=f"got {chunk_size}"):
        rsa_encrypt_chunked(key.public_key(), b"x", chunk_size)


def test_empty_plaintext_gives_one_block(key: rsa.RSAPrivateKey) -> None:
    value = rsa_encrypt_chunked(key.public_key(), b"")

    assert len(base64.b64decode(value)) == key.key_size // 8
    assert rsa_decrypt_chunked(key, value) == b""


def test_a_header_under_a_wrong_key_is_caught_every_time() -> None:
    # cryptography's implicit rejection turns most wrong-key blocks into random
    # bytes instead of an error; decrypt_header must still refuse every one.
    sender = generate_private_key(1024)
    value = encrypt_header(sender.public_key(), FIELDS)

    for _ in range(50):
        with pytest.raises(DecryptionError):
            decrypt_header(generate_private_key(1024), value)


def test_a_header_under_a_wrong_legacy_key_is_caught() -> None:
    value = encrypt_header(generate_private_key(512).public_key(), FIELDS)

    for _ in range(10):
        with pytest.raises(DecryptionError):
            decrypt_header(generate_private_key(512), value)


@pytest.mark.parametrize(
    "value",
    ["Zm9vYmFy", "not base64!", "QUJD", "", "Zm9vYmFy=="],
    ids=["short-garbage", "bad-characters", "three-bytes", "empty", "bad-padding"],
)
def test_undecodable_headers_raise(key: rsa.RSAPrivateKey, value: str) -> None:
    with pytest.raises(DecryptionError):
        decrypt_header(key, value)


def test_a_truncated_block_raises(key: rsa.RSAPrivateKey) -> None:
    raw = base64.b64decode(encrypt_header(key.public_key(), FIELDS))

    with pytest.raises(DecryptionError, match="not a multiple"):
        decrypt_header(key, base64.b64encode(raw[:-1]).decode())


@pytest.mark.parametrize("plaintext", [b"[1,2]", b'"Auth"', b"12", b"\xff\xfe"])
def test_a_header_that_is_not_a_json_object_raises(
    key: rsa.RSAPrivateKey, plaintext: bytes
) -> None:
    value = rsa_encrypt_chunked(key.public_key(), plaintext)

    with pytest.raises(DecryptionError):
        decrypt_header(key, value)


# -- keys -----------------------------------------------------------------------------


def test_legacy_key_numbers_are_consistent() -> None:
    key = generate_private_key(512)
    numbers = key.private_numbers()
    public = numbers.public_numbers

    assert key.key_size == 512
    assert public.e == 65537
    assert numbers.p * numbers.q == public.n
    assert (public.e * numbers.d) % math.lcm(numbers.p - 1, numbers.q - 1) == 1
    assert numbers.iqmp * numbers.q % numbers.p == 1


@pytest.mark.parametrize("bits", [256, 511, 513])
def test_unusable_key_sizes_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match=f"got {bits}"):
        generate_private_key(bits)


def test_pkcs1_and_spki_public_keys_both_load(key: rsa.RSAPrivateKey) -> None:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = key.public_key().public_numbers()

    assert (
        load_public_key(public_key_b64(key.public_key())).public_numbers() == expected
    )
    assert load_public_key(base64.b64encode(spki).decode()).public_numbers() == expected


def test_a_pem_public_key_is_refused(key: rsa.RSAPrivateKey) -> None:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )

    with pytest.raises(DecryptionError):
        load_public_key(pem.decode())


def test_public_key_b64_is_pkcs1_der(key: rsa.RSAPrivateKey) -> None:
    der = base64.b64decode(public_key_b64(key.public_key()))
    pkcs1 = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )

    assert der == pkcs1


# -- AES ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 32, 100])
def test_body_round_trip(length: int) -> None:
    keys = AesKeys.random()
    plaintext = bytes(range(length))
    wire = aes_encrypt(keys, plaintext)

    assert len(base64.b64decode(wire)) == (length // 16 + 1) * 16
    assert aes_decrypt(keys, wire) == plaintext


def test_empty_plaintext_gives_one_aes_block() -> None:
    assert len(base64.b64decode(aes_encrypt(AesKeys.random(), b""))) == 16


def test_aes_known_answer() -> None:
    # A capture of the official SDK (obshell-sdk.md §1.9): key, IV and body.
    # The note's prose says "/data/upg"; the ciphertext holds "/tmp/upg".
    keys = AesKeys.from_wire(
        base64.b64decode("b+xgptazh845eFkeq00MZuWCVX2ySILPGHfwZYz5nM8=")
    )
    wire = (
        "H4axJlUh5sQK1mHlJq4ODs76ntqekqVMilf1/wLdHeu+oCpX/4gKTabeIniwmOjXmz6VIlZr"
        "mejgbcSOWG4HdKO4uyU4Sy79j99R08saerpGf2d4BUpq3TydYjft5pOC"
    )
    plaintext = (
        b'{"version": "4.3.1.0", "release": "100000012025010101", '
        b'"upgradeDir": "/tmp/upg"}'
    )

    assert keys.key.hex() == "6fec60a6d6b387ce3978591eab4d0c66"
    assert keys.iv.hex() == "e582557db24882cf1877f0658cf99ccf"
    assert aes_decrypt(keys, wire) == plaintext
    assert aes_encrypt(keys, plaintext) == wire


@pytest.mark.parametrize(
    "wire",
    ["QUJD", "", "not base64!", base64.b64encode(bytes(15)).decode()],
    ids=["three-bytes", "empty", "bad-characters", "short-block"],
)
def test_undecodable_bodies_raise(wire: str) -> None:
    with pytest.raises(DecryptionError):
        aes_decrypt(AesKeys.random(), wire)


def test_bad_padding_raises() -> None:
    keys = AesKeys.random()
    # One block of zeros: a last byte of 0 is never valid PKCS#7.
    encryptor = Cipher(algorithms.AES(keys.key), modes.CBC(keys.iv)).encryptor()
    raw = encryptor.update(bytes(16)) + encryptor.finalize()

    with pytest.raises(DecryptionError, match="padding"):
        aes_decrypt(keys, base64.b64encode(raw))


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_keys_of_the_wrong_size_are_refused(size: int) -> None:
    with pytest.raises(DecryptionError, match=f"got {size}"):
        AesKeys.from_wire(bytes(size))


def test_aes_keys_wire_form_is_key_then_iv() -> None:
    keys = AesKeys.random()

    assert base64.b64decode(keys.wire) == keys.key + keys.iv
    assert AesKeys.from_wire(keys.key + keys.iv) == keys


def test_aes_keys_repr_hides_the_keys() -> None:
    keys = AesKeys.random()
    text = repr(keys) + str(keys)

    for form in (keys.wire, keys.key.hex(), keys.iv.hex(), repr(keys.key)):
        assert form not in text


def test_expiry_is_a_string_of_whole_seconds() -> None:
    assert expiry(10, now=1000.9) == "1010"
    assert expiry(-60, now=1000.0) == "940"
