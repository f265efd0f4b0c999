# pg_iam: the extension (built with PGXS), the gateway, and the commands that
# set everything up and test it.
#
#   make            build the extension and gateway/iam-gateway
#   make install    install the extension into the server pg_config names
#   make up / down  start / stop a local cluster, Redis and the gateway
#   make test       everything, on throwaway servers; ends "N passed, N failed"
#   make bench      benchmarks (bench/)

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

EXTENSION = iam
MODULE_big = iam
OBJS = \
	extension/iam.o \
	extension/catalog.o \
	extension/context.o \
	extension/password.o \
	extension/auth.o \
	extension/totp.o \
	extension/timestamps.o \
	extension/rbac.o \
	extension/rbac_cache.o \
	extension/rbac_query.o \
	extension/rbac_explain.o \
	extension/rbac_cycle.o \
	extension/escalation.o \
	extension/audit.o \
	extension/audit_chain.o \
	extension/audit_sealer.o \
	extension/cache_version.o \
	extension/refresh_worker.o \
	extension/api_format.o \
	extension/api_caller.o \
	extension/api_cursor.o \
	extension/api_query_cache.o \
	extension/audit_partition.o
DATA = $(wildcard extension/iam--*.sql)
# -lcrypt: libxcrypt, for the bcrypt hashes of earlier systems
SHLIB_LINK = -largon2 -lcrypto -lcrypt
# -Wextra: PostgreSQL's own headers (static inline functions) and its callback
# signatures (PG_FUNCTION_ARGS, GUC hooks) raise unused-parameter; nothing
# else is silenced.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter

REGRESS = schema context password rbac rbac_explain rbac_cache_local grants rbac_upgrade audit audit_chain audit_erase audit_upgrade api_upgrade reports reports_upgrade auth cache_versions api_format api_cursor reports_incremental audit_partition partition_upgrade
# cross-session behaviour: specs/*.spec against expected/*.out, in a database
# of their own (isolation_regression_iam)
ISOLATION = rbac_cache rbac_cycle audit_seal reports_refresh cache_version user_email_race

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
all: gateway
else
all install installcheck:
	@echo "PostgreSQL's server headers are missing: run 'make deps' (or 'make up')." >&2
	@exit 1
endif

.PHONY: gateway deps up down test bench
gateway:
	$(MAKE) -C gateway

deps:
	@scripts/deps.sh

up:
	@scripts/up.sh

down:
	@scripts/down.sh

test:
	@scripts/test.sh

bench:
	@scripts/bench.sh

clean: clean-gateway
.PHONY: clean-gateway
clean-gateway:
	-$(MAKE) -C gateway clean
