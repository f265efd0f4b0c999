/*
 * api.h
 *		The /api/v1 pipeline: route, authenticate, check, one round trip.
 */
#ifndef API_H
#define API_H

#include "http.h"

/*
 * api_handle answers one fully received request for /api/v1<path>: route
 * match (404 / 405 + Allow), OPTIONS (204 + Allow, CORS preflight),
 * bearer-token verification (401 + WWW-Authenticate), query parameters
 * (400), body checks (415 / 400), then one pipelined round trip to
 * PostgreSQL on a pooled connection, whose answer is copied to the client
 * byte for byte, or mapped to problem+json by sqlstate.c.  Returns 0, or -1
 * when no reply could be queued.
 */
extern int	api_handle(HttpRequest *req, const HttpContext *ctx, const char *path);

/* api_openapi answers GET /openapi.json from iam.openapi(), cached per route table. */
extern int	api_openapi(HttpRequest *req, const HttpContext *ctx);

#endif							/* API_H */
