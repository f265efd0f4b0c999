/*
 * hello.c: the HTTP ceiling of `make bench` (bench/http.sh builds it).  A bare
 * libmicrohttpd server answering every request with the same small JSON
 * body, run with the same threading model as the gateway (an internal
 * epoll thread pool of IAM_THREADS threads), so that the gap between this
 * and the gateway is the work the gateway does per request.
 *
 * usage: hello PORT [THREADS]; stops on SIGTERM or SIGINT.
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static const char body[] = "{\"status\":\"ok\"}";
static struct MHD_Response *response;

/* answer sends the shared response (libmicrohttpd keeps it; freed at exit). */
static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	(void) cls;
	(void) url;
	(void) method;
	(void) version;
	(void) upload_data;
	if (*req_cls == NULL)
	{
		*req_cls = (void *) 1;	/* first call: headers only */
		return MHD_YES;
	}
	*upload_data_size = 0;
	return MHD_queue_response(conn, MHD_HTTP_OK, response);
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	sigset_t	stop;
	int			sig;
	unsigned int threads;
	struct sockaddr_in addr;

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
		return 2;
	}
	threads = argc > 2 ? (unsigned int) atoi(argv[2]) : 1;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t) atoi(argv[1]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	response = MHD_create_response_from_buffer(sizeof(body) - 1, (void *) body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(response, "Content-Type", "application/json");
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
						 (uint16_t) atoi(argv[1]), NULL, NULL, answer, NULL,
						 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
						 MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
						 MHD_OPTION_CONNECTION_LIMIT, 10000,
						 MHD_OPTION_CONNECTION_TIMEOUT, 30,
						 threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads,
						 MHD_OPTION_END);
	if (d == NULL)
	{
		fprintf(stderr, "hello: cannot listen on port %s\n", argv[1]);
		return 1;
	}
	sigdelset(&stop, SIGPIPE);
	sigwait(&stop, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(response);
	return 0;
}
