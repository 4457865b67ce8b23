/*
 * h2load: a small HTTP/2 load generator over mutual TLS, for gatehouse's benchmark (bench/).
 * (Not nghttp2's tool of the same name, which cannot present a client certificate.)
 *
 * Like h1load.c: one thread on epoll with non-blocking OpenSSL, so it costs the load core about
 * what h1load does per request, with nghttp2 (libnghttp2, Debian's package) for the framing.
 * Every connection presents the client certificate, sends SNI and offers ALPN h2 only; a server
 * that picks anything else is counted (no_h2) and the connection replaced.
 *
 * C connections, each with S streams in flight: a stream that ends is replaced by a new request
 * on the same connection at once. Runs for --seconds, or until --requests have ended (with
 * --seconds as the bound then).
 * Modes:
 *   get   GET --path (default /); OK when the status is 2xx.
 *   grpc  gRPC unary: POST --path (default /grpc.health.v1.Health/Check), content-type
 *         application/grpc, te: trailers, one length-prefixed message (a HealthCheckRequest for
 *         service "bench", 12 bytes); OK only when the answer is 200, application/grpc, carries
 *         exactly one complete uncompressed message and ends with trailers holding grpc-status: 0.
 *
 * usage: h2load --port P --cert F --key F [--host 127.0.0.1] [--sni NAME] [--authority A]
 *               [--path P] [--mode get|grpc] [--connections 8] [--streams 16] [--seconds 5]
 *               [--requests N]
 *        h2load --version
 * prints one JSON line: requests (OK), errors (streams reset, connections lost with their streams
 * in flight, failed connections), non_ok (answers that ended but were not OK), no_trailers (of
 * those, gRPC answers without a trailer block), resets, goaways, no_h2, connections, seconds,
 * cpu_seconds (its own user+system time), bytes (DATA payload received).
 * Only loopback addresses are accepted.
 *
 * build: gcc -O2 -o h2load h2load.c -lnghttp2 -lssl -lcrypto   (with load-common.h beside it)
 */
#define _GNU_SOURCE
#define LOAD_PROGRAM "h2load"
#include "load-common.h"
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define MAX_STREAMS 1024
#define OUT_CAP 65536
#define STALL_SECONDS 10.0
#define ROUNDS 64 /* reads or writes per wake-up, so that one busy connection cannot starve the rest */

enum mode { MODE_GET, MODE_GRPC };
enum state { ST_CONNECTING, ST_HANDSHAKE, ST_H2 };

struct conn;

struct stream {
  struct conn *conn;
  int status;
  int grpc_status; /* -1 until a grpc-status header arrives */
  int grpc_content; /* the answer's content-type is application/grpc* */
  int trailers; /* a header block after the response head arrived */
  unsigned char prefix[5]; /* the gRPC message's flag and length */
  size_t data_len;
  size_t body_sent;
};

struct conn {
  int fd;
  SSL *ssl;
  nghttp2_session *h2;
  enum state state;
  unsigned events; /* the epoll interest currently set */
  int goaway; /* the server said GOAWAY: no new streams here */
  int ready; /* on the ready list: OpenSSL may hold bytes that epoll cannot announce */
  int inflight;
  struct stream *streams; /* --streams slots */
  int *free_slots;
  int free_count;
  size_t out_off, out_len;
  double last_progress;
  unsigned char out[OUT_CAP]; /* frames nghttp2 produced, not yet taken by SSL_write */
};

static struct load_options opt = {"127.0.0.1", NULL, NULL, NULL, NULL, 0, 8, 5};
static struct {
  const char *authority;
  int streams;
  unsigned long long requests;
  enum mode mode;
} h2opt = {NULL, 16, 0, MODE_GET};

static struct {
  unsigned long long requests, errors, non_ok, no_trailers, resets, goaways, no_h2, connections, bytes;
  unsigned long long submitted, ended; /* for --requests */
} stats;

/* HealthCheckRequest{service: "bench"} behind gRPC's 5-byte prefix (uncompressed, length 7). */
static const unsigned char GRPC_BODY[] = {0, 0, 0, 0, 7, 0x0a, 5, 'b', 'e', 'n', 'c', 'h'};

static SSL_CTX *ctx;
static int ep;
static struct sockaddr_in target;
static nghttp2_session_callbacks *callbacks;
static nghttp2_nv request_headers[8];
static size_t request_header_count;
static char authority[300];
static int measuring = 1;
/* Connections that stopped reading at the ROUNDS bound: with read-ahead, what OpenSSL has already
   read from the socket would not wake epoll again, so they are driven on the next loop. */
static struct conn **ready;
static int ready_count;

/* Sets the epoll interest, with a system call only when it changes. */
static void watch(struct conn *c, unsigned events) {
  if (c->events == events) return;
  struct epoll_event ev = {.events = events, .data = {.ptr = c}};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl MOD");
  c->events = events;
}

static void open_conn(struct conn *c);

static void close_conn(struct conn *c) {
  if (c->h2) {
    nghttp2_session_del(c->h2); /* calls no callback: the streams it held are counted by end_conn */
    c->h2 = NULL;
  }
  if (c->ssl) {
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); /* no close_notify: as h1load */
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
  }
  c->inflight = 0;
  c->goaway = 0;
  c->free_count = h2opt.streams;
  for (int i = 0; i < h2opt.streams; i++) c->free_slots[i] = i;
}

/* Ends a connection and, while measuring, opens its replacement. Streams still in flight count as
   errors, and so does the connection itself when it failed. */
static void end_conn(struct conn *c, int failed) {
  if (measuring) {
    stats.errors += (unsigned long long)c->inflight + (failed ? 1 : 0);
    stats.ended += (unsigned long long)c->inflight;
  }
  ERR_clear_error();
  close_conn(c);
  if (measuring) open_conn(c);
}

static void open_conn(struct conn *c) {
  c->state = ST_CONNECTING;
  c->last_progress = now();
  c->events = EPOLLOUT;
  stats.connections++;
  if (!start_connect(ep, &target, c, &c->fd)) end_conn(c, 1);
}

/* ---- nghttp2 callbacks (user_data is the connection) ---- */

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user_data) {
  (void)s;
  (void)flags;
  struct conn *c = user_data;
  size_t room = OUT_CAP - c->out_len;
  if (room == 0) return NGHTTP2_ERR_WOULDBLOCK;
  size_t n = len < room ? len : room;
  memcpy(c->out + c->out_len, data, n);
  c->out_len += n;
  return (ssize_t)n;
}

static int name_is(const uint8_t *name, size_t len, const char *want) {
  size_t n = strlen(want);
  return len == n && memcmp(name, want, n) == 0;
}

static int small_int(const uint8_t *v, size_t len) {
  int x = 0;
  if (len == 0 || len > 6) return -2;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return -2;
    x = x * 10 + (v[i] - '0');
  }
  return x;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen,
                     uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  struct stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
  if (!st) return 0;
  /* A header block after the response head is the trailers. */
  if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) st->trailers = 1;
  if (name_is(name, namelen, ":status")) st->status = small_int(value, valuelen);
  else if (name_is(name, namelen, "grpc-status")) st->grpc_status = small_int(value, valuelen);
  else if (name_is(name, namelen, "content-type"))
    st->grpc_content = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 && (valuelen == 16 || value[16] == '+' || value[16] == ';');
  return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *user_data) {
  (void)flags;
  (void)user_data;
  struct stream *st = nghttp2_session_get_stream_user_data(s, stream_id);
  if (!st) return 0;
  if (measuring) stats.bytes += len;
  for (size_t i = 0; i < len && st->data_len + i < sizeof st->prefix; i++) st->prefix[st->data_len + i] = data[i];
  st->data_len += len;
  return 0;
}

static int answer_ok(const struct stream *st) {
  if (h2opt.mode == MODE_GET) return st->status >= 200 && st->status <= 299;
  if (st->status != 200 || !st->grpc_content || !st->trailers || st->grpc_status != 0) return 0;
  if (st->data_len < sizeof st->prefix || st->prefix[0] != 0) return 0;
  size_t length = ((size_t)st->prefix[1] << 24) | ((size_t)st->prefix[2] << 16) | ((size_t)st->prefix[3] << 8) | st->prefix[4];
  return st->data_len == sizeof st->prefix + length;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user_data) {
  struct conn *c = user_data;
  struct stream *st = nghttp2_session_get_stream_user_data(s, stream_id);
  if (!st) return 0;
  if (measuring) {
    stats.ended++;
    if (error_code != NGHTTP2_NO_ERROR) {
      stats.errors++;
      stats.resets++;
    } else if (answer_ok(st)) {
      stats.requests++;
    } else {
      stats.non_ok++;
      if (h2opt.mode == MODE_GRPC && !st->trailers) stats.no_trailers++;
    }
  }
  c->free_slots[c->free_count++] = (int)(st - c->streams);
  c->inflight--;
  c->last_progress = now();
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  (void)s;
  struct conn *c = user_data;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    c->goaway = 1;
    if (measuring) stats.goaways++;
  }
  return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                         void *user_data) {
  (void)s;
  (void)stream_id;
  (void)user_data;
  struct stream *st = source->ptr;
  size_t left = sizeof GRPC_BODY - st->body_sent;
  size_t n = left < length ? left : length;
  memcpy(buf, GRPC_BODY + st->body_sent, n);
  st->body_sent += n;
  if (st->body_sent == sizeof GRPC_BODY) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/* ---- connections ---- */

/* Opens new streams until S are in flight (or --requests have been sent); false when it failed. */
static int top_up(struct conn *c) {
  while (measuring && !c->goaway && c->free_count > 0 && (h2opt.requests == 0 || stats.submitted < h2opt.requests)) {
    int slot = c->free_slots[--c->free_count];
    struct stream *st = &c->streams[slot];
    memset(st, 0, sizeof *st);
    st->conn = c;
    st->grpc_status = -1;
    nghttp2_data_provider body = {.source = {.ptr = st}, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->h2, NULL, request_headers, request_header_count, h2opt.mode == MODE_GRPC ? &body : NULL, st);
    if (id < 0) {
      c->free_slots[c->free_count++] = slot;
      if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) { /* this connection has used every stream id */
        c->goaway = 1;
        return 1;
      }
      return 0;
    }
    c->inflight++;
    stats.submitted++;
  }
  return 1;
}

static int start_session(struct conn *c) {
  if (nghttp2_session_client_new(&c->h2, callbacks, c) != 0) return 0;
  /* Windows large enough that 1 KB answers never wait for WINDOW_UPDATE, and no server push. */
  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}, {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
  if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, 2) != 0) return 0;
  if (nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 1 << 30) != 0) return 0;
  return 1;
}

/* Reads what arrived, opens new streams, writes what nghttp2 has to send; sets the interest. */
static void pump(struct conn *c) {
  static unsigned char buf[65536];
  int blocked = 0; /* OpenSSL must write before it can go on */
  for (int rounds = 0;; rounds++) {
    if (rounds == ROUNDS) {
      if (!c->ready) {
        c->ready = 1;
        ready[ready_count++] = c;
      }
      break;
    }
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_READ) break;
      if (e == SSL_ERROR_WANT_WRITE) { blocked = 1; break; }
      /* the server closed: after its GOAWAY with nothing in flight that is the normal end */
      end_conn(c, !(c->goaway && c->inflight == 0));
      return;
    }
    c->last_progress = now();
    if (nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0) { end_conn(c, 1); return; }
  }
  if (!top_up(c)) { end_conn(c, 1); return; }
  for (int rounds = 0; rounds < ROUNDS; rounds++) {
    if (c->out_off == c->out_len) {
      c->out_off = c->out_len = 0;
      if (nghttp2_session_send(c->h2) != 0) { end_conn(c, 1); return; }
      if (c->out_len == 0) break;
    }
    int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_WRITE) { blocked = 1; break; }
      if (e == SSL_ERROR_WANT_READ) break;
      end_conn(c, 1);
      return;
    }
    c->out_off += (size_t)n;
  }
  if (c->out_off < c->out_len) blocked = 1;
  int done = !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) && c->out_off == c->out_len;
  if (done || (c->goaway && c->inflight == 0)) { /* the session is over (GOAWAY): a new connection */
    end_conn(c, 0);
    return;
  }
  watch(c, EPOLLIN | (blocked ? EPOLLOUT : 0));
}

/* Advances one connection as far as it can go without blocking. */
static void drive(struct conn *c) {
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) { end_conn(c, 1); return; }
    c->ssl = SSL_new(ctx);
    if (!c->ssl) die("SSL_new");
    SSL_set_fd(c->ssl, c->fd);
    if (opt.sni) SSL_set_tlsext_host_name(c->ssl, opt.sni);
    c->state = ST_HANDSHAKE;
  }
  if (c->state == ST_HANDSHAKE) {
    int ret = SSL_connect(c->ssl);
    if (ret != 1) {
      int e = SSL_get_error(c->ssl, ret);
      if (e == SSL_ERROR_WANT_READ) watch(c, EPOLLIN);
      else if (e == SSL_ERROR_WANT_WRITE) watch(c, EPOLLOUT);
      else end_conn(c, 1);
      return;
    }
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
      if (measuring) stats.no_h2++;
      end_conn(c, 1);
      return;
    }
    if (!start_session(c)) die("cannot start an nghttp2 session");
    c->last_progress = now();
    c->state = ST_H2;
  }
  pump(c);
}

static void usage(void) {
  fprintf(stderr,
          "usage: h2load --port P --cert F --key F [--host 127.0.0.1] [--sni NAME] [--authority A] [--path P] [--mode get|grpc] [--connections 8] "
          "[--streams 16] [--seconds 5] [--requests N]\n       h2load --version\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--version")) {
    printf("h2load (gatehouse bench) nghttp2 %s, %s\n", nghttp2_version(0)->version_str, OpenSSL_version(OPENSSL_VERSION));
    exit(0);
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (shared_option(&opt, a, v)) continue;
    if (!strcmp(a, "--authority")) h2opt.authority = v;
    else if (!strcmp(a, "--streams")) h2opt.streams = atoi(v);
    else if (!strcmp(a, "--requests")) h2opt.requests = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--mode")) {
      if (!strcmp(v, "get")) h2opt.mode = MODE_GET;
      else if (!strcmp(v, "grpc")) h2opt.mode = MODE_GRPC;
      else usage();
    } else usage();
  }
  if (!check_options(&opt, MAX_CONNECTIONS, &target)) usage();
  if (h2opt.streams < 1 || h2opt.streams > MAX_STREAMS) die("--streams must be 1..1024");
  if (h2opt.requests > 1000000000ULL) die("--requests must be at most 1e9");
  if (!opt.path) opt.path = h2opt.mode == MODE_GRPC ? "/grpc.health.v1.Health/Check" : "/";
  if (h2opt.authority) snprintf(authority, sizeof authority, "%s", h2opt.authority);
  else snprintf(authority, sizeof authority, "%s:%d", opt.sni ? opt.sni : opt.host, opt.port);
}

static void add_header(const char *name, const char *value) {
  nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
  request_headers[request_header_count++] = nv;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);

  /* The request head, built once: every stream sends the same one. */
  add_header(":method", h2opt.mode == MODE_GRPC ? "POST" : "GET");
  add_header(":scheme", "https");
  add_header(":authority", authority);
  add_header(":path", opt.path);
  if (h2opt.mode == MODE_GRPC) {
    add_header("content-type", "application/grpc");
    add_header("te", "trailers");
  }
  add_header("user-agent", "h2load");

  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_send_callback(callbacks, on_send);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);

  ctx = client_context(opt.cert, opt.key, "\x02h2", 3);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); /* HTTP/2 needs TLS 1.2 or later */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* Whole socket buffers per read() instead of a record header and its body in two. */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 65536);

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct conn *conns = calloc((size_t)opt.connections, sizeof *conns);
  ready = calloc((size_t)opt.connections, sizeof *ready);
  struct conn **again = calloc((size_t)opt.connections, sizeof *again);
  if (!conns || !ready || !again) die("out of memory");
  for (int i = 0; i < opt.connections; i++) {
    conns[i].fd = -1;
    conns[i].streams = calloc((size_t)h2opt.streams, sizeof *conns[i].streams);
    conns[i].free_slots = calloc((size_t)h2opt.streams, sizeof *conns[i].free_slots);
    if (!conns[i].streams || !conns[i].free_slots) die("out of memory");
    close_conn(&conns[i]); /* fills the free slots */
    open_conn(&conns[i]);
  }

  double start = now(), deadline = start + opt.seconds, next_stall_check = start + 1;
  struct epoll_event events[256];
  for (;;) {
    double t = now();
    if (t >= deadline) break;
    if (h2opt.requests && stats.ended >= h2opt.requests) break;
    int ms = (int)((deadline - t) * 1000) + 1;
    int n = epoll_wait(ep, events, 256, ready_count ? 0 : ms < 100 ? ms : 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int again_count = ready_count;
    memcpy(again, ready, (size_t)ready_count * sizeof *ready);
    ready_count = 0;
    for (int i = 0; i < again_count; i++) {
      again[i]->ready = 0;
      if (again[i]->state == ST_H2) pump(again[i]);
    }
    for (int i = 0; i < n; i++) drive((struct conn *)events[i].data.ptr);
    if (t >= next_stall_check) { /* a connection that makes no progress is replaced, and counted */
      next_stall_check = t + 1;
      for (int i = 0; i < opt.connections; i++)
        if ((conns[i].state != ST_H2 || conns[i].inflight > 0) && t - conns[i].last_progress > STALL_SECONDS) end_conn(&conns[i], 1);
    }
    if (stats.requests == 0 && stats.errors > 10000) break; /* nothing works: stop early */
  }
  double elapsed = now() - start;
  measuring = 0;
  for (int i = 0; i < opt.connections; i++) close_conn(&conns[i]);
  printf("{\"requests\":%llu,\"errors\":%llu,\"non_ok\":%llu,\"no_trailers\":%llu,\"resets\":%llu,\"goaways\":%llu,\"no_h2\":%llu,\"connections\":%llu,"
         "\"seconds\":%.4f,\"cpu_seconds\":%.4f,\"bytes\":%llu}\n",
         stats.requests, stats.errors, stats.non_ok, stats.no_trailers, stats.resets, stats.goaways, stats.no_h2, stats.connections, elapsed,
         cpu_seconds(), stats.bytes);
  return 0;
}
