/*
 * h1load: a small HTTP/1.1 load generator over mutual TLS, for gatehouse's benchmark (bench/).
 *
 * Why not ab: ab only speaks HTTP/1.0; HAProxy forwards a request's HTTP version unchanged, and
 * the benchmark's origin (uWebSockets.js) answers HTTP/1.0 with 505. h1load sends HTTP/1.1, so
 * every peer proxies the same request. Like ab it is one thread on epoll with non-blocking
 * OpenSSL, so it costs the load core about what ab does.
 *
 * Modes: keepalive (N connections, requests back to back), close (a new connection and a full
 * handshake per request), resume (a new connection per request, resuming the TLS session that
 * the slot's previous connection received), handshake (connect, full handshake, close: no
 * request, for connections per second through a TCP relay; s_time cannot send SNI).
 *
 * usage: h1load --port P --cert F --key F [--host 127.0.0.1] [--sni NAME] [--path /]
 *               [--connections 32] [--seconds 5] [--mode keepalive|close|resume|handshake]
 * prints one JSON line: requests (handshakes in handshake mode), errors, non2xx, connections,
 * resumed, seconds, bytes.
 * Only loopback addresses are accepted.
 *
 * build: gcc -O2 -o h1load h1load.c -lssl -lcrypto   (with load-common.h beside it)
 */
#define _GNU_SOURCE
#define LOAD_PROGRAM "h1load"
#include "load-common.h"
#include <openssl/err.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define HEAD_MAX 16384
#define STALL_SECONDS 10.0

enum mode { MODE_KEEPALIVE, MODE_CLOSE, MODE_RESUME, MODE_HANDSHAKE };
enum state { ST_CONNECTING, ST_HANDSHAKE, ST_WRITE, ST_HEAD, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_CRLF, ST_TRAILER, ST_TO_EOF };

struct conn {
  int fd;
  SSL *ssl;
  enum state state;
  SSL_SESSION *session; /* resume mode: what the slot's last connection received */
  char head[HEAD_MAX];
  size_t head_len;
  long long left; /* body or chunk bytes still to read */
  char line[64]; /* chunk-size or trailer line */
  size_t line_len;
  int status;
  int server_closes; /* the response said Connection: close */
  double last_progress;
};

static struct load_options opt = {"127.0.0.1", NULL, "/", NULL, NULL, 0, 32, 5};
static enum mode mode = MODE_KEEPALIVE;

static struct {
  unsigned long long requests, errors, non2xx, connections, resumed, bytes;
} stats;

static SSL_CTX *ctx;
static int ep;
static struct sockaddr_in target;
static char request[1024];
static int request_len;
static int measuring = 1;

static void watch(struct conn *c, unsigned events) {
  struct epoll_event ev = {.events = events, .data = {.ptr = c}};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl MOD");
}

static void open_conn(struct conn *c);

static void close_conn(struct conn *c) {
  if (c->ssl) {
    if (mode == MODE_RESUME && SSL_is_init_finished(c->ssl)) {
      SSL_SESSION *s = SSL_get1_session(c->ssl);
      if (s) {
        if (c->session) SSL_SESSION_free(c->session);
        c->session = s;
      }
    }
    /* Marked as cleanly shut down without sending close_notify (as s_time does), so that the
       session stays resumable and closing costs no extra write. */
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
  }
}

static void fail(struct conn *c) {
  if (measuring) stats.errors++;
  ERR_clear_error();
  close_conn(c);
  if (measuring) open_conn(c);
}

static void open_conn(struct conn *c) {
  c->state = ST_CONNECTING;
  c->last_progress = now();
  stats.connections++;
  if (!start_connect(ep, &target, c, &c->fd)) fail(c);
}

/* Waits for what OpenSSL asked for; false when the connection failed. */
static int want(struct conn *c, int ret) {
  switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ: watch(c, EPOLLIN); return 1;
    case SSL_ERROR_WANT_WRITE: watch(c, EPOLLOUT); return 1;
    default: fail(c); return 0;
  }
}

static void start_request(struct conn *c) {
  c->state = ST_WRITE;
  c->head_len = 0;
  c->line_len = 0;
  c->status = 0;
  c->server_closes = 0;
}

static void response_done(struct conn *c) {
  if (measuring) {
    stats.requests++;
    if (c->status < 200 || c->status > 299) stats.non2xx++;
  }
  if (mode == MODE_KEEPALIVE && !c->server_closes) {
    start_request(c);
    return;
  }
  close_conn(c);
  if (measuring) open_conn(c);
}

/* Parses the response head in c->head[0..end); returns the next state or -1. */
static int parse_head(struct conn *c, size_t end) {
  c->head[end - 1] = '\0';
  if (strncmp(c->head, "HTTP/1.", 7) != 0 || end < 12) return -1;
  c->status = atoi(c->head + 9);
  long long length = -1;
  int chunked = 0;
  for (char *line = strstr(c->head, "\r\n"); line && line[2] != '\r' && line[2] != '\0'; line = strstr(line + 2, "\r\n")) {
    char *h = line + 2;
    if (strncasecmp(h, "content-length:", 15) == 0) length = atoll(h + 15);
    else if (strncasecmp(h, "transfer-encoding:", 18) == 0 && strcasestr(h, "chunked") && strcasestr(h, "chunked") < strstr(h, "\r\n")) chunked = 1;
    else if (strncasecmp(h, "connection:", 11) == 0 && strcasestr(h, "close") && strcasestr(h, "close") < strstr(h, "\r\n")) c->server_closes = 1;
  }
  if (chunked) return ST_CHUNK_SIZE;
  if (length >= 0) {
    c->left = length;
    return ST_BODY;
  }
  c->server_closes = 1;
  return ST_TO_EOF;
}

/* Ends a response with `surplus` bytes after it; true when the same connection goes on. */
static int finish(struct conn *c, size_t surplus) {
  response_done(c);
  if (c->ssl == NULL) return 0; /* closed (and replaced by a new connection) */
  if (surplus > 0) { /* bytes nobody asked for: h1load does not pipeline */
    fail(c);
    return 0;
  }
  return 1;
}

/* Consumes up to c->left of the n bytes available; returns how many. */
static size_t skip(struct conn *c, size_t n) {
  size_t take = (long long)n < c->left ? n : (size_t)c->left;
  c->left -= (long long)take;
  return take;
}

/* Feeds received bytes through the response parser; false when the connection was replaced. */
static int consume(struct conn *c, const char *p, size_t n) {
  while (n > 0) {
    switch (c->state) {
      case ST_HEAD: {
        size_t take = n < HEAD_MAX - c->head_len ? n : HEAD_MAX - c->head_len;
        if (take == 0) { fail(c); return 0; }
        size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
        memcpy(c->head + c->head_len, p, take);
        c->head_len += take;
        char *end = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
        if (!end) { p += take; n -= take; break; }
        size_t head_end = (size_t)(end - c->head) + 4;
        size_t surplus = c->head_len - head_end; /* body bytes that came with the head */
        p += take - surplus;
        n -= take - surplus;
        int next = parse_head(c, head_end);
        if (next < 0) { fail(c); return 0; }
        c->state = (enum state)next;
        if (c->state == ST_BODY && c->left == 0) return finish(c, n);
        break;
      }
      case ST_BODY: {
        size_t take = skip(c, n);
        p += take;
        n -= take;
        if (c->left == 0) return finish(c, n);
        break;
      }
      case ST_CHUNK_SIZE:
      case ST_TRAILER: {
        char ch = *p++;
        n--;
        if (ch != '\n') {
          if (c->line_len + 1 >= sizeof c->line) { fail(c); return 0; }
          c->line[c->line_len++] = ch;
          break;
        }
        c->line[c->line_len] = '\0';
        int empty = c->line_len == 0 || (c->line_len == 1 && c->line[0] == '\r');
        c->line_len = 0;
        if (c->state == ST_TRAILER) {
          if (empty) return finish(c, n);
          break;
        }
        c->left = strtoll(c->line, NULL, 16);
        c->state = c->left == 0 ? ST_TRAILER : ST_CHUNK_DATA;
        break;
      }
      case ST_CHUNK_DATA: {
        size_t take = skip(c, n);
        p += take;
        n -= take;
        if (c->left == 0) { c->state = ST_CHUNK_CRLF; c->left = 2; }
        break;
      }
      case ST_CHUNK_CRLF: {
        p++;
        n--;
        if (--c->left == 0) c->state = ST_CHUNK_SIZE;
        break;
      }
      case ST_TO_EOF:
        return 1;
      default:
        fail(c);
        return 0;
    }
  }
  return 1;
}

/* Advances one connection as far as it can go without blocking. */
static void drive(struct conn *c) {
  static char buf[65536];
  /* Every path that closes or replaces the connection returns; the bound only guards against a
     peer that never lets a read block. */
  for (int rounds = 0; rounds < 256; rounds++) {
    switch (c->state) {
      case ST_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) { fail(c); return; }
        c->ssl = SSL_new(ctx);
        if (!c->ssl) die("SSL_new");
        SSL_set_fd(c->ssl, c->fd);
        if (opt.sni) SSL_set_tlsext_host_name(c->ssl, opt.sni);
        if (mode == MODE_RESUME && c->session) SSL_set_session(c->ssl, c->session);
        c->state = ST_HANDSHAKE;
        break;
      }
      case ST_HANDSHAKE: {
        int ret = SSL_connect(c->ssl);
        if (ret != 1) { want(c, ret); return; }
        if (SSL_session_reused(c->ssl) && measuring) stats.resumed++;
        c->last_progress = now();
        if (mode == MODE_HANDSHAKE) {
          if (measuring) stats.requests++;
          close_conn(c);
          if (measuring) open_conn(c);
          return;
        }
        start_request(c);
        break;
      }
      case ST_WRITE: {
        int ret = SSL_write(c->ssl, request, request_len);
        if (ret <= 0) { want(c, ret); return; }
        c->state = ST_HEAD;
        break;
      }
      default: {
        int ret = SSL_read(c->ssl, buf, sizeof buf);
        if (ret <= 0) {
          int e = SSL_get_error(c->ssl, ret);
          if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            /* the server closed: the end of a body without length, otherwise a failure */
            if (c->state == ST_TO_EOF) response_done(c);
            else fail(c);
            return;
          }
          want(c, ret);
          return;
        }
        c->last_progress = now();
        if (measuring) stats.bytes += (unsigned long long)ret;
        if (!consume(c, buf, (size_t)ret)) return;
        break;
      }
    }
  }
  watch(c, EPOLLIN | EPOLLOUT); /* bound reached: come back on the next loop */
}

static void usage(void) {
  fprintf(stderr, "usage: h1load --port P --cert F --key F [--host 127.0.0.1] [--sni NAME] [--path /] [--connections 32] [--seconds 5] [--mode keepalive|close|resume|handshake]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (shared_option(&opt, a, v)) continue;
    if (strcmp(a, "--mode") != 0) usage();
    if (!strcmp(v, "keepalive")) mode = MODE_KEEPALIVE;
    else if (!strcmp(v, "close")) mode = MODE_CLOSE;
    else if (!strcmp(v, "resume")) mode = MODE_RESUME;
    else if (!strcmp(v, "handshake")) mode = MODE_HANDSHAKE;
    else usage();
  }
  if (!check_options(&opt, MAX_CONNECTIONS, &target)) usage();
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  request_len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: h1load\r\n%s\r\n", opt.path,
                         opt.sni ? opt.sni : opt.host, opt.port, mode == MODE_KEEPALIVE ? "" : "Connection: close\r\n");
  if (request_len <= 0 || request_len >= (int)sizeof request) die("request too long");

  ctx = client_context(opt.cert, opt.key, "\x08http/1.1", 9);

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  static struct conn conns[MAX_CONNECTIONS];
  for (int i = 0; i < opt.connections; i++) {
    conns[i].fd = -1;
    open_conn(&conns[i]);
  }

  double start = now(), deadline = start + opt.seconds, next_stall_check = start + 1;
  struct epoll_event events[256];
  for (;;) {
    double t = now();
    if (t >= deadline) break;
    int ms = (int)((deadline - t) * 1000) + 1;
    int n = epoll_wait(ep, events, 256, ms < 100 ? ms : 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) drive((struct conn *)events[i].data.ptr);
    if (t >= next_stall_check) { /* a connection that makes no progress is replaced, and counted */
      next_stall_check = t + 1;
      for (int i = 0; i < opt.connections; i++)
        if (t - conns[i].last_progress > STALL_SECONDS) fail(&conns[i]);
    }
    if (stats.requests == 0 && stats.errors > 10000) break; /* nothing works: stop early */
  }
  double elapsed = now() - start;
  measuring = 0;
  for (int i = 0; i < opt.connections; i++) {
    close_conn(&conns[i]);
    if (conns[i].session) SSL_SESSION_free(conns[i].session);
  }
  printf("{\"requests\":%llu,\"errors\":%llu,\"non2xx\":%llu,\"connections\":%llu,\"resumed\":%llu,\"seconds\":%.4f,\"bytes\":%llu}\n", stats.requests, stats.errors,
         stats.non2xx, stats.connections, stats.resumed, elapsed, stats.bytes);
  SSL_CTX_free(ctx);
  return 0;
}
