"""obshell's hybrid encryption: an RSA-encrypted header and an AES-encrypted body.

Both directions live here, so the client and the mock agent share one
implementation of the wire format:

- the header is UTF-8 JSON, cut into chunks of at most ``k - 11`` bytes (``k`` being
  the modulus length), each chunk encrypted with RSAES-PKCS1-v1_5, the blocks
  concatenated and standard-base64 encoded;
- the body is AES-128-CBC with PKCS#7 padding, standard-base64 encoded and sent as
  the raw request body; the key and IV travel in the header as ``Keys``.

``cryptography`` applies implicit rejection to PKCS#1 v1.5 decryption: a block
under the wrong key usually decrypts to random bytes instead of raising. Callers
that decrypt must therefore judge success by what follows (the header must be a
JSON object), which :func:`decrypt_header` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from obshell_contract.errors import DecryptionError

__all__ = [
    "AES_BLOCK",
    "AES_KEY_SIZE",
    "PKCS1_OVERHEAD",
    "AesKeys",
    "aes_decrypt",
    "aes_encrypt",
    "b64decode_strict",
    "b64encode",
    "decrypt_header",
    "encrypt_header",
    "expiry",
    "generate_private_key",
    "load_private_key_pem",
    "load_public_key",
    "max_chunk",
    "private_key_pem",
    "public_key_b64",
    "rsa_decrypt_chunked",
    "rsa_encrypt_chunked",
]

AES_KEY_SIZE = 16
AES_BLOCK = 16
PKCS1_OVERHEAD = 11
PUBLIC_EXPONENT = 65537


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as Go's ``base64.StdEncoding`` writes it."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str | bytes) -> bytes:
    """Decode standard base64, refusing bad characters and missing padding."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError(f"illegal base64 data: {exc}") from None


# -- keys ------------------------------------------------------------------------


def generate_private_key(bits: int = 1024) -> rsa.RSAPrivateKey:
    """Make an RSA key with exponent 65537.

    ``cryptography`` refuses to generate keys under 1024 bits, but agents before
    4.4.2 hold 512-bit keys and a faithful mock must offer them, so small keys
    are built from primes found here and then handed to ``cryptography``.
    """
    if bits >= 1024:
        return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)
    if bits < 512 or bits % 2:
        raise ValueError(f"key size must be an even number >= 512, got {bits!r}")
    return _legacy_private_key(bits)


def _legacy_private_key(bits: int) -> rsa.RSAPrivateKey:
    while True:
        p = _random_prime(bits // 2)
        q = _random_prime(bits // 2)
        n = p * q
        phi = (p - 1) * (q - 1)
        if p != q and n.bit_length() == bits and math.gcd(PUBLIC_EXPONENT, phi) == 1:
            break

    d = pow(PUBLIC_EXPONENT, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(PUBLIC_EXPONENT, n),
    )
    return numbers.private_key()


def _random_prime(bits: int) -> int:
    while True:
        # Top two bits set so that the product has exactly 2 * bits bits.
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if _is_probable_prime(candidate):
            return candidate


def _is_probable_prime(n: int, rounds: int = 40) -> bool:
    for small in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % small == 0:
            return n == small
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def public_key_b64(key: rsa.RSAPublicKey) -> str:
    """The public key as ``GET /api/v1/secret`` sends it: base64 of PKCS#1 DER."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return b64encode(der)


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """Load a base64 DER public key, PKCS#1 (as the agent sends) or SPKI."""
    der = b64decode_strict(text)
    for loader in (
        serialization.load_der_public_key,
        _load_pkcs1_public_key,
    ):
        try:
            key = loader(der)
        except ValueError:
            continue
        if isinstance(key, rsa.RSAPublicKey):
            return key
    raise DecryptionError(
        "public key is neither PKCS#1 RSAPublicKey nor SubjectPublicKeyInfo DER"
    )


def _load_pkcs1_public_key(der: bytes) -> Any:
    # cryptography reads bare PKCS#1 only through PEM.
    body = "\n".join(
        b64encode(der)[i : i + 64] for i in range(0, len(b64encode(der)), 64)
    )
    pem = f"-----BEGIN RSA PUBLIC KEY-----\n{body}\n-----END RSA PUBLIC KEY-----\n"
    return serialization.load_pem_public_key(pem.encode("ascii"))


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: for the mock's ``--key-file`` and for tests."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"expected an RSA private key, got {type(key).__name__}")
    return key


# -- RSA, chunked ----------------------------------------------------------------


def max_chunk(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> int:
    """The largest plaintext chunk PKCS#1 v1.5 can hold under this key."""
    return key.key_size // 8 - PKCS1_OVERHEAD


def rsa_encrypt_chunked(
    key: rsa.RSAPublicKey, plaintext: bytes, chunk_size: int | None = None
) -> str:
    """Encrypt ``plaintext`` in independent PKCS#1 v1.5 chunks, base64 the result.

    ``chunk_size`` defaults to the key's maximum; the official SDK uses 53 for
    every key size, and the agent accepts any size up to the maximum.
    """
    # `or` would turn a chunk_size of 0 into the default instead of refusing it.
    size = max_chunk(key) if chunk_size is None else chunk_size
    if not 0 < size <= max_chunk(key):
        raise ValueError(
            f"chunk_size must be between 1 and {max_chunk(key)} for a "
            f"{key.key_size}-bit key, got {size!r}"
        )

    # An empty plaintext still produces one block, as the agent's encrypter does.
    chunks = [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]
    blocks = b"".join(key.encrypt(chunk, padding.PKCS1v15()) for chunk in chunks)
    return b64encode(blocks)


def rsa_decrypt_chunked(key: rsa.RSAPrivateKey, text: str | bytes) -> bytes:
    """Decrypt base64 text made of key-sized PKCS#1 v1.5 blocks.

    Raises :class:`DecryptionError` on bad base64, a short block or a padding
    error that the backend does report. A block under a foreign key may still
    come back as random bytes; see the module docstring.
    """
    raw = b64decode_strict(text)
    width = key.key_size // 8
    if not raw or len(raw) % width:
        raise DecryptionError(
            f"ciphertext of {len(raw)} bytes is not a multiple of the "
            f"{width}-byte block of a {key.key_size}-bit key"
        )

    plain = bytearray()
    for start in range(0, len(raw), width):
        try:
            plain += key.decrypt(raw[start : start + width], padding.PKCS1v15())
        except ValueError:
            raise DecryptionError("crypto/rsa: decryption error") from None
    return bytes(plain)


# -- AES -------------------------------------------------------------------------


@dataclass(frozen=True)
class AesKeys:
    """The body key and IV; ``Keys`` in the header is base64 of ``key + iv``."""

    key: bytes
    iv: bytes

    @classmethod
    def random(cls) -> AesKeys:
        return cls(secrets.token_bytes(AES_KEY_SIZE), secrets.token_bytes(AES_BLOCK))

    @classmethod
    def from_wire(cls, keys: bytes) -> AesKeys:
        """Split ``Keys`` the agent's way: 16 bytes of key, the rest is the IV."""
        if len(keys) != AES_KEY_SIZE + AES_BLOCK:
            raise DecryptionError(
                f"AES key and IV must be {AES_KEY_SIZE + AES_BLOCK} bytes, "
                f"got {len(keys)}"
            )
        return cls(keys[:AES_KEY_SIZE], keys[AES_KEY_SIZE:])

    @property
    def wire(self) -> str:
        return b64encode(self.key + self.iv)

    def __repr__(self) -> str:
        # Keys are secrets: never let them reach a log or a report by accident.
        return "AesKeys(<redacted>)"


def aes_encrypt(keys: AesKeys, plaintext: bytes) -> str:
    """AES-128-CBC with PKCS#7 padding, base64-encoded: the wire form of a body."""
    padder = sym_padding.PKCS7(AES_BLOCK * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(keys.key), modes.CBC(keys.iv)).encryptor()
    return b64encode(encryptor.update(padded) + encryptor.finalize())


def aes_decrypt(keys: AesKeys, text: str | bytes) -> bytes:
    """Strictly decrypt a wire body; any defect raises :class:`DecryptionError`."""
    raw = b64decode_strict(text)
    if not raw or len(raw) % AES_BLOCK:
        raise DecryptionError(
            f"decrypted string length {len(raw)} is not a multiple of the block size"
        )

    decryptor = Cipher(algorithms.AES(keys.key), modes.CBC(keys.iv)).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(AES_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptionError("invalid PKCS#7 padding") from None


# -- the header ------------------------------------------------------------------


def expiry(lifetime: float = 10.0, now: float | None = None) -> str:
    """A ``Ts`` value: an expiry in whole Unix seconds, as a decimal string."""
    return str(int((time.time() if now is None else now) + lifetime))


def encrypt_header(
    key: rsa.RSAPublicKey, fields: dict[str, Any], chunk_size: int | None = None
) -> str:
    """Serialize header fields compactly and RSA-encrypt them in chunks."""
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return rsa_encrypt_chunked(key, text.encode("utf-8"), chunk_size)


def decrypt_header(key: rsa.RSAPrivateKey, value: str | bytes) -> dict[str, Any]:
    """Decrypt an ``X-OCS-Header`` value into its JSON object.

    Success is judged by the result: under implicit rejection a foreign key
    yields random bytes, which are caught here as "not a JSON object".
    """
    plain = rsa_decrypt_chunked(key, value)
    try:
        fields = json.JSONDecoder().raw_decode(plain.decode("utf-8").lstrip())[0]
    except (UnicodeDecodeError, ValueError):
        raise DecryptionError("decrypted header is not JSON") from None
    if not isinstance(fields, dict):
        raise DecryptionError(
            f"decrypted header is JSON {type(fields).__name__}, expected an object"
        )
    return fields
