/*
 * redis_pipeline.c
 *		The rate limiter's Redis connection: one TCP connection per gateway,
 *		owned by one I/O thread, on which the calls of every request thread
 *		are pipelined.
 *
 * Why not a blocking round trip per request on each thread's own
 * connection (as before): the request's thread then sleeps for every
 * limiter decision, each decision costs a wake-up of Redis and one of the
 * thread, and Redis starts its Lua machinery once per request; on a busy
 * machine that, not the arithmetic, was most of the limiter's cost.  Here
 * a request thread queues its call and goes on serving other connections
 * (the HTTP request is suspended, http_suspend); the I/O thread turns the
 * calls queued since its last send into one run of the (batch) script, in
 * one write, and hands each call its element of the reply through the
 * call's callback, which resumes the request.  Under load, one wake-up of
 * each side and one script run serve many requests; alone, a request
 * costs what it did.
 *
 * hiredis does what it is good at here: formatting commands and parsing
 * replies (redisReader); the socket, the queue and the timeouts are ours.
 *
 * Failures: a connection that cannot be made, a lost connection, an
 * error answer to AUTH or SELECT, or a reply overdue by IAM_REDIS_TIMEOUT_MS
 * answers every call in flight with NULL, closes the connection and starts
 * a backoff (50 ms doubling to 2 s) during which redis_pipeline_eval
 * refuses at once, so callers decide without Redis at no cost.  Outages are
 * logged and counted through redis.c's shared state.
 *
 * Threads: the submission queue and `stopping` are guarded by `lock`;
 * `up` and `retry_at_ms` are atomics read by submitters; everything else
 * belongs to the I/O thread.
 */
#include "redis_pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS	50
#define BACKOFF_MAX_MS	2000
#define READ_CHUNK		16384
#define BATCH_MAX		128		/* calls per script run */

/* What was sent and awaits its reply, in reply order. */
typedef struct Sent
{
	struct Sent *next;
	enum
	{
		SENT_BATCH,				/* a script run for `calls` */
		SENT_HANDSHAKE,			/* AUTH or SELECT: an error fails the connection */
		SENT_LOAD				/* SCRIPT LOAD after NOSCRIPT: the reply is dropped */
	}			kind;
	RedisCall  *calls;			/* linked by next, in ARGV order */
	int			ncalls;
	RedisScript *script;
	bool		reloaded;		/* NOSCRIPT answered by SCRIPT LOAD once */
	int64_t		deadline_ms;
} Sent;

typedef struct Pipeline
{
	const ConfigRedis *cfg;
	int			timeout_ms;
	pthread_t	thread;
	int			wake_fd;		/* eventfd: a submission or stop */

	pthread_mutex_t lock;		/* guards the three below */
	RedisCall  *queue_head;		/* submitted, not yet sent */
	RedisCall  *queue_tail;
	bool		stopping;

	atomic_bool up;				/* false while waiting out a backoff */
	atomic_int_least64_t retry_at_ms;

	/* the I/O thread's */
	int			fd;				/* -1: not connected */
	redisReader *reader;
	Sent	   *sent_head;
	Sent	   *sent_tail;
	char	   *out;			/* bytes to send */
	size_t		out_len;
	size_t		out_cap;
	size_t		out_done;
	bool		out_failed;		/* out of memory while appending */
	int			backoff_ms;
} Pipeline;

static Pipeline *pl;			/* set before the request threads start */
static atomic_uint_least64_t answered_calls;	/* for /metrics */
static atomic_uint_least64_t answered_runs;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- RESP ---- */

/* resp_bulk writes s as a RESP bulk string into out (NULL: just measure). */
static size_t
resp_bulk(char *out, const char *s, size_t len)
{
	char		head[32];
	int			n = snprintf(head, sizeof(head), "$%zu\r\n", len);

	if (out != NULL)
	{
		memcpy(out, head, (size_t) n);
		memcpy(out + n, s, len);
		memcpy(out + n + len, "\r\n", 2);
	}
	return (size_t) n + len + 2;
}

/* ---- the I/O thread ---- */

/* answer ends call c: the pipeline lets go of it, then its owner is told. */
static void
answer(RedisCall *c, const redisReply *reply)
{
	free(c->resp);
	c->resp = NULL;
	c->done(c, reply);
}

/* fail_calls answers every call of a list with NULL. */
static void
fail_calls(RedisCall *c)
{
	while (c != NULL)
	{
		RedisCall  *next = c->next;

		answer(c, NULL);
		c = next;
	}
}

/* out_append adds len bytes to the send buffer (remembering a failure). */
static void
out_append(const char *s, size_t len)
{
	if (pl->out_len + len > pl->out_cap)
	{
		size_t		cap = pl->out_cap > 0 ? pl->out_cap : READ_CHUNK;
		char	   *grown;

		while (cap < pl->out_len + len)
			cap *= 2;
		if ((grown = realloc(pl->out, cap)) == NULL)
		{
			pl->out_failed = true;
			return;
		}
		pl->out = grown;
		pl->out_cap = cap;
	}
	memcpy(pl->out + pl->out_len, s, len);
	pl->out_len += len;
}

static void
out_number(char type, long long v)
{
	char		buf[32];
	int			n = snprintf(buf, sizeof(buf), "%c%lld\r\n", type, v);

	out_append(buf, (size_t) n);
}

static void
out_bulk_number(long long v)
{
	char		num[24];
	char		buf[48];
	int			n = snprintf(num, sizeof(num), "%lld", v);

	out_append(buf, resp_bulk(buf, num, (size_t) n));
}

static void
sent_push(Sent *s)
{
	s->next = NULL;
	if (pl->sent_tail != NULL)
		pl->sent_tail->next = s;
	else
		pl->sent_head = s;
	pl->sent_tail = s;
}

/*
 * send_batch writes batch b as one EVALSHA: the keys of every call, the
 * number of calls, then each call's key count, argument count and
 * arguments (the layout redis_pipeline.h promises the script).
 */
static void
send_batch(Sent *b)
{
	int			nkeys = 0;
	int			argc = 4;		/* EVALSHA, sha, numkeys, number of calls */

	for (RedisCall *c = b->calls; c != NULL; c = c->next)
	{
		nkeys += c->nkeys;
		argc += c->nkeys + 2 + c->nargs;
	}
	out_number('*', argc);
	out_append("$7\r\nEVALSHA\r\n", 13);
	out_append("$40\r\n", 5);
	out_append(b->script->sha, 40);
	out_append("\r\n", 2);
	out_bulk_number(nkeys);
	for (RedisCall *c = b->calls; c != NULL; c = c->next)
		out_append(c->resp, c->keys_len);
	out_bulk_number(b->ncalls);
	for (RedisCall *c = b->calls; c != NULL; c = c->next)
		out_append(c->resp + c->keys_len, c->args_len);
	sent_push(b);
}

/* send_command writes one of the pipeline's own commands; false when out of memory. */
static bool
send_command(int kind, int argc, const char **argv)
{
	Sent	   *s = calloc(1, sizeof(Sent));
	char	   *cmd;
	int			len;

	if (s == NULL || (len = redisFormatCommandArgv(&cmd, argc, argv, NULL)) < 0)
	{
		free(s);
		return false;
	}
	out_append(cmd, (size_t) len);
	redisFreeCommand(cmd);
	s->kind = kind;
	s->deadline_ms = now_ms() + pl->timeout_ms;
	sent_push(s);
	return true;
}

/* sent_fail answers what s stands for with NULL and frees it. */
static void
sent_fail(Sent *s)
{
	fail_calls(s->calls);
	free(s);
}

/*
 * disconnect closes the connection and answers what was sent with NULL.
 * why != NULL: a failure, counted and logged, and the next attempt waits
 * for the backoff; NULL: Redis closed an idle connection (a restart, say),
 * to be reopened on the next call.
 */
static void
disconnect(const char *why)
{
	Sent	   *s = pl->sent_head;

	if (pl->fd >= 0)
		close(pl->fd);
	pl->fd = -1;
	redisReaderFree(pl->reader);
	pl->reader = NULL;
	pl->sent_head = pl->sent_tail = NULL;
	pl->out_len = pl->out_done = 0;
	pl->out_failed = false;
	if (why != NULL)
	{
		pl->backoff_ms = pl->backoff_ms == 0 ? BACKOFF_MIN_MS :
			(pl->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pl->backoff_ms * 2);
		atomic_store(&pl->retry_at_ms, now_ms() + pl->backoff_ms);
		atomic_store(&pl->up, false);
		redis_report_failure(why);
	}
	while (s != NULL)
	{
		Sent	   *next = s->next;

		sent_fail(s);
		s = next;
	}
}

/* connect_socket opens a TCP connection to the configured Redis; -1 on failure. */
static int
connect_socket(char *why, size_t size)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,.ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	char		port[16];
	int			fd = -1;
	int			rc;

	snprintf(port, sizeof(port), "%d", pl->cfg->port);
	if ((rc = getaddrinfo(pl->cfg->host, port, &hints, &res)) != 0)
	{
		snprintf(why, size, "cannot resolve the host: %s", gai_strerror(rc));
		return -1;
	}
	snprintf(why, size, "cannot connect");
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
	{
		struct pollfd pfd;
		int			err = 0;
		socklen_t	len = sizeof(err);
		int			one = 1;

		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
						 ai->ai_protocol)) < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		{
			pfd = (struct pollfd) {.fd = fd,.events = POLLOUT};
			if (errno != EINPROGRESS || poll(&pfd, 1, pl->timeout_ms) != 1 ||
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
			{
				snprintf(why, size, "cannot connect: %s",
						 err != 0 ? strerror(err) : errno != EINPROGRESS ? strerror(errno) : "timeout");
				close(fd);
				fd = -1;
				continue;
			}
		}
		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	freeaddrinfo(res);
	return fd;
}

/*
 * reconnect opens the connection, with AUTH and SELECT queued ahead of
 * anything else (their answers are checked when they arrive).  false when
 * the connection cannot be made now (backoff started).
 */
static bool
reconnect(void)
{
	const ConfigRedis *cfg = pl->cfg;
	char		why[160];
	char		db[16];

	if ((pl->fd = connect_socket(why, sizeof(why))) < 0)
	{
		disconnect(why);
		return false;
	}
	snprintf(db, sizeof(db), "%d", cfg->db);
	if ((pl->reader = redisReaderCreate()) == NULL ||
		(cfg->password != NULL && cfg->username != NULL &&
		 !send_command(SENT_HANDSHAKE, 3, (const char *[]) {"AUTH", cfg->username, cfg->password})) ||
		(cfg->password != NULL && cfg->username == NULL &&
		 !send_command(SENT_HANDSHAKE, 2, (const char *[]) {"AUTH", cfg->password})) ||
		(cfg->db != 0 && !send_command(SENT_HANDSHAKE, 2, (const char *[]) {"SELECT", db})))
	{
		disconnect("out of memory");
		return false;
	}
	return true;
}

/* flush sends what it can of the send buffer; false when the connection failed. */
static bool
flush(void)
{
	if (pl->out_failed)
	{
		disconnect("out of memory");
		return false;
	}
	while (pl->out_done < pl->out_len)
	{
		ssize_t		n = send(pl->fd, pl->out + pl->out_done, pl->out_len - pl->out_done,
							 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
		{
			disconnect("connection lost while sending");
			return false;
		}
		pl->out_done += (size_t) n;
	}
	pl->out_len = pl->out_done = 0;
	return true;
}

/*
 * on_reply hands one reply to the oldest thing sent.  A batch's array
 * answers its calls element by element; any other answer to a batch (the
 * script failed as a whole) goes to each of its calls, except NOSCRIPT
 * (Redis restarted, or SCRIPT FLUSH), which is followed once by SCRIPT LOAD
 * and the same batch again.  A failed AUTH or SELECT fails the connection.
 */
static bool
on_reply(const redisReply *r)
{
	Sent	   *s = pl->sent_head;
	RedisCall  *c;
	size_t		i = 0;

	if (s == NULL)
	{
		disconnect("reply without a request");
		return false;
	}
	if ((pl->sent_head = s->next) == NULL)
		pl->sent_tail = NULL;
	switch (s->kind)
	{
		case SENT_HANDSHAKE:
			free(s);
			if (r->type == REDIS_REPLY_ERROR)
			{
				disconnect("AUTH or SELECT refused");
				return false;
			}
			return true;
		case SENT_LOAD:
			free(s);
			return true;
		case SENT_BATCH:
			break;
	}
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !s->reloaded)
	{
		s->reloaded = true;
		if (!send_command(SENT_LOAD, 3, (const char *[]) {"SCRIPT", "LOAD", s->script->text}))
		{
			sent_fail(s);
			return true;
		}
		send_batch(s);
		return true;
	}
	redis_report_success();
	atomic_fetch_add(&answered_runs, 1);
	atomic_fetch_add(&answered_calls, (uint64_t) s->ncalls);
	for (c = s->calls; c != NULL; i++)
	{
		RedisCall  *next = c->next;

		answer(c, r->type == REDIS_REPLY_ARRAY && r->elements == (size_t) s->ncalls ?
			   r->element[i] : r);
		c = next;
	}
	free(s);
	return true;
}

/* receive reads what Redis sent and answers the calls it completes. */
static bool
receive(void)
{
	char		buf[READ_CHUNK];

	for (;;)
	{
		ssize_t		n = recv(pl->fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
		{
			disconnect(pl->sent_head != NULL ? "connection lost" : NULL);
			return false;
		}
		if (redisReaderFeed(pl->reader, buf, (size_t) n) != REDIS_OK)
		{
			disconnect("unreadable reply");
			return false;
		}
		for (;;)
		{
			void	   *reply;
			bool		ok;

			if (redisReaderGetReply(pl->reader, &reply) != REDIS_OK)
			{
				disconnect("unreadable reply");
				return false;
			}
			if (reply == NULL)
				break;
			ok = on_reply(reply);
			freeReplyObject(reply);
			if (!ok)
				return false;
		}
		if ((size_t) n < sizeof(buf))
			return true;
	}
}

/* take_queue empties the submission queue; *stop tells whether to end. */
static RedisCall *
take_queue(bool *stop)
{
	RedisCall  *q;

	pthread_mutex_lock(&pl->lock);
	q = pl->queue_head;
	pl->queue_head = pl->queue_tail = NULL;
	*stop = pl->stopping;
	pthread_mutex_unlock(&pl->lock);
	return q;
}

/*
 * send_queue turns the submitted calls into batches (consecutive calls of
 * one script, at most BATCH_MAX) on the connection, opening it first.
 */
static void
send_queue(RedisCall *q)
{
	if (q == NULL)
		return;
	if (pl->fd < 0 && (now_ms() < atomic_load(&pl->retry_at_ms) || !reconnect()))
	{
		fail_calls(q);
		return;
	}
	atomic_store(&pl->up, true);
	while (q != NULL)
	{
		Sent	   *b = calloc(1, sizeof(Sent));
		RedisCall **tail;

		if (b == NULL)
		{
			fail_calls(q);
			return;
		}
		b->kind = SENT_BATCH;
		b->script = q->script;
		b->deadline_ms = q->deadline_ms;
		tail = &b->calls;
		while (q != NULL && q->script == b->script && b->ncalls < BATCH_MAX)
		{
			RedisCall  *next = q->next;

			q->next = NULL;
			*tail = q;
			tail = &q->next;
			b->ncalls++;
			if (q->deadline_ms < b->deadline_ms)
				b->deadline_ms = q->deadline_ms;
			q = next;
		}
		send_batch(b);
	}
}

static void *
io_thread(void *arg)
{
	(void) arg;
	for (;;)
	{
		bool		stop;
		RedisCall  *q = take_queue(&stop);
		struct pollfd pfd[2];
		int			timeout = -1;
		int64_t		now;

		if (stop)
		{
			fail_calls(q);
			disconnect(NULL);
			return NULL;
		}
		send_queue(q);
		if (pl->fd >= 0 && pl->out_len > 0 && !flush())
			continue;
		now = now_ms();
		if (pl->fd >= 0 && pl->sent_head != NULL)
		{
			if (pl->sent_head->deadline_ms <= now)
			{
				disconnect("timeout");
				continue;
			}
			timeout = (int) (pl->sent_head->deadline_ms - now);
		}
		pfd[0] = (struct pollfd) {.fd = pl->wake_fd,.events = POLLIN};
		pfd[1] = (struct pollfd) {.fd = pl->fd,.events = POLLIN | (pl->out_len > 0 ? POLLOUT : 0)};
		if (poll(pfd, pl->fd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR)
			continue;
		if (pfd[0].revents & POLLIN)
		{
			uint64_t	v;

			(void) !read(pl->wake_fd, &v, sizeof(v));
		}
		if (pl->fd >= 0 && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP)))
			(void) receive();
	}
}

/* ---- the request threads ---- */

int
redis_pipeline_start(const ConfigRedis *cfg, int timeout_ms)
{
	Pipeline   *p = calloc(1, sizeof(Pipeline));

	if (p == NULL)
		return -1;
	p->cfg = cfg;
	p->timeout_ms = timeout_ms;
	p->fd = -1;
	atomic_init(&p->up, true);
	atomic_init(&p->retry_at_ms, 0);
	pthread_mutex_init(&p->lock, NULL);
	if ((p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
	{
		free(p);
		return -1;
	}
	pl = p;
	if (pthread_create(&p->thread, NULL, io_thread, NULL) != 0)
	{
		pl = NULL;
		close(p->wake_fd);
		free(p);
		return -1;
	}
	return 0;
}

static void
wake(void)
{
	uint64_t	one = 1;

	(void) !write(pl->wake_fd, &one, sizeof(one));
}

void
redis_pipeline_stop(void)
{
	Pipeline   *p = pl;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_mutex_unlock(&p->lock);
	wake();
	pthread_join(p->thread, NULL);
	pl = NULL;
	close(p->wake_fd);
	free(p->out);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* call_format writes c's keys and (nkeys, nargs, args) as RESP; false when out of memory. */
static bool
call_format(RedisCall *c, int nkeys, const char *const *keys, int nargs,
			const char *const *args)
{
	char		num[2][16];
	size_t		len = 0;
	char	   *p;

	snprintf(num[0], sizeof(num[0]), "%d", nkeys);
	snprintf(num[1], sizeof(num[1]), "%d", nargs);
	for (int i = 0; i < nkeys; i++)
		len += resp_bulk(NULL, keys[i], strlen(keys[i]));
	c->keys_len = len;
	len += resp_bulk(NULL, num[0], strlen(num[0])) + resp_bulk(NULL, num[1], strlen(num[1]));
	for (int i = 0; i < nargs; i++)
		len += resp_bulk(NULL, args[i], strlen(args[i]));
	c->args_len = len - c->keys_len;
	if ((p = c->resp = malloc(len)) == NULL)
		return false;
	for (int i = 0; i < nkeys; i++)
		p += resp_bulk(p, keys[i], strlen(keys[i]));
	p += resp_bulk(p, num[0], strlen(num[0]));
	p += resp_bulk(p, num[1], strlen(num[1]));
	for (int i = 0; i < nargs; i++)
		p += resp_bulk(p, args[i], strlen(args[i]));
	c->nkeys = nkeys;
	c->nargs = nargs;
	return true;
}

int
redis_pipeline_call(RedisCall *call, RedisScript *s, int nkeys,
					const char *const *keys, int nargs, const char *const *args)
{
	bool		was_empty;

	if (pl == NULL || (!atomic_load(&pl->up) && now_ms() < atomic_load(&pl->retry_at_ms)))
		return -1;
	if (!call_format(call, nkeys, keys, nargs, args))
		return -1;
	call->next = NULL;
	call->script = s;
	call->deadline_ms = now_ms() + pl->timeout_ms;

	pthread_mutex_lock(&pl->lock);
	if (pl->stopping)
	{
		pthread_mutex_unlock(&pl->lock);
		free(call->resp);
		call->resp = NULL;
		return -1;
	}
	was_empty = pl->queue_head == NULL;
	if (pl->queue_tail != NULL)
		pl->queue_tail->next = call;
	else
		pl->queue_head = call;
	pl->queue_tail = call;
	pthread_mutex_unlock(&pl->lock);
	/* the I/O thread takes the whole queue each time: one wake-up per batch */
	if (was_empty)
		wake();
	return 0;
}

void
redis_pipeline_counts(uint64_t *calls, uint64_t *runs)
{
	*calls = atomic_load(&answered_calls);
	*runs = atomic_load(&answered_runs);
}
