'use strict';
// server.js: the baseline's entry point, deployed the way the seed's Node
// services are: Node's cluster module, one worker per core (WEB_CONCURRENCY
// overrides), NODE_ENV=production.  Each worker runs app.js with its own pg
// pool and Redis connection; the primary only forks and restarts workers.
const cluster = require('node:cluster');
const os = require('node:os');

if (cluster.isPrimary) {
	const n = Number(process.env.WEB_CONCURRENCY) || os.availableParallelism();
	let stopping = false;
	for (let i = 0; i < n; i++) cluster.fork();
	cluster.on('exit', (worker, code, signal) => {
		if (stopping) return;
		console.error(`baseline: worker ${worker.process.pid} exited (${signal || code}); restarting`);
		cluster.fork();
	});
	const stop = () => {
		stopping = true;
		for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
		setTimeout(() => process.exit(0), 2000).unref();
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
	console.error(`baseline: primary ${process.pid}, ${n} workers, NODE_ENV=${process.env.NODE_ENV}`);
} else {
	require('./app');
}
