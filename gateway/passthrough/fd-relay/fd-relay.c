// The passthrough relay's byte pump, in C on Node's own event loop: it connects to the backend
// endpoint TypeScript picks, and once connected, the two sockets' bytes move without entering
// JavaScript. The pump's sockets are in an epoll set of its own, which libuv watches as one
// descriptor; each wake-up handles every ready socket, then tells JavaScript in one call what
// happened: connected, failed to connect, client left, closed.
// Measured on relayed TLS connections (bench scenario 4): each read and write done in JavaScript
// costs a callback into V8, objects and garbage, which made gatehouse's user time per connection
// ~4x HAProxy's; connecting through a Node TCP handle cost a handle, a request object and a
// callback more per connection.
// Everything with a decision in it (routing, balancing, failover, metrics, idle limits) stays in
// TypeScript (../relay.ts); this file only copies bytes, passes FIN and resets on, and reports.
// For the front door it also peeks at a new connection's first bytes and tunes listening sockets
// (peek, tuneListener at the end), the two socket calls Node has no API for.
//
// The model is relay-direction.ts's: a direction reads its source into one shared buffer and
// writes it to the destination at once; what the destination does not take is kept (one read's
// worth) and the source is not read until it is written. A FIN is passed on (shutdown) after the
// bytes before it; a reset is passed on as a reset (SO_LINGER 0); any other error closes both.
// Sockets are edge-triggered, registered for reading once: a connection costs four epoll_ctl
// calls (the client and the backend while connecting, both again once relaying; more only while
// a destination is full), seven level-triggered. So a source is read until it has nothing more,
// and one that was not read while its bytes waited is read when they are written. Relayed TLS
// connections (strace): 36 system calls each, 39 level-triggered, HAProxy 30 (and 12
// clock_gettime).
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BYTES (64 * 1024)
/** Ready sockets taken per epoll_wait; more wait for the next loop iteration (level-triggered). */
#define EVENTS_PER_WAKE 128
/** Reports per call into JavaScript, REPORT_FIELDS numbers each: (id, kind, a, b). */
#define REPORTS_PER_CALL 256
#define REPORT_FIELDS 4
// Each ready socket yields at most one report, so a wake-up's reports fit in one call: JavaScript
// never runs (and never dials a backend anew) while a wake-up still holds events.
_Static_assert(EVENTS_PER_WAKE <= REPORTS_PER_CALL, "one call per wake-up");

/** What a report says, and what its a and b are. */
enum report_kind {
  REPORT_CLOSED = 0,         // closed by itself; a: bytes to the backend, b: bytes to the client
  REPORT_CONNECTED = 1,      // the backend connection is up, relaying starts
  REPORT_CONNECT_FAILED = 2, // a: -errno; the relay waits for dial() or close()
  REPORT_CLIENT_LEFT = 3,    // the client reset or closed before the backend answered: closed
  REPORT_NONE = -1,
};

/**
 * What a relaying side is watched for, edge-triggered; EPOLLOUT only while bytes wait for room in
 * it: registered for good, every ACK that frees send buffer would wake the pump (measured: one
 * wake-up more per relayed TLS connection).
 */
#define RELAYING_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

/** A relay waits (for JavaScript to dial), connects, then relays. */
enum phase { WAITING, CONNECTING, RELAYING };
/**
 * Slots are reused; the generation in each id tells a stale id from the slot's new relay. An id
 * is (generation << SLOT_BITS) | slot, under 2^30: a small integer to V8, never a heap number.
 */
#define SLOT_BITS 20
#define GENERATION_BITS 10
#define MAX_SLOTS (1u << SLOT_BITS)
#define GENERATION_MASK ((1u << GENERATION_BITS) - 1)

typedef struct relay relay_t;

typedef struct {
  /** Bytes read from the source that the destination has not taken yet (NULL: none). */
  char *pending;
  size_t pending_length;
  size_t pending_offset;
  /** Bytes read from the source (and the first bytes given at start). */
  double bytes;
  /** The source sent FIN. */
  int ended;
  /** That FIN was passed on to the destination. */
  int finished;
} direction_t;

typedef struct {
  relay_t *relay;
  int fd;
  /** The epoll events registered for it; 0: not in the set. */
  uint32_t events;
} side_t;

struct relay {
  /** side[0] is the client, side[1] the backend (fd -1 while there is none). */
  side_t side[2];
  enum phase phase;
  /** dir[i] reads side i and writes side 1 - i. */
  direction_t dir[2];
  uint32_t slot;
  uint32_t generation;
  int closed;
  /** The wake-up that connected it: until its report is delivered, JavaScript's handle of the client is open too. */
  uint32_t connected_in_wake;
  /** Freed after the wake-up that closed it: later events of the same wake-up may name it. */
  relay_t *next_freed;
};

static napi_env relay_env;
static napi_ref on_closed_ref;
static napi_ref arrays_ref[3];
static napi_async_context async_context;
static double *counters_out;
static double *reports_out;
/** Where peek() puts a new connection's first bytes, and its size. */
static uint8_t *peek_out;
static size_t peek_size;
static uint32_t report_count;

static int epoll_fd = -1;
static uv_poll_t epoll_watcher;
static uint32_t open_relays;
static int waking;
/** Counts wake-ups (relay.connected_in_wake). */
static uint32_t wake_number;
static relay_t *freed;

static relay_t **slots;
static uint32_t *generations;
static uint32_t slot_count;
static uint32_t *free_slots;
static uint32_t free_count;

static char read_buffer[READ_BYTES];

static double relay_id(const relay_t *relay) {
  return (double)((relay->generation << SLOT_BITS) | relay->slot);
}

static relay_t *find(double id) {
  if (!(id >= 0 && id < (double)(MAX_SLOTS << GENERATION_BITS))) return NULL;
  uint32_t slot = (uint32_t)id & (MAX_SLOTS - 1);
  uint32_t generation = (uint32_t)id >> SLOT_BITS;
  if (slot >= slot_count || slots[slot] == NULL || slots[slot]->generation != generation) return NULL;
  return slots[slot];
}

static int take_slot(relay_t *relay) {
  if (free_count == 0) {
    if (slot_count == MAX_SLOTS) return -EMFILE;
    uint32_t grown = slot_count == 0 ? 1024 : slot_count * 2;
    relay_t **s = realloc(slots, grown * sizeof *s);
    if (s == NULL) return -ENOMEM;
    slots = s;
    uint32_t *g = realloc(generations, grown * sizeof *g);
    if (g == NULL) return -ENOMEM;
    generations = g;
    uint32_t *f = realloc(free_slots, grown * sizeof *f);
    if (f == NULL) return -ENOMEM;
    free_slots = f;
    for (uint32_t i = grown; i > slot_count; i--) {
      slots[i - 1] = NULL;
      generations[i - 1] = 0;
      free_slots[free_count++] = i - 1;
    }
    slot_count = grown;
  }
  uint32_t slot = free_slots[--free_count];
  relay->slot = slot;
  relay->generation = generations[slot] = (generations[slot] + 1) & GENERATION_MASK;
  slots[slot] = relay;
  return 0;
}

static void give_slot(relay_t *relay) {
  slots[relay->slot] = NULL;
  free_slots[free_count++] = relay->slot;
}

/** Tells JavaScript what happened to relays since the last call: onReports(count). */
static void deliver_reports(void) {
  if (report_count == 0) return;
  napi_env env = relay_env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, count, result;
  napi_get_reference_value(env, on_closed_ref, &callback);
  napi_get_global(env, &receiver);
  napi_create_uint32(env, report_count, &count);
  report_count = 0;
  if (napi_make_callback(env, async_context, receiver, callback, 1, &count, &result) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

/** Queues a report for the end of the wake-up. */
static void report(relay_t *relay, enum report_kind kind, double a, double b) {
  if (report_count == REPORTS_PER_CALL) deliver_reports(); // not reached: see EVENTS_PER_WAKE
  double *out = reports_out + REPORT_FIELDS * report_count++;
  out[0] = relay_id(relay);
  out[1] = (double)kind;
  out[2] = a;
  out[3] = b;
}

/** Watches `side` for `events` (0: out of the set). Returns 0 or -errno. */
static int set_events(side_t *side, uint32_t events) {
  if (events == side->events) return 0;
  struct epoll_event event = {.events = events, .data.ptr = side};
  int op = events == 0 ? EPOLL_CTL_DEL : side->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(epoll_fd, op, side->fd, &event) < 0) return -errno;
  side->events = events;
  return 0;
}

/** Before relaying: closes the backend socket, if there is one, and the relay waits for dial(). */
static void drop_backend(relay_t *relay) {
  relay->phase = WAITING;
  side_t *backend = &relay->side[1];
  if (backend->fd < 0) return;
  close(backend->fd); // the pump's own descriptor: closing it takes it out of the set
  backend->fd = -1;
  backend->events = 0;
}

/**
 * Closes both sockets, `reset_side` (0, 1, or -1 for none) with a RST, and frees the relay.
 * JavaScript hears of it (at the end of the wake-up) unless `kind` is REPORT_NONE.
 */
static void finish(relay_t *relay, int reset_side, enum report_kind kind) {
  if (relay->closed) return;
  relay->closed = 1;
  if (kind != REPORT_NONE) report(relay, kind, relay->dir[0].bytes, relay->dir[1].bytes);
  give_slot(relay);
  for (int i = 0; i < 2; i++) {
    free(relay->dir[i].pending);
    relay->dir[i].pending = NULL;
    side_t *side = &relay->side[i];
    if (side->fd < 0) continue;
    if (i == reset_side) {
      struct linger abort_on_close = {1, 0};
      setsockopt(side->fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    }
    // Closing the only descriptor of a socket takes it out of the epoll set; the client's is
    // shared with JavaScript's handle until that is closed, once JavaScript hears it connected.
    int shared = i == 0 && (relay->phase != RELAYING || (waking && relay->connected_in_wake == wake_number));
    if (shared && side->events != 0) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, side->fd, NULL);
    close(side->fd);
  }
  if (--open_relays == 0) uv_unref((uv_handle_t *)&epoll_watcher);
  if (waking) {
    relay->next_freed = freed;
    freed = relay;
  } else {
    free(relay);
  }
}

/** A read or write of `failing` returned `status`: a reset is passed on to the other side. */
static void fail(relay_t *relay, int status, int failing) {
  finish(relay, status == -ECONNRESET ? 1 - failing : -1, REPORT_CLOSED);
}

/**
 * Writes what direction `d` holds to its destination, which is watched for room while some is
 * left (and no longer once it is all written): 0 (written, or waiting), or -errno.
 */
static int flush(relay_t *relay, int d) {
  direction_t *dir = &relay->dir[d];
  side_t *destination = &relay->side[1 - d];
  while (dir->pending_offset < dir->pending_length) {
    ssize_t n = send(destination->fd, dir->pending + dir->pending_offset, dir->pending_length - dir->pending_offset, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return set_events(destination, RELAYING_EVENTS | EPOLLOUT);
      return -errno;
    }
    dir->pending_offset += (size_t)n;
  }
  free(dir->pending);
  dir->pending = NULL;
  dir->pending_length = dir->pending_offset = 0;
  return set_events(destination, RELAYING_EVENTS);
}

/** Keeps a copy of `bytes` for direction `d` to write later. Returns 0 or -ENOMEM. */
static int keep(relay_t *relay, int d, const char *bytes, size_t length) {
  direction_t *dir = &relay->dir[d];
  dir->pending = malloc(length);
  if (dir->pending == NULL) return -ENOMEM;
  memcpy(dir->pending, bytes, length);
  dir->pending_length = length;
  dir->pending_offset = 0;
  return 0;
}

/** Keeps `bytes` for direction `d` and writes what the destination takes now. */
static int hold(relay_t *relay, int d, const char *bytes, size_t length) {
  int err = keep(relay, d, bytes, length);
  return err < 0 ? err : flush(relay, d);
}

/**
 * Reads direction `d`'s source and writes each read on at once, until the source has nothing
 * more for now, sent FIN, or its destination is full (the rest is kept). A read shorter than the
 * buffer took all there was, and epoll reports the next bytes; but a FIN that came with them,
 * or while the source was not read, has no edge of its own: with `until_empty` the source is
 * read until it says EAGAIN or EOF. Returns 0, or -errno with the failing side in `*failing`.
 */
static int drain(relay_t *relay, int d, int until_empty, int *failing) {
  direction_t *dir = &relay->dir[d];
  while (!dir->ended && dir->pending == NULL) {
    ssize_t n;
    do n = read(relay->side[d].fd, read_buffer, READ_BYTES);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      *failing = d;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    if (n == 0) {
      dir->ended = 1;
      return 0;
    }
    dir->bytes += (double)n;
    size_t written = 0;
    while (written < (size_t)n) {
      ssize_t w = send(relay->side[1 - d].fd, read_buffer + written, (size_t)n - written, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        *failing = 1 - d;
        return -errno;
      }
      written += (size_t)w;
    }
    if (written < (size_t)n) {
      *failing = 1 - d;
      return hold(relay, d, read_buffer + written, (size_t)n - written);
    }
    if (n < READ_BYTES && !until_empty) return 0;
  }
  return 0;
}

/** Passes on each FIN whose bytes are all written; closes when both are. */
static void settle(relay_t *relay) {
  for (int d = 0; d < 2; d++) {
    direction_t *dir = &relay->dir[d];
    if (!dir->ended || dir->finished || dir->pending != NULL) continue;
    // The other way finished already: closing sends this FIN too.
    if (relay->dir[1 - d].finished) {
      finish(relay, -1, REPORT_CLOSED);
      return;
    }
    if (shutdown(relay->side[1 - d].fd, SHUT_WR) < 0) {
      fail(relay, -errno, 1 - d);
      return;
    }
    dir->finished = 1;
  }
  if (relay->dir[0].finished && relay->dir[1].finished) finish(relay, -1, REPORT_CLOSED);
}

/**
 * The backend accepted (`events`: what epoll reported for it): writes the first bytes, then what
 * the client sent while it was connecting, its FIN included, and starts relaying.
 */
static void relay_connected(relay_t *relay, uint32_t events) {
  relay->phase = RELAYING;
  relay->connected_in_wake = wake_number;
  report(relay, REPORT_CONNECTED, 0, 0);
  int failing = 0;
  int err = set_events(&relay->side[0], RELAYING_EVENTS);
  // The backend was watched for the end of its connect (EPOLLOUT): now for what flush() says.
  if (err == 0 && (err = relay->dir[0].pending != NULL ? flush(relay, 0) : set_events(&relay->side[1], RELAYING_EVENTS)) < 0) failing = 1;
  // A FIN the client sent meanwhile is reported by the set_events above (a change re-polls).
  if (err == 0) err = drain(relay, 0, 0, &failing);
  if (err == 0 && (events & (EPOLLIN | EPOLLRDHUP))) err = drain(relay, 1, events & EPOLLRDHUP, &failing);
  if (err < 0) {
    fail(relay, err, failing);
    return;
  }
  settle(relay);
}

/**
 * While connecting or waiting: the client is watched for leaving (a FIN waits in the socket with
 * the bytes before it, read once connected), the backend for the end of its connect.
 */
static void on_connect_event(relay_t *relay, int i, uint32_t events) {
  side_t *side = &relay->side[i];
  if (i == 0) {
    if (events & (EPOLLERR | EPOLLHUP)) finish(relay, -1, REPORT_CLIENT_LEFT);
    return;
  }
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(side->fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) error = errno;
  else if (error == 0 && (events & (EPOLLERR | EPOLLHUP))) error = ECONNRESET;
  if (error != 0) {
    drop_backend(relay);
    report(relay, REPORT_CONNECT_FAILED, -error, 0);
    return;
  }
  relay_connected(relay, events);
}

/** What epoll reported for one side: an error, data (or FIN) to read, room to write. */
static void on_side_ready(side_t *side, uint32_t events) {
  relay_t *relay = side->relay;
  int i = side == &relay->side[0] ? 0 : 1;
  if (relay->phase != RELAYING) {
    on_connect_event(relay, i, events);
    return;
  }
  if (events & EPOLLERR) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(side->fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error != 0) {
      fail(relay, -error, i);
      return;
    }
  }
  // A hang-up shows as a read of 0 (or an error) and as a write that fails: both say which.
  int failing = i;
  int err;
  if ((events & (EPOLLOUT | EPOLLHUP)) && relay->dir[1 - i].pending != NULL) {
    // Room for what waited: written, then its source, not read meanwhile, is read again.
    if ((err = flush(relay, 1 - i)) < 0) {
      fail(relay, err, i);
      return;
    }
    if ((err = drain(relay, 1 - i, 1, &failing)) < 0) {
      fail(relay, err, failing);
      return;
    }
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && (err = drain(relay, i, events & (EPOLLRDHUP | EPOLLHUP), &failing)) < 0) {
    fail(relay, err, failing);
    return;
  }
  settle(relay);
}

/** libuv saw the epoll set readable: handle every ready side, then report the closed relays. */
static void on_wake(uv_poll_t *handle, int status, int events) {
  struct epoll_event ready[EVENTS_PER_WAKE];
  int count;
  do count = epoll_wait(epoll_fd, ready, EVENTS_PER_WAKE, 0);
  while (count < 0 && errno == EINTR);
  waking = 1;
  wake_number++;
  for (int k = 0; k < count; k++) {
    side_t *side = ready[k].data.ptr;
    if (!side->relay->closed) on_side_ready(side, ready[k].events);
  }
  waking = 0;
  while (freed != NULL) {
    relay_t *next = freed->next_freed;
    free(freed);
    freed = next;
  }
  deliver_reports();
}

static napi_value throw_errno(napi_env env, const char *what, int error) {
  char message[160];
  snprintf(message, sizeof message, "fd-relay: %s: %s", what, strerror(error));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/** A Float64Array argument of at least `length` elements, or NULL. */
static double *float64_array(napi_env env, napi_value value, size_t length) {
  napi_typedarray_type type;
  size_t actual;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &actual, &data, NULL, NULL) != napi_ok || type != napi_float64_array || actual < length) return NULL;
  return data;
}

/**
 * init(onReports(count), counters: Float64Array(3), reports: Float64Array(4 * 256), peeked:
 * Uint8Array). onReports finds (id, kind, a, b) for each of `count` reports in reports (enum
 * report_kind); peek() puts what it sees in peeked.
 */
static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], resource_name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (on_closed_ref != NULL) {
    napi_throw_error(env, NULL, "fd-relay: init called twice");
    return NULL;
  }
  napi_typedarray_type peek_type;
  if (argc < 4 || (counters_out = float64_array(env, argv[1], 3)) == NULL || (reports_out = float64_array(env, argv[2], REPORT_FIELDS * REPORTS_PER_CALL)) == NULL ||
      napi_get_typedarray_info(env, argv[3], &peek_type, &peek_size, (void **)&peek_out, NULL, NULL) != napi_ok || peek_type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "fd-relay: init(onReports, Float64Array(3), Float64Array(1024), Uint8Array)");
    return NULL;
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return throw_errno(env, "epoll_create1", errno);
  int err = uv_poll_init(loop, &epoll_watcher, epoll_fd);
  if (err == 0) err = uv_poll_start(&epoll_watcher, UV_READABLE, on_wake);
  if (err != 0) {
    close(epoll_fd);
    return throw_errno(env, "uv_poll_init", -err);
  }
  uv_unref((uv_handle_t *)&epoll_watcher); // only open relays keep the loop alive
  relay_env = env;
  napi_create_reference(env, argv[0], 1, &on_closed_ref);
  napi_create_reference(env, argv[1], 1, &arrays_ref[0]); // the arrays live as long as the pump
  napi_create_reference(env, argv[2], 1, &arrays_ref[1]);
  napi_create_reference(env, argv[3], 1, &arrays_ref[2]);
  napi_create_string_utf8(env, "gatehouse:fd-relay", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &async_context);
  return NULL;
}

/**
 * adopt(clientFd, first: Uint8Array, clientEnded: boolean) -> id. Takes a copy (dup) of the
 * client's descriptor: the caller closes its handle once connected. The relay waits for dial();
 * `first` goes to the backend before anything read from the client, and with clientEnded the
 * client's FIN follows it. The client is watched for leaving from now on.
 */
static napi_value adopt(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t client_fd = -1;
  void *first = NULL;
  size_t first_length = 0;
  bool client_ended = false;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &client_fd) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &(napi_typedarray_type){0}, &first_length, &first, NULL, NULL) != napi_ok ||
      napi_get_value_bool(env, argv[2], &client_ended) != napi_ok || client_fd < 0) {
    napi_throw_type_error(env, NULL, "fd-relay: adopt(clientFd, Uint8Array, boolean)");
    return NULL;
  }
  if (epoll_fd < 0) {
    napi_throw_error(env, NULL, "fd-relay: adopt before init");
    return NULL;
  }
  relay_t *relay = calloc(1, sizeof *relay);
  if (relay == NULL) return throw_errno(env, "adopt", ENOMEM);
  relay->side[1].fd = -1;
  relay->side[0].fd = fcntl(client_fd, F_DUPFD_CLOEXEC, 0);
  if (relay->side[0].fd < 0) {
    int error = errno;
    free(relay);
    return throw_errno(env, "dup", error);
  }
  int err = take_slot(relay);
  if (err < 0) {
    close(relay->side[0].fd);
    free(relay);
    return throw_errno(env, "adopt", -err);
  }
  relay->side[0].relay = relay->side[1].relay = relay;
  relay->phase = WAITING;
  if (open_relays++ == 0) uv_ref((uv_handle_t *)&epoll_watcher);
  relay->dir[0].ended = client_ended;
  relay->dir[0].bytes = (double)first_length;
  napi_create_double(env, relay_id(relay), &result);
  if ((first_length > 0 && (err = keep(relay, 0, first, first_length)) < 0) || (!client_ended && (err = set_events(&relay->side[0], EPOLLRDHUP | EPOLLET)) < 0)) {
    finish(relay, -1, REPORT_NONE);
    return throw_errno(env, "adopt", -err);
  }
  return result;
}

/** Starts a non-blocking connect of `relay`'s backend socket: 0, or -errno when it failed at once. */
static int dial_backend(relay_t *relay, const char *ip, uint32_t port, bool ipv6) {
  struct sockaddr_storage address = {0};
  socklen_t length;
  if (ipv6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) != 1) {
      // A scoped address (fe80::1%eth0): getaddrinfo parses the zone, without a lookup.
      struct addrinfo hints = {.ai_family = AF_INET6, .ai_flags = AI_NUMERICHOST}, *found;
      if (getaddrinfo(ip, NULL, &hints, &found) != 0) return -EINVAL;
      memcpy(in6, found->ai_addr, sizeof *in6);
      freeaddrinfo(found);
      in6->sin6_port = htons((uint16_t)port);
    }
    length = sizeof *in6;
  } else {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &in4->sin_addr) != 1) return -EINVAL;
    length = sizeof *in4;
  }
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // EINTR: the connect goes on in the background, as with EINPROGRESS.
  if (connect(fd, (struct sockaddr *)&address, length) < 0 && errno != EINPROGRESS && errno != EINTR) {
    int error = errno;
    close(fd);
    return -error;
  }
  side_t *backend = &relay->side[1];
  backend->fd = fd;
  backend->events = 0;
  int err = set_events(backend, RELAYING_EVENTS | EPOLLOUT); // writable (or an error) once the connect is done
  if (err < 0) {
    drop_backend(relay);
    return err;
  }
  relay->phase = CONNECTING;
  return 0;
}

/**
 * What dial() returns for a relay that is gone or relaying already: closed by the pump in the
 * same wake-up as the report being handled, whose own report (client left) comes next.
 */
#define DIAL_GONE 1

/**
 * dial(id, ip, port, ipv6: boolean) -> 0 | -errno | DIAL_GONE. Connects a waiting relay's
 * backend; the outcome comes as a report (connected, or connect failed). An attempt still running
 * is dropped first. A failure at once (-errno) leaves the relay waiting.
 */
static napi_value dial(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double id = -1;
  char ip[64];
  uint32_t port = 0;
  bool ipv6 = false;
  if (argc < 4 || napi_get_value_double(env, argv[0], &id) != napi_ok || napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, NULL) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &port) != napi_ok || napi_get_value_bool(env, argv[3], &ipv6) != napi_ok || port > 65535) {
    napi_throw_type_error(env, NULL, "fd-relay: dial(id, ip, port, boolean)");
    return NULL;
  }
  relay_t *relay = find(id);
  int err = DIAL_GONE;
  if (relay != NULL && relay->phase != RELAYING) {
    drop_backend(relay);
    err = dial_backend(relay, ip, port, ipv6);
  }
  napi_create_int32(env, err, &result);
  return result;
}

/** hangUp(id): drops the backend connect still running (the connect time limit); the relay waits. */
static napi_value hang_up(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double id = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) napi_get_value_double(env, argv[0], &id);
  relay_t *relay = find(id);
  if (relay != NULL && relay->phase == CONNECTING) drop_backend(relay);
  return NULL;
}

/** counters(id) -> false when closed; else true, with the counters array set to [to backend, to client, held]. */
static napi_value counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double id = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) napi_get_value_double(env, argv[0], &id);
  relay_t *relay = find(id);
  if (relay != NULL) {
    counters_out[0] = relay->dir[0].bytes;
    counters_out[1] = relay->dir[1].bytes;
    counters_out[2] = (double)(relay->dir[0].pending_length - relay->dir[0].pending_offset) +
                      (double)(relay->dir[1].pending_length - relay->dir[1].pending_offset);
  }
  napi_get_boolean(env, relay != NULL, &result);
  return result;
}

/** close(id, resetSide: -1 none, 0 client, 1 backend): closes without reporting back. */
static napi_value close_relay(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double id = -1;
  int32_t reset_side = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) napi_get_value_double(env, argv[0], &id);
  if (argc >= 2) napi_get_value_int32(env, argv[1], &reset_side);
  relay_t *relay = find(id);
  if (relay != NULL) finish(relay, reset_side, REPORT_NONE);
  return NULL;
}

/** Reads the call's first `count` (at most 4) arguments as int32; those missing keep their value. */
static void int32_args(napi_env env, napi_callback_info info, int32_t *out, size_t count) {
  napi_value argv[4];
  size_t argc = count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = 0; i < argc && i < count; i++) napi_get_value_int32(env, argv[i], &out[i]);
}

static napi_value int32_value(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

/**
 * peek(fd) -> bytes | -errno: copies what the socket has received into the peeked array without
 * taking it from the socket (MSG_PEEK), so whoever reads the socket next reads it all again.
 * -EAGAIN: nothing yet.
 */
static napi_value peek(napi_env env, napi_callback_info info) {
  int32_t fd = -1;
  int32_args(env, info, &fd, 1);
  ssize_t n;
  if (fd < 0 || peek_out == NULL) n = -EBADF;
  else {
    do n = recv(fd, peek_out, peek_size, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) n = -errno;
  }
  return int32_value(env, (int32_t)n);
}

/**
 * tuneListener(listeningFd, deferSeconds) -> 0 | -errno: TCP_DEFER_ACCEPT, the kernel hands over
 * a new connection once its first bytes are there (or after `deferSeconds`), so that peek() finds
 * them; and TCP_NODELAY, which accepted sockets inherit (Linux), instead of a call per connection.
 */
static napi_value tune_listener(napi_env env, napi_callback_info info) {
  int32_t args[2] = {-1, 0}; // fd, seconds
  int32_args(env, info, args, 2);
  int one = 1;
  int err = args[0] < 0 ? -EBADF : 0;
  if (err == 0 && setsockopt(args[0], IPPROTO_TCP, TCP_DEFER_ACCEPT, &args[1], sizeof args[1]) < 0) err = -errno;
  if (err == 0 && setsockopt(args[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) err = -errno;
  return int32_value(env, err);
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"init", NULL, init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adopt", NULL, adopt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dial", NULL, dial, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hangUp", NULL, hang_up, NULL, NULL, NULL, napi_enumerable, NULL},
      {"counters", NULL, counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_relay, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peek", NULL, peek, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tuneListener", NULL, tune_listener, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
