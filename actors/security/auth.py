"""Authenticated messages: a signed envelope around the codec's bytes.

A signed envelope is the msgpack array ``[2, principal, origin, incarnation, seq, payload,
mac]``: the message's own bytes (``[1, tag, body]``, unchanged) with who signed them, a
sequence number per sender incarnation, and an HMAC-SHA256 (prepared pads,
:func:`hmac_pads`) over every byte before the MAC.  A :class:`Signer` seals; a
:class:`Verifier` refuses with an :class:`AuthError` naming one of :data:`REASONS`, checks the
MAC before the replay state, and changes that state only for a message it accepts.  Its
table of peers is bounded (:data:`MAX_PEERS`, :data:`WINDOW`): a forgotten peer's captured
message can be accepted once more, and the MAC does not bind the receiver.

Pure code: no files, clocks or sockets.  The ports that make these objects are
``impresario.security`` (a real host) and ``sim.auth`` (the simulator).  See
docs/security.md, 'Authenticated messages'.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import msgpack

from actors.protocol.codec import MAX_MESSAGE_BYTES, id_error, peek_tag

SIGNED_VERSION = 2
MAC_BYTES = 32
MAX_PRINCIPAL = 255
MAX_ORIGIN = 1024
UINT64_MAX = 2**64 - 1
#: Sequence numbers remembered below the highest one seen, per (principal, origin).
WINDOW = 1024
#: The (principal, origin) pairs a verifier remembers.
MAX_PEERS = 2**17
#: The largest signed envelope: a payload of the codec's limit and the fields around it.
MAX_SIGNED_BYTES = MAX_MESSAGE_BYTES + 4 * MAX_ORIGIN + 64
#: Every reason a message is refused for (AuthError.reason).
REASONS = ("unsigned", "malformed", "unknown_principal", "bad_mac", "old_incarnation", "replayed")

_MAC_HEAD = b"\xc4\x20"   # bin8 of 32 bytes: how the mac field is written
_TRAILER = len(_MAC_HEAD) + MAC_BYTES
_FIXARRAY7_V2 = bytes((0x97, SIGNED_VERSION))   # fixarray(7), then the version
_packb = msgpack.Packer(use_bin_type=True).pack
_same = hmac.compare_digest
_unpackb = msgpack.unpackb
_BLOCK = 64   # SHA-256's block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class AuthError(ValueError):
    """A message refused by authentication.  ``reason`` is one of :data:`REASONS`; the
    text says why, without repeating what the sender chose (so that the reasons an
    actor counts stay few, whatever it is sent)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _bad(message: str) -> AuthError:
    return AuthError("malformed", message)


def principal_error(principal: Any) -> str | None:
    """Why ``principal`` cannot name a principal, or None."""
    if type(principal) is not str or not principal:
        return "a principal is a non-empty string"
    return id_error(principal)


def origin_error(origin: Any) -> str | None:
    if type(origin) is not str or not origin:
        return "an origin is a non-empty string"
    if len(origin) > MAX_ORIGIN:
        return f"an origin may have at most {MAX_ORIGIN} characters"
    return None


def hmac_pads(secret: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's two hash states after the key's inner and outer pads (RFC 2104):
    a MAC is then two copies, two updates and two digests, half the cost of
    ``hmac.digest`` (which sets the key up again at every call)."""
    key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
    key = key.ljust(_BLOCK, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


def mac(pads: tuple[Any, Any], data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` with the key ``pads`` was made from."""
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return bytes(outer.digest())


class Credentials:
    """The secrets of the principals an operator declared: principal -> secret bytes.

    Every :class:`Verifier` made from it reads its secrets as they are at the time
    (one added later is known at once) and shares its prepared keys."""

    __slots__ = ("prepared", "secrets")

    def __init__(self, secrets: Mapping[str, bytes] | None = None) -> None:
        self.secrets: dict[str, bytes] = {}
        #: principal -> its key's pads (:func:`hmac_pads`), made on first use.
        self.prepared: dict[str, tuple[Any, Any]] = {}
        for principal, secret in (secrets or {}).items():
            self.add(principal, secret)

    def add(self, principal: str, secret: bytes) -> None:
        err = principal_error(principal)
        if err:
            raise ValueError(f"principal {principal!r}: {err}")
        if type(secret) is not bytes or not secret:
            raise ValueError(f"principal {principal!r}: a secret is non-empty bytes")
        self.secrets[principal] = secret
        self.prepared.pop(principal, None)

    def __contains__(self, principal: object) -> bool:
        return principal in self.secrets

    def __len__(self) -> int:
        return len(self.secrets)

    def pads(self, principal: str) -> tuple[Any, Any] | None:
        """The prepared key of ``principal`` (None: no secret is known for it)."""
        pads = self.prepared.get(principal)
        if pads is None:
            secret = self.secrets.get(principal)
            if secret is None:
                return None
            pads = self.prepared[principal] = hmac_pads(secret)
        return pads

    def signer(self, principal: str, origin: str, incarnation: int) -> Signer:
        secret = self.secrets.get(principal)
        if secret is None:
            raise ValueError(f"no secret for principal {principal!r}")
        return Signer(principal, origin, incarnation, secret)

    def verifier(self, window: int = WINDOW, max_peers: int = MAX_PEERS) -> Verifier:
        return Verifier(self, window, max_peers)


class Signer:
    """Seals payloads for one (principal, origin, incarnation), numbering them from 1."""

    __slots__ = ("_head", "_inner", "_outer", "incarnation", "origin", "principal", "seq")

    def __init__(self, principal: str, origin: str, incarnation: int, secret: bytes) -> None:
        err = principal_error(principal) or origin_error(origin)
        if err:
            raise ValueError(err)
        if type(incarnation) is not int or not 0 <= incarnation <= UINT64_MAX:
            raise ValueError(f"an incarnation is an unsigned 64-bit integer, got {incarnation!r}")
        if type(secret) is not bytes or not secret:
            raise ValueError("a secret is non-empty bytes")
        self.principal = principal
        self.origin = origin
        self.incarnation = incarnation
        self.seq = 0
        self._inner, self._outer = hmac_pads(secret)
        # The envelope's first bytes never change: fixarray(7), 2, principal, origin, incarnation.
        self._head = _FIXARRAY7_V2 + _packb(principal) + _packb(origin) + _packb(incarnation)

    def seal(self, payload: bytes) -> bytes:
        """The signed envelope of ``payload`` (a message's bytes)."""
        self.seq = seq = self.seq + 1
        signed = self._head + _packb(seq) + _packb(payload)
        inner = self._inner.copy()
        inner.update(signed)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return signed + _MAC_HEAD + outer.digest()


class Verifier:
    """Opens signed envelopes: checks them against the known secrets and its replay state."""

    __slots__ = ("_prepared", "credentials", "evicted", "max_peers", "peers", "window", "_full")

    def __init__(self, credentials: Credentials | Mapping[str, bytes], window: int = WINDOW,
                 max_peers: int = MAX_PEERS) -> None:
        if window < 1 or max_peers < 1:
            raise ValueError("the window and the table hold at least one entry")
        self.credentials = credentials if isinstance(credentials, Credentials) else Credentials(credentials)
        self._prepared = self.credentials.prepared
        self.window = window
        self.max_peers = max_peers
        self._full = (1 << window) - 1
        #: (principal, origin) -> [incarnation, highest seq, seen bits (bit i: highest - i)],
        #: least recently used first.
        self.peers: dict[tuple[str, str], list[int]] = {}
        self.evicted = 0

    def open(self, data: bytes) -> tuple[str, bytes]:
        """(principal, payload) of an authentic, fresh envelope; else :class:`AuthError`.

        The replay state is looked at only once every other check passed, and changes
        only for a message that is accepted."""
        principal, origin, incarnation, seq, payload = parse(data)
        pads = self._prepared.get(principal) or self.credentials.pads(principal)
        if pads is None:
            raise AuthError("unknown_principal", "no secret is known for the principal named")
        inner = pads[0].copy()
        inner.update(data[:-_TRAILER])
        outer = pads[1].copy()
        outer.update(inner.digest())
        if not _same(outer.digest(), data[-MAC_BYTES:]):
            raise AuthError("bad_mac", f"the MAC does not match the message (principal {principal})")
        # Fresh?  (inlined: this runs for every message)
        peers = self.peers
        k = (principal, origin)
        st = peers.get(k)
        if st is None:
            if len(peers) >= self.max_peers:
                del peers[next(iter(peers))]
                self.evicted += 1
            peers[k] = [incarnation, seq, 1]
            return principal, payload
        inc, top, seen = st
        if incarnation != inc:
            if incarnation < inc:
                raise AuthError("old_incarnation", f"from an incarnation of {origin} ({principal}) "
                                "older than one already heard from")
            st[0], st[1], st[2] = incarnation, seq, 1        # it restarted
        elif seq > top:
            shift = seq - top
            st[1] = seq
            st[2] = ((seen << shift) | 1) & self._full if shift < self.window else 1
        else:
            back = top - seq
            if back >= self.window:
                raise AuthError("replayed", f"a sequence number of {origin} ({principal}) older than "
                                f"the last {self.window}")
            bit = 1 << back
            if seen & bit:
                raise AuthError("replayed", f"a sequence number of {origin} ({principal}) already seen")
            st[2] = seen | bit
        # Most recently used last: a full table forgets the peer silent the longest.
        del peers[k]
        peers[k] = st
        return principal, payload


class Authenticator:
    """The ``auth`` port of one actor: seals what it sends, opens what it receives."""

    __slots__ = ("open", "seal", "signer", "verifier")

    def __init__(self, signer: Signer, verifier: Verifier) -> None:
        self.signer = signer
        self.verifier = verifier
        self.seal = signer.seal
        self.open = verifier.open

    @property
    def principal(self) -> str:
        return self.signer.principal


def is_signed(data: Any) -> bool:
    """Whether ``data`` looks like a signed envelope (its first two bytes)."""
    return type(data) is bytes and data[:2] == _FIXARRAY7_V2


def parse(data: Any) -> tuple[str, str, int, int, bytes]:
    """(principal, origin, incarnation, seq, payload) of a well-formed envelope, MAC not
    checked; else :class:`AuthError` (``unsigned`` or ``malformed``).  A principal is
    checked only for its type and length here: one that is not a valid name has no
    secret, and is refused as unknown."""
    if type(data) is not bytes:
        raise AuthError("malformed", f"expected bytes, got {type(data).__name__}")
    if data[:2] != _FIXARRAY7_V2:
        if peek_tag(data) is not None:
            raise AuthError("unsigned", "a message without a signature")
        raise _bad("not a signed envelope")
    n = len(data)
    if n > MAX_SIGNED_BYTES:
        raise _bad(f"an envelope of more than {MAX_SIGNED_BYTES} bytes")
    if n < 8 + _TRAILER or data[-_TRAILER:-MAC_BYTES] != _MAC_HEAD:
        raise _bad(f"the MAC must be the last field, of {MAC_BYTES} bytes")
    try:
        env = _unpackb(data, raw=False, use_list=True, max_str_len=4 * MAX_ORIGIN,
                       max_bin_len=MAX_MESSAGE_BYTES, max_array_len=7, max_map_len=0, max_ext_len=0)
    except Exception:
        raise _bad("not a msgpack array") from None
    if type(env) is not list or len(env) != 7:
        raise _bad("expected [2, principal, origin, incarnation, seq, payload, mac]")
    _, principal, origin, incarnation, seq, payload, mac_field = env
    if type(principal) is not str or not 0 < len(principal) <= MAX_PRINCIPAL:
        raise _bad(f"a principal is a string of 1 to {MAX_PRINCIPAL} characters")
    if type(origin) is not str or not 0 < len(origin) <= MAX_ORIGIN:
        raise _bad(f"an origin is a string of 1 to {MAX_ORIGIN} characters")
    if type(incarnation) is not int or incarnation < 0:
        raise _bad("the incarnation must be an unsigned 64-bit integer")
    if type(seq) is not int or seq < 1:
        raise _bad("the sequence number must be a positive 64-bit integer")
    if type(payload) is not bytes:
        raise _bad("the payload must be bytes")
    # The last field ends the envelope, and its last 34 bytes are a bin8 header of 32 and
    # 32 bytes; a longer bin or a str could still end so: the MAC is exactly 32 bytes.
    if type(mac_field) is not bytes or len(mac_field) != MAC_BYTES:
        raise _bad(f"the MAC must be {MAC_BYTES} bytes")
    return principal, origin, incarnation, seq, payload


def payload_of(data: bytes) -> bytes:
    """The payload of a well-formed envelope, *not authenticated*: for a receiver that
    authenticates nobody (no ``auth`` port, or not configured yet)."""
    return parse(data)[4]


def payload_tag(data: bytes) -> int | None:
    """The message tag of a signed envelope's payload, without unpacking it (None if the
    header is not one :class:`Signer` writes): for counting messages by type."""
    if data[:2] != _FIXARRAY7_V2:
        return None
    try:
        i = 2
        for _ in range(2):                      # principal, origin: str
            b = data[i]
            if 0xA0 <= b <= 0xBF:
                i += 1 + (b & 0x1F)
            elif b == 0xD9:
                i += 2 + data[i + 1]
            elif b == 0xDA:
                i += 3 + ((data[i + 1] << 8) | data[i + 2])
            else:
                return None
        for _ in range(2):                      # incarnation, seq: uint
            b = data[i]
            size = 1 if b < 0x80 else _UINT_SIZE.get(b)
            if size is None:
                return None
            i += size
        b = data[i]
        if b == 0xC4:
            i += 2
        elif b == 0xC5:
            i += 3
        elif b == 0xC6:
            i += 5
        else:
            return None
        return peek_tag(data[i:i + 5])
    except IndexError:
        return None


_UINT_SIZE = {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9}
