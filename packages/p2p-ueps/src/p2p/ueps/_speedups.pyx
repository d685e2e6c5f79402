# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython UEPS codec and native primitives (same API and behaviour as ``_pure``).

Hashing is done in C (``_sha256.h``: portable SHA-256 plus SHA-NI chosen at run time) with the
HMAC key absorbed once per secret; a frame is parsed and authenticated in one pass over its
bytes, without building the signed data. Beyond ``_pure``'s API: the fused SMSG/STIM sigil
(``sigil_seal`` / ``sigil_open``), whose AEAD the transport installs at import, and the
WebSocket data-frame codec of the transport's fast path (``ws_scan`` / ``ws_frame``, in
``_wsframe.pxi``).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy

from p2p.ueps.errors import (
    IntegrityError,
    MalformedFrameError,
    MissingSignatureError,
    TruncatedFrameError,
    ValueTooLargeError,
)
from p2p.ueps._pure import MAX_BYTES_BEFORE_PAYLOAD as _PY_MAX_BYTES
from p2p.ueps._pure import MAX_TLVS_BEFORE_PAYLOAD as _PY_MAX_TLVS


cdef extern from "_sha256.h" nogil:
    ctypedef struct p2p_sha256_ctx:
        uint32_t h[8]
        uint64_t nbytes
        uint8_t buf[64]
        size_t buflen
    ctypedef struct p2p_hmac_key:
        uint32_t inner[8]
        uint32_t outer[8]
    const char *p2p_sha256_backend
    void p2p_sha256_select(int force_portable)
    void p2p_sha256_init(p2p_sha256_ctx *c)
    void p2p_sha256_update(p2p_sha256_ctx *c, const uint8_t *p, size_t n)
    void p2p_sha256_final(p2p_sha256_ctx *c, uint8_t *out)
    void p2p_hmac_key_init(p2p_hmac_key *k, const uint8_t *key, size_t keylen)
    void p2p_hmac_begin(const p2p_hmac_key *k, p2p_sha256_ctx *c)
    void p2p_hmac_end(const p2p_hmac_key *k, p2p_sha256_ctx *c, uint8_t *out)
    int p2p_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
    void p2p_keystream_xor(const uint8_t *nonce, size_t nlen, const uint8_t *inp, uint8_t *out,
                           size_t n)

p2p_sha256_select(0)

DEF TAG_PAYLOAD = 0xFF
DEF TAG_HMAC = 0x06
DEF TAG_THREAT = 0x05
DEF MAX_VALUE_LEN = 0xFFFF

cdef Py_ssize_t MAX_TLVS = _PY_MAX_TLVS
cdef Py_ssize_t MAX_BYTES = _PY_MAX_BYTES

# parse results
DEF P_OK = 0
DEF P_TRUNC = 1
DEF P_MISSING = 2
DEF P_MISMATCH = 3
DEF P_SHORT = 4
DEF P_COUNT = 5
DEF P_BYTES = 6


def sha256_backend():
    """Which SHA-256 compression function is live: ``"sha-ni"`` or ``"portable"``."""
    return p2p_sha256_backend.decode()


def _force_portable_sha256(bint force):
    """Test hook: switch between the portable and the CPU-selected compression function.
    Cached HMAC keys stay valid (both compute the same function)."""
    p2p_sha256_select(1 if force else 0)


def sha256(data):
    """SHA-256 via the native code (exposed for tests and benchmarks)."""
    cdef Py_buffer view
    cdef p2p_sha256_ctx c
    cdef uint8_t out[32]
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            p2p_sha256_init(&c)
            p2p_sha256_update(&c, <const uint8_t *>view.buf, <size_t>view.len)
            p2p_sha256_final(&c, out)
    finally:
        PyBuffer_Release(&view)
    return PyBytes_FromStringAndSize(<char *>out, 32)


cdef class HmacKey:
    """HMAC-SHA256 under one key with the keyed inner/outer states precomputed."""

    cdef p2p_hmac_key k

    def __cinit__(self, key):
        cdef Py_buffer view
        PyObject_GetBuffer(key, &view, PyBUF_SIMPLE)
        try:
            p2p_hmac_key_init(&self.k, <const uint8_t *>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)

    def digest(self, data):
        """HMAC-SHA256(key, data)."""
        cdef Py_buffer view
        cdef p2p_sha256_ctx c
        cdef uint8_t out[32]
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            with nogil:
                p2p_hmac_begin(&self.k, &c)
                p2p_sha256_update(&c, <const uint8_t *>view.buf, <size_t>view.len)
                p2p_hmac_end(&self.k, &c, out)
        finally:
            PyBuffer_Release(&view)
        return PyBytes_FromStringAndSize(<char *>out, 32)

    def digest2(self, a, b):
        """HMAC-SHA256(key, a ‖ b) without concatenating."""
        cdef Py_buffer va, vb
        cdef p2p_sha256_ctx c
        cdef uint8_t out[32]
        PyObject_GetBuffer(a, &va, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(b, &vb, PyBUF_SIMPLE)
            try:
                with nogil:
                    p2p_hmac_begin(&self.k, &c)
                    p2p_sha256_update(&c, <const uint8_t *>va.buf, <size_t>va.len)
                    p2p_sha256_update(&c, <const uint8_t *>vb.buf, <size_t>vb.len)
                    p2p_hmac_end(&self.k, &c, out)
            finally:
                PyBuffer_Release(&vb)
        finally:
            PyBuffer_Release(&va)
        return PyBytes_FromStringAndSize(<char *>out, 32)

    def verify(self, data, mac):
        """Constant-time check that ``mac`` is HMAC-SHA256(key, data)."""
        cdef bytes want = self.digest(data)
        cdef bytes got = bytes(mac)
        if len(got) != 32:
            return False
        return bool(p2p_ct_equal(<const uint8_t *>PyBytes_AS_STRING(want),
                                 <const uint8_t *>PyBytes_AS_STRING(got), 32))


# Keyed states per secret: a node talks to a bounded number of peers, but callers may pass
# arbitrary secrets, so the cache is cleared when it grows past its bound.
cdef dict _keys = {}
cdef Py_ssize_t _KEYS_MAX = 1024


cdef HmacKey _key_for(object secret):
    cdef HmacKey k
    if type(secret) is not bytes:
        secret = bytes(secret)
    k = _keys.get(secret)
    if k is None:
        if len(_keys) >= _KEYS_MAX:
            _keys.clear()
        k = HmacKey(secret)
        _keys[secret] = k
    return k


def hmac_sha256(key, data):
    """One-shot HMAC-SHA256 (keyed state cached per key)."""
    return _key_for(key).digest(data)


def keystream_xor(nonce, data):
    """``data XOR (SHA-256(nonce ‖ uint64_be(i)) for i = 0, 1, …)`` (SMSG/STIM pre-obfuscation)."""
    cdef Py_buffer vn, vd
    cdef bytes out
    cdef uint8_t *o
    PyObject_GetBuffer(nonce, &vn, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(data, &vd, PyBUF_SIMPLE)
        try:
            out = PyBytes_FromStringAndSize(NULL, vd.len)
            o = <uint8_t *>PyBytes_AS_STRING(out)
            with nogil:
                p2p_keystream_xor(<const uint8_t *>vn.buf, <size_t>vn.len,
                                  <const uint8_t *>vd.buf, o, <size_t>vd.len)
        finally:
            PyBuffer_Release(&vd)
    finally:
        PyBuffer_Release(&vn)
    return out


# --- fused SMSG/STIM sigil: keystream + XChaCha20-Poly1305 in one call -------------------
#
# The AEAD is libsodium's, reached through function pointers handed in at import time by
# the package that depends on a libsodium build (p2p.transport.sigil takes them from
# PyNaCl's cffi library). Nothing here links against libsodium, so the extension still
# builds on a machine without its headers; with no pointers installed the fused calls are
# unavailable and callers use their composed path.

ctypedef int (*_aead_encrypt_fn)(
    unsigned char *c, unsigned long long *clen_p, const unsigned char *m,
    unsigned long long mlen, const unsigned char *ad, unsigned long long adlen,
    const unsigned char *nsec, const unsigned char *npub, const unsigned char *k) noexcept nogil
ctypedef int (*_aead_decrypt_fn)(
    unsigned char *m, unsigned long long *mlen_p, unsigned char *nsec,
    const unsigned char *c, unsigned long long clen, const unsigned char *ad,
    unsigned long long adlen, const unsigned char *npub, const unsigned char *k) noexcept nogil

cdef _aead_encrypt_fn _xc_encrypt = NULL
cdef _aead_decrypt_fn _xc_decrypt = NULL
cdef object _aead_owner = None  # keeps the library that owns the pointers alive

DEF SIGIL_KEY = 32
DEF SIGIL_NONCE = 24
DEF SIGIL_TAG = 16
DEF _NOGIL_FROM = 2048  # below this, releasing the GIL costs more than it lets others run


class SigilAuthError(Exception):
    """The sealed data does not authenticate under the key (the caller maps it)."""


def install_xchacha20poly1305(uintptr_t encrypt, uintptr_t decrypt, owner=None):
    """Install libsodium's ``crypto_aead_xchacha20poly1305_ietf_encrypt`` / ``_decrypt``
    as raw function addresses (``owner`` is kept alive with them). Private plumbing for
    ``p2p.transport.sigil``, which self-tests the result: a wrong address crashes the
    process, so nothing else should call this. ``0, 0`` uninstalls."""
    global _xc_encrypt, _xc_decrypt, _aead_owner
    if (encrypt == 0) != (decrypt == 0):
        raise ValueError("install both functions or neither")
    _xc_encrypt = <_aead_encrypt_fn>encrypt
    _xc_decrypt = <_aead_decrypt_fn>decrypt
    _aead_owner = owner if encrypt else None


def sigil_fused_available():
    """Whether :func:`sigil_seal` / :func:`sigil_open` can run (an AEAD is installed)."""
    return _xc_encrypt != NULL


cdef int _seal_into(uint8_t *o, const uint8_t *prefix, Py_ssize_t plen, const uint8_t *key,
                    const uint8_t *nonce, const uint8_t *pt, Py_ssize_t n) noexcept nogil:
    if plen:
        memcpy(o, prefix, plen)
    memcpy(o + plen, nonce, SIGIL_NONCE)
    o += plen + SIGIL_NONCE
    if n:
        p2p_keystream_xor(nonce, SIGIL_NONCE, pt, o, <size_t>n)
    # in place: libsodium allows the ciphertext to overwrite the message
    return _xc_encrypt(o, NULL, o, <unsigned long long>n, NULL, 0, NULL, nonce, key)


cdef int _open_into(uint8_t *o, const uint8_t *key, const uint8_t *d,
                    Py_ssize_t n) noexcept nogil:
    cdef int rc = _xc_decrypt(o, NULL, NULL, d + SIGIL_NONCE,
                              <unsigned long long>(n + SIGIL_TAG), NULL, 0, d, key)
    if rc == 0 and n:
        p2p_keystream_xor(d, SIGIL_NONCE, o, o, <size_t>n)
    return rc


def sigil_seal(key, nonce, plaintext, prefix=b""):
    """``prefix || nonce || XChaCha20-Poly1305(key, nonce, plaintext XOR keystream(nonce))
    || tag`` in one output allocation (the Enchantrix ChaCha20-Poly1305 sigil)."""
    cdef Py_buffer vk, vn, vp, vx
    cdef bytes out
    cdef uint8_t *o
    cdef Py_ssize_t n, plen
    cdef int rc
    if _xc_encrypt == NULL:
        raise RuntimeError("no XChaCha20-Poly1305 installed")
    PyObject_GetBuffer(key, &vk, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(nonce, &vn, PyBUF_SIMPLE)
        try:
            if vk.len != SIGIL_KEY or vn.len != SIGIL_NONCE:
                raise ValueError("key must be 32 bytes and nonce 24 bytes")
            PyObject_GetBuffer(plaintext, &vp, PyBUF_SIMPLE)
            try:
                PyObject_GetBuffer(prefix, &vx, PyBUF_SIMPLE)
                try:
                    n = vp.len
                    plen = vx.len
                    out = PyBytes_FromStringAndSize(NULL, plen + SIGIL_NONCE + n + SIGIL_TAG)
                    o = <uint8_t *>PyBytes_AS_STRING(out)
                    if n < _NOGIL_FROM:
                        rc = _seal_into(o, <const uint8_t *>vx.buf, plen,
                                        <const uint8_t *>vk.buf, <const uint8_t *>vn.buf,
                                        <const uint8_t *>vp.buf, n)
                    else:
                        with nogil:
                            rc = _seal_into(o, <const uint8_t *>vx.buf, plen,
                                            <const uint8_t *>vk.buf, <const uint8_t *>vn.buf,
                                            <const uint8_t *>vp.buf, n)
                finally:
                    PyBuffer_Release(&vx)
            finally:
                PyBuffer_Release(&vp)
        finally:
            PyBuffer_Release(&vn)
    finally:
        PyBuffer_Release(&vk)
    if rc != 0:
        raise RuntimeError("XChaCha20-Poly1305 encryption failed")
    return out


def sigil_open(key, data, Py_ssize_t offset=0):
    """Inverse of :func:`sigil_seal` on ``data[offset:]`` (``nonce || ciphertext || tag``)
    without slicing; :class:`SigilAuthError` if it does not authenticate,
    :class:`ValueError` if it is shorter than nonce + tag."""
    cdef Py_buffer vk, vd
    cdef bytes out
    cdef uint8_t *o
    cdef const uint8_t *d
    cdef Py_ssize_t n
    cdef int rc
    if _xc_decrypt == NULL:
        raise RuntimeError("no XChaCha20-Poly1305 installed")
    PyObject_GetBuffer(key, &vk, PyBUF_SIMPLE)
    try:
        if vk.len != SIGIL_KEY:
            raise ValueError("key must be 32 bytes")
        PyObject_GetBuffer(data, &vd, PyBUF_SIMPLE)
        try:
            if offset < 0 or offset > vd.len:
                raise ValueError("offset outside the data")
            n = vd.len - offset - SIGIL_NONCE - SIGIL_TAG
            if n < 0:
                raise ValueError("sealed data is shorter than nonce + tag")
            d = <const uint8_t *>vd.buf + offset
            out = PyBytes_FromStringAndSize(NULL, n)
            o = <uint8_t *>PyBytes_AS_STRING(out)
            if n < _NOGIL_FROM:
                rc = _open_into(o, <const uint8_t *>vk.buf, d, n)
            else:
                with nogil:
                    rc = _open_into(o, <const uint8_t *>vk.buf, d, n)
        finally:
            PyBuffer_Release(&vd)
    finally:
        PyBuffer_Release(&vk)
    if rc != 0:
        raise SigilAuthError("authentication failed")
    return out


cdef inline int _byte(object value, str name) except -1:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueTooLargeError(f"header field {name} must be 0..255, got {value!r}")
    return value


cdef class Header:
    """The five authenticated header fields of a UEPS frame (Go ``ueps.UEPSHeader``)."""

    cdef int _version, _current_layer, _target_layer, _intent_id, _threat_score

    def __init__(self, version=0x09, current_layer=5, target_layer=5, intent_id=0,
                 threat_score=0):
        self.version = version
        self.current_layer = current_layer
        self.target_layer = target_layer
        self.intent_id = intent_id
        self.threat_score = threat_score

    @property
    def version(self):
        return self._version

    @version.setter
    def version(self, value):
        self._version = _byte(value, "version")

    @property
    def current_layer(self):
        return self._current_layer

    @current_layer.setter
    def current_layer(self, value):
        self._current_layer = _byte(value, "current_layer")

    @property
    def target_layer(self):
        return self._target_layer

    @target_layer.setter
    def target_layer(self, value):
        self._target_layer = _byte(value, "target_layer")

    @property
    def intent_id(self):
        return self._intent_id

    @intent_id.setter
    def intent_id(self, value):
        self._intent_id = _byte(value, "intent_id")

    @property
    def threat_score(self):
        return self._threat_score

    @threat_score.setter
    def threat_score(self, value):
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise ValueTooLargeError(f"header field threat_score must be 0..65535, got {value!r}")
        self._threat_score = value

    def _tuple(self):
        return (self._version, self._current_layer, self._target_layer, self._intent_id,
                self._threat_score)

    def __eq__(self, other):
        if not isinstance(other, Header):
            return NotImplemented
        return self._tuple() == (<Header>other)._tuple()

    __hash__ = None

    def __repr__(self):
        return (f"Header(version={self._version}, current_layer={self._current_layer}, "
                f"target_layer={self._target_layer}, intent_id={self._intent_id}, "
                f"threat_score={self._threat_score})")

    def __reduce__(self):
        return (Header, self._tuple())


cdef class ParsedPacket:
    """A verified frame: its header and its payload bytes."""

    cdef readonly Header header
    cdef readonly bytes payload

    def __init__(self, Header header, bytes payload):
        self.header = header
        self.payload = payload

    def __eq__(self, other):
        if not isinstance(other, ParsedPacket):
            return NotImplemented
        return self.header == (<ParsedPacket>other).header and \
            self.payload == (<ParsedPacket>other).payload

    __hash__ = None

    def __repr__(self):
        return f"ParsedPacket(header={self.header!r}, payload={self.payload!r})"

    def __reduce__(self):
        return (ParsedPacket, (self.header, self.payload))


cdef bytes _marshal(int ver, int cur, int tgt, int intent, int threat, object payload,
                    HmacKey key):
    cdef Py_buffer view
    cdef bytes frame
    cdef uint8_t *f
    cdef Py_ssize_t n
    cdef p2p_sha256_ctx c
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        n = view.len
        if n > MAX_VALUE_LEN:
            raise ValueTooLargeError("TLV value too large for 2-byte length header")
        frame = PyBytes_FromStringAndSize(NULL, 59 + n)
        f = <uint8_t *>PyBytes_AS_STRING(frame)
        f[0] = 0x01; f[1] = 0; f[2] = 1; f[3] = <uint8_t>ver
        f[4] = 0x02; f[5] = 0; f[6] = 1; f[7] = <uint8_t>cur
        f[8] = 0x03; f[9] = 0; f[10] = 1; f[11] = <uint8_t>tgt
        f[12] = 0x04; f[13] = 0; f[14] = 1; f[15] = <uint8_t>intent
        f[16] = 0x05; f[17] = 0; f[18] = 2; f[19] = <uint8_t>(threat >> 8); f[20] = <uint8_t>threat
        f[21] = TAG_HMAC; f[22] = 0; f[23] = 0x20
        f[56] = TAG_PAYLOAD; f[57] = <uint8_t>(n >> 8); f[58] = <uint8_t>n
        with nogil:
            if n:
                memcpy(f + 59, view.buf, n)
            p2p_hmac_begin(&key.k, &c)
            p2p_sha256_update(&c, f, 21)
            p2p_sha256_update(&c, f + 59, <size_t>n)
            p2p_hmac_end(&key.k, &c, f + 24)
    finally:
        PyBuffer_Release(&view)
    return frame


cdef class PacketBuilder:
    """Builds one canonical frame (Go ``ueps.NewBuilder`` + ``MarshalAndSign``)."""

    cdef public object header
    cdef public object payload

    def __init__(self, intent_id, payload=b""):
        self.header = Header(intent_id=intent_id)
        self.payload = payload

    def marshal_and_sign(self, secret):
        """Serialise the frame and sign it with HMAC-SHA256 under ``secret``."""
        cdef Header h
        hdr = self.header
        if type(hdr) is Header:
            h = <Header>hdr
        else:  # any object with the five fields
            h = Header(hdr.version, hdr.current_layer, hdr.target_layer, hdr.intent_id,
                       hdr.threat_score)
        return _marshal(h._version, h._current_layer, h._target_layer, h._intent_id,
                        h._threat_score, self.payload, _key_for(secret))


def build(intent_id, payload, secret, *, version=0x09, current_layer=5, target_layer=5,
          threat_score=0):
    """Build and sign one frame in one call."""
    cdef Header h = Header(version, current_layer, target_layer, intent_id, threat_score)
    return _marshal(h._version, h._current_layer, h._target_layer, h._intent_id,
                    h._threat_score, payload, _key_for(secret))


cdef struct ParseOut:
    int fields[4]
    int threat
    Py_ssize_t payload_off
    Py_ssize_t payload_len
    Py_ssize_t end
    int tag
    Py_ssize_t length


cdef int _parse(const uint8_t *d, Py_ssize_t n, const p2p_hmac_key *key, ParseOut *o) noexcept nogil:
    """Parse and authenticate one frame at ``d``. Returns a P_* code; ``o`` holds results."""
    cdef p2p_sha256_ctx c
    cdef Py_ssize_t pos = 0, vstart, vend, length, count = 0
    cdef const uint8_t *sig = NULL
    cdef Py_ssize_t siglen = 0
    cdef int tag
    cdef uint8_t mac[32]
    o.fields[0] = 0; o.fields[1] = 0; o.fields[2] = 0; o.fields[3] = 0
    o.threat = 0
    p2p_hmac_begin(key, &c)
    while True:
        if pos + 3 > n:
            o.end = pos
            return P_TRUNC
        tag = d[pos]
        length = (<Py_ssize_t>d[pos + 1] << 8) | d[pos + 2]
        vstart = pos + 3
        vend = vstart + length
        o.tag = tag
        o.length = length
        if tag != TAG_PAYLOAD:
            count += 1
            if count > MAX_TLVS:
                return P_COUNT
            if vend > MAX_BYTES:
                return P_BYTES
        if vend > n:
            o.end = pos
            return P_TRUNC
        if tag == TAG_PAYLOAD:
            o.payload_off = vstart
            o.payload_len = length
            o.end = vend
            if siglen == 0:
                return P_MISSING
            p2p_sha256_update(&c, d + vstart, <size_t>length)
            p2p_hmac_end(key, &c, mac)
            if siglen != 32 or not p2p_ct_equal(mac, sig, 32):
                return P_MISMATCH
            return P_OK
        if tag == TAG_HMAC:
            sig = d + vstart
            siglen = length
        else:
            if 1 <= tag <= 4:
                if length < 1:
                    return P_SHORT
                o.fields[tag - 1] = d[vstart]
            elif tag == TAG_THREAT:
                if length < 2:
                    return P_SHORT
                o.threat = (d[vstart] << 8) | d[vstart + 1]
            p2p_sha256_update(&c, d + pos, <size_t>(vend - pos))
        pos = vend


cdef object _error(int code, ParseOut *o):
    if code == P_TRUNC:
        return TruncatedFrameError(f"frame truncated at byte {o.end}")
    if code == P_MISSING:
        return MissingSignatureError("UEPS packet missing HMAC signature")
    if code == P_MISMATCH:
        return IntegrityError("integrity violation: HMAC mismatch (ThreatScore +100)")
    if code == P_SHORT:
        want = 2 if o.tag == TAG_THREAT else 1
        return MalformedFrameError(f"tag 0x{o.tag:02x}: expected >= {want} bytes, got {o.length}")
    if code == P_COUNT:
        return MalformedFrameError(f"more than {MAX_TLVS} TLVs before the payload")
    return MalformedFrameError(f"more than {MAX_BYTES} bytes before the payload")


cdef inline ParsedPacket _packet(const uint8_t *d, ParseOut *o):
    cdef Header h = Header.__new__(Header)
    cdef ParsedPacket p = ParsedPacket.__new__(ParsedPacket)
    h._version = o.fields[0]
    h._current_layer = o.fields[1]
    h._target_layer = o.fields[2]
    h._intent_id = o.fields[3]
    h._threat_score = o.threat
    p.header = h
    p.payload = PyBytes_FromStringAndSize(<const char *>d + o.payload_off, o.payload_len)
    return p


def read_and_verify(data, secret):
    """Read and verify one frame from the start of ``data`` (trailing bytes are ignored)."""
    cdef HmacKey key = _key_for(secret)
    cdef Py_buffer view
    cdef ParseOut o
    cdef int code
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            code = _parse(<const uint8_t *>view.buf, view.len, &key.k, &o)
        if code == P_OK:
            return _packet(<const uint8_t *>view.buf, &o)
        raise _error(code, &o)
    finally:
        PyBuffer_Release(&view)


cdef class FrameReader:
    """Sans-I/O stream parser: ``feed`` bytes, get verified packets.

    Frames may be split at any byte and several may arrive in one chunk. The buffer holds at
    most one incomplete frame (bounded by ``MAX_FRAME_SIZE``). A frame that fails its HMAC
    check is consumed and reported by raising; packets verified before it in the same chunk
    are returned by the next ``feed`` call. A structurally malformed frame breaks the stream:
    the reader then raises ``MalformedFrameError`` on every call.
    """

    cdef HmacKey _key
    cdef bytearray _buf
    cdef list _pending
    cdef object _broken

    def __init__(self, secret):
        self._key = HmacKey(bytes(secret))
        self._buf = bytearray()
        self._pending = []
        self._broken = None

    @property
    def buffered(self):
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data):
        """Add bytes from the stream; return every frame they complete."""
        cdef Py_buffer view
        cdef ParseOut o
        cdef int code
        cdef Py_ssize_t pos = 0, n
        cdef const uint8_t *d
        cdef list out
        cdef object src
        if self._broken is not None:
            raise MalformedFrameError(f"stream is broken: {self._broken}")
        if self._buf:
            self._buf += data
            src = self._buf
        else:
            src = data
        out = self._pending
        self._pending = []
        PyObject_GetBuffer(src, &view, PyBUF_SIMPLE)
        try:
            d = <const uint8_t *>view.buf
            n = view.len
            while pos < n:
                with nogil:
                    code = _parse(d + pos, n - pos, &self._key.k, &o)
                if code == P_OK:
                    out.append(_packet(d + pos, &o))
                    pos += o.end
                elif code == P_TRUNC:
                    break
                elif code == P_MISSING or code == P_MISMATCH:
                    pos += o.end
                    self._pending = out
                    err = _error(code, &o)
                    break
                else:
                    self._broken = str(_error(code, &o))
                    self._pending = out
                    pos = n
                    err = MalformedFrameError(self._broken)
                    break
            else:
                err = None
            if code == P_TRUNC or code == P_OK:
                err = None
        finally:
            PyBuffer_Release(&view)
        if src is self._buf:
            del self._buf[:pos]
        elif pos < n:
            self._buf += data[pos:]
        if err is not None:
            raise err
        return out

    def close(self):
        """Declare the end of the stream: raise if an incomplete frame is left."""
        cdef Py_ssize_t n = len(self._buf)
        if n:
            self._buf.clear()
            raise TruncatedFrameError(f"stream ended inside a frame ({n} bytes buffered)")


include "_wsframe.pxi"
include "_msgopen.pxi"
