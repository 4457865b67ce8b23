// The part of nghttp2's C API the HTTP/2 engine calls, declared here so that building gatehouse
// needs no nghttp2 development package: the functions themselves are Node's own copy of nghttp2,
// which the node binary exports (h2-engine.c). These are declarations of a public, stable ABI
// (nghttp2 keeps it across versions), written from its API reference: opaque handles, the
// structs the engine reads or fills, the callback signatures, the constants it names.
// test/nghttp2-api.test.ts compiles the same list of sizes, offsets and values against this file
// and against nghttp2's own header where one is installed, and fails on any difference.
#ifndef GATEHOUSE_NGHTTP2_API_H
#define GATEHOUSE_NGHTTP2_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Skipped when nghttp2's own header came first (test/nghttp2-api.test.ts compares the two). */
#ifndef NGHTTP2_H

typedef struct nghttp2_session nghttp2_session;
typedef struct nghttp2_session_callbacks nghttp2_session_callbacks;
typedef struct nghttp2_option nghttp2_option;
typedef struct nghttp2_stream nghttp2_stream;

/* One header field. */
typedef struct {
  uint8_t *name;
  uint8_t *value;
  size_t namelen;
  size_t valuelen;
  uint8_t flags;
} nghttp2_nv;

#define NGHTTP2_NV_FLAG_NONE 0

/* Frames as nghttp2 hands them to callbacks: a common head, then each type's own fields. */
typedef struct {
  size_t length;
  int32_t stream_id;
  uint8_t type;
  uint8_t flags;
  uint8_t reserved;
} nghttp2_frame_hd;

typedef enum {
  NGHTTP2_DATA = 0,
  NGHTTP2_HEADERS = 1,
  NGHTTP2_PRIORITY = 2,
  NGHTTP2_RST_STREAM = 3,
  NGHTTP2_SETTINGS = 4,
  NGHTTP2_PUSH_PROMISE = 5,
  NGHTTP2_PING = 6,
  NGHTTP2_GOAWAY = 7,
  NGHTTP2_WINDOW_UPDATE = 8,
  NGHTTP2_CONTINUATION = 9,
} nghttp2_frame_type;

#define NGHTTP2_FLAG_NONE 0
#define NGHTTP2_FLAG_END_STREAM 0x01
#define NGHTTP2_FLAG_ACK 0x01

/* What a HEADERS frame opens: a request, a response, a pushed response, or other headers (trailers, 1xx). */
typedef enum {
  NGHTTP2_HCAT_REQUEST = 0,
  NGHTTP2_HCAT_RESPONSE = 1,
  NGHTTP2_HCAT_PUSH_RESPONSE = 2,
  NGHTTP2_HCAT_HEADERS = 3,
} nghttp2_headers_category;

typedef struct {
  int32_t stream_id;
  int32_t weight;
  uint8_t exclusive;
} nghttp2_priority_spec;

typedef struct {
  nghttp2_frame_hd hd;
  size_t padlen;
  nghttp2_priority_spec pri_spec;
  nghttp2_nv *nva;
  size_t nvlen;
  nghttp2_headers_category cat;
} nghttp2_headers;

typedef struct {
  nghttp2_frame_hd hd;
  uint32_t error_code;
} nghttp2_rst_stream;

typedef struct {
  int32_t settings_id;
  uint32_t value;
} nghttp2_settings_entry;

typedef enum {
  NGHTTP2_SETTINGS_HEADER_TABLE_SIZE = 0x01,
  NGHTTP2_SETTINGS_ENABLE_PUSH = 0x02,
  NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS = 0x03,
  NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE = 0x04,
  NGHTTP2_SETTINGS_MAX_FRAME_SIZE = 0x05,
  NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE = 0x06,
} nghttp2_settings_id;

typedef struct {
  nghttp2_frame_hd hd;
  size_t niv;
  nghttp2_settings_entry *iv;
} nghttp2_settings;

typedef struct {
  nghttp2_frame_hd hd;
  uint8_t opaque_data[8];
} nghttp2_ping;

typedef struct {
  nghttp2_frame_hd hd;
  int32_t last_stream_id;
  uint32_t error_code;
  uint8_t *opaque_data;
  size_t opaque_data_len;
  uint8_t reserved;
} nghttp2_goaway;

/* Only the members the engine reads: every frame begins with hd. */
typedef union {
  nghttp2_frame_hd hd;
  nghttp2_headers headers;
  nghttp2_rst_stream rst_stream;
  nghttp2_settings settings;
  nghttp2_ping ping;
  nghttp2_goaway goaway;
} nghttp2_frame;

/* Where a DATA frame's payload comes from (the engine's per-stream queue). */
typedef union {
  int fd;
  void *ptr;
} nghttp2_data_source;

#define NGHTTP2_DATA_FLAG_NONE 0
#define NGHTTP2_DATA_FLAG_EOF 0x01
#define NGHTTP2_DATA_FLAG_NO_END_STREAM 0x02

typedef ssize_t (*nghttp2_data_source_read_callback)(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
                                                     nghttp2_data_source *source, void *user_data);

typedef struct {
  nghttp2_data_source source;
  nghttp2_data_source_read_callback read_callback;
} nghttp2_data_provider;

/* HTTP/2 error codes (RFC 9113 7) the engine sends. */
typedef enum {
  NGHTTP2_NO_ERROR = 0x00,
  NGHTTP2_PROTOCOL_ERROR = 0x01,
  NGHTTP2_INTERNAL_ERROR = 0x02,
  NGHTTP2_FLOW_CONTROL_ERROR = 0x03,
  NGHTTP2_REFUSED_STREAM = 0x07,
  NGHTTP2_CANCEL = 0x08,
  NGHTTP2_ENHANCE_YOUR_CALM = 0x0b,
} nghttp2_error_code;

/* Library error codes the engine names (negative). */
#define NGHTTP2_ERR_INVALID_ARGUMENT (-501)
#define NGHTTP2_ERR_PROTO (-505)
#define NGHTTP2_ERR_DEFERRED (-508)
#define NGHTTP2_ERR_STREAM_CLOSED (-510)
#define NGHTTP2_ERR_INVALID_STATE (-519)
#define NGHTTP2_ERR_CALLBACK_FAILURE (-902)

/* Callbacks. */
typedef int (*nghttp2_on_frame_recv_callback)(nghttp2_session *session, const nghttp2_frame *frame, void *user_data);
typedef int (*nghttp2_on_invalid_frame_recv_callback)(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code, void *user_data);
typedef int (*nghttp2_on_data_chunk_recv_callback)(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *user_data);
typedef int (*nghttp2_on_stream_close_callback)(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data);
typedef int (*nghttp2_on_begin_headers_callback)(nghttp2_session *session, const nghttp2_frame *frame, void *user_data);
typedef int (*nghttp2_on_header_callback)(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen, const uint8_t *value,
                                          size_t valuelen, uint8_t flags, void *user_data);

#endif /* NGHTTP2_H */

/* Functions. */

int nghttp2_session_callbacks_new(nghttp2_session_callbacks **callbacks_ptr);
void nghttp2_session_callbacks_del(nghttp2_session_callbacks *callbacks);
void nghttp2_session_callbacks_set_on_frame_recv_callback(nghttp2_session_callbacks *cbs, nghttp2_on_frame_recv_callback cb);
void nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(nghttp2_session_callbacks *cbs, nghttp2_on_invalid_frame_recv_callback cb);
void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(nghttp2_session_callbacks *cbs, nghttp2_on_data_chunk_recv_callback cb);
void nghttp2_session_callbacks_set_on_stream_close_callback(nghttp2_session_callbacks *cbs, nghttp2_on_stream_close_callback cb);
void nghttp2_session_callbacks_set_on_begin_headers_callback(nghttp2_session_callbacks *cbs, nghttp2_on_begin_headers_callback cb);
void nghttp2_session_callbacks_set_on_header_callback(nghttp2_session_callbacks *cbs, nghttp2_on_header_callback cb);

/* Options. */
int nghttp2_option_new(nghttp2_option **option_ptr);
void nghttp2_option_del(nghttp2_option *option);
void nghttp2_option_set_no_auto_window_update(nghttp2_option *option, int val);
void nghttp2_option_set_max_outbound_ack(nghttp2_option *option, size_t val);
void nghttp2_option_set_max_settings(nghttp2_option *option, size_t val);
/* Newer than some installed headers (1.57, 1.61): Node's copy has them. */
void nghttp2_option_set_stream_reset_rate_limit(nghttp2_option *option, uint64_t burst, uint64_t rate);
void nghttp2_option_set_max_continuations(nghttp2_option *option, size_t val);

/* Sessions. */
int nghttp2_session_server_new2(nghttp2_session **session_ptr, const nghttp2_session_callbacks *callbacks, void *user_data, const nghttp2_option *option);
int nghttp2_session_client_new2(nghttp2_session **session_ptr, const nghttp2_session_callbacks *callbacks, void *user_data, const nghttp2_option *option);
void nghttp2_session_del(nghttp2_session *session);
ssize_t nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen);
ssize_t nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr);
int nghttp2_session_want_read(nghttp2_session *session);
int nghttp2_session_want_write(nghttp2_session *session);
int nghttp2_session_resume_data(nghttp2_session *session, int32_t stream_id);
int nghttp2_session_consume_connection(nghttp2_session *session, size_t size);
int nghttp2_session_consume_stream(nghttp2_session *session, int32_t stream_id, size_t size);
void *nghttp2_session_get_stream_user_data(nghttp2_session *session, int32_t stream_id);
int nghttp2_session_set_stream_user_data(nghttp2_session *session, int32_t stream_id, void *stream_user_data);
nghttp2_stream *nghttp2_session_find_stream(nghttp2_session *session, int32_t stream_id);
int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *session);
uint32_t nghttp2_session_get_remote_settings(nghttp2_session *session, nghttp2_settings_id id);

/* Frames to send. */
int nghttp2_submit_settings(nghttp2_session *session, uint8_t flags, const nghttp2_settings_entry *iv, size_t niv);
int nghttp2_submit_response(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen, const nghttp2_data_provider *data_prd);
int32_t nghttp2_submit_request(nghttp2_session *session, const nghttp2_priority_spec *pri_spec, const nghttp2_nv *nva, size_t nvlen,
                               const nghttp2_data_provider *data_prd, void *stream_user_data);
int32_t nghttp2_submit_headers(nghttp2_session *session, uint8_t flags, int32_t stream_id, const nghttp2_priority_spec *pri_spec, const nghttp2_nv *nva,
                               size_t nvlen, void *stream_user_data);
int nghttp2_submit_trailer(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen);
int nghttp2_submit_rst_stream(nghttp2_session *session, uint8_t flags, int32_t stream_id, uint32_t error_code);
int nghttp2_submit_goaway(nghttp2_session *session, uint8_t flags, int32_t last_stream_id, uint32_t error_code, const uint8_t *opaque_data,
                          size_t opaque_data_len);

const char *nghttp2_strerror(int lib_error_code);
int nghttp2_is_fatal(int lib_error_code);
int nghttp2_check_header_name(const uint8_t *name, size_t len);
int nghttp2_check_header_value(const uint8_t *value, size_t len);

#endif
