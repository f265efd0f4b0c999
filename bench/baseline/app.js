'use strict';
// app.js: one worker of the baseline, the seed's admin back end as its
// architecture describes it (Express; pg pool; ioredis; jsonwebtoken HS256;
// bcrypt (native); Zod), serving the routes `make bench` compares over the same
// iam.* tables as pg_iam:
//
//   POST  /api/v1/auth/login      bcrypt check, session row, HS256 tokens
//   GET   /api/v1/users/me        profile (Redis user:profile:{id}, 5 min) + permissions
//   POST  /api/v1/authz/check     permissions from Redis user:perms:{id} (10 min)
//   GET   /api/v1/users           OFFSET pagination (page, limit) with a total count
//   PATCH /api/v1/users/:id       Zod-validated update, audit row queued after the reply
//
// The middleware chain is the seed's request flow: rate limiter (Redis
// counter ratelimit:{client}:{endpoint}, 1 min) -> JWT -> permissions (Redis,
// else SQL joins with a recursive CTE over role inheritance) -> Zod ->
// handler.  No trigger of pg_iam runs for it (the pool sets
// session_replication_role = replica, see PG_OPTIONS in bench/http.sh): the
// seed's design had none, and it writes its own audit rows into
// bench_node.audit_logs (iam.audit_logs is append-only for pg_iam's code).
//
// Environment: PORT, DATABASE_URL, PG_POOL_MAX (10, pg's default),
// PG_OPTIONS, REDIS_URL, JWT_SECRET (HS256, >= 32 bytes), RATE_LIMIT
// (requests per client and endpoint per minute; 600).
const crypto = require('node:crypto');
const express = require('express');
const { Pool } = require('pg');
const { Redis } = require('ioredis');
const jwt = require('jsonwebtoken');
const bcrypt = require('bcrypt');
const { z } = require('zod');

const PORT = Number(process.env.PORT || 3000);
const JWT_SECRET = process.env.JWT_SECRET;
const RATE_LIMIT = Number(process.env.RATE_LIMIT || 600);
const ACCESS_TTL = 3600;
const REFRESH_TTL = 7 * 86400;
const PERMS_TTL = 600;		// user:perms:{id}, 10 min
const PROFILE_TTL = 300;	// user:profile:{id}, 5 min
if (!JWT_SECRET || JWT_SECRET.length < 32) {
	console.error('baseline: JWT_SECRET must be at least 32 bytes');
	process.exit(2);
}

const pool = new Pool({
	connectionString: process.env.DATABASE_URL,
	max: Number(process.env.PG_POOL_MAX || 10),
	options: process.env.PG_OPTIONS || undefined,
});
pool.on('error', (err) => console.error('baseline: idle client error', err.message));
const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', { enableAutoPipelining: true });

// ---- errors ------------------------------------------------------------
class HttpError extends Error {
	constructor(status, message) {
		super(message);
		this.status = status;
	}
}
const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);

// ---- middleware ----------------------------------------------------------
// rateLimit(endpoint): fixed one-minute window per client address and endpoint.
function rateLimit(endpoint) {
	return wrap(async (req, res, next) => {
		const key = `ratelimit:${req.ip}:${endpoint}`;
		const [[, count]] = await redis.multi().incr(key).expire(key, 60, 'NX').exec();
		res.set('X-RateLimit-Limit', String(RATE_LIMIT));
		res.set('X-RateLimit-Remaining', String(Math.max(0, RATE_LIMIT - count)));
		if (count > RATE_LIMIT) {
			res.set('Retry-After', '60');
			throw new HttpError(429, 'too many requests');
		}
		next();
	});
}

function authenticate(req, res, next) {
	const h = req.get('authorization') || '';
	if (!h.startsWith('Bearer ')) return next(new HttpError(401, 'missing bearer token'));
	try {
		const claims = jwt.verify(h.slice(7), JWT_SECRET, { algorithms: ['HS256'] });
		req.user = { id: claims.sub, org: claims.org, sid: claims.sid };
		next();
	} catch (e) {
		next(new HttpError(401, 'invalid token'));
	}
}

// Every permission the user holds globally: primary role and extra roles
// (not expired), their inherited roles (recursive), and direct grants.
const PERMISSIONS_SQL = `
WITH RECURSIVE me AS (
	SELECT id, org_id, role FROM iam.users WHERE id = $1 AND is_active AND deleted_at IS NULL
), direct_roles AS (
	SELECT r.id FROM me JOIN iam.roles r ON r.name = me.role AND (r.org_id = me.org_id OR r.org_id IS NULL)
	UNION
	SELECT ur.role_id FROM me JOIN iam.user_roles ur ON ur.user_id = me.id
	WHERE ur.expires_at IS NULL OR ur.expires_at > now()
), all_roles (id) AS (
	SELECT id FROM direct_roles
	UNION
	SELECT ri.inherits_role_id FROM all_roles a JOIN iam.role_inheritance ri ON ri.role_id = a.id
)
SELECT p.name FROM all_roles a
	JOIN iam.role_permissions rp ON rp.role_id = a.id
	JOIN iam.permissions p ON p.id = rp.permission_id
UNION
SELECT p.name FROM me
	JOIN iam.user_permissions up ON up.user_id = me.id
	JOIN iam.permissions p ON p.id = up.permission_id
WHERE up.resource_type IS NULL AND (up.expires_at IS NULL OR up.expires_at > now())
ORDER BY 1`;

async function permissionsOf(userId) {
	const key = `user:perms:${userId}`;
	const cached = await redis.get(key);
	if (cached) return JSON.parse(cached);
	const { rows } = await pool.query({ name: 'perms', text: PERMISSIONS_SQL, values: [userId] });
	const perms = rows.map((r) => r.name);
	await redis.set(key, JSON.stringify(perms), 'EX', PERMS_TTL);
	return perms;
}

const loadPermissions = wrap(async (req, res, next) => {
	req.permissions = new Set(await permissionsOf(req.user.id));
	next();
});

function authorize(permission) {
	return (req, res, next) =>
		next(req.permissions.has(permission) ? undefined : new HttpError(403, `permission denied: this requires ${permission}`));
}

function validate(schema, where) {
	return (req, res, next) => {
		const r = schema.safeParse(req[where]);
		if (!r.success) return next(new HttpError(where === 'body' ? 422 : 400, r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')));
		req.valid = Object.assign(req.valid || {}, { [where]: r.data });
		next();
	};
}

// ---- representation -------------------------------------------------------
const USER_COLUMNS = `id, email, name, role, department, phone, profile_image, employment_equity, is_active,
	two_factor_enabled, metadata, last_login, created_at, updated_at, deleted_at`;
const maskEmail = (e) => (e && e.indexOf('@') > 0 ? e[0] + '***' + e.slice(e.indexOf('@')) : e && '***');
const maskPhone = (p) => p && p.replace(/[0-9](?=(?:[^0-9]*[0-9]){2})/g, '*');
function userJson(u, unmasked) {
	return {
		id: u.id,
		email: unmasked ? u.email : maskEmail(u.email),
		name: u.name,
		role: u.role,
		department: u.department,
		phone: unmasked ? u.phone : maskPhone(u.phone),
		profile_image: u.profile_image,
		employment_equity: unmasked ? u.employment_equity : null,
		is_active: u.is_active,
		two_factor_enabled: u.two_factor_enabled,
		metadata: u.metadata,
		last_login: u.last_login,
		created_at: u.created_at,
		updated_at: u.updated_at,
		deleted_at: u.deleted_at,
	};
}

// ---- routes ---------------------------------------------------------------
const app = express();
app.set('trust proxy', false);
app.set('etag', false);
app.disable('x-powered-by');
app.use(express.json({ limit: '1mb' }));
const api = express.Router();

const loginSchema = z.object({ email: z.string().email().max(255), password: z.string().min(1).max(1024), totp: z.string().optional() }).strict();
api.post('/auth/login', rateLimit('auth:login'), validate(loginSchema, 'body'), wrap(async (req, res) => {
	const { email, password } = req.valid.body;
	const { rows } = await pool.query({
		name: 'login_user',
		text: `SELECT u.id, u.org_id, c.password_hash FROM iam.users u JOIN bench_node.credentials c ON c.user_id = u.id
			   WHERE lower(u.email) = lower($1) AND u.is_active AND u.deleted_at IS NULL`,
		values: [email],
	});
	const u = rows[0];
	if (!u || !(await bcrypt.compare(password, u.password_hash))) throw new HttpError(401, 'invalid e-mail address or password');
	const sid = crypto.randomUUID();
	const refresh = crypto.randomBytes(32).toString('base64url');
	await pool.query({
		name: 'login_session',
		text: `INSERT INTO iam.user_sessions (id, user_id, org_id, token_hash, ip_address, user_agent, expires_at)
			   VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))`,
		values: [sid, u.id, u.org_id, crypto.createHash('sha256').update(refresh).digest(), req.ip, req.get('user-agent') || null, REFRESH_TTL],
	});
	await pool.query({ name: 'login_stamp', text: 'UPDATE iam.users SET last_login = now() WHERE id = $1', values: [u.id] });
	pool.query({
		name: 'login_activity',
		text: `INSERT INTO bench_node.activity_logs (user_id, org_id, type, description, ip_address, user_agent)
			   VALUES ($1, $2, 'login', 'signed in', $3, $4)`,
		values: [u.id, u.org_id, req.ip, req.get('user-agent') || null],
	}).catch((e) => console.error('baseline: activity log', e.message));
	const access = jwt.sign({ sub: u.id, org: u.org_id, sid, jti: crypto.randomUUID() }, JWT_SECRET, { algorithm: 'HS256', expiresIn: ACCESS_TTL });
	res.json({ access_token: access, refresh_token: refresh, token_type: 'Bearer', expires_in: ACCESS_TTL });
}));

api.get('/users/me', rateLimit('users:me'), authenticate, loadPermissions, wrap(async (req, res) => {
	const key = `user:profile:${req.user.id}`;
	let profile = await redis.get(key);
	if (profile) {
		profile = JSON.parse(profile);
	} else {
		const { rows } = await pool.query({
			name: 'me',
			text: `SELECT ${USER_COLUMNS} FROM iam.users WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`,
			values: [req.user.id, req.user.org],
		});
		if (!rows[0]) throw new HttpError(401, 'not signed in as an active user of this organisation');
		profile = userJson(rows[0], true);
		await redis.set(key, JSON.stringify(profile), 'EX', PROFILE_TTL);
	}
	res.json({ ...profile, permissions: [...req.permissions] });
}));

const authzSchema = z.object({
	permissions: z.array(z.string().max(100)).min(1).max(100),
	resource: z.object({ type: z.string().regex(/^[a-z][a-z0-9_]{0,49}$/), id: z.guid() }).strict().nullable().optional(),
}).strict();
api.post('/authz/check', rateLimit('authz:check'), authenticate, loadPermissions, validate(authzSchema, 'body'), wrap(async (req, res) => {
	const { permissions, resource } = req.valid.body;
	const results = {};
	for (const p of permissions) results[p] = req.permissions.has(p);
	if (resource) {
		const missing = permissions.filter((p) => !results[p]);
		if (missing.length) {
			const { rows } = await pool.query({
				name: 'authz_resource',
				text: `SELECT p.name FROM iam.user_permissions up JOIN iam.permissions p ON p.id = up.permission_id
					   WHERE up.user_id = $1 AND up.resource_type = $2 AND up.resource_id = $3 AND p.name = ANY ($4)
						 AND (up.expires_at IS NULL OR up.expires_at > now())`,
				values: [req.user.id, resource.type, resource.id, missing],
			});
			for (const r of rows) results[r.name] = true;
		}
	}
	res.json({ results });
}));

const listSchema = z.object({
	page: z.coerce.number().int().min(1).max(1e9).default(1),
	limit: z.coerce.number().int().min(1).max(200).default(50),
}).strict();
api.get('/users', rateLimit('users:list'), authenticate, loadPermissions, authorize('users.read'), validate(listSchema, 'query'), wrap(async (req, res) => {
	const { page, limit } = req.valid.query;
	const offset = (page - 1) * limit;
	const [list, count] = await Promise.all([
		pool.query({
			name: 'users_page',
			text: `SELECT ${USER_COLUMNS} FROM iam.users WHERE org_id = $1 AND deleted_at IS NULL
				   ORDER BY created_at, id LIMIT $2 OFFSET $3`,
			values: [req.user.org, limit, offset],
		}),
		pool.query({
			name: 'users_count',
			text: 'SELECT count(*)::int AS n FROM iam.users WHERE org_id = $1 AND deleted_at IS NULL',
			values: [req.user.org],
		}),
	]);
	const pii = req.permissions.has('users.read_pii');
	const total = count.rows[0].n;
	res.json({
		data: list.rows.map((u) => userJson(u, pii || u.id === req.user.id)),
		pagination: { page, limit, total, total_pages: Math.ceil(total / limit) },
	});
}));

const idSchema = z.object({ id: z.guid() });
const patchSchema = z.object({
	email: z.string().email().max(255),
	name: z.string().trim().min(1).max(255),
	role: z.string().regex(/^[a-z][a-z0-9_]*$/).max(50),
	department: z.string().max(100).nullable(),
	phone: z.string().regex(/^\+?[0-9 ().-]{3,20}$/).nullable(),
	profile_image: z.string().url().max(2048).nullable(),
	employment_equity: z.string().max(50).nullable(),
	is_active: z.boolean(),
	metadata: z.record(z.string(), z.unknown()).nullable(),
}).partial().strict();
api.patch('/users/:id', rateLimit('users:update'), authenticate, loadPermissions, authorize('users.update'),
	validate(idSchema, 'params'), validate(patchSchema, 'body'), wrap(async (req, res) => {
		const id = req.valid.params.id;
		const patch = req.valid.body;
		const { rows: [before] } = await pool.query({
			name: 'user_get',
			text: `SELECT ${USER_COLUMNS} FROM iam.users WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL`,
			values: [id, req.user.org],
		});
		if (!before) throw new HttpError(404, 'user not found');
		if (patch.role !== undefined && patch.role !== before.role) {
			if (!req.permissions.has('roles.manage')) throw new HttpError(403, 'permission denied: changing a role requires roles.manage');
			const { rowCount } = await pool.query({
				name: 'role_exists',
				text: 'SELECT 1 FROM iam.roles WHERE name = $1 AND (org_id = $2 OR org_id IS NULL)',
				values: [patch.role, req.user.org],
			});
			if (!rowCount) throw new HttpError(422, 'role: unknown role');
		}
		const cols = Object.keys(patch);
		if (cols.includes('metadata')) patch.metadata = { ...before.metadata, ...(patch.metadata || {}) };
		const sets = cols.map((c, i) => `${c} = $${i + 3}`).concat('updated_at = now()');
		let after;
		try {
			({ rows: [after] } = await pool.query(
				`UPDATE iam.users SET ${sets.join(', ')} WHERE id = $1 AND org_id = $2 RETURNING ${USER_COLUMNS}`,
				[id, req.user.org, ...cols.map((c) => patch[c])]));
		} catch (e) {
			if (e.code === '23505') throw new HttpError(409, 'email: a user with this e-mail address already exists');
			throw e;
		}
		const changes = {};
		for (const c of cols) {
			if (JSON.stringify(before[c]) !== JSON.stringify(after[c])) changes[c] = { old: before[c], new: after[c] };
		}
		await redis.del(`user:profile:${id}`, `user:perms:${id}`);
		res.json(userJson(after, req.permissions.has('users.read_pii') || id === req.user.id));
		// the seed's "audit log (async)": queued after the reply
		pool.query({
			name: 'audit_insert',
			text: `INSERT INTO bench_node.audit_logs (user_id, org_id, action, entity_type, entity_id, changes, ip_address, user_agent)
				   VALUES ($1, $2, 'users.update', 'user', $3, $4, $5, $6)`,
			values: [req.user.id, req.user.org, id, changes, req.ip, req.get('user-agent') || null],
		}).catch((e) => console.error('baseline: audit insert', e.message));
	}));

app.get('/healthz', (req, res) => res.json({ status: 'ok' }));
app.use('/api/v1', api);
app.use((req, res) => res.status(404).type('application/problem+json').json({ title: 'Not Found', status: 404 }));
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
	const status = err.status || (err.type === 'entity.parse.failed' ? 400 : 500);
	if (status === 500) console.error('baseline:', err);
	res.status(status).type('application/problem+json')
		.json({ title: status === 500 ? 'Internal Server Error' : err.message, status });
});

const server = app.listen(PORT, '127.0.0.1');
server.keepAliveTimeout = 65000;
process.on('SIGTERM', () => server.close(() => Promise.allSettled([pool.end(), redis.quit()]).then(() => process.exit(0))));
