/* shared.logs._rows: a batch of stamped log lines laid out row by row, each with its cursor.
 *
 * The Python writers (shared/logs/writers.py) are the reference and the fallback: this module
 * does, in one pass over the batch, exactly what `NdjsonWriter._lines` and
 * `TextWriter._with_cursors` do with `Tracker.line_cursors` for the common case, and answers None
 * for anything else (a line without a strict kubelet timestamp, a byte a JSON string cannot hold
 * as it is, a count past one varint byte, ...), so the Python path takes over for that batch.
 * tests/test_native_rows.py checks both give the same bytes for generated batches.
 *
 * Every line of `data` is `<stamp> <content>\n`. A row is the template's items in order: bytes
 * as they are, STAMP (the timestamp without its final `Z`), CONTENT, or PART (the line's cursor:
 * the active part of the resume token after that line, see shared/logs/tokens.py).
 *
 * The input is hostile (log bytes): the first pass only reads within `data` and checks every
 * line, the output size is computed from it, and the second pass writes into a buffer of exactly
 * that size.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { ITEM_STAMP = 0, ITEM_CONTENT = 1, ITEM_PART = 2 };
#define MAX_ITEMS 16
#define MAX_BODY 4096 /* an active part's packed body; a real one is tens of bytes */
#define MAX_CONST (1 << 20) /* bytes of one template constant; a real one is a few hundred */
#define MIN_LINE 22 /* `<19-character stamp>Z \n`: the shortest line laid out here */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* zlib.crc32(buf, crc) */
static uint32_t crc32_update(uint32_t crc, const unsigned char *buf, size_t len) {
    crc = ~crc;
    while (len--) crc = crc_table[(crc ^ *buf++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }

/* base64url without padding */
static char *b64_write(char *out, const unsigned char *in, size_t n) {
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
    }
    return out;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int two(const unsigned char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

static int64_t days_from_civil(int64_t y, int m, int d) {
    /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

/* The Unix seconds of `YYYY-MM-DDTHH:MM:SS`, or -1 if it is not exactly that (in UTC, 1970 on). */
static int64_t civil_seconds(const unsigned char *s) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (int i = 0; i < 19; i++) {
        if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != (unsigned char)shape[i]) return -1;
    }
    int year = two(s) * 100 + two(s + 2), month = two(s + 5), day = two(s + 8);
    int hour = two(s + 11), minute = two(s + 14), second = two(s + 17);
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return -1;
    if (hour > 23 || minute > 59 || second > 59) return -1;
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

/* `<19 chars>[.<1-9 digits>]` (the stamp without its `Z`) to ns, or -1. `cache` holds the last
 * 19 characters parsed and their seconds: the lines of one second share the work. */
static int64_t stamp_ns(const unsigned char *s, Py_ssize_t len, unsigned char *cache, int64_t *cached) {
    if (len < 19 || len == 20 || len > 29) return -1;
    int64_t seconds;
    if (*cached >= 0 && memcmp(s, cache, 19) == 0) {
        seconds = *cached;
    } else {
        seconds = civil_seconds(s);
        if (seconds < 0) return -1;
        memcpy(cache, s, 19);
        *cached = seconds;
    }
    int64_t frac = 0;
    if (len > 19) {
        if (s[19] != '.') return -1;
        int64_t scale = 1000000000;
        for (Py_ssize_t i = 20; i < len; i++) {
            if (!is_digit(s[i])) return -1;
            scale /= 10;
            frac += (s[i] - '0') * scale;
        }
    }
    if (seconds > (INT64_MAX - frac) / 1000000000) return -1;
    return seconds * 1000000000 + frac;
}

/* printable ASCII but `"` and `\`: a JSON string's content as it is */
static int json_safe(const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c < 0x20 || c > 0x7E || c == '"' || c == '\\') return 0;
    }
    return 1;
}

typedef struct {
    const unsigned char *stamp; /* without its final `Z` */
    Py_ssize_t stamp_len;
    const unsigned char *content;
    Py_ssize_t content_len;
    int64_t ns;
} Line;

static PyObject *rows(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data, head, tail;
    PyObject *template;
    unsigned long seed;
    long long prev_ns, end_ns;
    long prev_same, end_same, end_piece;
    int json;
    if (!PyArg_ParseTuple(args, "y*O!y*y*kLlLllp", &data, &PyTuple_Type, &template, &head, &tail, &seed, &prev_ns,
                          &prev_same, &end_ns, &end_same, &end_piece, &json))
        return NULL;
    PyObject *result = NULL;
    Line *lines = NULL;
    const unsigned char *in = data.buf;
    Py_ssize_t size = data.len;

    /* the template: bytes items (borrowed) and item codes */
    Py_ssize_t items = PyTuple_GET_SIZE(template);
    int codes[MAX_ITEMS];
    const char *consts[MAX_ITEMS];
    Py_ssize_t const_lens[MAX_ITEMS];
    Py_ssize_t row_fixed = 0;
    Py_ssize_t uses[3] = {0, 0, 0}; /* how often each item code appears in a row */
    if (items > MAX_ITEMS) {
        PyErr_SetString(PyExc_ValueError, "template too long");
        goto done;
    }
    for (Py_ssize_t k = 0; k < items; k++) {
        PyObject *item = PyTuple_GET_ITEM(template, k);
        if (PyBytes_Check(item)) {
            codes[k] = -1;
            consts[k] = PyBytes_AS_STRING(item);
            const_lens[k] = PyBytes_GET_SIZE(item);
            if (const_lens[k] > MAX_CONST) { /* with MAX_ITEMS of them, a row's constants stay small */
                result = Py_NewRef(Py_None);
                goto done;
            }
            row_fixed += const_lens[k];
        } else if (PyLong_Check(item)) {
            long code = PyLong_AsLong(item);
            if (code != ITEM_STAMP && code != ITEM_CONTENT && code != ITEM_PART) {
                PyErr_SetString(PyExc_ValueError, "unknown template item");
                goto done;
            }
            codes[k] = (int)code;
            uses[code]++;
        } else {
            PyErr_SetString(PyExc_TypeError, "template items are bytes or item codes");
            goto done;
        }
    }

    /* the cases the packed body below is laid out for (else: the Python path); a count that
     * reaches 0x80 falls back anyway, so a larger one is clamped there (no overflow) */
    if (size == 0 || size > INT32_MAX || in[size - 1] != '\n' || prev_same < 0 || end_ns < 0 || end_same < 0 ||
        end_same >= 0x80 || end_piece < 0 || end_piece >= 0x80 || head.len + tail.len + 12 > MAX_BODY) {
        result = Py_NewRef(Py_None);
        goto done;
    }

    /* pass 1: cut and check every line */
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < size; i++) n += in[i] == '\n';
    if ((uint64_t)n * MIN_LINE > (uint64_t)size) goto fallback; /* a line too short to be laid out here */
    lines = PyMem_New(Line, (size_t)n);
    if (lines == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    unsigned char cache[19];
    int64_t cached = -1;
    Py_ssize_t stamps = 0, contents = 0; /* bytes over all lines */
    const unsigned char *p = in, *end = in + size;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) goto fallback; /* a buffer that changed under us (bytes never do) */
        const unsigned char *space = memchr(p, ' ', (size_t)(nl - p));
        if (space == NULL || space - p < 2 || space[-1] != 'Z') goto fallback;
        Line *line = &lines[i];
        line->stamp = p;
        line->stamp_len = space - p - 1;
        line->content = space + 1;
        line->content_len = nl - space - 1;
        line->ns = stamp_ns(p, line->stamp_len, cache, &cached);
        if (line->ns < 0) goto fallback;
        if (json && !json_safe(line->content, line->content_len)) goto fallback;
        stamps += line->stamp_len;
        contents += line->content_len;
        p = nl + 1;
    }

    /* the cursor after each line: its timestamp and how many lines in a row share it */
    const Py_ssize_t body_len = head.len + 10 + tail.len;
    const Py_ssize_t part_len = (Py_ssize_t)b64_len((size_t)body_len + 2);
    unsigned char body[MAX_BODY + 2];
    memcpy(body, head.buf, (size_t)head.len);
    memcpy(body + head.len + 10, tail.buf, (size_t)tail.len);
    const uint32_t head_crc = crc32_update((uint32_t)seed, body, (size_t)head.len);

    /* In 64 bits, whatever Py_ssize_t is: n and the byte sums are at most `size` (< 2^31), a
     * row's constants at most MAX_ITEMS * MAX_CONST (2^24), a part under 2^13 characters. */
    const uint64_t wide = (uint64_t)n * ((uint64_t)row_fixed + (uint64_t)uses[ITEM_PART] * (uint64_t)part_len) +
                          (uint64_t)uses[ITEM_STAMP] * (uint64_t)stamps +
                          (uint64_t)uses[ITEM_CONTENT] * (uint64_t)contents;
    if (wide > (uint64_t)PY_SSIZE_T_MAX) goto fallback;
    const Py_ssize_t total = (Py_ssize_t)wide;
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) goto done;
    char *out = PyBytes_AS_STRING(result);

    /* pass 2: write the rows */
    int64_t ns = prev_ns;
    int64_t same = prev_same < 0x80 ? prev_same : 0x80; /* + at most n < 2^31: no overflow */
    for (Py_ssize_t i = 0; i < n; i++) {
        Line *line = &lines[i];
        int64_t at_ns, at_same, at_piece = 0;
        same = line->ns == ns ? same + 1 : 1;
        ns = line->ns;
        if (i == n - 1) {
            at_ns = end_ns;
            at_same = end_same;
            at_piece = end_piece;
        } else {
            at_ns = ns;
            at_same = same;
        }
        for (Py_ssize_t k = 0; k < items; k++) {
            switch (codes[k]) {
            case ITEM_STAMP:
                memcpy(out, line->stamp, (size_t)line->stamp_len);
                out += line->stamp_len;
                break;
            case ITEM_CONTENT:
                memcpy(out, line->content, (size_t)line->content_len);
                out += line->content_len;
                break;
            case ITEM_PART: {
                if (at_same >= 0x80) { /* past one varint byte: found this late, it is that rare */
                    Py_CLEAR(result);
                    goto fallback;
                }
                unsigned char *moving = body + head.len;
                for (int b = 0; b < 8; b++) moving[b] = (unsigned char)((uint64_t)at_ns >> (56 - 8 * b));
                moving[8] = (unsigned char)at_same;
                moving[9] = (unsigned char)at_piece;
                uint32_t crc = crc32_update(head_crc, moving, (size_t)(body_len - head.len)) & 0xFFFF;
                body[body_len] = (unsigned char)(crc >> 8);
                body[body_len + 1] = (unsigned char)crc;
                out = b64_write(out, body, (size_t)body_len + 2);
                break;
            }
            default:
                memcpy(out, consts[k], (size_t)const_lens[k]);
                out += const_lens[k];
            }
        }
    }
    if (out != PyBytes_AS_STRING(result) + total) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_SystemError, "row sizes miscounted");
    }
    goto done;

fallback:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(lines);
    PyBuffer_Release(&data);
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    return result;
}

static PyMethodDef methods[] = {
    {"rows", rows, METH_VARARGS,
     "rows(data, template, head, tail, seed, prev_ns, prev_same, end_ns, end_same, end_piece, json) -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_rows", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__rows(void) {
    crc_init();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "STAMP", ITEM_STAMP) < 0 || PyModule_AddIntConstant(m, "CONTENT", ITEM_CONTENT) < 0 ||
        PyModule_AddIntConstant(m, "PART", ITEM_PART) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
