// HTTP/2 sessions in nghttp2 driven straight from TypeScript, without node:http2's machinery: no
// Http2Stream (a Duplex per stream), no header objects, no per-frame callbacks into JavaScript.
// Measured (bench/h2-engine-probe.ts): node:http2 spends most of a request's CPU in that
// machinery, not in nghttp2, TLS or system calls.
//
// The shape: TypeScript reads the socket (gateway/net/socket-io.ts) and hands each read to
// receive(), which feeds it to nghttp2 and returns everything it produced as one flat array of
// events; TypeScript answers with respond()/sendData()/sendTrailers()/reset()/goaway(), which only
// queue frames, then takes all output with one pending() call and writes it to the socket. So a
// socket read costs one call into C plus one per answer, and one for the output.
//
// nghttp2 itself: the addon does not link libnghttp2 and needs no nghttp2 package to build. Node
// is built with nghttp2 and its binary exports every nghttp2_* symbol (nm -D --defined-only node |
// grep nghttp2_), so the addon's undefined nghttp2 symbols bind to Node's own copy when Node loads
// it (a system Node linked to libnghttp2.so binds to that). What it calls is declared in
// nghttp2-api.h (held to nghttp2's own header by test/nghttp2-api.test.ts). It uses the APIs of
// nghttp2 1.52 (Debian 12's), not the *2 ones of 1.60 (mem_recv2, nghttp2_data_provider2,
// submit_response2), which later versions keep (Node 24 has 1.70: both exported). Node does not export nghttp2_version(), so the runtime's version is
// Node's (process.versions.nghttp2). The addon is linked -z now: a symbol Node lacks fails the
// load with an error naming it, rather than the process at the first call.
//
// Roles: a session is a server (a client's connection) or a client (an upstream connection);
// the events and the submit calls are the same for both, only creation and who opens streams
// differ (request() is the client's respond()).
#define NAPI_VERSION 8
#include <node_api.h>
#include "nghttp2-api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/**
 * What receive() reports: events are int32 runs in the Int32Array given to init(), each starting
 * with its kind. Header names and values are not strings of their own: they are slices of the
 * one latin1 string receive() returns, given as (start, nameLength, valueLength), the value
 * following the name. A body chunk is a slice of the bytes given to receive(). So a read costs
 * no JavaScript object but that string (measured: napi_set_element and a string per field took
 * ~1.4 µs a request of 15.7).
 */
enum event_kind {
  /** [HEADERS, streamId, flags, fields, (start, nameLength, valueLength) * fields]: a header block, complete. */
  EV_HEADERS = 1,
  /** [DATA, streamId, offset, length]: body bytes, at offset in the bytes given to receive(). */
  EV_DATA = 2,
  /** [END_STREAM, streamId, 0]: the peer ended its side with a DATA frame. */
  EV_END_STREAM = 3,
  /** [CLOSE, streamId, code]: the stream is closed, by END_STREAM both ways (0) or a reset (its code). */
  EV_CLOSE = 4,
  /** [GOAWAY, lastStreamId, code]: the peer will open no more streams; those above lastStreamId were not processed. */
  EV_GOAWAY = 5,
  /**
   * [ERROR, 0, nghttp2 error]: the connection is broken (receive() failed), or the peer sent a
   * frame nghttp2 refused that node:http2 would end the session for: flush pending() (a GOAWAY)
   * and close.
   */
  EV_ERROR = 6,
  /**
   * [WRITABLE, streamId, 0]: the stream's queue, which a respond()/sendData() left at or above
   * SEND_HIGH_WATER bytes, went below it as pending() framed it: the sender may go on. Reported
   * by takeEvents() after pending() (or with the next receive()).
   */
  EV_WRITABLE = 7,
  /** [SETTINGS, 0, maxConcurrentStreams]: (client role) the peer's SETTINGS, applied; its stream limit (INT32_MAX: none). */
  EV_SETTINGS = 8,
};

/** EV_HEADERS flags. */
#define HEADERS_END_STREAM 1
/** Trailers (a second header block), not a request or response head. */
#define HEADERS_TRAILERS 2
/** The block was larger than the session's header list limit: its fields are dropped (pairs 0). */
#define HEADERS_TOO_LARGE 4
/** With HEADERS_TOO_LARGE: the block said content-type application/grpc… (its refusal is a gRPC status). */
#define HEADERS_GRPC 8
/** (Client role) an informational (1xx) response head: the final one follows. */
#define HEADERS_INFORMATIONAL 16

/** counters(): numbers the flood checks in TypeScript read, in this order. */
enum counter {
  C_SETTINGS,      // SETTINGS frames received (ACKs included)
  C_PINGS,         // PING frames received
  C_RESETS,        // RST_STREAM frames received
  C_HEADER_BLOCKS, // header blocks received
  C_EMPTY_DATA,    // DATA frames without payload or END_STREAM
  C_INVALID,       // frames nghttp2 found invalid (answered with RST_STREAM or GOAWAY)
  C_COUNT,
};

/** A session's header list limit when SETTINGS_MAX_HEADER_LIST_SIZE is not given. */
#define DEFAULT_HEADER_LIST_BYTES (64 * 1024)

/**
 * A stream's queued body bytes at or above which respond()/sendData() tell the sender to wait
 * (they return what is queued) for EV_WRITABLE. Above a DATA frame (16 KiB), so a stream whose
 * peer reads keeps a frame or more in hand between two pending() calls.
 */
#define SEND_HIGH_WATER (64 * 1024)

/**
 * Flood limits nghttp2 enforces (each ends the session with GOAWAY), as node:http2 sets them:
 * acknowledgements (PING, SETTINGS) queued unwritten, entries per SETTINGS frame, RST_STREAM
 * frames received (a token bucket: a burst, then a rate a second), CONTINUATION frames per
 * header block.
 */
#define MAX_OUTBOUND_ACK 1000
#define MAX_SETTINGS_ENTRIES 32
#define RESET_BURST 1000
#define RESET_RATE 33
#define MAX_CONTINUATIONS 8
// (Debian's 1.52 header has both later limits, backported; nghttp2's glitch rate limit, newer,
// applies by its default where the runtime's nghttp2 has it.)

/** Bytes queued for a stream's DATA frames, in sendData order. */
typedef struct chunk {
  struct chunk *next;
  size_t length, offset;
  uint8_t data[];
} chunk_t;

/** A stream's response (server) or request (client) body and trailers, waiting to be framed. */
typedef struct outbound {
  struct outbound *prev, *next; // every outbound of the session, freed with it
  chunk_t *head, *tail;
  /** Bytes in the chunks not yet framed. */
  size_t queued;
  /** The sender was told to wait (queued reached SEND_HIGH_WATER): EV_WRITABLE when it is below. */
  int blocked;
  /** No more data will be queued: after the chunks come the trailers, or END_STREAM. */
  int ended;
  /** nghttp2 asked for data when there was none: resume_data() when some comes. */
  int deferred;
  int32_t stream_id;
  nghttp2_nv *trailers; // one allocation: the array, then the names and values
  size_t trailer_count;
} outbound_t;

/** A field of the header block being received: offsets into header_bytes. */
typedef struct field {
  uint32_t name, name_length, value, value_length;
} field_t;

typedef struct engine {
  nghttp2_session *session;
  /** Events not yet given to JavaScript (closes in pending() wait here for the next receive()). */
  int32_t *events;
  size_t event_count, event_capacity;
  /** The header names and values of this receive()'s events, returned as one string. */
  uint8_t *text;
  size_t text_used, text_capacity;
  /** The bytes receive() is feeding: DATA events are offsets in them. */
  const uint8_t *input;
  size_t input_length;
  /** The header block being received (one at a time: CONTINUATION frames cannot interleave). */
  uint8_t *header_bytes;
  size_t header_used, header_capacity, header_limit;
  field_t *fields;
  size_t field_count, field_capacity;
  int header_too_large;
  /** The block being received has content-type application/grpc… (kept when its fields are dropped). */
  int header_grpc;
  /**
   * A frame nghttp2 serialized that did not fit the shared output buffer: the next pending()
   * starts with it. At most a frame (nghttp2 frames DATA at 16 KiB, and splits header blocks).
   */
  uint8_t *out;
  size_t out_used, out_capacity;
  /** Strings of a respond()/sendTrailers() call, reused. */
  char *scratch;
  size_t scratch_capacity;
  outbound_t *outbounds;
  double counters[C_COUNT];
  int fatal;
  /** A client session (an upstream connection): it opens the streams, blocks are told apart by :status. */
  int client;
  /** The first digit of the block's :status ('1': informational), 0 without one (client role). */
  char status_class;
  /** The peer acknowledged our SETTINGS: its header blocks are held to our limit by resets from then on. */
  int settings_acked;
} engine_t;

// ---- small helpers ---------------------------------------------------------------------------

static int grow(void **buffer, size_t *capacity, size_t needed, size_t item) {
  if (needed <= *capacity) return 0;
  size_t next = *capacity ? *capacity : 16;
  while (next < needed) next *= 2;
  void *grown = realloc(*buffer, next * item);
  if (grown == NULL) return -1;
  *buffer = grown;
  *capacity = next;
  return 0;
}

/** Room for `count` more event numbers; -1 without memory (the callback then fails the session). */
static int reserve(engine_t *e, size_t count) {
  return grow((void **)&e->events, &e->event_capacity, e->event_count + count, sizeof(int32_t));
}

static int push3(engine_t *e, int32_t kind, int32_t a, int32_t b) {
  if (reserve(e, 3) < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  int32_t *at = e->events + e->event_count;
  at[0] = kind;
  at[1] = a;
  at[2] = b;
  e->event_count += 3;
  return 0;
}

// ---- outbound bodies -------------------------------------------------------------------------

static void free_outbound(engine_t *e, outbound_t *out) {
  for (chunk_t *c = out->head, *next; c != NULL; c = next) {
    next = c->next;
    free(c);
  }
  free(out->trailers);
  if (out->prev) out->prev->next = out->next;
  else e->outbounds = out->next;
  if (out->next) out->next->prev = out->prev;
  free(out);
}

static outbound_t *new_outbound(engine_t *e, int32_t stream_id) {
  outbound_t *out = calloc(1, sizeof *out);
  if (out == NULL) return NULL;
  out->stream_id = stream_id;
  out->next = e->outbounds;
  if (e->outbounds) e->outbounds->prev = out;
  e->outbounds = out;
  return out;
}

static int append_chunk(outbound_t *out, const uint8_t *data, size_t length) {
  if (length == 0) return 0;
  chunk_t *c = malloc(sizeof *c + length);
  if (c == NULL) return -1;
  c->next = NULL;
  c->length = length;
  c->offset = 0;
  memcpy(c->data, data, length);
  if (out->tail) out->tail->next = c;
  else out->head = c;
  out->tail = c;
  out->queued += length;
  return 0;
}

/** nghttp2 asks for the next DATA frame's payload: what is queued, else wait (DEFERRED). */
static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  outbound_t *out = source->ptr;
  engine_t *e = user_data;
  size_t n = 0;
  while (out->head != NULL && n < length) {
    chunk_t *c = out->head;
    size_t take = c->length - c->offset < length - n ? c->length - c->offset : length - n;
    memcpy(buf + n, c->data + c->offset, take);
    n += take;
    c->offset += take;
    if (c->offset == c->length) {
      out->head = c->next;
      if (out->head == NULL) out->tail = NULL;
      free(c);
    }
  }
  out->queued -= n;
  if (out->blocked && out->queued < SEND_HIGH_WATER) {
    out->blocked = 0;
    if (push3(e, EV_WRITABLE, stream_id, 0) < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (out->head == NULL && out->ended) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (out->trailers != NULL) {
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM; // the trailers end the stream
      int rv = nghttp2_submit_trailer(session, stream_id, out->trailers, out->trailer_count);
      free(out->trailers);
      out->trailers = NULL;
      if (rv != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  } else if (n == 0) {
    out->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

// ---- nghttp2 callbacks -----------------------------------------------------------------------

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  engine_t *e = user_data;
  e->header_used = 0;
  e->field_count = 0;
  e->header_too_large = 0;
  e->header_grpc = 0;
  e->status_class = 0;
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_length, const uint8_t *value, size_t value_length, uint8_t flags, void *user_data) {
  engine_t *e = user_data;
  if (name_length == 12 && value_length >= 16 && memcmp(name, "content-type", 12) == 0 && memcmp(value, "application/grpc", 16) == 0) e->header_grpc = 1;
  if (name_length == 7 && value_length > 0 && memcmp(name, ":status", 7) == 0) e->status_class = (char)value[0];
  if (e->header_too_large) return 0;
  // RFC 9113 6.5.2: a field's size is its name and value plus 32.
  size_t used = e->header_used + name_length + value_length;
  if (used + 32 * (e->field_count + 1) > e->header_limit || grow((void **)&e->header_bytes, &e->header_capacity, used, 1) < 0 ||
      grow((void **)&e->fields, &e->field_capacity, e->field_count + 1, sizeof(field_t)) < 0) {
    e->header_too_large = 1;
    return 0;
  }
  field_t *f = &e->fields[e->field_count++];
  f->name = (uint32_t)e->header_used;
  f->name_length = (uint32_t)name_length;
  memcpy(e->header_bytes + e->header_used, name, name_length);
  f->value = (uint32_t)(e->header_used + name_length);
  f->value_length = (uint32_t)value_length;
  memcpy(e->header_bytes + f->value, value, value_length);
  e->header_used = used;
  return 0;
}

static int client_block_flags(const engine_t *e);
static int push_settings(engine_t *e);

static int push_headers(engine_t *e, const nghttp2_frame *frame) {
  // Over the limit the peer has acknowledged: reset (ENHANCE_YOUR_CALM, as node:http2 does), unseen
  // by TypeScript. Before that the peer could not know the limit: TypeScript answers 431.
  if (e->header_too_large && e->settings_acked) return nghttp2_submit_rst_stream(e->session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_ENHANCE_YOUR_CALM) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
  int flags = 0;
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) flags |= HEADERS_END_STREAM;
  if (e->client) flags |= client_block_flags(e);
  else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) flags |= HEADERS_TRAILERS;
  if (e->header_too_large) flags |= HEADERS_TOO_LARGE | (e->header_grpc ? HEADERS_GRPC : 0);
  size_t fields = e->header_too_large ? 0 : e->field_count;
  size_t bytes = e->header_too_large ? 0 : e->header_used;
  if (reserve(e, 4 + 3 * fields) < 0 || grow((void **)&e->text, &e->text_capacity, e->text_used + bytes, 1) < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  int32_t *at = e->events + e->event_count;
  *at++ = EV_HEADERS;
  *at++ = frame->hd.stream_id;
  *at++ = flags;
  *at++ = (int32_t)fields;
  // The block's bytes are its fields in order, each name then value (on_header): copied whole.
  memcpy(e->text + e->text_used, e->header_bytes, bytes);
  for (size_t i = 0; i < fields; i++) {
    const field_t *f = &e->fields[i];
    *at++ = (int32_t)(e->text_used + f->name);
    *at++ = (int32_t)f->name_length;
    *at++ = (int32_t)f->value_length;
  }
  e->text_used += bytes;
  e->event_count += 4 + 3 * fields;
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  engine_t *e = user_data;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    e->counters[C_HEADER_BLOCKS]++;
    return push_headers(e, frame);
  case NGHTTP2_DATA:
    if (frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) e->counters[C_EMPTY_DATA]++;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) return push3(e, EV_END_STREAM, frame->hd.stream_id, 0);
    break;
  case NGHTTP2_SETTINGS:
    e->counters[C_SETTINGS]++;
    if (e->client && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) return push_settings(e);
    if (frame->hd.flags & NGHTTP2_FLAG_ACK) e->settings_acked = 1;
    break;
  case NGHTTP2_PING:
    e->counters[C_PINGS]++;
    break;
  case NGHTTP2_RST_STREAM:
    e->counters[C_RESETS]++;
    break;
  case NGHTTP2_GOAWAY:
    return push3(e, EV_GOAWAY, frame->goaway.last_stream_id, (int32_t)frame->goaway.error_code);
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t length, void *user_data) {
  engine_t *e = user_data;
  // nghttp2_session_mem_recv passes DATA payloads as pointers into its input.
  if (data < e->input || data + length > e->input + e->input_length || reserve(e, 4) < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  int32_t *at = e->events + e->event_count;
  at[0] = EV_DATA;
  at[1] = stream_id;
  at[2] = (int32_t)(data - e->input);
  at[3] = (int32_t)length;
  e->event_count += 4;
  // Flow control (sessions are made with no_auto_window_update): the connection's window is
  // reopened as bytes arrive, so a stream whose reader is slow does not stall its siblings; the
  // stream's only when TypeScript has handed them on (consume()). So what a connection holds is
  // bounded by its streams' windows, one per stream, and each by its own reader.
  return nghttp2_session_consume_connection(session, length) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/**
 * A frame nghttp2 refused. The errors node:http2 ends the session for (fatal ones, a protocol
 * error, a frame on a closed stream) are reported as EV_ERROR with their code, the session to be
 * closed once pending() has written what nghttp2 queued (its GOAWAY, when it sent one).
 */
static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code, void *user_data) {
  engine_t *e = user_data;
  e->counters[C_INVALID]++;
  if (nghttp2_is_fatal(lib_error_code) || lib_error_code == NGHTTP2_ERR_PROTO || lib_error_code == NGHTTP2_ERR_STREAM_CLOSED) return push3(e, EV_ERROR, 0, lib_error_code);
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
  engine_t *e = user_data;
  outbound_t *out = nghttp2_session_get_stream_user_data(session, stream_id);
  if (out != NULL) free_outbound(e, out);
  return push3(e, EV_CLOSE, stream_id, (int32_t)error_code);
}

static nghttp2_session_callbacks *callbacks;
/** Every session's options: flow control left to TypeScript, the flood limits. */
static nghttp2_option *options;

static int make_options(void) {
  if (nghttp2_option_new(&options) != 0) return -1;
  nghttp2_option_set_no_auto_window_update(options, 1);
  nghttp2_option_set_max_outbound_ack(options, MAX_OUTBOUND_ACK);
  nghttp2_option_set_max_settings(options, MAX_SETTINGS_ENTRIES);
  nghttp2_option_set_stream_reset_rate_limit(options, RESET_BURST, RESET_RATE);
  nghttp2_option_set_max_continuations(options, MAX_CONTINUATIONS);
  return 0;
}

static int make_callbacks(void) {
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return -1;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
  return 0;
}

// ---- Node-API --------------------------------------------------------------------------------

/**
 * Memory JavaScript and C share, per Node environment (a worker has its own): where receive()
 * puts its events and pending() its output, so that neither makes an object per call.
 */
typedef struct shared {
  int32_t *events; // [count, events...]
  size_t event_capacity;
  napi_ref events_ref;
  uint8_t *output;
  size_t output_capacity;
  napi_ref output_ref;
} shared_t;

static void finalize_shared(napi_env env, void *data, void *hint) {
  shared_t *shared = data;
  if (shared->events_ref) napi_delete_reference(env, shared->events_ref);
  if (shared->output_ref) napi_delete_reference(env, shared->output_ref);
  free(shared);
}

static shared_t *shared_of(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static void destroy_engine(engine_t *e) {
  if (e->session != NULL) nghttp2_session_del(e->session); // calls no callbacks: outbounds freed below
  e->session = NULL;
  while (e->outbounds != NULL) free_outbound(e, e->outbounds);
  free(e->events);
  free(e->text);
  free(e->header_bytes);
  free(e->fields);
  free(e->out);
  free(e->scratch);
  e->events = NULL;
  e->text = NULL;
  e->header_bytes = NULL;
  e->fields = NULL;
  e->out = NULL;
  e->scratch = NULL;
}

static void finalize_engine(napi_env env, void *data, void *hint) {
  destroy_engine(data);
  free(data);
}

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value int_value(napi_env env, int32_t value) {
  napi_value v;
  napi_create_int32(env, value, &v);
  return v;
}

/** The call's arguments; the first is the session handle, its engine in *engine (NULL: destroyed). */
static size_t session_args(napi_env env, napi_callback_info info, napi_value *argv, size_t max, engine_t **engine) {
  size_t argc = max;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) data = NULL;
  *engine = data;
  if (data != NULL && ((engine_t *)data)->session == NULL) *engine = NULL;
  return argc;
}

/** A call (session, streamId, ...): its arguments, its engine and its stream. */
typedef struct call {
  napi_value argv[5];
  engine_t *e;
  int32_t stream_id;
} call_t;

/**
 * Reads a call (session, streamId, ...) of `count` arguments (at most 5). False when it cannot
 * go on: *result is then what the call returns (an error code, or NULL with an exception).
 */
static bool stream_call(napi_env env, napi_callback_info info, size_t count, const char *usage, call_t *c, napi_value *result) {
  size_t argc = session_args(env, info, c->argv, count, &c->e);
  c->stream_id = 0;
  if (c->e == NULL) *result = int_value(env, NGHTTP2_ERR_INVALID_STATE);
  else if (argc < count) *result = throw_error(env, usage);
  else napi_get_value_int32(env, c->argv[1], &c->stream_id);
  return c->e != NULL && argc >= count;
}

/** stream_call() for (session, streamId, number): the number in *value. */
static bool stream_number_call(napi_env env, napi_callback_info info, const char *usage, call_t *c, uint32_t *value, napi_value *result) {
  *value = 0;
  if (!stream_call(env, info, 3, usage, c, result)) return false;
  napi_get_value_uint32(env, c->argv[2], value);
  return true;
}

static bool bool_arg(napi_env env, napi_value value) {
  bool result = false;
  napi_get_value_bool(env, value, &result);
  return result;
}

/** read_fields(): a name or value HTTP/2 cannot carry (no exception pending: the call returns NGHTTP2_ERR_INVALID_ARGUMENT). */
#define FIELDS_INVALID (-2)

/**
 * Reads a JS array of strings [name0, value0, ...] into nghttp2 name-value pairs. The strings go
 * to the engine's scratch buffer (latin1), which stays valid until the next call; nghttp2 copies
 * them when a frame is submitted. Returns the pair count, FIELDS_INVALID, or -1 (an exception is pending).
 */
static ssize_t read_fields(napi_env env, engine_t *e, napi_value array, nghttp2_nv **nva_out) {
  uint32_t length = 0;
  if (napi_get_array_length(env, array, &length) != napi_ok || length % 2 != 0) {
    throw_error(env, "h2-engine: headers must be a flat array of names and values");
    return -1;
  }
  size_t pairs = length / 2;
  // The nv array first, the strings after it; while the buffer may still move, the nv array
  // holds offsets, made pointers at the end.
  size_t used = pairs * sizeof(nghttp2_nv);
  if (grow((void **)&e->scratch, &e->scratch_capacity, used + 256, 1) < 0) goto oom;
  for (uint32_t i = 0; i < length; i++) {
    napi_value s;
    napi_get_element(env, array, i, &s);
    size_t n = 0;
    for (;;) {
      size_t room = e->scratch_capacity - used;
      if (napi_get_value_string_latin1(env, s, e->scratch + used, room, &n) != napi_ok) {
        throw_error(env, "h2-engine: header names and values must be strings");
        return -1;
      }
      if (n + 1 < room) break; // it fit with its NUL (one exactly room-1 long may have been cut: retry)
      if (grow((void **)&e->scratch, &e->scratch_capacity, e->scratch_capacity * 2, 1) < 0) goto oom;
    }
    nghttp2_nv *nv = (nghttp2_nv *)(void *)e->scratch + i / 2;
    if (i % 2 == 0) {
      nv->name = (uint8_t *)(uintptr_t)used;
      nv->namelen = n;
    } else {
      nv->value = (uint8_t *)(uintptr_t)used;
      nv->valuelen = n;
    }
    used += n + 1;
  }
  nghttp2_nv *nva = (nghttp2_nv *)(void *)e->scratch;
  for (size_t p = 0; p < pairs; p++) {
    nva[p].name = (uint8_t *)e->scratch + (uintptr_t)nva[p].name;
    nva[p].value = (uint8_t *)e->scratch + (uintptr_t)nva[p].value;
    nva[p].flags = NGHTTP2_NV_FLAG_NONE;
    // nghttp2 sends what it is given: a name that is no lowercase token, or a value with CR, LF
    // or NUL, would reach the peer as a malformed message (node:http2 throws on them).
    if (!nghttp2_check_header_name(nva[p].name, nva[p].namelen) || !nghttp2_check_header_value(nva[p].value, nva[p].valuelen)) return FIELDS_INVALID;
  }
  *nva_out = nva;
  return (ssize_t)pairs;
oom:
  throw_error(env, "h2-engine: out of memory");
  return -1;
}

/** A copy of `count` pairs in one allocation (trailers wait until the body is sent). */
static nghttp2_nv *copy_fields(const nghttp2_nv *nva, size_t count) {
  size_t bytes = count * sizeof(nghttp2_nv);
  for (size_t i = 0; i < count; i++) bytes += nva[i].namelen + nva[i].valuelen;
  nghttp2_nv *copy = malloc(bytes ? bytes : 1);
  if (copy == NULL) return NULL;
  uint8_t *p = (uint8_t *)(copy + count);
  for (size_t i = 0; i < count; i++) {
    copy[i] = nva[i];
    copy[i].name = memcpy(p, nva[i].name, nva[i].namelen);
    p += nva[i].namelen;
    copy[i].value = memcpy(p, nva[i].value, nva[i].valuelen);
    p += nva[i].valuelen;
  }
  return copy;
}

/** Keeps `value` (a typed array or Buffer) alive in *ref, and where its bytes are. */
static int hold(napi_env env, napi_value value, napi_ref *ref, void **data, size_t *bytes) {
  napi_typedarray_type type;
  size_t length;
  if (napi_get_typedarray_info(env, value, &type, &length, data, NULL, NULL) != napi_ok) return -1;
  *bytes = length * (type == napi_int32_array ? 4 : 1);
  if (*ref) napi_delete_reference(env, *ref);
  return napi_create_reference(env, value, 1, ref) == napi_ok ? 0 : -1;
}

/**
 * init(events: Int32Array, output: Buffer): where receive() puts its events (events[0], their
 * count) and pending() its output, for every session; init() again with larger ones when told.
 */
static napi_value init(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  shared_t *shared = shared_of(env);
  void *events, *output;
  size_t event_bytes, output_bytes;
  if (argc < 2 || hold(env, argv[0], &shared->events_ref, &events, &event_bytes) < 0 || hold(env, argv[1], &shared->output_ref, &output, &output_bytes) < 0 || event_bytes < 64)
    return throw_error(env, "h2-engine: init(events: Int32Array, output: Buffer)");
  shared->events = events;
  shared->event_capacity = event_bytes / 4;
  shared->output = output;
  shared->output_capacity = output_bytes;
  return NULL;
}

/**
 * A session of either role: `settings` are [id, value, ...] (SETTINGS parameters, RFC 9113
 * 6.5.2), sent by the first pending() (a client's after its connection preface).
 * SETTINGS_MAX_HEADER_LIST_SIZE (6) also bounds what receive() keeps of a header block (beyond
 * it: HEADERS_TOO_LARGE).
 */
static napi_value create_session(napi_env env, napi_callback_info info, int client) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  nghttp2_settings_entry entries[16];
  size_t count = 0;
  uint32_t length = 0;
  if (argc >= 1) napi_get_array_length(env, argv[0], &length);
  if (length % 2 != 0 || length / 2 > sizeof entries / sizeof entries[0]) return throw_error(env, "h2-engine: settings must be [id, value, ...], at most 16 pairs");
  engine_t *e = calloc(1, sizeof *e);
  if (e == NULL) return throw_error(env, "h2-engine: out of memory");
  e->header_limit = DEFAULT_HEADER_LIST_BYTES;
  e->client = client;
  for (uint32_t i = 0; i < length; i += 2) {
    napi_value id, value;
    uint32_t id_number = 0, value_number = 0;
    napi_get_element(env, argv[0], i, &id);
    napi_get_element(env, argv[0], i + 1, &value);
    napi_get_value_uint32(env, id, &id_number);
    napi_get_value_uint32(env, value, &value_number);
    entries[count].settings_id = (int32_t)id_number;
    entries[count++].value = value_number;
    if (id_number == NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE) e->header_limit = value_number;
  }
  int made = client ? nghttp2_session_client_new2(&e->session, callbacks, e, options) : nghttp2_session_server_new2(&e->session, callbacks, e, options);
  if (made != 0) {
    free(e);
    return throw_error(env, "h2-engine: nghttp2_session_new failed");
  }
  int rv = nghttp2_submit_settings(e->session, NGHTTP2_FLAG_NONE, entries, count);
  if (rv != 0) {
    destroy_engine(e);
    free(e);
    return throw_error(env, nghttp2_strerror(rv));
  }
  napi_value handle;
  napi_create_external(env, e, finalize_engine, NULL, &handle);
  return handle;
}

/** createServer(settings: number[]) -> session: a server session for a connection whose client preface is still to come. */
static napi_value create_server(napi_env env, napi_callback_info info) {
  return create_session(env, info, 0);
}

/**
 * Gives the events not yet given to the shared array: events[0] is their count, or minus it
 * when they do not fit (init() a larger one, then takeEvents()). Returns whether they fit.
 */
static bool deliver(napi_env env, engine_t *e) {
  shared_t *shared = shared_of(env);
  if (shared->events == NULL) return false;
  if (e->event_count + 1 > shared->event_capacity) {
    shared->events[0] = -(int32_t)e->event_count;
    return false;
  }
  shared->events[0] = (int32_t)e->event_count;
  memcpy(shared->events + 1, e->events, e->event_count * sizeof(int32_t));
  e->event_count = 0;
  return true;
}

/**
 * receive(session, bytes) -> string | undefined: feeds `bytes` to nghttp2; what happened is in
 * the shared events array (enum event_kind; closes since the last call first); the string holds
 * the header names and values those events point into. After EV_ERROR nothing more is read.
 */
static napi_value receive(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  engine_t *e;
  size_t argc = session_args(env, info, argv, 2, &e);
  napi_value result;
  napi_get_undefined(env, &result);
  if (e == NULL) {
    shared_t *shared = shared_of(env);
    if (shared->events != NULL) shared->events[0] = 0;
    return result;
  }
  void *data = NULL;
  size_t length = 0;
  e->text_used = 0;
  if (argc >= 2 && !e->fatal && napi_get_buffer_info(env, argv[1], &data, &length) == napi_ok && length > 0) {
    e->input = data;
    e->input_length = length;
    ssize_t rv = nghttp2_session_mem_recv(e->session, data, length);
    e->input = NULL;
    if (rv < 0) {
      e->fatal = 1;
      if (push3(e, EV_ERROR, 0, (int32_t)rv) < 0) e->event_count = 0; // no memory: pending() tells it is over
    }
  }
  deliver(env, e);
  if (e->text_used > 0) napi_create_string_latin1(env, (const char *)e->text, e->text_used, &result);
  return result;
}

/**
 * takeEvents(session) -> number: the events not yet given (those receive() could not fit, now
 * that the shared array is larger; those pending() produced: closes, EV_WRITABLE) into the shared
 * array, as receive() gives them; returns events[0] (their count, negative when they do not fit).
 */
static napi_value take_events(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e;
  session_args(env, info, argv, 1, &e);
  shared_t *shared = shared_of(env);
  if (shared->events == NULL) return int_value(env, 0);
  if (e == NULL) shared->events[0] = 0;
  else deliver(env, e);
  return int_value(env, shared->events[0]);
}

/**
 * consume(session, streamId, bytes) -> 0 | nghttp2 error: `bytes` of the stream's body that
 * receive() reported have been handed on; nghttp2 reopens the stream's window (WINDOW_UPDATE
 * once half of it is consumed). Body bytes never consumed hold the client back (flow control).
 */
static napi_value consume(napi_env env, napi_callback_info info) {
  call_t c;
  napi_value failed;
  uint32_t bytes;
  if (!stream_number_call(env, info, "h2-engine: consume(session, streamId, bytes)", &c, &bytes, &failed)) return failed;
  return int_value(env, nghttp2_session_consume_stream(c.e->session, c.stream_id, bytes));
}

/** After queuing: what `out` holds (the sender waits for EV_WRITABLE when it is SEND_HIGH_WATER or more). */
static napi_value queued_value(napi_env env, outbound_t *out) {
  if (out->queued >= SEND_HIGH_WATER) out->blocked = 1;
  return int_value(env, (int32_t)(out->queued > INT32_MAX ? INT32_MAX : out->queued));
}

/**
 * The stream's outbound; NULL when it has none. A client's request waits in nghttp2's queue
 * without a stream object (so without user data) until its HEADERS go out: found in the list.
 */
static outbound_t *outbound_of(engine_t *e, int32_t stream_id) {
  outbound_t *out = nghttp2_session_get_stream_user_data(e->session, stream_id);
  if (out != NULL || !e->client) return out;
  for (out = e->outbounds; out != NULL && out->stream_id != stream_id; out = out->next) {}
  return out;
}

/** Queues `body` (a Buffer, or undefined for none) on `out`; -1 when it is not a Buffer. */
static int queue_body(napi_env env, outbound_t *out, napi_value body) {
  napi_valuetype type;
  napi_typeof(env, body, &type);
  if (type == napi_undefined || type == napi_null) return 0;
  void *data;
  size_t length;
  if (napi_get_buffer_info(env, body, &data, &length) != napi_ok) return -1;
  return append_chunk(out, data, length);
}

/** A head and its body argument (respond(), request()): the fields as read_fields(), and whether a body was given. */
static ssize_t read_head(napi_env env, engine_t *e, napi_value headers, napi_value body, nghttp2_nv **nva, int *has_body) {
  napi_valuetype type;
  napi_typeof(env, body, &type);
  *has_body = type != napi_undefined && type != napi_null;
  return read_fields(env, e, headers, nva);
}

/**
 * respond(session, streamId, headers, body?, endStream) -> queued bytes | nghttp2 error (< 0):
 * queues the response head ([':status', '200', name, value, ...]) and `body`; with endStream
 * false, more comes with sendData()/sendTrailers(). Returns the body bytes queued for the stream,
 * as sendData() does. Nothing is written until pending().
 */
static napi_value respond(napi_env env, napi_callback_info info) {
  call_t c;
  napi_value failed;
  if (!stream_call(env, info, 5, "h2-engine: respond(session, streamId, headers, body, endStream)", &c, &failed)) return failed;
  engine_t *e = c.e;
  napi_value *argv = c.argv;
  int32_t stream_id = c.stream_id;
  bool end_stream = bool_arg(env, argv[4]);
  nghttp2_nv *nva;
  int has_body;
  ssize_t pairs = read_head(env, e, argv[2], argv[3], &nva, &has_body);
  if (pairs < 0) return pairs == FIELDS_INVALID ? int_value(env, NGHTTP2_ERR_INVALID_ARGUMENT) : NULL;
  if (!has_body && end_stream) return int_value(env, nghttp2_submit_response(e->session, stream_id, nva, (size_t)pairs, NULL));
  if (outbound_of(e, stream_id) != NULL) return int_value(env, NGHTTP2_ERR_INVALID_STATE); // answered already
  if (nghttp2_session_find_stream(e->session, stream_id) == NULL) return int_value(env, NGHTTP2_ERR_STREAM_CLOSED);
  outbound_t *out = new_outbound(e, stream_id);
  if (out == NULL || queue_body(env, out, argv[3]) < 0) {
    if (out) free_outbound(e, out);
    return throw_error(env, "h2-engine: respond: body must be a Buffer (or undefined)");
  }
  out->ended = end_stream;
  nghttp2_data_provider provider = {.source = {.ptr = out}, .read_callback = read_body};
  int rv = nghttp2_submit_response(e->session, stream_id, nva, (size_t)pairs, &provider);
  if (rv != 0) {
    free_outbound(e, out);
    return int_value(env, rv);
  }
  nghttp2_session_set_stream_user_data(e->session, stream_id, out);
  return queued_value(env, out);
}

/** stream_call() for a stream whose response respond() left open; NULL as stream_call's false. */
static outbound_t *open_outbound(napi_env env, napi_callback_info info, size_t count, const char *usage, call_t *c, napi_value *result) {
  if (!stream_call(env, info, count, usage, c, result)) return NULL;
  outbound_t *out = outbound_of(c->e, c->stream_id);
  if (out != NULL && !out->ended) return out;
  *result = int_value(env, NGHTTP2_ERR_STREAM_CLOSED);
  return NULL;
}

/** Lets nghttp2 ask for `out`'s data again if it had found none. */
static int resume(engine_t *e, outbound_t *out) {
  if (!out->deferred) return 0;
  out->deferred = 0;
  return nghttp2_session_resume_data(e->session, out->stream_id);
}

/**
 * sendData(session, streamId, bytes, endStream) -> queued bytes | nghttp2 error (< 0): more body
 * for a stream that respond() left open (a copy is queued: `bytes` may be reused at once).
 * Returns the stream's bytes still queued after this; at SEND_HIGH_WATER or more the sender
 * should wait for EV_WRITABLE (nothing is refused: the sender is trusted to wait).
 */
static napi_value send_data(napi_env env, napi_callback_info info) {
  call_t c;
  napi_value failed;
  outbound_t *out = open_outbound(env, info, 4, "h2-engine: sendData(session, streamId, bytes, endStream)", &c, &failed);
  if (out == NULL) return failed;
  if (queue_body(env, out, c.argv[2]) < 0) return throw_error(env, "h2-engine: sendData: bytes must be a Buffer");
  out->ended = bool_arg(env, c.argv[3]);
  int rv = resume(c.e, out);
  return rv < 0 ? int_value(env, rv) : queued_value(env, out);
}

/** sendTrailers(session, streamId, trailers) -> 0 | nghttp2 error: ends the stream with trailers after its data. */
static napi_value send_trailers(napi_env env, napi_callback_info info) {
  call_t c;
  napi_value failed;
  outbound_t *out = open_outbound(env, info, 3, "h2-engine: sendTrailers(session, streamId, trailers)", &c, &failed);
  if (out == NULL) return failed;
  nghttp2_nv *nva;
  ssize_t pairs = read_fields(env, c.e, c.argv[2], &nva);
  if (pairs < 0) return pairs == FIELDS_INVALID ? int_value(env, NGHTTP2_ERR_INVALID_ARGUMENT) : NULL;
  out->trailers = copy_fields(nva, (size_t)pairs);
  if (out->trailers == NULL) return throw_error(env, "h2-engine: out of memory");
  out->trailer_count = (size_t)pairs;
  out->ended = 1;
  return int_value(env, resume(c.e, out));
}

/** informational(session, streamId, headers) -> 0 | nghttp2 error: a 1xx head ([':status', '100', ...]) before the response. */
static napi_value informational(napi_env env, napi_callback_info info) {
  call_t c;
  napi_value failed;
  if (!stream_call(env, info, 3, "h2-engine: informational(session, streamId, headers)", &c, &failed)) return failed;
  nghttp2_nv *nva;
  ssize_t pairs = read_fields(env, c.e, c.argv[2], &nva);
  if (pairs < 0) return pairs == FIELDS_INVALID ? int_value(env, NGHTTP2_ERR_INVALID_ARGUMENT) : NULL;
  return int_value(env, nghttp2_submit_headers(c.e->session, NGHTTP2_FLAG_NONE, c.stream_id, NULL, nva, (size_t)pairs, NULL));
}

/** reset(session, streamId, code) -> 0 | nghttp2 error: RST_STREAM. */
static napi_value reset(napi_env env, napi_callback_info info) {
  call_t c;
  napi_value failed;
  uint32_t code;
  if (!stream_number_call(env, info, "h2-engine: reset(session, streamId, code)", &c, &code, &failed)) return failed;
  return int_value(env, nghttp2_submit_rst_stream(c.e->session, NGHTTP2_FLAG_NONE, c.stream_id, code));
}

/**
 * goaway(session, code) -> 0 | nghttp2 error: GOAWAY naming the last stream processed; those keep
 * going, no new one is accepted, and the session finishes (pending() returns null) when they end.
 */
static napi_value goaway(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  engine_t *e;
  session_args(env, info, argv, 2, &e);
  if (e == NULL) return int_value(env, NGHTTP2_ERR_INVALID_STATE);
  uint32_t code = 0;
  napi_get_value_uint32(env, argv[1], &code);
  int32_t last = nghttp2_session_get_last_proc_stream_id(e->session);
  return int_value(env, nghttp2_submit_goaway(e->session, NGHTTP2_FLAG_NONE, last, code, NULL, 0));
}

// ---- client role -----------------------------------------------------------------------------
// An upstream connection: we open the streams (request() is the server's respond()), the peer
// answers with a head (after any 1xx heads), DATA and maybe trailers. Told apart by :status, not
// by nghttp2's header category (a final head after a 1xx one comes as NGHTTP2_HCAT_HEADERS):
// nghttp2's HTTP checks guarantee a response head has :status and trailers have none.

/** EV_HEADERS flags of a client's block: a head (maybe informational) or, without :status, trailers. */
static int client_block_flags(const engine_t *e) {
  if (e->status_class == 0) return HEADERS_TRAILERS;
  return e->status_class == '1' ? HEADERS_INFORMATIONAL : 0;
}

/** EV_SETTINGS with the peer's stream limit, now applied (nghttp2 holds requests beyond it). */
static int push_settings(engine_t *e) {
  uint32_t max = nghttp2_session_get_remote_settings(e->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return push3(e, EV_SETTINGS, 0, max > INT32_MAX ? INT32_MAX : (int32_t)max);
}

/** createClient(settings: number[]) -> session: a client session; the first pending() has the connection preface. */
static napi_value create_client(napi_env env, napi_callback_info info) {
  return create_session(env, info, 1);
}

/**
 * request(session, headers, body?, endStream) -> streamId | nghttp2 error (negative; INVALID_ARGUMENT: a
 * field HTTP/2 cannot carry): queues a
 * request head ([':method', 'GET', ':scheme', ..., name, value, ...]) and `body`; with endStream
 * false, more comes with sendData()/sendTrailers(). Beyond the peer's stream limit nghttp2 holds
 * the HEADERS until a stream closes. A request that cannot be sent (a GOAWAY came) closes with
 * REFUSED_STREAM: an EV_CLOSE that takeEvents() gives after pending().
 */
static napi_value request(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  engine_t *e;
  size_t argc = session_args(env, info, argv, 4, &e);
  if (e == NULL) return int_value(env, NGHTTP2_ERR_INVALID_STATE);
  if (argc < 4 || !e->client) return throw_error(env, "h2-engine: request(clientSession, headers, body, endStream)");
  bool end_stream = bool_arg(env, argv[3]);
  nghttp2_nv *nva;
  int has_body;
  ssize_t pairs = read_head(env, e, argv[1], argv[2], &nva, &has_body);
  if (pairs < 0) return pairs == FIELDS_INVALID ? int_value(env, NGHTTP2_ERR_INVALID_ARGUMENT) : NULL;
  if (!has_body && end_stream) return int_value(env, nghttp2_submit_request(e->session, NULL, nva, (size_t)pairs, NULL, NULL));
  outbound_t *out = new_outbound(e, 0);
  if (out == NULL || queue_body(env, out, argv[2]) < 0) {
    if (out) free_outbound(e, out);
    return throw_error(env, "h2-engine: request: body must be a Buffer (or undefined)");
  }
  out->ended = end_stream;
  nghttp2_data_provider provider = {.source = {.ptr = out}, .read_callback = read_body};
  int32_t stream_id = nghttp2_submit_request(e->session, NULL, nva, (size_t)pairs, &provider, out);
  if (stream_id < 0) free_outbound(e, out);
  else out->stream_id = stream_id;
  return int_value(env, stream_id);
}

// ---- end of the client role ------------------------------------------------------------------

/** Appends `length` bytes to the shared output, or keeps them for the next call when they do not fit. */
static int put_output(engine_t *e, const shared_t *shared, size_t *used, const uint8_t *data, size_t length) {
  if (*used + length <= shared->output_capacity) {
    memcpy(shared->output + *used, data, length);
    *used += length;
    return 1;
  }
  if (grow((void **)&e->out, &e->out_capacity, length, 1) < 0) return -1;
  memcpy(e->out, data, length);
  e->out_used = length;
  return 0;
}

/**
 * pending(session) -> number: frames queued so far, serialized into the shared output buffer, to
 * be written to the socket before the next call: their length; 0 when there is nothing (more) to
 * write; -1 when the session is over (it wants neither to read nor to write: GOAWAY done, or a
 * fatal error): close once what was returned before is written. Call it until it returns 0 or
 * -1: a call returns at most the shared buffer's size.
 */
static napi_value pending(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e;
  session_args(env, info, argv, 1, &e);
  shared_t *shared = shared_of(env);
  if (e == NULL || shared->output == NULL) return int_value(env, -1);
  size_t used = 0;
  if (e->out_used > 0) {
    size_t kept = e->out_used;
    e->out_used = 0;
    if (kept > shared->output_capacity) return throw_error(env, "h2-engine: a frame larger than the output buffer");
    put_output(e, shared, &used, e->out, kept);
  }
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(e->session, &data);
    if (n <= 0) {
      if (n < 0) e->fatal = 1;
      break;
    }
    int put = put_output(e, shared, &used, data, (size_t)n);
    if (put < 0) return throw_error(env, "h2-engine: out of memory");
    if (put == 0) break; // full: the rest on the next call
  }
  if (used == 0 && (e->fatal || (!nghttp2_session_want_read(e->session) && !nghttp2_session_want_write(e->session)))) return int_value(env, -1);
  return int_value(env, (int32_t)used);
}

/** counters(session, into: Float64Array): fills enum counter's numbers. */
static napi_value counters(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  engine_t *e;
  size_t argc = session_args(env, info, argv, 2, &e);
  if (e == NULL || argc < 2) return NULL;
  void *data;
  size_t length;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array) return NULL;
  memcpy(data, e->counters, (length < C_COUNT ? length : C_COUNT) * sizeof(double));
  return NULL;
}

/** destroy(session): frees the session now (the handle's finalizer would, later). */
static napi_value destroy(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  engine_t *e;
  session_args(env, info, argv, 1, &e);
  if (e != NULL) destroy_engine(e);
  return NULL;
}

static napi_value module_init(napi_env env, napi_value exports) {
  if ((callbacks == NULL && make_callbacks() != 0) || (options == NULL && make_options() != 0)) return throw_error(env, "h2-engine: out of memory");
  shared_t *shared = calloc(1, sizeof *shared);
  if (shared == NULL || napi_set_instance_data(env, shared, finalize_shared, NULL) != napi_ok) return throw_error(env, "h2-engine: out of memory");
  napi_property_descriptor methods[] = {
      {"init", NULL, init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createServer", NULL, create_server, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createClient", NULL, create_client, NULL, NULL, NULL, napi_enumerable, NULL},
      {"request", NULL, request, NULL, NULL, NULL, napi_enumerable, NULL},
      {"receive", NULL, receive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"takeEvents", NULL, take_events, NULL, NULL, NULL, napi_enumerable, NULL},
      {"consume", NULL, consume, NULL, NULL, NULL, napi_enumerable, NULL},
      {"informational", NULL, informational, NULL, NULL, NULL, napi_enumerable, NULL},
      {"respond", NULL, respond, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendData", NULL, send_data, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendTrailers", NULL, send_trailers, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reset", NULL, reset, NULL, NULL, NULL, napi_enumerable, NULL},
      {"goaway", NULL, goaway, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pending", NULL, pending, NULL, NULL, NULL, napi_enumerable, NULL},
      {"counters", NULL, counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"destroy", NULL, destroy, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
