# Included from _speedups.pyx (uses its fused sigil: _xc_decrypt, _open_into).
#
# --- go-p2p message frames: fused open and a parser for the one shape Go writes ----------
#
# A go-p2p data frame's plaintext is ``{"body":"<envelope as a JSON string>","timestamp":N}``
# and the envelope is ``{"id":"…","type":"…","from":"…","to":"…","ts":"…","payload":V}``
# with an optional trailing ``,"replyTo":"…"``. The Python decoders (p2p.transport.smsg and
# p2p.transport.messages) accept everything Go's json.Unmarshal accepts; this parser takes
# only that exact shape, ASCII, compact, with plain strings, a canonical ``ts`` and a
# strictly valid payload, and returns the fields. For anything else it answers ``None``
# (never an error): the caller then runs the Python decoders, which give Go's verdict.
# So it may refuse more than necessary, never accept what they would not, and never
# return other field values (the transport's tests hold it to that, by hypothesis).

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memcmp

DEF _MSG_MAX_DEPTH = 64  # deeper payloads go to the Python decoders
DEF _MSG_MAX_NUMBER = 64  # longer number tokens too (Python's int digit limit, ...)
DEF _MSG_STACK = 2048  # plaintexts up to this size unescape into a stack buffer


cdef inline bint _is_hex(uint8_t c) noexcept nogil:
    return (48 <= c <= 57) or (97 <= c <= 102) or (65 <= c <= 70)


cdef inline int _hex_val(uint8_t c) noexcept nogil:
    if c <= 57:
        return c - 48
    if c >= 97:
        return c - 87
    return c - 55


cdef Py_ssize_t _unescape_ascii(const uint8_t *p, Py_ssize_t n, Py_ssize_t i,
                                uint8_t *out, Py_ssize_t *olen) noexcept nogil:
    """Decode the JSON string whose content starts at ``p[i]`` into ``out`` (ASCII only):
    the index after its closing quote, or -1 (not taken: non-ASCII, raw control byte,
    an escape of a non-ASCII character, malformed)."""
    cdef Py_ssize_t o = 0
    cdef uint8_t c
    cdef int code
    while i < n:
        c = p[i]
        if c == 34:  # "
            olen[0] = o
            return i + 1
        if c < 0x20 or c >= 0x80:
            return -1
        if c != 92:  # \
            out[o] = c
            o += 1
            i += 1
            continue
        if i + 1 >= n:
            return -1
        c = p[i + 1]
        if c == 34 or c == 92 or c == 47:
            out[o] = c
        elif c == 98:
            out[o] = 8
        elif c == 102:
            out[o] = 12
        elif c == 110:
            out[o] = 10
        elif c == 114:
            out[o] = 13
        elif c == 116:
            out[o] = 9
        elif c == 117:
            if i + 5 >= n or not (_is_hex(p[i + 2]) and _is_hex(p[i + 3])
                                  and _is_hex(p[i + 4]) and _is_hex(p[i + 5])):
                return -1
            code = (_hex_val(p[i + 2]) << 12) | (_hex_val(p[i + 3]) << 8) \
                | (_hex_val(p[i + 4]) << 4) | _hex_val(p[i + 5])
            if code >= 0x80:
                return -1
            out[o] = <uint8_t>code
            o += 1
            i += 6
            continue
        else:
            return -1
        o += 1
        i += 2
    return -1


cdef inline Py_ssize_t _plain_end(const uint8_t *e, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """Index of the quote closing a string with no escapes and no control or non-ASCII
    byte that starts at ``e[i]``, or -1."""
    cdef uint8_t c
    while i < n:
        c = e[i]
        if c == 34:
            return i
        if c == 92 or c < 0x20 or c >= 0x80:
            return -1
        i += 1
    return -1


cdef inline bint _lit(const uint8_t *e, Py_ssize_t n, Py_ssize_t i, const char *s,
                      Py_ssize_t k) noexcept nogil:
    return i + k <= n and memcmp(e + i, s, <size_t>k) == 0


cdef inline bint _digits(const uint8_t *e, Py_ssize_t i, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(i, i + k):
        if not 48 <= e[j] <= 57:
            return False
    return True


cdef inline int _num2(const uint8_t *e, Py_ssize_t i) noexcept nogil:
    return (e[i] - 48) * 10 + (e[i + 1] - 48)


cdef bint _ts_canonical(const uint8_t *e, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """``e[a:b]`` is Go's RFC3339Nano text of a valid instant: ``YYYY-MM-DDTHH:MM:SS``,
    an optional fraction of 1-9 digits not ending in 0, then ``Z`` or a nonzero
    ``±HH:MM`` (what messages._TS_CANONICAL matches), on a day that exists."""
    cdef Py_ssize_t n = b - a
    cdef const uint8_t *t = e + a
    cdef int year, month, day, dim
    cdef Py_ssize_t i, z
    if n < 20 or t[4] != 45 or t[7] != 45 or t[10] != 84 or t[13] != 58 or t[16] != 58:
        return False
    if not (_digits(t, 0, 4) and _digits(t, 5, 2) and _digits(t, 8, 2) and _digits(t, 11, 2)
            and _digits(t, 14, 2) and _digits(t, 17, 2)):
        return False
    year = _num2(t, 0) * 100 + _num2(t, 2)
    month = _num2(t, 5)
    day = _num2(t, 8)
    if month < 1 or month > 12 or day < 1 or _num2(t, 11) > 23 or _num2(t, 14) > 59 \
            or _num2(t, 17) > 59:
        return False
    if month == 2:
        dim = 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        dim = 30
    else:
        dim = 31
    if day > dim:
        return False
    i = 19
    if t[i] == 46:  # .
        z = i + 1
        while z < n and 48 <= t[z] <= 57:
            z += 1
        if z == i + 1 or z - i - 1 > 9 or t[z - 1] == 48:
            return False
        i = z
    if i == n - 1:
        return t[i] == 90  # Z
    if i != n - 6 or (t[i] != 43 and t[i] != 45) or t[i + 3] != 58:
        return False
    if not (_digits(t, i + 1, 2) and _digits(t, i + 4, 2)):
        return False
    if _num2(t, i + 1) > 23 or _num2(t, i + 4) > 59:
        return False
    return _num2(t, i + 1) != 0 or _num2(t, i + 4) != 0


cdef Py_ssize_t _string_end(const uint8_t *e, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """End of a valid JSON string whose content starts at ``e[i]`` (ASCII only), or -1."""
    cdef uint8_t c
    while i < n:
        c = e[i]
        if c == 34:
            return i + 1
        if c < 0x20 or c >= 0x80:
            return -1
        if c == 92:
            if i + 1 >= n:
                return -1
            c = e[i + 1]
            if c == 117:
                if i + 5 >= n or not (_is_hex(e[i + 2]) and _is_hex(e[i + 3])
                                      and _is_hex(e[i + 4]) and _is_hex(e[i + 5])):
                    return -1
                i += 6
                continue
            if not (c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110
                    or c == 114 or c == 116):
                return -1
            i += 2
            continue
        i += 1
    return -1


cdef Py_ssize_t _number_end(const uint8_t *e, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """End of a JSON number starting at ``e[i]`` (RFC 8259 grammar), or -1."""
    cdef Py_ssize_t s = i
    if i < n and e[i] == 45:
        i += 1
    if i >= n:
        return -1
    if e[i] == 48:
        i += 1
    elif 49 <= e[i] <= 57:
        while i < n and 48 <= e[i] <= 57:
            i += 1
    else:
        return -1
    if i < n and e[i] == 46:
        i += 1
        if i >= n or not 48 <= e[i] <= 57:
            return -1
        while i < n and 48 <= e[i] <= 57:
            i += 1
    if i < n and (e[i] == 101 or e[i] == 69):
        i += 1
        if i < n and (e[i] == 43 or e[i] == 45):
            i += 1
        if i >= n or not 48 <= e[i] <= 57:
            return -1
        while i < n and 48 <= e[i] <= 57:
            i += 1
    if i - s > _MSG_MAX_NUMBER:
        return -1
    return i


cdef Py_ssize_t _value_end(const uint8_t *e, Py_ssize_t n, Py_ssize_t i,
                           int depth) noexcept nogil:
    """End of exactly one compact JSON value starting at ``e[i]`` (no whitespace at all,
    ASCII, nesting up to the depth bound), or -1."""
    cdef uint8_t c
    if i >= n:
        return -1
    c = e[i]
    if c == 34:
        return _string_end(e, n, i + 1)
    if c == 123 or c == 91:  # { [
        if depth >= _MSG_MAX_DEPTH:
            return -1
        i += 1
        if i < n and e[i] == c + 2:  # } ]
            return i + 1
        while True:
            if c == 123:
                if i >= n or e[i] != 34:
                    return -1
                i = _string_end(e, n, i + 1)
                if i < 0 or i >= n or e[i] != 58:
                    return -1
                i += 1
            i = _value_end(e, n, i, depth + 1)
            if i < 0 or i >= n:
                return -1
            if e[i] == 44:
                i += 1
                continue
            if e[i] == c + 2:
                return i + 1
            return -1
    if c == 116:
        return i + 4 if _lit(e, n, i, b"true", 4) else -1
    if c == 102:
        return i + 5 if _lit(e, n, i, b"false", 5) else -1
    if c == 110:
        return i + 4 if _lit(e, n, i, b"null", 4) else -1
    return _number_end(e, n, i)


cdef object _envelope_fields(const uint8_t *e, Py_ssize_t n):
    """``(id, type, from, to, ts, payload, replyTo)`` of an envelope in Go's exact shape,
    or ``None``."""
    cdef Py_ssize_t s[7]
    cdef Py_ssize_t t[7]
    cdef Py_ssize_t j
    cdef const char *c = <const char *>e
    if not _lit(e, n, 0, b'{"id":"', 7):
        return None
    s[0] = 7
    j = _plain_end(e, n, 7)
    if j < 0 or not _lit(e, n, j, b'","type":"', 10):
        return None
    t[0] = j
    s[1] = j + 10
    j = _plain_end(e, n, s[1])
    if j < 0 or not _lit(e, n, j, b'","from":"', 10):
        return None
    t[1] = j
    s[2] = j + 10
    j = _plain_end(e, n, s[2])
    if j < 0 or not _lit(e, n, j, b'","to":"', 8):
        return None
    t[2] = j
    s[3] = j + 8
    j = _plain_end(e, n, s[3])
    if j < 0 or not _lit(e, n, j, b'","ts":"', 8):
        return None
    t[3] = j
    s[4] = j + 8
    j = _plain_end(e, n, s[4])
    if j < 0 or not _ts_canonical(e, s[4], j) or not _lit(e, n, j, b'","payload":', 12):
        return None
    t[4] = j
    s[5] = j + 12
    j = _value_end(e, n, s[5], 0)
    if j < 0:
        return None
    t[5] = j
    if j == n - 1 and e[j] == 125:  # }
        s[6] = t[6] = 0
    elif _lit(e, n, j, b',"replyTo":"', 12):
        s[6] = j + 12
        j = _plain_end(e, n, s[6])
        if j < 0 or j != n - 2 or e[n - 1] != 125:
            return None
        t[6] = j
    else:
        return None
    return (
        c[s[0]:t[0]].decode("ascii"),
        c[s[1]:t[1]].decode("ascii"),
        c[s[2]:t[2]].decode("ascii"),
        c[s[3]:t[3]].decode("ascii"),
        c[s[4]:t[4]].decode("ascii"),
        c[s[5]:t[5]].decode("ascii"),
        c[s[6]:t[6]].decode("ascii"),
    )


cdef bint _timestamp_tail(const uint8_t *p, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """``p[i:]`` is ``,"timestamp":N}`` with N an int64 without a sign or leading zeros."""
    cdef Py_ssize_t k
    if not _lit(p, n, i, b',"timestamp":', 13):
        return False
    i += 13
    k = n - 1 - i  # digits
    if k < 1 or k > 19 or p[n - 1] != 125 or not _digits(p, i, k):
        return False
    if k > 1 and p[i] == 48:
        return False
    return k < 19 or memcmp(p + i, b"9223372036854775807", 19) <= 0


cdef object _plaintext_fields(const uint8_t *p, Py_ssize_t n, Py_ssize_t max_message):
    cdef uint8_t stack[_MSG_STACK]
    cdef uint8_t *env = stack
    cdef Py_ssize_t elen = 0
    cdef Py_ssize_t j
    if n < 9 or memcmp(p, b'{"body":"', 9) != 0:
        return None
    if n > _MSG_STACK:
        env = <uint8_t *>PyMem_Malloc(<size_t>n)  # the body unescaped is never longer
        if env == NULL:
            raise MemoryError()
    try:
        j = _unescape_ascii(p, n, 9, env, &elen)
        if j < 0 or elen > max_message or not _timestamp_tail(p, n, j):
            return None
        return _envelope_fields(env, elen)
    finally:
        if env != stack:
            PyMem_Free(env)


def go_envelope_fields(data, Py_ssize_t max_size):
    """``(id, type, from, to, ts, payload, replyTo)`` of a message JSON in the exact shape
    Go writes (see the comment above), ``None`` for anything else or over ``max_size``."""
    cdef Py_buffer v
    PyObject_GetBuffer(data, &v, PyBUF_SIMPLE)
    try:
        if v.len > max_size:
            return None
        return _envelope_fields(<const uint8_t *>v.buf, v.len)
    finally:
        PyBuffer_Release(&v)


def go_smsg_plaintext_fields(data, Py_ssize_t max_message):
    """The envelope fields of an SMSG plaintext ``{"body":"…","timestamp":N}`` as Go
    writes it (body at most ``max_message`` bytes), ``None`` for anything else."""
    cdef Py_buffer v
    PyObject_GetBuffer(data, &v, PyBUF_SIMPLE)
    try:
        return _plaintext_fields(<const uint8_t *>v.buf, v.len, max_message)
    finally:
        PyBuffer_Release(&v)


def sigil_open_message(key, data, Py_ssize_t offset, Py_ssize_t max_message):
    """:func:`sigil_open` of ``data[offset:]``, then :func:`go_smsg_plaintext_fields` of the
    plaintext: the fields tuple, or the plaintext bytes when it is not Go's exact shape.
    :class:`SigilAuthError` if it does not authenticate."""
    cdef bytes plain = sigil_open(key, data, offset)
    cdef object fields = _plaintext_fields(
        <const uint8_t *>PyBytes_AS_STRING(plain), len(plain), max_message)
    return plain if fields is None else fields
