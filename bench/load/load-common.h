/*
 * What h1load.c and h2load.c share: the clock, fatal errors, the loopback-only target, the client
 * TLS context and a non-blocking connect watched by epoll. Header only, so that each tool stays
 * one gcc command; define LOAD_PROGRAM (the tool's name, for messages) before including it.
 */
#ifndef GATEHOUSE_LOAD_COMMON_H
#define GATEHOUSE_LOAD_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

/* The options both tools take. */
struct load_options {
  const char *host, *sni, *path, *cert, *key;
  int port, connections;
  double seconds;
};

/* Takes one of the shared options; false when `name` is not one of them. */
static int shared_option(struct load_options *o, const char *name, const char *value) {
  if (!strcmp(name, "--host")) o->host = value;
  else if (!strcmp(name, "--port")) o->port = atoi(value);
  else if (!strcmp(name, "--sni")) o->sni = value;
  else if (!strcmp(name, "--path")) o->path = value;
  else if (!strcmp(name, "--cert")) o->cert = value;
  else if (!strcmp(name, "--key")) o->key = value;
  else if (!strcmp(name, "--connections")) o->connections = atoi(value);
  else if (!strcmp(name, "--seconds")) o->seconds = atof(value);
  else return 0;
  return 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, LOAD_PROGRAM ": %s\n", what);
  exit(2);
}

/* Checks the shared options (false: the tool prints its usage) and fills in the address to load:
   an IPv4 loopback address only, never anything off this machine. */
static int check_options(const struct load_options *o, int max_connections, struct sockaddr_in *target) {
  if (o->port <= 0 || o->port > 65535 || !o->cert || !o->key) return 0;
  if (o->connections < 1 || o->connections > max_connections) {
    char why[64];
    snprintf(why, sizeof why, "--connections must be 1..%d", max_connections);
    die(why);
  }
  if (!(o->seconds > 0 && o->seconds <= 3600)) die("--seconds must be in (0, 3600]");
  memset(target, 0, sizeof *target);
  target->sin_family = AF_INET;
  target->sin_port = htons((unsigned short)o->port);
  if (inet_pton(AF_INET, o->host, &target->sin_addr) != 1) die("--host must be an IPv4 address");
  if ((ntohl(target->sin_addr.s_addr) >> 24) != 127) die("--host must be a loopback address");
  return 1;
}

/* The client's TLS context: presents `cert` and `key`, offers `alpn` (wire format), keeps no
   session cache. Like ab, it does not verify the server: the proxies under test verify the client. */
static SSL_CTX *client_context(const char *cert, const char *key, const char *alpn, unsigned alpn_len) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) die("cannot load --cert");
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) die("cannot load --key");
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)alpn, alpn_len);
  return ctx;
}

/* Opens a non-blocking TCP_NODELAY socket into *fd, watched by `ep` for EPOLLOUT with `data`, and
   starts connecting; false when the connect failed at once (the socket is left to close). */
static int start_connect(int ep, const struct sockaddr_in *target, void *data, int *fd) {
  *fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (*fd < 0) die("socket");
  int one = 1;
  setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLOUT, .data = {.ptr = data}};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, *fd, &ev) != 0) die("epoll_ctl ADD");
  return connect(*fd, (const struct sockaddr *)target, sizeof *target) == 0 || errno == EINPROGRESS;
}

#endif
