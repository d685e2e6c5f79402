# WebSocket (RFC 6455) data frames for the transport's fast path; included by _speedups.pyx.
#
# The transport keeps websockets for everything but the common frame of an open
# connection: one BINARY message in one frame (FIN=1, RSV=0, masked iff it comes from a
# client, length <= max_size). ``ws_scan`` walks such frames and returns their payloads;
# it stops at the first frame that is incomplete or anything else, and says which, so the
# caller can hand that frame whole to websockets (which then behaves exactly as it would
# have). ``ws_frame`` builds one frame in one allocation.

# why ws_scan stopped
DEF WS_END = 0        # every byte consumed
DEF WS_MORE = 1       # the frame at ``pos`` is incomplete; ``size`` = bytes it needs in all
DEF WS_OTHER = 2      # the frame at ``pos`` is complete but not simple; ``size`` = its length
DEF WS_REJECT = 3     # websockets rejects the frame at ``pos`` from its header alone

WS_SCAN_END = WS_END
WS_SCAN_MORE = WS_MORE
WS_SCAN_OTHER = WS_OTHER
WS_SCAN_REJECT = WS_REJECT


cdef inline void _ws_unmask(uint8_t *o, const uint8_t *p, Py_ssize_t n,
                            const uint8_t *mask) noexcept nogil:
    """``o[i] = p[i] ^ mask[i % 4]``, eight bytes at a time (unaligned loads via memcpy)."""
    cdef uint8_t m8[8]
    cdef uint64_t m, w
    cdef Py_ssize_t i = 0
    memcpy(m8, mask, 4)
    memcpy(m8 + 4, mask, 4)
    memcpy(&m, m8, 8)
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        w ^= m
        memcpy(o + i, &w, 8)
        i += 8
    while i < n:
        o[i] = p[i] ^ mask[i & 3]
        i += 1


cdef inline bint _ws_opcode_known(int opcode) noexcept nogil:
    return opcode <= 2 or 8 <= opcode <= 10


def ws_scan(data, Py_ssize_t pos, bint masked, Py_ssize_t max_size, bint simple_ok):
    """Walk the frames of ``data[pos:]``: ``(payloads, pos, why, size)``.

    ``payloads`` (a list, or ``None`` when empty) holds the unmasked payload of every
    leading *simple* frame (FIN=1, RSV=0, BINARY; only when ``simple_ok``); ``pos`` is
    where the walk stopped, ``why`` one of ``WS_SCAN_*`` and ``size`` its detail: the
    bytes the incomplete frame needs from ``pos`` (MORE), the length of the complete
    non-simple frame there (OTHER), 0 otherwise. A frame is REJECTed as soon as its header
    shows what websockets fails at the header: an unknown opcode, the wrong mask bit
    (``masked``: frames must be masked, i.e. we are the server) or a declared length above
    ``max_size``. Nothing beyond ``max_size`` plus a header is ever needed to decide.
    """
    cdef Py_buffer view
    cdef const uint8_t *d
    cdef const uint8_t *f
    cdef Py_ssize_t n, avail, hlen, total
    cdef uint64_t length
    cdef int head1, head2, opcode, why = WS_END
    cdef Py_ssize_t size = 0
    cdef list payloads = None
    cdef bytes payload
    if max_size < 0:
        max_size = 0
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        d = <const uint8_t *>view.buf
        n = view.len
        if pos < 0 or pos > n:
            raise ValueError("pos outside the data")
        while pos < n:
            f = d + pos
            avail = n - pos
            if avail < 2:
                why, size = WS_MORE, 2
                break
            head1 = f[0]
            head2 = f[1]
            opcode = head1 & 0x0F
            if not _ws_opcode_known(opcode) or ((head2 & 0x80) != 0) != masked:
                why = WS_REJECT
                break
            length = head2 & 0x7F
            hlen = 2
            if length == 126:
                hlen = 4
                if avail < 4:
                    why, size = WS_MORE, 4 + (4 if masked else 0)
                    break
                length = (<uint64_t>f[2] << 8) | f[3]
            elif length == 127:
                hlen = 10
                if avail < 10:
                    why, size = WS_MORE, 10 + (4 if masked else 0)
                    break
                length = ((<uint64_t>f[2] << 56) | (<uint64_t>f[3] << 48)
                          | (<uint64_t>f[4] << 40) | (<uint64_t>f[5] << 32)
                          | (<uint64_t>f[6] << 24) | (<uint64_t>f[7] << 16)
                          | (<uint64_t>f[8] << 8) | <uint64_t>f[9])
            if length > <uint64_t>max_size:
                why = WS_REJECT
                break
            if masked:
                hlen += 4
            total = hlen + <Py_ssize_t>length
            if avail < total:
                why, size = WS_MORE, total
                break
            if not simple_ok or (head1 & 0xF0) != 0x80 or opcode != 2:
                why, size = WS_OTHER, total
                break
            payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
            if masked:
                _ws_unmask(<uint8_t *>PyBytes_AS_STRING(payload), f + hlen,
                           <Py_ssize_t>length, f + hlen - 4)
            elif length:
                memcpy(PyBytes_AS_STRING(payload), f + hlen, <size_t>length)
            if payloads is None:
                payloads = [payload]
            else:
                payloads.append(payload)
            pos += total
    finally:
        PyBuffer_Release(&view)
    return payloads, pos, why, size


def ws_frame(int opcode, payload, mask=None):
    """One final (FIN=1, RSV=0) frame of ``opcode`` carrying ``payload``, in one bytes
    object; masked with the 4-byte ``mask`` when given (the client side must pass a fresh
    random one per frame), unmasked when ``None``."""
    cdef Py_buffer vp, vm
    cdef Py_ssize_t n, hlen
    cdef bytes out
    cdef uint8_t *o
    cdef bint masked = mask is not None
    if not 0 <= opcode <= 0x0F:
        raise ValueError("opcode must be 0..15")
    PyObject_GetBuffer(payload, &vp, PyBUF_SIMPLE)
    try:
        n = vp.len
        hlen = 2 if n < 126 else (4 if n < 65536 else 10)
        if masked:
            PyObject_GetBuffer(mask, &vm, PyBUF_SIMPLE)
            if vm.len != 4:
                PyBuffer_Release(&vm)
                raise ValueError("mask must be 4 bytes")
        try:
            out = PyBytes_FromStringAndSize(NULL, hlen + (4 if masked else 0) + n)
            o = <uint8_t *>PyBytes_AS_STRING(out)
            o[0] = <uint8_t>(0x80 | opcode)
            if n < 126:
                o[1] = <uint8_t>n
            elif n < 65536:
                o[1] = 126
                o[2] = <uint8_t>(n >> 8)
                o[3] = <uint8_t>n
            else:
                o[1] = 127
                o[2] = <uint8_t>(<uint64_t>n >> 56)
                o[3] = <uint8_t>(<uint64_t>n >> 48)
                o[4] = <uint8_t>(<uint64_t>n >> 40)
                o[5] = <uint8_t>(<uint64_t>n >> 32)
                o[6] = <uint8_t>(n >> 24)
                o[7] = <uint8_t>(n >> 16)
                o[8] = <uint8_t>(n >> 8)
                o[9] = <uint8_t>n
            if masked:
                o[1] |= 0x80
                memcpy(o + hlen, vm.buf, 4)
                _ws_unmask(o + hlen + 4, <const uint8_t *>vp.buf, n, <const uint8_t *>vm.buf)
            elif n:
                memcpy(o + hlen, vp.buf, <size_t>n)
        finally:
            if masked:
                PyBuffer_Release(&vm)
    finally:
        PyBuffer_Release(&vp)
    return out
